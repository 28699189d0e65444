"""Tenant secrets encrypted at rest (AES-256-GCM) with keys from configuration.

``RAGSTREAM_SECRET_KEYS`` holds one or more keys, comma-separated, each 32 random bytes in
base64 (``python -c 'import secrets,base64; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'``
or ``openssl rand -base64 32``). The FIRST key encrypts; EVERY key decrypts, so a new key is
put first while the old ones stay, ``reseal`` moves each secret to it, and then the old key
can go (the rotation in the README's Security section).

A sealed secret is the text ``rs1:<key id>:<base64 of nonce and ciphertext>``: it names the
key that encrypted it (the id is a fingerprint of the key, never the key) and is bound to a
``context`` (say tenant and collection) as associated data, so a ciphertext copied into another
row does not decrypt. Nothing here logs or quotes a plaintext or a key.

Errors: ``SecretUnavailable`` when no key is configured (nothing may be stored in plain text
instead) or no configured key decrypts a stored secret (the message names the key id it needs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from secrets import token_bytes

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ragstream_core.errors import SecretUnavailable

__all__ = ["SecretBox", "SecretKeyError", "generate_key", "key_file", "key_id_of", "sealed_key_id"]

_PREFIX = "rs1"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_SETTING = "RAGSTREAM_SECRET_KEYS"


class SecretKeyError(ValueError):
    """A configured key is not 32 bytes of base64 (raised when settings are read: refuse to start)."""


def generate_key() -> str:
    """A new random key in the form ``RAGSTREAM_SECRET_KEYS`` takes (URL-safe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(token_bytes(_KEY_BYTES)).decode()


def key_id_of(key: bytes) -> str:
    """The public fingerprint of ``key``: 12 hex characters, safe to log and store."""
    return hashlib.sha256(b"ragstream secret key id\x00" + key).hexdigest()[:12]


def sealed_key_id(sealed: str) -> str:
    """The id of the key that encrypted ``sealed`` (``""`` when it is not a sealed secret)."""
    parts = sealed.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == _PREFIX else ""


def _decode_key(text: str, position: int) -> bytes:
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        # the key itself is never quoted: only where it is and what is accepted
        raise SecretKeyError(
            f"{_SETTING}: key {position} of the list is not {_KEY_BYTES} bytes in base64 "
            f"({len(text)} characters given); accepted: keys made by `openssl rand -base64 32`, comma-separated"
        )
    return key


@dataclass(frozen=True)
class _Key:
    key_id: str
    cipher: AESGCM


class SecretBox:
    """Seals and opens secrets with the configured keys; the first key seals, any key opens.

    Thread-safe and stateless apart from the keys. An empty box opens nothing and refuses to seal.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = [_Key(key_id_of(key), AESGCM(key)) for key in keys]
        self._by_id = {k.key_id: k for k in self._keys}

    @classmethod
    def from_config(cls, value: str) -> SecretBox:
        """The box of ``RAGSTREAM_SECRET_KEYS`` (comma-separated keys, first encrypts); raises
        ``SecretKeyError`` naming the position of a key that is not 32 bytes of base64."""
        texts = [part.strip() for part in value.split(",") if part.strip()]
        return cls([_decode_key(text, position) for position, text in enumerate(texts, start=1)])

    @property
    def key_ids(self) -> list[str]:
        """The ids of the configured keys, the sealing one first."""
        return [k.key_id for k in self._keys]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def seal(self, plaintext: str, *, context: str) -> str:
        """``plaintext`` encrypted with the first key and bound to ``context``; raises
        ``SecretUnavailable`` when no key is configured (it is never stored in plain text)."""
        if not self._keys:
            raise SecretUnavailable(
                f"no secret key is configured, and secrets are only stored encrypted: set {_SETTING} "
                "(one or more keys of 32 bytes in base64, comma-separated; the first encrypts)"
            )
        key = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = key.cipher.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_PREFIX}:{key.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, *, context: str, name: str) -> str:
        """The plaintext of ``sealed``; raises ``SecretUnavailable`` naming ``name`` (what the
        secret belongs to) and the key id it needs when no configured key decrypts it."""
        key_id = sealed_key_id(sealed)
        key = self._by_id.get(key_id)
        if key is None:
            configured = ", ".join(self.key_ids) or "none"
            raise SecretUnavailable(
                f"the secret of {name} was encrypted with key {key_id or '(unknown format)'}, which is not "
                f"configured (configured key ids: {configured}); add that key to {_SETTING} (after the first), "
                "or set the secret again",
                key_id=key_id,
            )
        try:
            raw = base64.urlsafe_b64decode(sealed.split(":", 2)[2])
            return key.cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SecretUnavailable(
                f"the secret of {name} does not decrypt with key {key_id}: it was altered or belongs to "
                "another record; set the secret again",
                key_id=key_id,
            ) from exc

    def reseal(self, sealed: str, *, context: str, name: str) -> str | None:
        """``sealed`` encrypted again with the first key, or ``None`` when it already is (idempotent);
        raises as ``open`` does."""
        if self._keys and sealed_key_id(sealed) == self._keys[0].key_id:
            return None
        return self.seal(self.open(sealed, context=context, name=name), context=context)


def key_file(path: Path) -> str:
    """The key kept in ``path``, made (random, readable by its owner only) when the file does not
    exist: the embedded default of ``make run`` and the test stacks, never production's."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key

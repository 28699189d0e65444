"""Secrets sealed with configured keys: the first seals, every one opens, nothing in plain text."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from ragstream_core.errors import SecretUnavailable, mapping_for
from ragstream_core.secrets import SecretBox, SecretKeyError, generate_key, key_file, key_id_of, sealed_key_id
from ragstream_core.settings import CoreSettings

SECRET = "sk-live-0123456789abcdef"
CONTEXT = "chat.collection_settings\x00acme\x00docs\x00https://llm.example.com/v1"


def test_sealed_secret_is_not_the_plaintext_and_names_the_sealing_key() -> None:
    key = generate_key()
    box = SecretBox.from_config(key)

    sealed = box.seal(SECRET, context=CONTEXT)

    assert SECRET not in sealed
    assert sealed_key_id(sealed) == box.key_ids[0] == key_id_of(base64.urlsafe_b64decode(key))
    assert key not in sealed


def test_sealing_twice_gives_different_ciphertexts_that_open_to_the_same_secret() -> None:
    box = SecretBox.from_config(generate_key())

    first, second = box.seal(SECRET, context=CONTEXT), box.seal(SECRET, context=CONTEXT)

    assert first != second
    assert box.open(first, context=CONTEXT, name="x") == box.open(second, context=CONTEXT, name="x") == SECRET


def test_another_key_does_not_open_a_secret_and_says_which_key_it_needs() -> None:
    sealed = SecretBox.from_config(generate_key()).seal(SECRET, context=CONTEXT)
    other = SecretBox.from_config(generate_key())

    with pytest.raises(SecretUnavailable) as refused:
        other.open(sealed, context=CONTEXT, name="collection 'docs' of tenant 'acme'")

    message = str(refused.value)
    assert "collection 'docs' of tenant 'acme'" in message
    assert sealed_key_id(sealed) in message
    assert other.key_ids[0] in message
    assert SECRET not in message


def test_a_secret_moved_to_another_context_does_not_open() -> None:
    box = SecretBox.from_config(generate_key())
    sealed = box.seal(SECRET, context=CONTEXT)

    with pytest.raises(SecretUnavailable, match="altered or belongs to another record"):
        box.open(sealed, context=CONTEXT.replace("acme", "evil"), name="collection 'docs' of tenant 'evil'")


def test_an_altered_ciphertext_does_not_open() -> None:
    box = SecretBox.from_config(generate_key())
    sealed = box.seal(SECRET, context=CONTEXT)
    prefix, key_id, body = sealed.split(":")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1

    with pytest.raises(SecretUnavailable, match="altered"):
        box.open(f"{prefix}:{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}", context=CONTEXT, name="x")


def test_the_first_key_seals_and_every_key_opens() -> None:
    old, new = generate_key(), generate_key()
    sealed_by_old = SecretBox.from_config(old).seal(SECRET, context=CONTEXT)
    both = SecretBox.from_config(f"{new}, {old}")

    sealed_by_both = both.seal(SECRET, context=CONTEXT)

    assert sealed_key_id(sealed_by_both) == both.key_ids[0] == SecretBox.from_config(new).key_ids[0]
    assert both.open(sealed_by_old, context=CONTEXT, name="x") == SECRET


def test_reseal_moves_a_secret_to_the_first_key_once() -> None:
    old, new = generate_key(), generate_key()
    sealed = SecretBox.from_config(old).seal(SECRET, context=CONTEXT)
    both = SecretBox.from_config(f"{new},{old}")

    resealed = both.reseal(sealed, context=CONTEXT, name="x")

    assert resealed is not None
    assert sealed_key_id(resealed) == both.key_ids[0]
    assert both.reseal(resealed, context=CONTEXT, name="x") is None
    assert SecretBox.from_config(new).open(resealed, context=CONTEXT, name="x") == SECRET


def test_without_a_key_nothing_is_sealed_and_the_error_says_what_to_configure() -> None:
    with pytest.raises(SecretUnavailable) as refused:
        SecretBox.from_config("").seal(SECRET, context=CONTEXT)

    assert "RAGSTREAM_SECRET_KEYS" in str(refused.value)
    assert mapping_for(refused.value).http_status == 409


def test_openssl_style_base64_keys_are_accepted() -> None:
    standard = base64.b64encode(bytes(range(250, 256)) + bytes(26)).decode()  # holds '+' or '/'

    box = SecretBox.from_config(standard)

    assert box.open(box.seal(SECRET, context=CONTEXT), context=CONTEXT, name="x") == SECRET


def test_a_malformed_key_is_refused_by_position_without_quoting_it() -> None:
    short = base64.b64encode(b"sixteen byte key").decode()

    with pytest.raises(SecretKeyError) as refused:
        SecretBox.from_config(f"{generate_key()},{short}")

    assert "key 2 of the list" in str(refused.value)
    assert short not in str(refused.value)


def test_settings_refuse_a_malformed_key_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGSTREAM_SECRET_KEYS", "not-a-key-but-a-password-4711")

    with pytest.raises(ValidationError) as refused:
        CoreSettings()

    assert "key 1 of the list" in str(refused.value)
    assert "password-4711" not in str(refused.value)


def test_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret-keys"

    first = key_file(path)
    second = key_file(path)

    assert first == second
    assert SecretBox.from_config(first).configured
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

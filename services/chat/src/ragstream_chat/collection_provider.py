"""A collection's own OpenAI-compatible endpoint: its settings checked, its key sealed and opened.

An editor of a collection may point it at an endpoint of its own (base URL, model, API key)
instead of the service's ``RAGSTREAM_CHAT_OPENAI_*``. The key is write-only: it is sealed at
once with ``RAGSTREAM_SECRET_KEYS`` and opened only to answer a question; the API shows whether
one is set and at most its last 4 characters. A kept key stays bound to its base URL: changing
the URL without sending the key again drops it, so nobody redirects a key they cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ragstream_chat.answers import OpenAICompatibleAnswerer
from ragstream_chat.collection_settings import CollectionEndpoint, secret_context, secret_owner
from ragstream_core.errors import InvalidInput
from ragstream_core.secrets import SecretBox

__all__ = ["CollectionProviders", "EndpointUpdate"]

#: shortest key whose last 4 characters are shown (of a shorter one, 4 would be too much of it)
_HINT_MIN_LENGTH = 16
_MAX_KEY_LENGTH = 4096


@dataclass(frozen=True)
class EndpointUpdate:
    """What a settings request says of the endpoint. ``api_key_sent`` false: keep the stored key
    (if the base URL stays); sent as ``None`` or empty: remove it."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    api_key_sent: bool = False


def _check_base_url(base_url: str) -> str:
    accepted = "accepted: an http(s) URL such as https://api.example.com/v1"
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # raises for a port that is not one
        httpx.URL(base_url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidInput(f"openai_base_url is not a URL ({exc}); {accepted}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"openai_base_url {base_url!r} is not an http(s) URL; {accepted}")
    if parts.username or parts.password:
        raise InvalidInput("openai_base_url must not carry credentials (user:password@); send the key as api_key")
    return base_url.rstrip("/")


def _check_key(api_key: str) -> str:
    if len(api_key) > _MAX_KEY_LENGTH or not api_key.isprintable() or any(c.isspace() for c in api_key):
        # the key itself is never quoted
        raise InvalidInput(f"api_key is refused: accepted: up to {_MAX_KEY_LENGTH} printable characters without spaces")
    return api_key


class CollectionProviders:
    """Seals the keys of collections' endpoints and builds their answerers (one HTTP client for all)."""

    def __init__(self, secrets: SecretBox, *, timeout_s: float) -> None:
        self.secrets = secrets
        self.timeout_s = timeout_s
        self.client = httpx.AsyncClient(timeout=timeout_s)

    def endpoint(
        self, tenant_id: str, collection_id: str, update: EndpointUpdate, stored: CollectionEndpoint | None
    ) -> CollectionEndpoint | None:
        """The endpoint to store for ``update`` over ``stored``; raises ``InvalidInput`` for a bad URL,
        model or key, ``SecretUnavailable`` when a key is sent and no secret key is configured."""
        if update.base_url is None:
            if update.api_key:
                raise InvalidInput("api_key needs openai_base_url and openai_model: the endpoint it is for")
            return None
        base_url = _check_base_url(update.base_url)
        if not update.model:
            raise InvalidInput("openai_base_url needs openai_model: the model to ask at that endpoint")
        if update.api_key_sent:
            if not update.api_key:
                return CollectionEndpoint(base_url, update.model)
            key = _check_key(update.api_key)
            sealed = self.secrets.seal(key, context=secret_context(tenant_id, collection_id, base_url))
            hint = key[-4:] if len(key) >= _HINT_MIN_LENGTH else None
            return CollectionEndpoint(base_url, update.model, sealed, hint)
        if stored is not None and stored.base_url == base_url:
            return CollectionEndpoint(base_url, update.model, stored.api_key_sealed, stored.api_key_hint)
        return CollectionEndpoint(base_url, update.model)

    def answerer(self, tenant_id: str, collection_id: str, endpoint: CollectionEndpoint) -> OpenAICompatibleAnswerer:
        """The answerer of the collection's endpoint, with its key opened; raises ``SecretUnavailable``
        naming the collection and tenant when no configured key opens it."""
        api_key = ""
        if endpoint.api_key_sealed:
            api_key = self.secrets.open(
                endpoint.api_key_sealed,
                context=secret_context(tenant_id, collection_id, endpoint.base_url),
                name=secret_owner(tenant_id, collection_id),
            )
        return OpenAICompatibleAnswerer(
            base_url=endpoint.base_url, api_key=api_key, model=endpoint.model, timeout_s=self.timeout_s,
            client=self.client,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self.client.aclose()

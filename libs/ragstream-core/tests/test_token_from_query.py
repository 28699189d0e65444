"""``TokenFromQuery``: a key passed as ``?access_token=`` becomes the Authorization header."""

from __future__ import annotations

from typing import Any

from ragstream_core.runtime import TokenFromQuery


async def _scope_seen(scope: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(inner: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(inner)

    await TokenFromQuery(app)(scope, None, None)
    return seen


async def test_the_query_token_becomes_the_authorization_header_and_leaves_the_url() -> None:
    scope = {
        "type": "websocket",
        "query_string": b"job_id=j1&access_token=rs_live_abc_secret&after=3",
        "headers": [(b"origin", b"https://a.example")],
    }

    seen = await _scope_seen(scope)

    assert seen["query_string"] == b"job_id=j1&after=3"
    assert (b"authorization", b"Bearer rs_live_abc_secret") in seen["headers"]
    assert (b"origin", b"https://a.example") in seen["headers"]


async def test_a_request_without_a_query_token_passes_unchanged() -> None:
    scope = {"type": "http", "query_string": b"limit=5", "headers": [(b"authorization", b"Bearer k")]}

    seen = await _scope_seen(scope)

    assert seen == scope

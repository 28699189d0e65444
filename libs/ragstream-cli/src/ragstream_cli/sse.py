"""Server-Sent Events, parsed from lines as the WHATWG specification reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its name (``message`` by default), data and id (``None`` if unset)."""

    event: str
    data: str
    id: str | None = None


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """The events of a stream of lines. Comments (heartbeats) are skipped, ``data`` lines are
    joined by newlines, an event without data is not dispatched; a last event without its
    closing blank line is dropped, as the specification says."""
    name, event_id = "", None
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(name or "message", "\n".join(data), event_id)
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            event_id = value

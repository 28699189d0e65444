"""Server-Sent Events parsing as the specification reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ragstream_cli.sse import SseEvent, parse_sse


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def events(*items: str) -> list[SseEvent]:
    return [e async for e in parse_sse(lines(*items))]


async def test_events_carry_name_data_and_id_and_comments_are_skipped() -> None:
    parsed = await events(": heartbeat", "", "id: 7", "event: job", 'data: {"a": 1}', "", "data: plain", "")

    assert parsed == [SseEvent("job", '{"a": 1}', "7"), SseEvent("message", "plain", "7")]


async def test_data_lines_are_joined_and_a_missing_space_after_the_colon_is_fine() -> None:
    parsed = await events("event:delta", "data:one", "data: two", "")

    assert parsed == [SseEvent("delta", "one\ntwo", None)]


async def test_an_event_without_its_closing_blank_line_is_not_dispatched() -> None:
    parsed = await events("event: a", "data: 1", "", "event: b", "data: 2")

    assert [e.event for e in parsed] == ["a"]


async def test_carriage_returns_are_stripped() -> None:
    parsed = await events("event: x\r", "data: y\r", "\r")

    assert parsed == [SseEvent("x", "y", None)]

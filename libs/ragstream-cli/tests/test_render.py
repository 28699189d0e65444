"""Formatting of sizes, durations, cells and server errors."""

from __future__ import annotations

import httpx
import pytest
from rich.console import Console

from ragstream_cli.api import error_message, raise_for_answer
from ragstream_cli.errors import ExitCode, Refused, ServerFailed
from ragstream_cli.render import format_bytes, format_seconds, format_value, table


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**4, "3072.0 GiB"),
    ],
)
def test_sizes_read_in_binary_units(size: int | None, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0.42, "0.4s"), (59.94, "59.9s"), (75, "1m15s"), (3725, "1h02m")]
)
def test_durations_read_in_the_largest_sensible_unit(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_cells_show_nothing_as_a_dash_and_lists_joined() -> None:
    assert [format_value(v) for v in (None, "", [], ["a", "b"], True, 3)] == ["-", "-", "-", "a, b", "yes", "3"]


def test_a_table_escapes_markup_in_cells() -> None:
    console = Console(width=100, record=True, color_system=None)

    console.print(table(None, ("file", "status"), [("[bold]x.md", "failed")], status_column=1))

    text = console.export_text()
    assert "[bold]x.md" in text
    assert "failed" in text


def test_a_refusal_reads_as_the_servers_detail_with_status_and_error_name() -> None:
    body = {"error": "NotFound", "detail": "document 'd-1' does not exist", "trace_id": "t"}

    assert error_message(404, body) == "document 'd-1' does not exist (HTTP 404 NotFound)"


def test_fastapi_validation_errors_are_joined_with_their_field() -> None:
    body = {"detail": [{"loc": ["body", "question"], "msg": "String should have at least 1 character"}]}

    assert error_message(422, body) == "question: String should have at least 1 character (HTTP 422)"


def test_4xx_is_refused_with_exit_1_and_5xx_a_server_error_with_exit_4() -> None:
    with pytest.raises(Refused) as refused:
        raise_for_answer(httpx.Response(409, json={}), {"error": "Conflict", "detail": "exists"})
    with pytest.raises(ServerFailed) as failed:
        raise_for_answer(httpx.Response(503), "upstream down")

    assert refused.value.exit_code == ExitCode.FAILED
    assert str(refused.value) == "exists (HTTP 409 Conflict)"
    assert failed.value.exit_code == ExitCode.SERVER_ERROR
    assert str(failed.value) == "upstream down (HTTP 503)"


def test_an_unauthorised_answer_points_at_the_api_key() -> None:
    with pytest.raises(Refused, match="check RAGSTREAM_API_KEY"):
        raise_for_answer(httpx.Response(401), {"detail": "missing key"})


def test_long_texts_are_cut_in_tables_and_ids_stay_whole() -> None:
    console = Console(width=80, record=True, color_system=None)
    reason = "Docling could not read 'scan.pdf': " + "x" * 200
    document = "765517e8-77b0-4fe9-89aa-b3c72bca9b49"

    console.print(table(None, ("file", "document", "error"), [("scan.pdf", document, reason)]))

    text = console.export_text()
    assert document in text
    assert "x" * 200 not in "".join(text.split())
    assert "…" in text

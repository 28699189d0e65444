"""Cleaning the file names clients send: base name only, no control characters, never empty."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ragstream_core.errors import InvalidInput
from ragstream_devstack.testing import new_id
from ragstream_gateway.handlers import clean_file_name

if TYPE_CHECKING:
    from conftest import Gateway


def test_directories_are_stripped_from_a_posix_path() -> None:
    assert clean_file_name("../../etc/passwd") == "passwd"


def test_directories_are_stripped_from_a_windows_path() -> None:
    assert clean_file_name("C:\\Users\\ana\\..\\reports\\q3.pdf") == "q3.pdf"


def test_mixed_separators_leave_only_the_base_name() -> None:
    assert clean_file_name("uploads\\2024/../secret\\plan.docx") == "plan.docx"


def test_control_characters_are_removed() -> None:
    assert clean_file_name("re\x00po\x1brt\u200b.md\n") == "report.md"


def test_surrounding_spaces_and_dots_are_removed() -> None:
    assert clean_file_name("  notes.md. ") == "notes.md"


def test_long_names_are_cut_to_255_characters() -> None:
    assert len(clean_file_name("a" * 300 + ".md")) == 255


def test_a_long_name_keeps_its_extension() -> None:
    assert clean_file_name("a" * 5000 + ".docx") == "a" * 250 + ".docx"


def test_a_long_name_is_cut_to_255_bytes_of_utf8_without_splitting_a_character() -> None:
    cleaned = clean_file_name("é" * 300 + ".md")

    assert cleaned.endswith(".md")
    assert len(cleaned.encode()) <= 255
    assert set(cleaned[:-3]) == {"é"}


@pytest.mark.parametrize("raw", [None, "", "   ", "..", "../", "C:\\", "\x00\x01"])
def test_a_name_with_nothing_usable_is_invalid_input(raw: str | None) -> None:
    with pytest.raises(InvalidInput, match="no usable file name"):
        clean_file_name(raw)


async def test_a_file_name_too_long_for_a_multipart_header_is_400_saying_why(gateway: Gateway) -> None:
    response = await gateway.upload(new_id("col"), "l" * 5000 + ".md", b"# Long\n\nA name of 5,000 characters.")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "the multipart body could not be read: Maximum header size exceeded" in detail
    assert "accepted: multipart/form-data whose part headers are at most 4224 bytes" in detail


async def test_other_http_errors_keep_their_answer(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/no-such-route")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}

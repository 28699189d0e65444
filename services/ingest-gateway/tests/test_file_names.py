"""Cleaning the file names clients send: base name only, no control characters, never empty."""

from __future__ import annotations

import pytest

from ragstream_core.errors import InvalidInput
from ragstream_gateway.handlers import clean_file_name


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

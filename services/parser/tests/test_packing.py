"""Packing rows and cues into chunks: order kept, budget never exceeded (a word-count tokenizer)."""

from __future__ import annotations

import pytest

from ragstream_parser.packing import Unit, pack, split_to_fit


def words(text: str) -> int:
    return len(text.split())


def unit(text: str) -> Unit:
    return Unit(text=text, embed=text, tokens=words(text))


def test_units_are_grouped_in_order_without_exceeding_the_budget() -> None:
    units = [unit("a b c"), unit("d e"), unit("f"), unit("g h i j"), unit("k")]

    groups = list(pack(units, budget=5))

    assert [[u.text for u in group] for group in groups] == [["a b c", "d e"], ["f", "g h i j"], ["k"]]


def test_unit_larger_than_the_budget_gets_a_group_of_its_own() -> None:
    groups = list(pack([unit("a"), unit("b c d e f g"), unit("h")], budget=3))

    assert [[u.text for u in group] for group in groups] == [["a"], ["b c d e f g"], ["h"]]


def test_text_is_split_between_words_into_pieces_within_the_budget() -> None:
    pieces = split_to_fit("one two three four five six seven", budget=3, count_tokens=words)

    assert pieces == ["one two three", "four five six", "seven"]


def test_a_word_longer_than_the_budget_is_cut_between_characters() -> None:
    def characters(text: str) -> int:
        return len(text)

    pieces = split_to_fit("ab abcdefghij", budget=4, count_tokens=characters)

    assert "".join(pieces) == "ababcdefghij"
    assert all(characters(piece) <= 4 for piece in pieces)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget must be positive"):
        split_to_fit("a", budget=0, count_tokens=words)

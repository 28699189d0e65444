"""Sentences linked to their citations as an answer streams in; follow-ups made standalone."""

from __future__ import annotations

import pytest

from ragstream_chat.rewrite import rewrite_follow_up
from ragstream_chat.sentences import Sentence, SentenceLinker


def linked(deltas: list[str], passages: int = 3) -> list[tuple[str, list[int]]]:
    linker = SentenceLinker(passages)
    sentences = [s for d in deltas for s in linker.feed(d)] + linker.finish()
    assert [s.index for s in sentences] == list(range(len(sentences)))
    return [(s.text, s.citations) for s in sentences]


def test_extractive_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    answer = "Mallards migrate south. [1] Pekin ducks are raised for meat. [2]"

    assert linked([answer]) == [("Mallards migrate south. [1]", [1]), ("Pekin ducks are raised for meat. [2]", [2])]


def test_model_markers_before_the_full_stop_link_their_sentence() -> None:
    answer = "Mallards migrate in winter [1][3]. Nobody knows why. Pekins are bred for meat [2]."

    assert linked([answer]) == [
        ("Mallards migrate in winter [1][3].", [1, 3]),
        ("Nobody knows why.", []),
        ("Pekins are bred for meat [2].", [2]),
    ]


def test_a_sentence_waits_for_a_marker_split_across_deltas() -> None:
    linker = SentenceLinker(2)

    assert linker.feed("Mallards migrate south. ") == []
    assert linker.feed("[") == []
    assert linker.feed("1] Pek") == [Sentence(0, "Mallards migrate south. [1]", [1])]
    assert [s.text for s in linker.finish()] == ["Pek"]


def test_numbers_naming_no_passage_and_repeats_are_dropped() -> None:
    assert linked(["Claimed [0] and [4] and [2] and [2]."], passages=3) == [
        ("Claimed [0] and [4] and [2] and [2].", [2])
    ]


def test_decimals_do_not_end_a_sentence_but_line_breaks_do() -> None:
    assert linked(["Version 3.5 shipped [1]\n- then 3.6 [2]"]) == [
        ("Version 3.5 shipped [1]", [1]),
        ("- then 3.6 [2]", [2]),
    ]


@pytest.mark.parametrize(
    ("follow_up", "expected"),
    [
        ("When do they migrate?", "When do they migrate? mallards pekin ducks live"),
        ("And their eggs?", "And their eggs? mallards pekin ducks live"),
        ("What about geese?", "What about geese? mallards pekin ducks live"),
        ("Why?", "Why? mallards pekin ducks live"),
        ("How fast do mallards fly south in autumn?", "How fast do mallards fly south in autumn?"),
    ],
)
def test_short_or_referring_follow_ups_carry_the_previous_key_terms(follow_up: str, expected: str) -> None:
    assert rewrite_follow_up(follow_up, "Where do mallards and Pekin ducks live?") == expected


def test_first_question_is_searched_as_asked() -> None:
    assert rewrite_follow_up("  When do they migrate? ", "") == "When do they migrate?"


def test_terms_the_follow_up_already_has_are_not_repeated() -> None:
    assert rewrite_follow_up("Do mallards dive?", "Where do mallards live?") == "Do mallards dive? live"

"""The relevance gate of hybrid results: a passage is cited on a dense score above ``min_score`` or on
holding most of the question's key terms; unrelated questions still get "I don't know"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragstream_chat.handlers import Question, answer_question
from ragstream_chat.relevance import keyword_coverage
from ragstream_devstack.testing import new_id

if TYPE_CHECKING:
    from conftest import Ports, SearchResponder

BERRIES_ROW = "Food: Berries | Kinds: Blueberry, Strawberry, Cranberry | Calories per portion: 150"
LEAVES_ROW = "Food: Leaves | Kinds: Ash, Elm, Maple | Calories per portion: 50"
MALLARDS = "Ducks are waterbirds. Mallards migrate south when winter comes."
OLSEN_ROW = (
    "Index = 4, First Name = Linda, Last Name = Olsen, Company = Dominguez, Mcmillan and Donovan, "
    "Country = Dominican Republic, Subscription Date = 2020-06-02"
)


async def test_table_row_with_every_key_term_is_cited_despite_a_low_dense_score(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(BERRIES_ROW, score=0.12, file_name="food.csv", media_type="text/csv")

    result = await answer_question(
        Question("default", new_id("col"), "How many calories per portion do berries have?"), ports
    )

    assert [c["file_name"] for c in result["citations"]] == ["food.csv"]
    assert "150 [1]" in result["answer"]


async def test_csv_row_is_cited_when_the_question_uses_other_forms_of_its_words(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(OLSEN_ROW, score=0.08, file_name="customers.csv")

    result = await answer_question(Question("default", new_id("col"), "When did Linda Olsen subscribe?"), ports)

    assert [c["file_name"] for c in result["citations"]] == ["customers.csv"]
    assert "2020-06-02" in result["answer"]


async def test_low_scoring_rows_missing_the_question_terms_are_still_dropped(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit(BERRIES_ROW, score=0.12, chunk_index=1)
    responder.add_hit(LEAVES_ROW, score=0.11, chunk_index=0)

    question = "How many calories per portion do berries have?"  # leaves: 3 of the 5 key terms

    result = await answer_question(Question("default", new_id("col"), question), ports)

    assert [c["chunk_index"] for c in result["citations"]] == [1]


async def test_unrelated_question_sharing_one_word_with_a_passage_is_i_dont_know(
    responder: SearchResponder, ports: Ports
) -> None:
    responder.add_hit("Ducks spend the winter in the south of France.", score=0.15)

    result = await answer_question(Question("default", new_id("col"), "What is the capital of France?"), ports)

    assert result["answer"].startswith("I don't know")
    assert result["citations"] == []


async def test_coverage_zero_turns_the_keyword_side_off(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(BERRIES_ROW, score=0.12)
    ports.min_keyword_coverage = 0

    result = await answer_question(
        Question("default", new_id("col"), "How many calories per portion do berries have?"), ports
    )

    assert result["answer"].startswith("I don't know")


async def test_a_passage_above_min_score_is_cited_whatever_its_words(responder: SearchResponder, ports: Ports) -> None:
    responder.add_hit(MALLARDS, score=0.7)

    result = await answer_question(
        Question("default", new_id("col"), "Which birds travel before the cold season?"), ports
    )

    assert len(result["citations"]) == 1


def test_coverage_counts_key_terms_ignoring_case_stop_words_and_word_forms() -> None:
    assert keyword_coverage("Calories per portion of BERRIES?", BERRIES_ROW) == 1.0
    assert keyword_coverage("How many calories per portion do berries have?", LEAVES_ROW) == 0.6
    assert keyword_coverage("What is the capital of France?", "The south of France") == 0.5
    assert keyword_coverage("the of and", BERRIES_ROW) == 0.0
    assert keyword_coverage("What is Linda Olsen's subscription?", OLSEN_ROW) == 1.0
    assert keyword_coverage("Which company makes it?", "They compute it.") == 0.0

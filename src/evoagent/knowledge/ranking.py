"""BM25 ranking of knowledge sections: bm25s when it is installed, else a small built-in index.

Both use the Lucene variant that bm25s uses by default (Kamphuis et al., "Which BM25 do you mean?",
ECIR 2020): idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and, per query term occurrence,
idf * tf / (tf + k1 * (1 - b + b * len / avg_len)) with k1 = 1.5, b = 0.75. So the built-in index
ranks the built-in documents as bm25s does (a test checks it when bm25s is present), and the
package works where bm25s cannot be installed (the GPU machine has no network).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

K1 = 1.5
B = 0.75
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Lucene's classic English stop set (EnglishAnalyzer), the list bm25s applies for stopwords="en".
STOPWORDS_EN = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
_SPLIT = re.compile(TOKEN_PATTERN).findall


def tokenize(texts: Sequence[str], stemmer: Callable[[str], str]) -> list[list[str]]:
    """Lowercased words of two or more characters, English stopwords dropped, then stemmed."""
    return [[stemmer(w) for w in _SPLIT(text.lower()) if w not in STOPWORDS_EN] for text in texts]


class Index(Protocol):
    """A BM25 index over a fixed corpus of token lists."""

    def top(self, query: list[str], k: int) -> list[tuple[int, float]]:
        """Up to `k` (document index, score) pairs, best first."""
        ...


class BuiltinIndex:
    """BM25 (Lucene variant) in plain numpy: a dense (terms x documents) score matrix."""

    def __init__(self, corpus: Sequence[Sequence[str]]) -> None:
        self._vocab: dict[str, int] = {}
        for doc in corpus:
            for token in doc:
                self._vocab.setdefault(token, len(self._vocab))
        n_docs = len(corpus)
        lengths = np.array([len(doc) for doc in corpus], dtype=np.float64)
        avg_len = float(lengths.mean()) if n_docs else 0.0
        tf = np.zeros((len(self._vocab), n_docs), dtype=np.float64)
        for j, doc in enumerate(corpus):
            for token, count in Counter(doc).items():
                tf[self._vocab[token], j] = count
        df = (tf > 0).sum(axis=1)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        norm = K1 * ((1 - B) + B * lengths / (avg_len or 1.0))
        self._scores = idf[:, None] * tf / (tf + norm[None, :])

    def top(self, query: list[str], k: int) -> list[tuple[int, float]]:
        ids = [self._vocab[t] for t in query if t in self._vocab]
        if not ids:
            return []
        totals = self._scores[ids].sum(axis=0)
        order = sorted(range(totals.size), key=lambda j: (-totals[j], j))[:k]
        return [(j, float(totals[j])) for j in order]


class Bm25sIndex:
    """The same ranking through bm25s (sparse, faster on large corpora)."""

    def __init__(self, corpus: Sequence[Sequence[str]]) -> None:
        import bm25s

        self._index: Any = bm25s.BM25(k1=K1, b=B, method="lucene")
        self._index.index([list(doc) for doc in corpus], show_progress=False)
        self._size = len(corpus)

    def top(self, query: list[str], k: int) -> list[tuple[int, float]]:
        if not any(t in self._index.vocab_dict for t in query):
            return []
        ids, scores = self._index.retrieve([query], k=min(k, self._size), show_progress=False)
        return [(int(i), float(s)) for i, s in zip(ids[0].tolist(), scores[0].tolist())]


def bm25s_available() -> bool:
    try:
        import bm25s  # noqa: F401
    except ImportError:
        return False
    return True


def build_index(corpus: Sequence[Sequence[str]], backend: str = "auto") -> Index:
    """A BM25 index: 'bm25s', 'builtin', or 'auto' (bm25s when it can be imported)."""
    if backend not in ("auto", "bm25s", "builtin"):
        raise ValueError(f"BM25 backend must be 'auto', 'bm25s' or 'builtin' (got {backend!r})")
    if backend == "bm25s" or (backend == "auto" and bm25s_available()):
        return Bm25sIndex(corpus)
    return BuiltinIndex(corpus)


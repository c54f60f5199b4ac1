"""BM25 ranking of knowledge sections: a built-in index that grows, and bm25s as a second backend.

Both use the Lucene variant that bm25s uses by default (Kamphuis et al., "Which BM25 do you mean?",
ECIR 2020): idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and, per query term occurrence,
idf * tf / (tf + k1 * (1 - b + b * len / avg_len)) with k1 = 1.5, b = 0.75. So the built-in index
ranks the built-in documents as bm25s does (a test checks it when bm25s is present). The knowledge
base uses the built-in one: lessons are added to it as a run learns them (bm25s can only rebuild its
index, which cost every search of a long run time in proportion to its lessons), and it works where
bm25s cannot be installed (the GPU machine has no network).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
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
    """BM25 (Lucene variant) over postings lists in plain Python and numpy, to which documents can be added.

    A query may rank only the first `size` documents, exactly as an index of those alone would (document
    frequencies and the mean length are counted over them), so copies of a knowledge base with fewer
    lessons share one index with copies that have more. Adding a document costs its own length; a
    query costs the postings of its terms (never the vocabulary times the corpus).
    """

    def __init__(self, corpus: Sequence[Sequence[str]] = ()) -> None:
        self._postings: dict[str, tuple[list[int], list[int]]] = {}  # token -> (document ids, ascending; counts)
        self._lengths: list[int] = []
        for doc in corpus:
            self.add(doc)

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, doc: Sequence[str]) -> int:
        """Adds one document (its tokens); returns its index."""
        j = len(self._lengths)
        for token, count in Counter(doc).items():
            ids, counts = self._postings.setdefault(token, ([], []))
            ids.append(j)
            counts.append(count)
        self._lengths.append(len(doc))
        return j

    def top(self, query: list[str], k: int, size: int | None = None) -> list[tuple[int, float]]:
        n = len(self._lengths) if size is None else min(size, len(self._lengths))
        terms = []
        for token in query:  # a repeated query term counts each time, as in bm25s
            ids, counts = self._postings.get(token, ([], []))
            df = bisect_left(ids, n)  # the documents past `size` are not there for this query
            if df:
                terms.append((np.asarray(ids[:df], dtype=np.intp), np.asarray(counts[:df], dtype=np.float64)))
        if not terms:
            return []
        lengths = np.asarray(self._lengths[:n], dtype=np.float64)
        norm = K1 * ((1 - B) + B * lengths / (float(lengths.mean()) or 1.0))
        totals = np.zeros(n)
        for having, tf in terms:
            idf = math.log(1.0 + (n - having.size + 0.5) / (having.size + 0.5))
            totals[having] += idf * tf / (tf + norm[having])  # a term's document ids are distinct
        order = np.lexsort((np.arange(n), -totals))[:k]  # best first; ties by document order
        return [(int(j), float(totals[j])) for j in order]


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


"""BM25 retrieval over titled passages with ``bm25s``: a boosted title field, batched queries.

:class:`FieldedBM25` keeps two ``bm25s`` indexes over the same passages — one of the titles, one of
the texts — and scores a query as ``title_weight · BM25_title + BM25_text`` (a two-field BM25F-style
sum; the Factbook prototype showed that without a separate title field the country name, present in
many passages, drowns the field name: hop-2 recall 0.08 → 1.00). ``bm25s`` precomputes every
(document, term) score; a batch of queries is scored with one sparse product per field
(``queries × vocabulary`` by ``vocabulary × documents``) and a partial sort per query.

Anything with a ``search(queries, k) -> list[list[Hit]]`` method is a :class:`Retriever`: this
class in-process, or :class:`~.client.SearchClient` talking to ``turngym search serve``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from turngym.envs.search_qa.records import Corpus, Hit
from turngym.envs.search_qa.scoring import fold_accents

DEFAULT_TITLE_WEIGHT = 5.0
DEFAULT_K1 = 0.5
DEFAULT_B = 0.5
"""Defaults tuned on the Factbook *train* split (grid k1 × b × title weight; see docs/search-qa.md)."""
MAX_QUERY_CHARS = 1_000
"""Longer queries are cut to this many characters before tokenization."""

_WORD = re.compile(r"(?<!\w)\.[a-z]{2,3}\b|\w+")
"""Words, plus dotted codes such as ``.fr`` / ``.do`` (kept whole: ``do`` alone is a stopword)."""


@runtime_checkable
class Retriever(Protocol):
    """Top-``k`` passages for each query, best first (fewer than ``k`` if fewer match)."""

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]: ...


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stemmer():
    """PyStemmer's English stemmer if installed, else ``None`` (optional dependency)."""
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        return None
    return Stemmer.Stemmer("english")


def tokenizer_name() -> str:
    return "words+codes+stopwords_en" + ("+pystemmer_en" if _stemmer() is not None else "")


def tokenize(text: str) -> list[str]:
    """Lowercase, accent-folded word tokens without English stopwords (stemmed if PyStemmer is there).

    A dotted code (``.fr``) gives two tokens, ``.fr`` and ``fr`` (unless ``fr`` is a stopword)."""
    words: list[str] = []
    for w in _WORD.findall(fold_accents(text[: MAX_QUERY_CHARS * 100].lower())):
        if w[0] == ".":
            words.append(w)
            w = w[1:]
        if w not in _stopwords():
            words.append(w)
    stemmer = _stemmer()
    return stemmer.stemWords(words) if stemmer is not None and words else words


class _Field:
    """One ``bm25s`` index exposed as a ``vocabulary × documents`` CSR matrix of term scores."""

    def __init__(self, bm25):
        import scipy.sparse as sp

        self.bm25 = bm25
        s = bm25.scores
        self.vocab: dict[str, int] = bm25.vocab_dict
        self.matrix = sp.csr_matrix((s["data"], s["indices"], s["indptr"]), shape=(len(s["indptr"]) - 1, s["num_docs"]))

    @classmethod
    def build(cls, docs: list[list[str]], k1: float, b: float) -> _Field:
        import bm25s

        bm25 = bm25s.BM25(k1=k1, b=b)
        bm25.index(docs, show_progress=False)
        return cls(bm25)

    def query_matrix(self, token_lists: list[list[str]]):
        import scipy.sparse as sp

        rows, cols = [], []
        for i, tokens in enumerate(token_lists):
            ids = sorted({self.vocab[t] for t in tokens if t in self.vocab})
            rows += [i] * len(ids)
            cols += ids
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(token_lists), self.matrix.shape[0]))


class FieldedBM25:
    """In-process retriever: ``bm25s`` over titles (weighted) and texts. Build once, save, load."""

    def __init__(self, corpus: Corpus, title: _Field, text: _Field, title_weight: float = DEFAULT_TITLE_WEIGHT):
        self.corpus, self.title, self.text, self.title_weight = corpus, title, text, float(title_weight)

    @classmethod
    def build(cls, corpus: Corpus, title_weight: float = DEFAULT_TITLE_WEIGHT, k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> FieldedBM25:
        if len(corpus) == 0:
            raise ValueError("cannot index an empty corpus; give at least one passage")
        titles = [tokenize(p.title) for p in corpus.passages]
        texts = [tokenize(p.text) for p in corpus.passages]
        return cls(corpus, _Field.build(titles, k1, b), _Field.build(texts, k1, b), title_weight)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.title.bm25.save(directory / "title")
        self.text.bm25.save(directory / "text")
        meta = {"title_weight": self.title_weight, "tokenizer": tokenizer_name(), "num_docs": len(self.corpus)}
        (directory / "fielded_bm25.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: str | Path, corpus: Corpus) -> FieldedBM25:
        import bm25s

        directory = Path(directory)
        meta = json.loads((directory / "fielded_bm25.json").read_text())
        if meta["num_docs"] != len(corpus):
            raise ValueError(f"index at {directory} has {meta['num_docs']} documents but the corpus has {len(corpus)}; rebuild it")
        if meta["tokenizer"] != tokenizer_name():
            raise ValueError(f"index at {directory} was built with tokenizer {meta['tokenizer']!r}, this process uses {tokenizer_name()!r}; rebuild it")
        fields = [_Field(bm25s.BM25.load(directory / name, mmap=False)) for name in ("title", "text")]
        return cls(corpus, *fields, title_weight=meta["title_weight"])

    def scores(self, queries: Sequence[str]):
        """``[len(queries), num_docs]`` scores as a SciPy CSR matrix (only matching documents stored)."""
        tokens = [tokenize(q[:MAX_QUERY_CHARS]) for q in queries]
        s = (self.title.query_matrix(tokens) @ self.title.matrix) * self.title_weight
        return (s + self.text.query_matrix(tokens) @ self.text.matrix).tocsr()

    def search(self, queries: Sequence[str], k: int, chunk: int = 256) -> list[list[Hit]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        passages = self.corpus.passages
        out: list[list[Hit]] = []
        for start in range(0, len(queries), chunk):
            s = self.scores(queries[start : start + chunk])
            for row in range(s.shape[0]):  # partial sort over the matching documents only
                lo, hi = s.indptr[row], s.indptr[row + 1]
                vals, idx = s.data[lo:hi], s.indices[lo:hi]
                keep = vals > 0
                vals, idx = vals[keep], idx[keep]
                if len(vals) > k:
                    part = np.argpartition(-vals, k - 1)[:k]
                    vals, idx = vals[part], idx[part]
                order = np.lexsort((idx, -vals))  # best first; ties by corpus position
                out.append([Hit(passages[int(idx[o])], float(vals[o])) for o in order])
        return out

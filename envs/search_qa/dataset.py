"""Build, cache and load a search-QA dataset: corpus + questions + BM25 index.

Sources:

* ``factbook`` — the CIA World Factbook passages and generated questions (:mod:`.corpus`, :mod:`.questions`);
* ``fictional`` — the fictional-country knowledge base (:mod:`.fictional`), for tests;
* user files — a question file and a corpus jsonl (:mod:`.loaders`).

Built artefacts live in ``$TURNGYM_CACHE/search_qa/<key>/`` (default ``~/.cache/turngym``), where
``<key>`` hashes everything the artefacts depend on (builder version, source and its version or file
contents, seed, sizes, tokenizer, BM25 parameters). A directory is complete once its
``manifest.json`` exists; builds write to a temporary directory and rename it, so concurrent
processes never see half an index. :func:`load` keeps one :class:`SearchData` per key per process:
environments never rebuild or reload an index on ``reset``/``step``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from turngym.envs.search_qa.records import (
    ALL_SHAPES,
    CURRICULUM_SHAPES,
    SPLITS,
    Corpus,
    Passage,
    Question,
    read_jsonl,
    write_jsonl,
)
from turngym.envs.search_qa.retrieval import (
    DEFAULT_B,
    DEFAULT_K1,
    DEFAULT_TITLE_WEIGHT,
    FieldedBM25,
    tokenizer_name,
)
from turngym.hashing import stream_sha256

BUILDER_VERSION = 4
"""Bump when the corpus, question or index layout changes (invalidates caches). 4: lookup questions
appended (the multi-hop questions of version 3 are unchanged)."""
SOURCES = ("factbook", "fictional")
DEFAULT_PER_SHAPE = {"factbook": 750, "fictional": 60}


def cache_root() -> Path:
    return Path(os.environ.get("TURNGYM_CACHE", Path.home() / ".cache" / "turngym")) / "search_qa"


@dataclass
class SearchData:
    """A loaded dataset. ``retriever`` loads the index on first use (not needed with a remote one)."""

    key: str
    source: str
    corpus: Corpus
    questions: list[Question]
    directory: Path
    _retriever: FieldedBM25 | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def retriever(self) -> FieldedBM25:
        with self._lock:
            if self._retriever is None:
                self._retriever = FieldedBM25.load(self.directory / "index", self.corpus)
            return self._retriever

    def select(self, split: str | None = "train", shape: str | None = None) -> list[Question]:
        """Questions of ``split`` (``None``: all) and ``shape``, in file order.

        ``shape=None`` is the default pool: every shape except the curriculum ones
        (:data:`~.records.CURRICULUM_SHAPES`, i.e. ``lookup``), which only an explicit ``shape``
        selects — so the default pool is the same multi-hop questions as before they existed.
        """
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        if shape is not None and shape not in (*ALL_SHAPES, "user"):
            raise ValueError(f"shape must be one of {ALL_SHAPES} or None (the multi-hop pool), got {shape!r}")

        def wanted(q: Question) -> bool:
            return q.shape not in CURRICULUM_SHAPES if shape is None else q.shape == shape

        return [q for q in self.questions if (split is None or q.split == split) and wanted(q)]


_LOADED: dict[str, SearchData] = {}
_LOAD_LOCK = threading.Lock()


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _retrieval_params() -> dict:
    return {"tokenizer": tokenizer_name(), "k1": DEFAULT_K1, "b": DEFAULT_B, "title_weight": DEFAULT_TITLE_WEIGHT}


def generated_key(source: str, seed: int = 0, per_shape: int | None = None, n_countries: int = 36) -> str:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES} (or give questions_path and corpus_path), got {source!r}")
    spec: dict = {"v": BUILDER_VERSION, "source": source, "seed": seed, "per_shape": per_shape or DEFAULT_PER_SHAPE[source], **_retrieval_params()}
    if source == "factbook":
        from turngym.envs.search_qa.corpus import factbook_version

        spec["factbook"] = factbook_version()
    else:
        spec["n_countries"] = n_countries
    return f"{source}-{_hash(spec)}"


def _finish(tmp: Path, final: Path, manifest: dict) -> None:
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    try:
        tmp.rename(final)
    except OSError:  # another process finished the same build first
        if not (final / "manifest.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def build_generated(source: str = "factbook", seed: int = 0, per_shape: int | None = None, n_countries: int = 36, force: bool = False) -> Path:
    """Build (or reuse) the cached corpus, questions and index of a generated source; return its directory."""
    key = generated_key(source, seed, per_shape, n_countries)
    final = cache_root() / key
    if (final / "manifest.json").exists() and not force:
        return final
    from turngym.envs.search_qa.questions import generate_questions

    if source == "factbook":
        from turngym.envs.search_qa.corpus import build_factbook_kb

        kb = build_factbook_kb()
    else:
        from turngym.envs.search_qa.fictional import build_fictional_kb

        kb = build_fictional_kb(n_countries=n_countries, seed=seed)
    questions = generate_questions(kb, per_shape or DEFAULT_PER_SHAPE[source], seed=seed)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    write_jsonl((p.to_dict() for p in kb.corpus.passages), tmp / "corpus.jsonl")
    write_jsonl((q.to_dict() for q in questions), tmp / "questions.jsonl")
    FieldedBM25.build(kb.corpus).save(tmp / "index")
    if force and final.exists():
        shutil.rmtree(final)
    counts = {f"{s}/{sp}": sum(q.shape == s and q.split == sp for q in questions) for s in ALL_SHAPES for sp in SPLITS}
    _finish(tmp, final, {"key": key, "source": kb.source, "passages": len(kb.corpus), "questions": counts})
    return final


def build_user(questions_path: str | Path, corpus_path: str | Path) -> Path:
    """Index a user corpus (cached by content hash); the question and corpus files stay where they are."""
    questions_path, corpus_path = Path(questions_path), Path(corpus_path)
    key = "user-" + _hash({"v": BUILDER_VERSION, "corpus": stream_sha256(corpus_path), **_retrieval_params()})
    final = cache_root() / key
    if (final / "manifest.json").exists():
        return final
    from turngym.envs.search_qa.loaders import load_corpus

    corpus = load_corpus(corpus_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    FieldedBM25.build(corpus).save(tmp / "index")
    _finish(tmp, final, {"key": key, "source": str(corpus_path), "passages": len(corpus)})
    return final


def load(
    source: str = "factbook",
    *,
    seed: int = 0,
    per_shape: int | None = None,
    n_countries: int = 36,
    questions_path: str | Path | None = None,
    corpus_path: str | Path | None = None,
) -> SearchData:
    """The dataset for these arguments, built on first use and shared within the process."""
    if (questions_path is None) != (corpus_path is None):
        raise ValueError(
            f"give both questions_path and corpus_path for user data (got questions_path={questions_path!r}, corpus_path={corpus_path!r})"
        )
    with _LOAD_LOCK:
        if questions_path is not None:
            qp, cp = Path(questions_path).resolve(), Path(corpus_path).resolve()
            memo = f"user:{qp}:{qp.stat().st_mtime_ns if qp.exists() else 0}:{cp}:{cp.stat().st_mtime_ns if cp.exists() else 0}"
            if memo not in _LOADED:
                from turngym.envs.search_qa.loaders import load_corpus, load_questions

                questions = load_questions(qp)
                directory = build_user(qp, cp)
                _LOADED[memo] = SearchData(directory.name, str(cp), load_corpus(cp), questions, directory)
            return _LOADED[memo]
        key = generated_key(source, seed, per_shape, n_countries)
        if key not in _LOADED:
            directory = build_generated(source, seed, per_shape, n_countries)
            corpus = Corpus([Passage.from_dict(d) for d in read_jsonl(directory / "corpus.jsonl")])
            questions = [Question.from_dict(d) for d in read_jsonl(directory / "questions.jsonl")]
            _LOADED[key] = SearchData(key, source, corpus, questions, directory)
        return _LOADED[key]

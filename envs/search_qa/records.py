"""Typed records of the search-QA family: passages, questions with their hops, retrieval hits.

* :class:`Passage` — one retrievable unit ``{id, title, text}`` (the corpus jsonl schema).
* :class:`Hop` — one step of a question's gold reasoning chain: the sub-query an ideal searcher
  issues and the supporting passage it must retrieve.
* :class:`Question` — question text, gold answers (first = canonical, rest = aliases), shape, hops,
  split. User-supplied questions have no hops (``hops == ()``).
* :class:`Hit` — a retrieved passage with its score.

All are frozen dataclasses with ``to_dict`` / ``from_dict`` for JSONL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHAPES = ("bridge", "comparison", "chain", "intersection")
"""The multi-hop shapes — the default question pool (``shape=None``): 2-hop bridge, 2-hop yes/no
comparison, 3-hop chain, 2-hop intersection."""

CURRICULUM_SHAPES = ("lookup",)
"""Easier shapes for curricula (single-hop ``lookup``): generated beside the multi-hop ones but
reachable only by naming them (``shape="lookup"``), so default-pool results stay comparable."""

ALL_SHAPES = (*SHAPES, *CURRICULUM_SHAPES)
"""Every generated shape."""

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Passage:
        return cls(id=str(d["id"]), title=str(d.get("title", "")), text=str(d.get("text", "")))


@dataclass(frozen=True)
class Hop:
    query: str
    passage_id: str


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    shape: str = "user"
    hops: tuple[Hop, ...] = ()
    split: str = "train"

    def __post_init__(self) -> None:
        if not self.answers or not any(a.strip() for a in self.answers):
            raise ValueError(f"question {self.id!r} has no gold answer (answers={self.answers!r})")

    @property
    def answer(self) -> str:
        """The canonical gold answer (what IGPO scores)."""
        return self.answers[0]

    @property
    def supporting_ids(self) -> tuple[str, ...]:
        return tuple(h.passage_id for h in self.hops)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.text,
            "golden_answers": list(self.answers),
            "shape": self.shape,
            "hops": [{"query": h.query, "passage_id": h.passage_id} for h in self.hops],
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Question:
        return cls(
            id=str(d["id"]),
            text=str(d["question"]),
            answers=tuple(str(a) for a in d["golden_answers"]),
            shape=str(d.get("shape", "user")),
            hops=tuple(Hop(str(h["query"]), str(h["passage_id"])) for h in d.get("hops", ())),
            split=str(d.get("split", "train")),
        )


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.passage.to_dict(), "score": self.score}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        return cls(Passage.from_dict(d), float(d["score"]))


@dataclass
class Corpus:
    """An ordered list of passages with an id → position index."""

    passages: list[Passage]
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pos = {}
        for i, p in enumerate(self.passages):
            if p.id in self._pos:
                raise ValueError(f"duplicate passage id {p.id!r} (positions {self._pos[p.id]} and {i})")
            self._pos[p.id] = i

    def __len__(self) -> int:
        return len(self.passages)

    def __getitem__(self, passage_id: str) -> Passage:
        return self.passages[self._pos[passage_id]]

    def __contains__(self, passage_id: object) -> bool:
        return passage_id in self._pos

    def position(self, passage_id: str) -> int:
        return self._pos[passage_id]


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    tmp.replace(path)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc

"""What ``turngym view`` reads from run folders, without ever loading a whole large file per request.

A *source* is one folder: a training run (``metrics.jsonl``, ``summary.json``,
``trajectories.jsonl`` + index, ``config.yaml``) or a tournament (``ratings.json``,
``games.jsonl``, ``replays.jsonl``). :func:`discover` turns the command line's paths into sources:
a path that is itself a run or tournament, or a folder whose children are.

Large files are read incrementally and cached: :class:`JsonlTail` parses only the bytes appended
since the last request (a live run's ``metrics.jsonl`` grows), the trajectory index is re-read only
when its size changes, and episodes are read by seeking to the byte ranges the index gives
(:func:`turngym.training.trajectory_log.read_episodes`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.training.trajectory_log import (
    INDEX,
    TRAJECTORIES,
    EpisodePage,
    StepEntry,
    read_episodes,
    read_index,
)

RUN_MARKERS = ("metrics.jsonl", "summary.json", TRAJECTORIES)
TOURNAMENT_MARKERS = ("ratings.json", "games.jsonl")


class JsonlTail:
    """A JSONL file parsed incrementally: each :meth:`rows` call parses only what was appended since
    the last one (a file that shrank — a resumed run truncated it — is re-read). Torn last lines wait
    for their newline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.items: list[dict[str, Any]] = []

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            self.offset, self.items = 0, []
            return self.items
        size = self.path.stat().st_size
        if size < self.offset:
            self.offset, self.items = 0, []
        if size > self.offset:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(size - self.offset)
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                if line.strip():
                    try:
                        self.items.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
            self.offset += end
        return self.items


@dataclass
class Source:
    """One run or tournament folder the viewer shows, under a URL-safe ``id``."""

    id: str
    path: Path
    kind: str  # "run" | "tournament"
    metrics: JsonlTail = field(init=False)
    games: JsonlTail = field(init=False)
    _index: list[StepEntry] = field(default_factory=list, init=False)
    _index_size: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        self.metrics = JsonlTail(self.path / "metrics.jsonl")
        self.games = JsonlTail(self.path / "games.jsonl")

    # -------------------------------------------------------------- runs
    def index(self) -> list[StepEntry]:
        """The trajectory index, re-read only when the file changed size."""
        path = self.path / INDEX
        size = path.stat().st_size if path.exists() else -1
        if size != self._index_size:
            self._index, self._index_size = read_index(path), size
        return self._index

    def describe(self) -> dict[str, Any]:
        """The runs list's row: name, kind, steps, what there is to look at."""
        out: dict[str, Any] = {"id": self.id, "path": str(self.path), "kind": self.kind, "name": self.path.name}
        if self.kind == "run":
            rows = self.metrics.rows()
            summary = read_json(self.path / "summary.json") or {}
            out.update(name=summary.get("name", self.path.name), steps=rows[-1].get("step") if rows else 0,
                       finished=bool(summary), trajectory_steps=len(self.index()))
        else:
            ratings = read_json(self.path / "ratings.json") or {}
            out.update(env_id=ratings.get("env_id"), games=ratings.get("games", len(self.games.rows())),
                       players=len(ratings.get("ratings", [])), replays=(self.path / REPLAYS).exists())
        return out

    def curves(self, keys: list[str] | None, max_points: int = 2000) -> dict[str, Any]:
        """Numeric metric series by step: ``{"keys": every numeric key, "step": [...], "series":
        {key: [...]}}``, thinned to at most ``max_points`` evenly spaced rows (first and last kept)."""
        rows = self.metrics.rows()
        numeric = sorted({k for r in rows for k, v in r.items() if _is_number(v) and k != "step"})
        if len(rows) > max_points > 1:
            stride = (len(rows) - 1) / (max_points - 1)
            rows = [rows[round(i * stride)] for i in range(max_points)]
        wanted = numeric if keys is None else [k for k in keys if k in numeric]
        return {
            "keys": numeric,
            "step": [r.get("step") for r in rows],
            "series": {k: [_number(r.get(k)) for r in rows] for k in wanted},
            "rows": len(self.metrics.rows()),
        }

    def summary(self) -> dict[str, Any]:
        """``summary.json`` (before/after evaluation with intervals), plus the run's ``config.yaml`` text.
        A run still training has no summary yet: its last checkpoint's evaluations stand in."""
        summary = read_json(self.path / "summary.json")
        if summary is None:  # still training: the evaluations so far are in the last checkpoint
            state = read_json(self.path / "checkpoint" / "trainer_state.json") or {}
            summary = {"in_progress": True, "steps": state.get("step", 0), "evals": state.get("evals", {})}
        config = self.path / "config.yaml"
        return {"summary": _clean(summary), "config": config.read_text() if config.exists() else None}

    def steps(self, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of the logged steps, each summarised from the index alone."""
        entries = self.index()
        page = entries[offset:offset + limit]
        return {
            "total": len(entries),
            "first": entries[0].step if entries else None,
            "last": entries[-1].step if entries else None,
            "stop_reasons": sorted({r for e in entries for r in e.stop_reasons}),
            "capped_at": next((e.step for e in entries if e.capped), None),
            "steps": [_step_row(e) for e in page],
        }

    def episodes(self, **filters: Any) -> EpisodePage:
        return read_episodes(self.path / TRAJECTORIES, index=self.index(), **filters)

    # -------------------------------------------------------------- tournaments
    def tournament(self) -> dict[str, Any]:
        return _clean(read_json(self.path / "ratings.json") or {})

    def game_page(self, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        games = self.games.rows()
        replays = replay_keys(self.path / REPLAYS)
        page = [dict(g, replay=_game_key(g) in replays) for g in games[offset:offset + limit]]
        return {"total": len(games), "games": page}

    def replay(self, player_a: str, player_b: str, index: int) -> dict[str, Any] | None:
        for item in JsonlTail(self.path / REPLAYS).rows():
            if (item.get("player_a"), item.get("player_b"), item.get("index")) == (player_a, player_b, index):
                return item
        return None


REPLAYS = "replays.jsonl"


def _game_key(g: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (g.get("player_a"), g.get("player_b"), g.get("index"))


def replay_keys(path: Path) -> set[tuple[Any, Any, Any]]:
    return {_game_key(g) for g in JsonlTail(path).rows()}


def _step_row(e: StepEntry) -> dict[str, Any]:
    ok = [o for o, f in zip(e.outcomes, e.failed) if not f and o is not None]
    reasons: dict[str, int] = {}
    for r in e.stop_reasons:
        reasons[r] = reasons.get(r, 0) + 1
    return {
        "step": e.step,
        "episodes": len(e.lengths),
        "groups": sorted(set(e.groups)),
        "mean_outcome": sum(ok) / len(ok) if ok else None,
        "successes": sum(1 for o in ok if o > 0),
        "failed": sum(e.failed),
        "stop_reasons": reasons,
        "capped": e.capped,
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v: Any) -> float | None:
    return float(v) if _is_number(v) and math.isfinite(v) else None


def _clean(value: Any) -> Any:
    """JSON-safe: ``nan``/``inf`` become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def read_json(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _kind(path: Path) -> str | None:
    if any((path / m).exists() for m in TOURNAMENT_MARKERS):
        return "tournament"
    if any((path / m).exists() for m in RUN_MARKERS):
        return "run"
    return None


def discover(paths: list[Path]) -> list[Source]:
    """The sources under ``paths``: each path that is a run or tournament itself, else its
    immediate children that are (sorted by name). A path that is neither and holds none raises
    ``FileNotFoundError`` naming it."""
    sources: list[Source] = []
    used: set[str] = set()

    def add(path: Path, kind: str) -> None:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name) or "run"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        sources.append(Source(name, path, kind))

    for path in paths:
        path = Path(path).resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder; give a run folder (e.g. runs/quickstart) or a folder of runs")
        kind = _kind(path)
        if kind is not None:
            add(path, kind)
            continue
        children = [(c, _kind(c)) for c in sorted(path.iterdir()) if c.is_dir()]
        found = [(c, k) for c, k in children if k is not None]
        if not found:
            raise FileNotFoundError(
                f"{path} holds no run (metrics.jsonl, summary.json, {TRAJECTORIES}) or tournament "
                "(ratings.json, games.jsonl), nor do its subfolders; give a run folder such as runs/quickstart"
            )
        for child, child_kind in found:
            add(child, child_kind)
    return sources


__all__ = ["REPLAYS", "JsonlTail", "Source", "discover", "read_json"]

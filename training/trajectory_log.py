"""The run's trajectory log: a bounded sample of every step's episodes with the credit each turn got.

The trainer (rank 0) calls :meth:`TrajectoryLog.write` once per step, right after the advantages
are computed; ``turngym view`` and ``turngym replay`` read the files back with
:func:`read_episodes` / :func:`read_index`. Two files under ``runs/<name>/``:

``trajectories.jsonl``
    One JSON object per episode (one seat's trajectory), every rollout of the first
    ``log.trajectory_groups`` GRPO groups of each step, steps in order. The keys (more may follow)::

        step            the metrics row this episode belongs to (1-based, as in metrics.jsonl)
        env_id, env_kwargs   turngym.make(env_id, **env_kwargs) rebuilds the environment
        seed            env.reset(seed=seed)
        group_id, group_key, sample_index, seat, opponent, context
        outcome, stop_reason, failed, error, info, policy_version, kept
        turns: [{turn, env_turn, seat, observation, action, prompt_tokens, completion_tokens, completion_ids,
                 finish_reason, reward, components, gate_open, gated_reward, advantage, clip_scale}]

    ``turn`` is the policy turn's index in the trajectory (the learner's turn id), ``env_turn`` the
    env's step count (every seat's moves). ``observation`` is the env's text the turn replied to,
    ``action`` the reply. ``reward`` and
    ``components`` are the env's turn reward; ``gate_open`` / ``gated_reward`` the G-RA gate and
    gated dense reward the estimator read (``training/rewards.py``), ``advantage`` the per-turn
    advantage the loss used (``training/advantages.py``), ``clip_scale`` the A²TGPO adaptive clip
    scale (``null`` unless ``algo.adaptive_clip``). ``nan`` (a failed rollout's gated reward) is
    written ``null``. ``kept`` says whether the rollout reached the loss (dynamic sampling, failures);
    ``info`` is the env's reset info the learner keeps (e.g. a search task's ``answer``).
    ``env_kwargs`` omits the opponent agent of a game (``opponent`` names its spec).

``trajectories.index.jsonl``
    One line per logged step: ``{"step", "offset", "lengths", "outcomes", "stop_reasons",
    "failed", "groups"}`` — the byte offset of the step's first episode line and each episode's
    line length, outcome, stop reason, failure flag and group key, so a reader seeks straight to
    one page of one step (filtered by outcome or stop reason) without reading the rest. A step the
    size cap stopped is written with ``"capped": true`` and no episodes; nothing follows it.

A resumed run first drops whatever both files hold past its checkpoint's step, so the log
continues exactly as the uninterrupted run's would.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from turngym.training.trajectory import Trajectory

if TYPE_CHECKING:
    from turngym.training.advantages import Advantages
    from turngym.training.config import TrainConfig

TRAJECTORIES = "trajectories.jsonl"
INDEX = "trajectories.index.jsonl"

OutcomeFilter = Literal["success", "no_success", "failed"]
OUTCOME_FILTERS: tuple[str, ...] = ("success", "no_success", "failed")


@dataclass
class StepEntry:
    """One line of the index: where step ``step``'s episodes lie in ``trajectories.jsonl``."""

    step: int
    offset: int
    lengths: list[int] = field(default_factory=list)
    outcomes: list[float | None] = field(default_factory=list)
    stop_reasons: list[str] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    capped: bool = False

    @property
    def end(self) -> int:
        return self.offset + sum(self.lengths)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepEntry:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def matches(self, i: int, outcome: OutcomeFilter | None, stop_reason: str | None, group: str | None) -> bool:
        """Whether episode ``i`` of this step passes the filters (``None``: any)."""
        if stop_reason is not None and self.stop_reasons[i] != stop_reason:
            return False
        if group is not None and self.groups[i] != group:
            return False
        if outcome is None:
            return True
        value = self.outcomes[i]
        if outcome == "failed":
            return self.failed[i]
        success = not self.failed[i] and value is not None and value > 0
        return success if outcome == "success" else (not self.failed[i] and not success)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
class TrajectoryLog:
    """Appends each step's sampled episodes to ``out/trajectories.jsonl`` and its index.

    ``start_step`` is the step the run (re)starts after (0 for a fresh run): entries past it are
    dropped first. A disabled log (``enabled=False``: ranks other than 0, or
    ``log.trajectory_groups: 0``) writes nothing.
    """

    def __init__(self, out: Path, config: TrainConfig, start_step: int = 0, *, enabled: bool = True) -> None:
        self.path = Path(out) / TRAJECTORIES
        self.index_path = Path(out) / INDEX
        self.groups = config.log.trajectory_groups
        self.max_bytes = int(config.log.trajectory_max_mb * 2**20)
        self.enabled = enabled and self.groups > 0
        self.env_kwargs = config.env_kwargs()
        self.max_turns = config.rollout.max_turns
        self.capped = False
        if enabled:  # even when logging nothing: a fresh run never shows an old run's episodes
            entries = truncate(self.path, self.index_path, start_step)
            self.capped = any(e.capped for e in entries)

    def kwargs_for(self, env_id: str) -> dict[str, Any]:
        """What ``turngym.make(env_id, **kwargs)`` needs to rebuild the env the rollout played."""
        kwargs = dict(self.env_kwargs.get(env_id, {}))
        if self.max_turns is not None:
            kwargs["max_turns"] = self.max_turns
        return kwargs

    def write(self, step: int, trajectories: Sequence[Trajectory], advantages: Advantages, keep: np.ndarray) -> int:
        """Log the first ``log.trajectory_groups`` groups of ``step``'s batch (the trainer's 0-based
        loop index; written as ``step + 1``, the metrics row). Returns the episodes written."""
        if not self.enabled or self.capped:
            return 0
        chosen: list[str] = []
        for t in trajectories:
            if t.group_key not in chosen and len(chosen) < self.groups:
                chosen.append(t.group_key)
        lines, entry = [], StepEntry(step=step + 1, offset=self.path.stat().st_size if self.path.exists() else 0)
        for i, t in enumerate(trajectories):
            if t.group_key not in chosen:
                continue
            record = episode_record(t, i, step, advantages, bool(keep[i]), self.kwargs_for(t.env_id))
            line = (json.dumps(record, allow_nan=False) + "\n").encode()
            lines.append(line)
            entry.lengths.append(len(line))
            entry.outcomes.append(record["outcome"])
            entry.stop_reasons.append(t.stop_reason)
            entry.failed.append(t.failed)
            entry.groups.append(t.group_key)
        if entry.end > self.max_bytes:
            self.capped = True
            print(f"trajectory log: {self.path} reached log.trajectory_max_mb "
                  f"({self.max_bytes / 2**20:g} MB) at step {step + 1}; no further steps are logged "
                  "(raise log.trajectory_max_mb or lower log.trajectory_groups)", file=sys.stderr)
            entry = StepEntry(step=step + 1, offset=entry.offset, capped=True)
            lines = []
        with open(self.path, "ab") as f:
            f.writelines(lines)
        with open(self.index_path, "a") as f:
            f.write(json.dumps(entry.to_dict()) + "\n")
        return len(lines)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def episode_record(t: Trajectory, i: int, step: int, advantages: Advantages, kept: bool,
                   env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of batch member ``i`` (module docstring), with the credit the learner used."""
    rewards = advantages.rewards
    gate = None if rewards is None or rewards.gates is None else bool(rewards.gates[i])
    gated = None if rewards is None else rewards.turn_rewards[i]
    clip = None if advantages.clip_scale is None else advantages.clip_scale[i]
    turns = []
    for k, turn in enumerate(t.turns):
        turns.append({
            "turn": k,
            "env_turn": turn.record.turn,
            "seat": turn.record.seat,
            "observation": turn.observation,
            "action": turn.text,
            "prompt_tokens": len(turn.prompt_ids),
            "completion_tokens": len(turn.completion_ids),
            "completion_ids": list(turn.completion_ids),
            "finish_reason": turn.finish_reason,
            "reward": _finite(turn.record.turn_reward),
            "components": {name: _finite(v) for name, v in turn.record.components.items()},
            "valid": turn.record.valid_action,
            "gate_open": gate,
            "gated_reward": None if gated is None else _finite(gated[k]),
            "advantage": _finite(advantages.per_turn[i][k]),
            "clip_scale": None if clip is None else _finite(clip[k]),
        })
    return {
        "step": step + 1,
        "env_id": t.env_id,
        "env_kwargs": env_kwargs,
        "seed": t.seed,
        "group_id": t.group_id,
        "group_key": t.group_key,
        "sample_index": t.sample_index,
        "seat": t.seat,
        "opponent": t.opponent,
        "context": t.context,
        "outcome": _finite(t.outcome),
        "outcomes": {str(s): _finite(v) for s, v in t.outcomes.items()},
        "stop_reason": t.stop_reason,
        "failed": t.failed,
        "error": t.error,
        "info": t.info,
        "kept": kept,
        "policy_version": step if t.policy_version is None else t.policy_version,
        "turns": turns,
    }


def truncate(path: Path, index_path: Path, after_step: int) -> list[StepEntry]:
    """Drop every logged step past ``after_step`` from both files; returns the entries kept."""
    entries = [e for e in read_index(index_path) if e.step <= after_step]
    end = entries[-1].end if entries else 0
    if path.exists() and path.stat().st_size > end:
        with open(path, "r+b") as f:
            f.truncate(end)
    if index_path.exists():
        index_path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in entries))
    return entries


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
def read_index(index_path: str | Path) -> list[StepEntry]:
    """Every step of the index, in order; ``[]`` when there is none. A torn last line (a run
    killed mid-write) is ignored."""
    path = Path(index_path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(StepEntry.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError):
            continue
    return entries


def index_path_for(path: str | Path) -> Path:
    """The index beside a trajectory log (``trajectories.jsonl`` → ``trajectories.index.jsonl``)."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".jsonl") + ".index.jsonl")


@dataclass
class EpisodePage:
    """One page of episodes: ``total`` matched the filters; ``episodes`` are ``[offset, offset+limit)``."""

    total: int
    episodes: list[dict[str, Any]]
    bytes_read: int = 0


def read_episodes(path: str | Path, step: int | None = None, *, offset: int = 0, limit: int = 50,
                  outcome: OutcomeFilter | None = None, stop_reason: str | None = None,
                  group: str | None = None, index: Sequence[StepEntry] | None = None) -> EpisodePage:
    """Episodes of ``trajectories.jsonl`` at ``path``, filtered and paginated through its index.

    ``step`` (metrics numbering) restricts to one step; ``outcome`` is ``"success"`` (outcome > 0),
    ``"no_success"`` or ``"failed"``; ``stop_reason`` and ``group`` (a group key) match exactly.
    Only the selected episodes' bytes are read (``EpisodePage.bytes_read`` counts them). ``index``
    may pass an already loaded index (a server caches it).
    """
    if outcome is not None and outcome not in OUTCOME_FILTERS:
        raise ValueError(f"unknown outcome filter {outcome!r}; expected one of {OUTCOME_FILTERS}")
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be >= 0, got offset={offset!r} limit={limit!r}")
    entries = read_index(index_path_for(path)) if index is None else index
    if step is not None:
        entries = [e for e in entries if e.step == step]
    selected: list[tuple[int, int]] = []  # (byte offset, length) of each match, in file order
    total = 0
    for e in entries:
        position = e.offset
        for i, length in enumerate(e.lengths):
            if e.matches(i, outcome, stop_reason, group):
                if offset <= total < offset + limit:
                    selected.append((position, length))
                total += 1
            position += length
    episodes, read = [], 0
    if selected:
        with open(path, "rb") as f:
            for position, length in selected:
                f.seek(position)
                data = f.read(length)
                read += len(data)
                episodes.append(json.loads(data))
    return EpisodePage(total=total, episodes=episodes, bytes_read=read)


__all__ = [
    "INDEX",
    "OUTCOME_FILTERS",
    "TRAJECTORIES",
    "EpisodePage",
    "StepEntry",
    "TrajectoryLog",
    "episode_record",
    "index_path_for",
    "read_episodes",
    "read_index",
    "truncate",
]

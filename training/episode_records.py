"""``turngym eval`` episodes as trajectory-log records (:mod:`turngym.training.trajectory_log`'s
schema), so ``turngym replay`` and ``turngym view`` read an evaluation's episodes as they read a run's.

* A model's rollouts (:class:`~turngym.training.trajectory.Trajectory`): :func:`trajectory_records`,
  one record per seat the model played, the learner-only fields (gate, gated reward, advantage, clip
  scale) ``null``, ``step`` 0.
* A scripted agent's hot-seat episode (:class:`~turngym.training.play.EpisodeResult`):
  :func:`episode_result_record`, one record holding every seat's moves (each turn names its seat),
  ``seat`` the evaluated agent's, ``opponent`` the opponent's spec.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from turngym.training.advantages import Advantages
from turngym.training.play import EpisodeResult
from turngym.training.trajectory import Trajectory
from turngym.training.trajectory_log import episode_record


def trajectory_records(trajectories: Sequence[Trajectory], env_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The log records of a model's evaluation rollouts (no learner credit: those fields are ``null``)."""
    records = []
    for t in trajectories:
        blank = Advantages(per_turn=[np.full(len(t.turns), np.nan)])
        record = episode_record(t, 0, -1, blank, False, dict(env_kwargs or {}))
        record.update(policy_version=None, kept=None)
        records.append(record)
    return records


def episode_result_record(env_id: str, env_kwargs: dict[str, Any] | None, agent_seat: int, opponent: str | None,
                          result: EpisodeResult) -> dict[str, Any]:
    """The log record of a scripted agent's episode played hot-seat (every seat's moves in ``turns``)."""
    turns = []
    for k, (record, move) in enumerate(zip(result.records, result.moves, strict=True)):
        turns.append({
            "turn": k, "env_turn": record.turn, "seat": record.seat, "observation": move["observation"], "action": move["action"],
            "prompt_tokens": None, "completion_tokens": None, "completion_ids": None, "finish_reason": None,
            "reward": _finite(record.turn_reward),
            "components": {name: _finite(v) for name, v in record.components.items()},
            "valid": record.valid_action, "gate_open": None, "gated_reward": None, "advantage": None, "clip_scale": None,
        })
    return {
        "step": 0, "env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "seed": result.seed,
        "group_id": f"{env_id}#{result.seed}", "group_key": f"{env_id}#{result.seed}/seat{agent_seat}",
        "sample_index": 0, "seat": agent_seat, "opponent": opponent, "context": None,
        "outcome": _finite(result.outcomes.get(agent_seat)),
        "outcomes": {str(s): _finite(v) for s, v in result.outcomes.items()},
        "stop_reason": result.stop_reason, "failed": False, "error": None, "kept": None, "policy_version": None,
        "turns": turns,
    }


def write_records(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write ``records`` as JSON lines (``nan`` never appears: non-finite numbers are ``null``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w") as f:
        f.writelines(json.dumps(r, allow_nan=False) + "\n" for r in records)
    return target


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)

"""Is the run still learning? The share of GRPO groups that carry no signal, and the collapse warning.

GRPO learns only from groups whose members differ: a group whose rollouts all earn the same rewards
has zero advantages and is dropped (dynamic sampling). When a policy has collapsed to one
deterministic behaviour on its tasks, every group of every step is dropped and no gradient is taken,
however long the run goes on. These pure functions measure that and say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from turngym.training.trajectory import Trajectory


def dropped_group_share(groups: Sequence[str], keep: np.ndarray, failed: Sequence[bool]) -> float:
    """Share of groups (with at least one rollout that did not fail) of which no rollout is kept.

    ``groups[i]`` is rollout ``i``'s group key, ``keep[i]`` whether it reaches the loss. Failed
    rollouts neither count for nor against a group. ``nan`` when no group has a healthy rollout.
    """
    if not (len(groups) == len(keep) == len(failed)):
        raise ValueError(f"groups, keep and failed differ in length: {len(groups)}, {len(keep)}, {len(failed)}")
    healthy: dict[str, bool] = {}
    for group, kept, dead in zip(groups, keep, failed):
        if dead:
            continue
        healthy[group] = healthy.get(group, False) or bool(kept)
    if not healthy:
        return float("nan")
    return sum(not kept for kept in healthy.values()) / len(healthy)


def no_signal_since(since: int | None, step: int, share: float) -> int | None:
    """The first step of the current run of steps whose every group was dropped (``None``: the
    last step kept something). ``step`` is the step just finished (1-based), ``share`` its
    :func:`dropped_group_share`."""
    if share == 1.0:
        return step if since is None else since
    return None


def no_signal_warning(since: int | None, step: int, patience: int) -> str | None:
    """The collapse warning once ``patience`` consecutive steps had no signal, else ``None``."""
    if since is None or step - since + 1 < patience:
        return None
    return (f"no learning signal since step {since}: every group was dropped for zero reward variance "
            f"({step - since + 1} steps) — the policy is deterministic on these tasks; raise the "
            "entropy bonus (algo.entropy_coef / algo.target_entropy) or rollout.temperature")


def advantage_metrics(trajectories: Sequence[Trajectory], per_turn: Sequence[np.ndarray], keep: np.ndarray) -> dict[str, float]:
    """What the advantages of the kept rollouts look like, per step (``adv/*`` metrics).

    A rollout's advantage here is the mean of its per-turn advantages. ``adv/mean``, ``adv/std``:
    over kept rollouts; ``adv/seat<s>/mean``: per seat (a seat advantage that leaks into the
    gradient shows as seat means away from 0); ``adv/len_corr`` and ``adv/abs_len_corr``: Pearson
    correlation of the advantage and of its magnitude with the rollout's number of turns (``nan``
    when lengths or advantages do not vary). Empty when nothing was kept.
    """
    rows = [(t, float(np.mean(a))) for t, a, k in zip(trajectories, per_turn, keep) if k and len(a)]
    if not rows:
        return {}
    adv = np.array([a for _, a in rows])
    turns = np.array([len(t.turns) for t, _ in rows], dtype=np.float64)
    out = {"adv/mean": float(adv.mean()), "adv/std": float(adv.std())}
    for seat in sorted({t.seat for t, _ in rows}):
        out[f"adv/seat{seat}/mean"] = float(np.mean([a for t, a in rows if t.seat == seat]))
    out["adv/len_corr"] = _corr(adv, turns)
    out["adv/abs_len_corr"] = _corr(np.abs(adv), turns)
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])

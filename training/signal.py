"""Is the run still learning? The share of GRPO groups that carry no signal, and the collapse warning.

GRPO learns only from groups whose members differ: a group whose rollouts all earn the same rewards
has zero advantages and is dropped (dynamic sampling). When a policy has collapsed to one
deterministic behaviour on its tasks, every group of every step is dropped and no gradient is taken,
however long the run goes on. These pure functions measure that and say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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

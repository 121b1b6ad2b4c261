"""Reward assembly with gated reward accumulation (G-RA), ``reference/algorithms.md`` §2 and §8.2.

A rollout has one **outcome** ``r_high`` (the episode-level reward of its seat) and one dense,
immediate **turn reward** ``r_low[k]`` per policy turn ``k`` (tool success, format, invalid move,
information gain…). G-RA credits the dense rewards only when the outcome clears a threshold δ::

    r̃[k] = r_low[k] · 1[r_high ≥ δ]                      (§2.3, two-level form)
    R    = r_high + Σ_k r̃[k]                               (the G-RA episode return)

``mode="ungated"`` is the D-RA ablation (gate ≡ 1, §2.3 / §8.2 step 3). The gate is applied
*before* any group normalisation (§2.5), so gated-off trajectories compete on ``r_high`` alone.

**Where δ comes from.** Every registered environment carries its default threshold in its spec:
callers read ``turngym.spec(env_id).gate_threshold`` (``None`` = gate always open) and pass it
as ``delta`` — a single float, or a mapping ``{env_id: δ}`` for batches that mix environments.
This module never looks the registry up itself: it is pure arithmetic on plain Python / numpy.

**Conventions.**

* Turn ids are explicit: ``turn_rewards[k]`` is the dense reward of the rollout's ``k``-th policy
  turn (for a game seat: that seat's own ``k``-th move, not :attr:`TurnRecord.turn`, which counts
  both seats).
* A non-finite dense value (``nan``/``inf``) means *absent* (e.g. an information gain that could
  not be computed, §1.9): it stays ``nan`` after gating and is left out of the return, so that the
  advantage estimators skip it.
* A ``failed`` rollout (env or sandbox error) has no score at all: its return and gated rewards
  are ``nan`` and its gate is closed. It is masked downstream, never scored 0 (DESIGN §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

GateMode = Literal["gated", "ungated"]
GATE_MODES: tuple[str, ...] = ("gated", "ungated")

Delta = float | None | Mapping[str, float | None]


@dataclass
class RolloutRewards:
    """The rewards of one rollout (one seat of one episode).

    Attributes:
        group_id: rollouts sharing a task/seed form a GRPO group.
        outcome: ``r_high``, the seat's episode-level reward (ignored when ``failed``).
        turn_rewards: ``r_low`` per policy turn; index = turn id. ``nan`` marks an absent value.
        seat: the seat that produced the rollout (0 for single-agent tasks).
        env_id: the environment id, used to look ``delta`` up when it is a mapping.
        failed: the episode died of an env/sandbox error; it is masked, never scored.
    """

    group_id: str
    outcome: float
    turn_rewards: list[float] = field(default_factory=list)
    seat: int = 0
    env_id: str = ""
    failed: bool = False

    def __post_init__(self) -> None:
        self.outcome = float(self.outcome)
        self.turn_rewards = [float(r) for r in self.turn_rewards]
        if not self.failed and not math.isfinite(self.outcome):
            raise ValueError(
                f"rollout of group {self.group_id!r} has outcome {self.outcome!r}; the outcome of a "
                "rollout that did not fail must be finite (mark env/sandbox errors failed=True)"
            )


@dataclass
class AssembledRewards:
    """The gated rewards of a batch of ``N`` rollouts (output of :func:`assemble`).

    Attributes:
        group_ids: ``[N]`` group id of each rollout.
        outcomes: ``[N]`` float64, ``r_high`` (``nan`` for failed rollouts).
        turn_rewards: ``N`` arrays ``[n_i]``, the gated dense rewards ``r̃`` (``nan`` = absent).
        returns: ``[N]`` float64, the G-RA return ``R = r_high + Σ_k r̃[k]`` over finite ``r̃``.
        gates: ``[N]`` bool, whether each rollout's gate was open.
        failed: ``[N]`` bool.
        seats: ``[N]`` int seat of each rollout.
        env_ids: ``[N]`` environment id of each rollout.
    """

    group_ids: list[str]
    outcomes: np.ndarray
    turn_rewards: list[np.ndarray]
    returns: np.ndarray
    gates: np.ndarray
    failed: np.ndarray
    seats: list[int]
    env_ids: list[str]

    def __len__(self) -> int:
        return len(self.group_ids)


def gate_open(outcome: float, delta: float | None) -> bool:
    """The G-RA gate ``1[r_high ≥ δ]`` (§2.3); ``delta=None`` means always open."""
    if delta is None:
        return True
    if not math.isfinite(float(delta)):
        raise ValueError(f"gate threshold delta must be finite or None, got {delta!r}")
    outcome = float(outcome)
    if not math.isfinite(outcome):
        raise ValueError(f"cannot gate on a non-finite outcome {outcome!r}")
    return outcome >= float(delta)


def gate_turn_rewards(
    outcome: float,
    turn_rewards: Sequence[float],
    delta: float | None,
    mode: GateMode = "gated",
) -> list[float]:
    """Gate one rollout's dense rewards: ``r̃[k] = r_low[k] · 1[outcome ≥ δ]`` (§2.3, §8.2).

    Args:
        outcome: ``r_high`` of the rollout.
        turn_rewards: ``r_low`` per turn (index = turn id).
        delta: the threshold δ; ``None`` = always open.
        mode: ``"gated"`` (G-RA) or ``"ungated"`` (D-RA ablation: gate ≡ 1).

    Returns:
        ``r̃`` per turn, same length. Non-finite inputs (absent values) are returned as ``nan``
        whatever the gate; finite values are multiplied by the gate (closed ⇒ exactly ``0.0``).
    """
    if mode not in GATE_MODES:
        raise ValueError(f"unknown gate mode {mode!r}; expected one of {GATE_MODES}")
    is_open = True if mode == "ungated" else gate_open(outcome, delta)
    out: list[float] = []
    for r in turn_rewards:
        r = float(r)
        if not math.isfinite(r):
            out.append(math.nan)
        else:
            out.append(r if is_open else 0.0)
    return out


def prioritized_reward(channels: Sequence[tuple[float, float, float | None]]) -> float:
    """The multi-level prioritized G-RA form (§2.3, "General prioritized form")::

        R = Σ_k r_k · Π_{j : p_j > p_k} 1[r_j ≥ δ_j]

    Args:
        channels: ``(value r_k, priority p_k, threshold δ_k)`` per reward channel. A channel counts
            only if every channel of *strictly* higher priority meets its threshold; channels of
            equal priority do not gate each other. ``δ_k = None`` means channel ``k`` never closes
            a gate (it still needs the gates above it to count).

    Example: outcome ``(1.0, 2, 0.5)``, tests ``(0.4, 1, 0.3)``, format ``(0.1, 0, None)``
    gives ``1.0 + 0.4·1 + 0.1·1·1 = 1.5``; with the outcome at ``0.2`` it gives ``0.2``.
    """
    parsed: list[tuple[float, float, float | None]] = []
    for idx, ch in enumerate(channels):
        if len(ch) != 3:
            raise ValueError(f"channel {idx} is {ch!r}; expected (value, priority, threshold)")
        value, priority, threshold = float(ch[0]), float(ch[1]), ch[2]
        if not math.isfinite(value):
            raise ValueError(f"channel {idx} has non-finite value {value!r}")
        if not math.isfinite(priority):
            raise ValueError(f"channel {idx} has non-finite priority {priority!r}")
        if threshold is not None and not math.isfinite(float(threshold)):
            raise ValueError(f"channel {idx} has non-finite threshold {threshold!r}")
        parsed.append((value, priority, None if threshold is None else float(threshold)))
    total = 0.0
    for value, priority, _ in parsed:
        gate = all(v >= d for v, p, d in parsed if p > priority and d is not None)
        total += value if gate else 0.0
    return total


def _delta_for(delta: Delta, env_id: str, index: int) -> float | None:
    if isinstance(delta, Mapping):
        if env_id not in delta:
            raise ValueError(
                f"rollout {index} has env_id {env_id!r}, which is not in the delta mapping "
                f"(keys: {sorted(delta)}); read defaults from turngym.spec(env_id).gate_threshold"
            )
        return delta[env_id]
    return delta


def assemble(
    rollouts: Sequence[RolloutRewards],
    delta: Delta,
    mode: GateMode = "gated",
) -> AssembledRewards:
    """Gate and sum the rewards of a batch of rollouts (§2.3, §8.2).

    For each rollout ``i`` (that did not fail)::

        r̃_i[k] = r_low_i[k] · 1[r_high_i ≥ δ]      (mode="ungated": gate ≡ 1)
        R_i    = r_high_i + Σ_{k: r̃_i[k] finite} r̃_i[k]

    Args:
        rollouts: the batch, in any order; groups are given by ``group_id``.
        delta: δ for every rollout, ``None`` (always open), or ``{env_id: δ}``. Callers take the
            per-environment default from ``turngym.spec(env_id).gate_threshold``.
        mode: ``"gated"`` or ``"ungated"``.

    Returns:
        :class:`AssembledRewards`. Failed rollouts get ``nan`` outcome, return and gated rewards,
        and a closed gate.
    """
    if mode not in GATE_MODES:
        raise ValueError(f"unknown gate mode {mode!r}; expected one of {GATE_MODES}")
    group_ids: list[str] = []
    outcomes = np.empty(len(rollouts), dtype=np.float64)
    returns = np.empty(len(rollouts), dtype=np.float64)
    gates = np.zeros(len(rollouts), dtype=bool)
    failed = np.zeros(len(rollouts), dtype=bool)
    gated: list[np.ndarray] = []
    for i, ro in enumerate(rollouts):
        if not isinstance(ro, RolloutRewards):
            raise TypeError(f"rollout {i} is a {type(ro).__name__}, expected RolloutRewards")
        group_ids.append(ro.group_id)
        n = len(ro.turn_rewards)
        if ro.failed:
            failed[i] = True
            outcomes[i] = math.nan
            returns[i] = math.nan
            gated.append(np.full(n, math.nan))
            continue
        d = _delta_for(delta, ro.env_id, i)
        is_open = True if mode == "ungated" else gate_open(ro.outcome, d)
        r = np.asarray(gate_turn_rewards(ro.outcome, ro.turn_rewards, d, mode), dtype=np.float64)
        gates[i] = is_open
        outcomes[i] = ro.outcome
        returns[i] = ro.outcome + float(r[np.isfinite(r)].sum())
        gated.append(r)
    return AssembledRewards(
        group_ids=group_ids,
        outcomes=outcomes,
        turn_rewards=gated,
        returns=returns,
        gates=gates,
        failed=failed,
        seats=[int(ro.seat) for ro in rollouts],
        env_ids=[ro.env_id for ro in rollouts],
    )


__all__ = [
    "GATE_MODES",
    "AssembledRewards",
    "RolloutRewards",
    "assemble",
    "gate_open",
    "gate_turn_rewards",
    "prioritized_reward",
]

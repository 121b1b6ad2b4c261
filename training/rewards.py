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
This module never looks the registry up itself: it is pure arithmetic on plain Python / numpy
over the trajectories' typed records.

**The record.** :func:`assemble` turns trajectories into one :class:`RewardBatch` — outcomes,
gated turn rewards, groups, roles and anchor states — which every advantage estimator reads.

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
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from turngym.training.trajectory import Trajectory

GateMode = Literal["gated", "ungated"]
GATE_MODES: tuple[str, ...] = ("gated", "ungated")

Delta = float | None | Mapping[str, float | None]


@dataclass
class RewardBatch:
    """The rewards of a batch of ``N`` rollouts: the one record between trajectories and estimators.

    :func:`assemble` builds it from :class:`~turngym.training.trajectory.Trajectory` records with
    the G-RA gate applied; tests and other learners may build it directly (then ``gates`` defaults
    to open wherever the rollout did not fail). Every advantage estimator reads it
    (:mod:`turngym.training.advantages`).

    Attributes:
        group_ids: ``[N]`` hashable; rollouts sharing one form a GRPO group
            (:func:`assemble`: :attr:`Trajectory.group_key`, task and seat).
        outcomes: ``[N]`` float64, ``r_high`` per rollout; non-finite exactly where ``failed``
            (:func:`assemble` stores ``nan`` there).
        turn_rewards: ``N`` arrays ``[n_i]``: the gated dense signal ``r̃`` of each policy turn, index =
            turn id; ``nan``/``inf`` = absent.
        anchors: ``N`` lists ``[n_i]`` of hashable anchor states, one per turn (GiGPO; ``None``
            entries never share a group), or ``None`` when the source provides none at all.
        roles: ``N`` pairs ``(env id, seat)`` (RAE's role baselines), or ``None``.
        failed: ``[N]`` bool; failed rollouts are masked downstream, never scored.
        gates: ``[N]`` bool, whether each rollout's G-RA gate was open (closed for failed ones).
    """

    group_ids: Sequence[Hashable]
    outcomes: np.ndarray
    turn_rewards: Sequence[np.ndarray]
    anchors: Sequence[Sequence[Hashable | None]] | None = None
    roles: Sequence[tuple[str, int]] | None = None
    failed: np.ndarray | None = None
    gates: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.group_ids = list(self.group_ids)
        n = len(self.group_ids)
        self.outcomes = np.asarray(self.outcomes, dtype=np.float64)
        if self.outcomes.ndim != 1 or self.outcomes.shape[0] != n:
            raise ValueError(
                f"group_ids has {n} entries but outcomes has shape {self.outcomes.shape}; "
                f"expected ({n},)"
            )
        if len(self.turn_rewards) != n:
            raise ValueError(
                f"group_ids has {n} entries but turn_rewards has {len(self.turn_rewards)}"
            )
        rewards = []
        for i, r in enumerate(self.turn_rewards):
            arr = np.asarray(r, dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"turn_rewards[{i}] must be 1-D [n_turns], got shape {arr.shape}")
            rewards.append(arr)
        self.turn_rewards = rewards
        self.failed = _bool_column("failed", self.failed, n, default=False)
        bad = np.flatnonzero(~np.isfinite(self.outcomes) & ~self.failed)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"outcomes[{i}] = {float(self.outcomes[i])!r} is not finite and rollout {i} is not "
                f"marked failed ({bad.size} such rollouts); mark env/sandbox errors failed"
            )
        self.gates = _bool_column("gates", self.gates, n, default=True) & ~self.failed
        if self.anchors is not None:
            if len(self.anchors) != n:
                raise ValueError(f"group_ids has {n} entries but anchors has {len(self.anchors)}")
            self.anchors = [list(keys) for keys in self.anchors]
            for i, keys in enumerate(self.anchors):
                if len(keys) != rewards[i].shape[0]:
                    raise ValueError(
                        f"rollout {i} has {rewards[i].shape[0]} turn rewards but {len(keys)} anchors"
                    )
        if self.roles is not None:
            if len(self.roles) != n:
                raise ValueError(f"group_ids has {n} entries but roles has {len(self.roles)}")
            roles = []
            for i, role in enumerate(self.roles):
                if len(role) != 2:
                    raise ValueError(f"roles[{i}] is {role!r}; expected (env id, seat)")
                roles.append((str(role[0]), int(role[1])))
            self.roles = roles

    def __len__(self) -> int:
        return len(self.group_ids)

    @property
    def n(self) -> int:
        """Number of rollouts ``N``."""
        return len(self.group_ids)

    @property
    def num_turns(self) -> np.ndarray:
        """``[N]`` int, ``n_i`` per rollout."""
        return np.array([r.shape[0] for r in self.turn_rewards], dtype=np.int64)

    @property
    def returns(self) -> np.ndarray:
        """``[N]`` float64, the G-RA return ``R = r_high + Σ_k r̃[k]`` over finite ``r̃`` (``nan`` where failed)."""
        dense = np.array([float(r[np.isfinite(r)].sum()) for r in self.turn_rewards])
        out = self.outcomes + dense if dense.size else self.outcomes.copy()
        return np.where(self.failed, math.nan, out)

    @property
    def seats(self) -> list[int]:
        """``[N]`` seat of each rollout (from ``roles``; 0 when there are none)."""
        return [seat for _, seat in self.roles] if self.roles is not None else [0] * self.n

    def select(self, indices: Sequence[int] | np.ndarray) -> RewardBatch:
        """The sub-batch of the given rollouts, in the given order."""
        idx = [int(i) for i in indices]
        return RewardBatch(
            group_ids=[self.group_ids[i] for i in idx],
            outcomes=self.outcomes[idx],
            turn_rewards=[self.turn_rewards[i] for i in idx],
            anchors=None if self.anchors is None else [self.anchors[i] for i in idx],
            roles=None if self.roles is None else [self.roles[i] for i in idx],
            failed=self.failed[idx],
            gates=self.gates[idx],
        )


def _bool_column(name: str, values: Any, n: int, *, default: bool) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=bool)
    arr = np.asarray(values, dtype=bool)
    if arr.shape != (n,):
        raise ValueError(f"group_ids has {n} entries but {name} has shape {arr.shape}")
    return arr


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


def _component_sum(components: Mapping[str, float], names: Collection[str]) -> float:
    """The sum of the ``components`` named in ``names`` (0.0 when none are present)."""
    return float(sum(v for k, v in components.items() if k in names))


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
    trajectories: Sequence[Trajectory],
    delta: Delta,
    mode: GateMode = "gated",
    *,
    information_gains: Sequence[np.ndarray] | None = None,
    info_gain_weight: float = 1.0,
    ungated_components: Collection[str] = (),
    failed_outcome: float | None = None,
) -> RewardBatch:
    """Read, gate and sum the rewards of a batch of trajectories (§2.3, §8.2).

    For each trajectory ``i`` (that did not fail)::

        r_low_i[k] = Σ of turn k's record components not in ungated_components
                     + info_gain_weight · IG_i[k]                 (IGPO, when given; nan IG ⇒ 0)
        u_i[k]     = Σ of turn k's components named in ungated_components
        r̃_i[k]    = r_low_i[k] · 1[r_high_i ≥ δ] + u_i[k]        (mode="ungated": gate ≡ 1)
        R_i        = r_high_i + Σ_{k: r̃_i[k] finite} r̃_i[k]

    ``ungated_components`` (empty by default: everything dense is gated, the paper's G-RA) names
    terms the gate never touches — e.g. a format penalty an untrained policy can learn to avoid
    long before any outcome clears δ. Such a term is exempt from the gate's protection against
    reward hacking, so it should be one the policy cannot farm (a penalty, or a bounded bonus).

    Args:
        trajectories: the batch, in any order. Groups are :attr:`Trajectory.group_key` (the seats
            of one game are different tasks); roles are ``(env_id, seat)``; anchors are the turns'
            :attr:`Turn.anchor`. A trajectory that ``failed`` or has no outcome is failed.
        delta: δ for every rollout, ``None`` (always open), or ``{env_id: δ}``. Callers take the
            per-environment default from ``turngym.spec(env_id).gate_threshold``.
        mode: ``"gated"`` or ``"ungated"``.
        information_gains: per trajectory, ``[n_i]`` information gains (``nan`` = none), or ``None``.
        info_gain_weight: their weight in the dense reward.
        failed_outcome: ``None`` (the default, DESIGN §3): failed rollouts are masked. A number is
            the *ablation* that scores them instead: a failed rollout becomes an ordinary member of
            its group with this outcome and no dense reward (``algo.failed_rollouts: score_zero``).

    Returns:
        :class:`RewardBatch`. Failed rollouts get ``nan`` outcome and gated rewards and a closed gate.
    """
    if mode not in GATE_MODES:
        raise ValueError(f"unknown gate mode {mode!r}; expected one of {GATE_MODES}")
    if information_gains is not None and len(information_gains) != len(trajectories):
        raise ValueError(
            f"{len(trajectories)} trajectories but {len(information_gains)} information-gain arrays"
        )
    n = len(trajectories)
    outcomes = np.full(n, math.nan)
    gates = np.zeros(n, dtype=bool)
    failed = np.zeros(n, dtype=bool)
    gated: list[np.ndarray] = []
    for i, t in enumerate(trajectories):
        if not isinstance(t, Trajectory):
            raise TypeError(f"trajectory {i} is a {type(t).__name__}, expected Trajectory")
        exempt = np.array([_component_sum(turn.record.components, ungated_components) for turn in t.turns], dtype=np.float64)
        dense = np.asarray(t.turn_rewards, dtype=np.float64) - exempt
        if information_gains is not None:
            gains = np.asarray(information_gains[i], dtype=np.float64)
            if gains.shape != dense.shape:
                raise ValueError(
                    f"trajectory {i} has {dense.shape[0]} turns but information gains of shape {gains.shape}"
                )
            dense = dense + info_gain_weight * np.nan_to_num(gains, nan=0.0)
        if failed_outcome is not None and (t.failed or t.outcome is None):
            outcomes[i] = float(failed_outcome)
            gates[i] = True if mode == "ungated" else gate_open(outcomes[i], _delta_for(delta, t.env_id, i))
            gated.append(np.zeros(dense.shape[0]))
            continue
        if t.failed or t.outcome is None:
            failed[i] = True
            gated.append(np.full(dense.shape[0], math.nan))
            continue
        outcome = float(t.outcome)
        if not math.isfinite(outcome):
            raise ValueError(
                f"trajectory {i} ({t.group_key}) has outcome {outcome!r}; the outcome of a "
                "rollout that did not fail must be finite (mark env/sandbox errors failed=True)"
            )
        d = _delta_for(delta, t.env_id, i)
        gates[i] = True if mode == "ungated" else gate_open(outcome, d)
        outcomes[i] = outcome
        gated.append(np.asarray(gate_turn_rewards(outcome, dense, d, mode), dtype=np.float64) + exempt)
    return RewardBatch(
        group_ids=[t.group_key for t in trajectories],
        outcomes=outcomes,
        turn_rewards=gated,
        anchors=[[turn.anchor for turn in t.turns] for t in trajectories],
        roles=[(t.env_id, t.seat) for t in trajectories],
        failed=failed,
        gates=gates,
    )


__all__ = [
    "GATE_MODES",
    "RewardBatch",
    "assemble",
    "gate_open",
    "gate_turn_rewards",
    "prioritized_reward",
]

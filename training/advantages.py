"""Advantage estimators of the multi-turn GRPO learner: one registry, one signature, one entry point.

The trainer makes one call, :func:`compute` ``(trajectories, algo, state) -> (advantages, keep,
state)``: G-RA reward assembly (:func:`turngym.training.rewards.assemble`, one
:class:`~turngym.training.rewards.RewardBatch`), the configured estimator, and the DAPO
dynamic-sampling keep mask.

Every estimator is a pure function
``f(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None) -> Advantages``
registered in :data:`ESTIMATORS` (look one up with :func:`get_estimator`); ``state`` is the
cross-batch state only ``rae`` reads (the others ignore it)::

    grpo        outcome z-score per group                           (algorithms.md §7.1, §8.3.1)
    dr_grpo     grpo without the std division                       (§7.3)
    turn_group  A²TGPO turn-group normalisation + √n accumulation   (§1.3–§1.5, §8.3)
    rae         SPIRAL role-conditioned EMA baseline (stateful)     (§4.3)
    rae_shared  rae with one baseline for all seats (ablation)
    turn_naive  per-turn-index mean baseline, no std, no √n (ablation; verl issue 7244)
    gigpo       episode + anchor-state step advantages              (§5.1)

**Input semantics** (the same :class:`RewardBatch` serves every estimator):

* ``outcomes[i]`` is the rollout's outcome ``r_high``; ``turn_rewards[i][k]`` is the *gated* dense
  signal of its turn ``k`` (output of :func:`turngym.training.rewards.assemble`, or information
  gain from :func:`information_gain`). Turn ids are explicit: index ``k`` of the ragged arrays.
  Turns are never inferred from equal values.
* ``nan``/``inf`` dense values are *absent*: skipped by every statistic, and the computation goes
  on (§1.9, §8.6).
* Outcome-only estimators (``grpo``, ``dr_grpo``, ``rae``) score the episode return
  ``R_i = outcomes_i + Σ_k turn_rewards_{i,k}`` (finite terms) — the G-RA return, which "simply
  replaces the reward" (§2.3) — unless ``cfg.dense_in_return`` is False (then ``R_i = outcomes_i``).
  ``turn_group`` keeps the two apart (``Â^O`` from ``outcomes``, turn terms from the dense signal);
  ``gigpo`` places ``outcomes_i`` on the last turn's step reward and groups turns by ``anchors``
  (the env's anchor states, :attr:`turngym.training.trajectory.Turn.anchor`).
* ``failed[i]`` marks rollouts that died of an env/sandbox error. The registry wrapper removes them
  *before* the estimator runs (they join no group statistic and no RAE update) and gives them
  zero advantages and ``valid[i] = False`` afterwards, so the batching module loss-masks them:
  never scored 0, never silently shrinking a group without a trace.

**Output.** ``Advantages.per_turn[i][k]`` is the advantage of every token of turn ``k`` of rollout
``i`` (the token broadcast is the batching module's job). ``clip_scale`` (``turn_group`` only) is
the A²TGPO per-turn clip scale ``c_{i,k}``.

:func:`dynamic_sampling_mask` (DAPO dynamic sampling, §7.2 / §8.5) also lives here.
"""

from __future__ import annotations

import difflib
import functools
import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from turngym.envs.registration import spec as env_spec
from turngym.training.rewards import Delta, RewardBatch, assemble
from turngym.training.trajectory import Trajectory

if TYPE_CHECKING:
    from turngym.training.config import AlgoSection

#: Variance floor inside the square root of the turn-group std (§1.3: ``sqrt(var + 1e-8)``).
TURN_VAR_FLOOR = 1e-8


class SingletonGroupWarning(UserWarning):
    """Some GRPO group holds a single rollout (G = 1, §8.6): its ``Â^O`` is the raw reward."""


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class AdvantageConfig:
    """Hyper-parameters of every estimator; defaults from ``algorithms.md`` §8.

    Attributes:
        gamma: turn discount of ``turn_group`` and ``rae`` (γ = 1.0, §1.4, §4.3).
        alpha: weight of the accumulated turn term in ``turn_group`` (α = 0.3, §1.4).
        eps: added to the std before dividing (ε = 1e-6, §1.3).
        norm_by_std: divide by the group std (False gives the Dr.GRPO flavour of ``grpo``,
            ``turn_group`` and ``gigpo``; ``dr_grpo`` always ignores the std).
        clip_beta: β of the adaptive clip scale ``c = 1 + β(2σ(ĨR) − 1)`` (β = 0.3, §1.5).
        ema_decay: RAE EMA decay α (0.95, §4.3).
        gigpo_gamma: discount of GiGPO step returns (γ = 0.95, §5.1).
        step_weight: GiGPO ω, weight of the step advantage (1.0, §5.1).
        dense_in_return: outcome-only estimators score ``outcome + Σ dense`` (the G-RA return).
        warn_singleton_groups: emit :class:`SingletonGroupWarning` when a group has one rollout.
    """

    gamma: float = 1.0
    alpha: float = 0.3
    eps: float = 1e-6
    norm_by_std: bool = True
    clip_beta: float = 0.3
    ema_decay: float = 0.95
    gigpo_gamma: float = 0.95
    step_weight: float = 1.0
    dense_in_return: bool = True
    warn_singleton_groups: bool = True

    def __post_init__(self) -> None:
        for name in ("gamma", "ema_decay", "gigpo_gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"AdvantageConfig.{name} must lie in [0, 1], got {value!r}")
        for name in ("alpha", "step_weight"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"AdvantageConfig.{name} must be finite, got {value!r}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"AdvantageConfig.eps must be positive, got {self.eps!r}")
        if not (math.isfinite(self.clip_beta) and 0.0 <= self.clip_beta < 1.0):
            raise ValueError(
                f"AdvantageConfig.clip_beta must lie in [0, 1) so that the clip scale stays "
                f"positive, got {self.clip_beta!r}"
            )


@dataclass
class RAEState:
    """SPIRAL role baselines ``b_{game,seat}`` (§4.3), carried across batches by the trainer.

    The ``rae`` estimator never mutates the state it is given: it returns an updated copy in
    :attr:`Advantages.rae_state`. The trainer holds it as this record; :meth:`to_dict` /
    :meth:`from_dict` round-trip through JSON in checkpoints only.

    Attributes:
        baselines: ``{(game id, seat): b}``; a role never seen has baseline 0.
        counts: ``{(game id, seat): number of rollouts folded into b}``.
    """

    baselines: dict[tuple[str, int], float] = field(default_factory=dict)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def baseline(self, game: str, seat: int) -> float:
        return self.baselines.get((game, int(seat)), 0.0)

    def update(self, game: str, seat: int, value: float, decay: float) -> float:
        """Fold ``value`` in (``b ← decay·b + (1 − decay)·value``); return the baseline *before*."""
        key = (game, int(seat))
        before = self.baselines.get(key, 0.0)
        self.baselines[key] = decay * before + (1.0 - decay) * float(value)
        self.counts[key] = self.counts.get(key, 0) + 1
        return before

    def copy(self) -> RAEState:
        return RAEState(dict(self.baselines), dict(self.counts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "roles": [
                {"game": g, "seat": s, "baseline": b, "count": self.counts.get((g, s), 0)}
                for (g, s), b in sorted(self.baselines.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RAEState:
        if data.get("version") != 1:
            raise ValueError(f"unsupported RAEState version {data.get('version')!r}; expected 1")
        state = cls()
        for entry in data.get("roles", []):
            key = (str(entry["game"]), int(entry["seat"]))
            state.baselines[key] = float(entry["baseline"])
            state.counts[key] = int(entry.get("count", 0))
        return state


@dataclass
class Advantages:
    """Per-turn advantages of a batch (output of every estimator).

    Attributes:
        per_turn: ``N`` arrays ``[n_i]``; every token of turn ``k`` of rollout ``i`` gets
            ``per_turn[i][k]``.
        clip_scale: ``N`` arrays ``[n_i]`` of A²TGPO clip scales ``c_{i,k}`` (``turn_group``), else
            ``None`` (scale 1).
        valid: ``[N]`` bool; ``False`` for failed rollouts, whose loss must be masked.
        rae_state: the updated RAE baselines (``rae`` only).
        rewards: the G-RA assembled :class:`RewardBatch` the estimator read (gates, gated turn
            rewards); set by :func:`compute` so logs show the credit the learner used.
    """

    per_turn: list[np.ndarray]
    clip_scale: list[np.ndarray] | None = None
    valid: np.ndarray | None = None
    rae_state: RAEState | None = None
    rewards: RewardBatch | None = None


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

Estimator = Callable[[RewardBatch, AdvantageConfig, "RAEState | None"], Advantages]

#: name → estimator. Populated with :func:`register_estimator`.
ESTIMATORS: dict[str, Estimator] = {}


def _qualname(fn: Callable[..., Any]) -> str:
    fn = getattr(fn, "__wrapped__", fn)
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def register_estimator(name: str) -> Callable[[Callable[..., Advantages]], Estimator]:
    """Decorator: register ``fn(rewards, cfg, state) -> Advantages`` under ``name``.

    The registered (and returned) function is wrapped: it validates its arguments, removes failed
    rollouts before calling ``fn`` and scatters zero advantages back for them, sets
    :attr:`Advantages.valid`, and checks that ``fn`` returned one finite value per turn.
    Registering a name twice raises ``ValueError`` naming both functions.
    """

    def decorate(fn: Callable[..., Advantages]) -> Estimator:
        if name in ESTIMATORS:
            raise ValueError(
                f"advantage estimator {name!r} is already registered to "
                f"{_qualname(ESTIMATORS[name])}; cannot register {_qualname(fn)} under that name"
            )

        @functools.wraps(fn)
        def estimator(
            rewards: RewardBatch, cfg: AdvantageConfig | None = None, state: RAEState | None = None
        ) -> Advantages:
            if not isinstance(rewards, RewardBatch):
                raise TypeError(f"{name}: rewards must be a RewardBatch, got {type(rewards).__name__}")
            cfg = AdvantageConfig() if cfg is None else cfg
            if not isinstance(cfg, AdvantageConfig):
                raise TypeError(f"{name}: cfg must be an AdvantageConfig, got {type(cfg).__name__}")
            if state is not None and not isinstance(state, RAEState):
                raise TypeError(f"{name}: state must be a RAEState or None, got {type(state).__name__}")
            return _run_without_failed(name, fn, rewards, cfg, state)

        ESTIMATORS[name] = estimator
        return estimator

    return decorate


def get_estimator(name: str) -> Estimator:
    """The estimator registered under ``name``; ``ValueError`` with a suggestion otherwise."""
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        pass
    known = sorted(ESTIMATORS)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown advantage estimator {name!r}; registered: {known}.{hint}")


def _run_without_failed(
    name: str,
    fn: Callable[..., Advantages],
    rewards: RewardBatch,
    cfg: AdvantageConfig,
    state: RAEState | None,
) -> Advantages:
    failed = rewards.failed
    assert failed is not None
    n_turns = rewards.num_turns
    if failed.any():
        keep = np.flatnonzero(~failed)
        part = fn(rewards.select(keep), cfg, state)
        _check_output(name, part, n_turns[keep])
        per_turn = [np.zeros(int(n)) for n in n_turns]
        clip = None if part.clip_scale is None else [np.ones(int(n)) for n in n_turns]
        for j, i in enumerate(keep):
            per_turn[i] = part.per_turn[j]
            if clip is not None and part.clip_scale is not None:
                clip[i] = part.clip_scale[j]
        out = Advantages(per_turn=per_turn, clip_scale=clip, rae_state=part.rae_state)
    else:
        out = fn(rewards, cfg, state)
        _check_output(name, out, n_turns)
    out.valid = ~failed
    return out


def _check_output(name: str, out: Advantages, n_turns: np.ndarray) -> None:
    if not isinstance(out, Advantages):
        raise TypeError(f"estimator {name!r} returned {type(out).__name__}, expected Advantages")
    for label, arrays in (("per_turn", out.per_turn), ("clip_scale", out.clip_scale)):
        if arrays is None:
            continue
        if len(arrays) != len(n_turns):
            raise ValueError(
                f"estimator {name!r} returned {len(arrays)} {label} arrays for {len(n_turns)} rollouts"
            )
        for i, (a, n) in enumerate(zip(arrays, n_turns)):
            if a.shape != (int(n),):
                raise ValueError(
                    f"estimator {name!r}: {label}[{i}] has shape {a.shape}, expected ({int(n)},)"
                )
            if not np.all(np.isfinite(a)):
                raise ValueError(f"estimator {name!r}: {label}[{i}] is not finite: {a!r}")


# --------------------------------------------------------------------------------------------
# Shared arithmetic
# --------------------------------------------------------------------------------------------


def _group_index(keys: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Dense integer ids (order of first appearance) for hashable keys."""
    mapping: dict[Hashable, int] = {}
    idx = np.fromiter(
        (mapping.setdefault(k, len(mapping)) for k in keys), dtype=np.int64, count=len(keys)
    )
    return idx, len(mapping)


def _segment_stats(
    values: np.ndarray, seg: np.ndarray, num_segments: int, var_floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per element: (count, centered value, population std, all-equal flag) of its segment."""
    counts = np.bincount(seg, minlength=num_segments)
    safe = np.maximum(counts, 1)
    mean = np.bincount(seg, weights=values, minlength=num_segments) / safe
    centered = values - mean[seg]
    var = np.bincount(seg, weights=centered * centered, minlength=num_segments) / safe
    std = np.sqrt(var + var_floor)
    hi = np.full(num_segments, -np.inf)
    lo = np.full(num_segments, np.inf)
    np.maximum.at(hi, seg, values)
    np.minimum.at(lo, seg, values)
    equal = (hi == lo)[seg]
    return counts[seg], centered, std[seg], equal


def _outcome_advantage(
    values: np.ndarray, gidx: np.ndarray, num_groups: int, *, eps: float, norm_by_std: bool
) -> np.ndarray:
    """``Â_i = (R_i − mean_g R) / (std_g R + ε)`` with population std (§1.3, §8.3.1).

    A group of one rollout has mean 0 and std 1, so ``Â = R`` exactly (verl convention, §8.6);
    a group whose values are all equal gets exactly 0. Shapes: ``values, gidx`` ``[N]``.
    """
    if values.size == 0:
        return np.zeros(0)
    count, centered, std, equal = _segment_stats(values, gidx, num_groups, 0.0)
    adv = centered / (std + eps) if norm_by_std else centered
    adv = np.where(equal, 0.0, adv)
    return np.where(count == 1, values, adv)


def _zero_singleton_zscore(
    values: np.ndarray, seg: np.ndarray, num_segments: int, *, eps: float, norm_by_std: bool
) -> np.ndarray:
    """Turn-group z-score (§1.3): ``(x − μ) / (sqrt(var + 1e-8) + ε)``; one member or all equal ⇒ 0."""
    if values.size == 0:
        return np.zeros(0)
    count, centered, std, equal = _segment_stats(values, seg, num_segments, TURN_VAR_FLOOR)
    z = centered / (std + eps) if norm_by_std else centered
    return np.where(equal | (count <= 1), 0.0, z)


def _warn_singletons(gidx: np.ndarray, num_groups: int, cfg: AdvantageConfig, name: str) -> None:
    if not cfg.warn_singleton_groups or gidx.size == 0:
        return
    singles = int(np.sum(np.bincount(gidx, minlength=num_groups) == 1))
    if singles:
        warnings.warn(
            f"{name}: {singles} of {num_groups} groups hold a single rollout (G = 1); their "
            "outcome advantage is the raw reward and their turn terms are 0 (algorithms.md §8.6)",
            SingletonGroupWarning,
            stacklevel=5,
        )


def _padded(turn_rewards: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``[N, K]`` dense values (0 where absent) and the ``[N, K]`` present mask."""
    n = len(turn_rewards)
    k_max = max((r.shape[0] for r in turn_rewards), default=0)
    dense = np.zeros((n, k_max))
    present = np.zeros((n, k_max), dtype=bool)
    for i, r in enumerate(turn_rewards):
        finite = np.isfinite(r)
        present[i, : r.shape[0]] = finite
        dense[i, : r.shape[0]] = np.where(finite, r, 0.0)
    return dense, present


def episode_returns(rewards: RewardBatch, cfg: AdvantageConfig) -> np.ndarray:
    """``[N]`` returns scored by outcome-only estimators: the G-RA return ``outcome + Σ finite
    dense`` (:attr:`RewardBatch.returns`, §2.3), or the outcome alone without ``cfg.dense_in_return``."""
    return rewards.returns if cfg.dense_in_return else rewards.outcomes.copy()


def _broadcast(values: np.ndarray, n_turns: np.ndarray) -> list[np.ndarray]:
    return [np.full(int(n), float(v)) for v, n in zip(values, n_turns)]


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------


@register_estimator("grpo")
def grpo(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """GRPO outcome advantage (§7.1, §8.3.1), the same for every turn of a rollout::

        Â_i = (R_i − mean_{j∈g} R_j) / (std_g(R) + ε)     std: population; G = 1 ⇒ Â_i = R_i

    ``R_i`` is :func:`episode_returns` (outcome + gated dense rewards by default). With
    ``cfg.norm_by_std=False`` there is no std division (same as ``dr_grpo``).
    """
    gidx, num_groups = _group_index(rewards.group_ids)
    _warn_singletons(gidx, num_groups, cfg, "grpo")
    adv = _outcome_advantage(
        episode_returns(rewards, cfg), gidx, num_groups, eps=cfg.eps, norm_by_std=cfg.norm_by_std
    )
    return Advantages(per_turn=_broadcast(adv, rewards.num_turns))


@register_estimator("dr_grpo")
def dr_grpo(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """Dr.GRPO (§7.3): ``Â_i = R_i − mean_{j∈g} R_j`` (no std division; G = 1 ⇒ ``Â_i = R_i``)."""
    gidx, num_groups = _group_index(rewards.group_ids)
    _warn_singletons(gidx, num_groups, cfg, "dr_grpo")
    adv = _outcome_advantage(
        episode_returns(rewards, cfg), gidx, num_groups, eps=cfg.eps, norm_by_std=False
    )
    return Advantages(per_turn=_broadcast(adv, rewards.num_turns))


@register_estimator("turn_group")
def turn_group(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """A²TGPO turn-group advantage with adaptive clip scales (§1.3–§1.5, §8.3).

    With ``r_{i,k}`` the dense signal of turn ``k`` and ``P_i`` its turns with a finite value::

        Â^O_i   = (R^high_i − mean_g) / (std_g + ε)                   # outcomes only; G=1 ⇒ R_i
        C(g,k)  = { r_{i,k} : i ∈ g, k ∈ P_i }                        # rollouts that reached k
        ĨR_{i,k} = (r_{i,k} − μ_{g,k}) / (sqrt(var_{g,k} + 1e-8) + ε) # |C| = 1 or all equal ⇒ 0
        D̃_{i,k} = Σ_{j ≥ k, j ∈ P_i} γ^{j−k} ĨR_{i,j} / sqrt(|{j ≥ k : j ∈ P_i}|)   (0 if empty)
        A_{i,k} = Â^O_i + α · D̃_{i,k}
        c_{i,k} = 1 + β (2 sigmoid(ĨR_{i,k}) − 1)   for k ∈ P_i,   1 otherwise

    Absent (non-finite) turns are skipped: they join no group and add no accumulated term, but
    still receive the accumulated terms of the later turns (their actions led there). A rollout
    without dense values gets ``A = Â^O`` and ``c = 1`` (§1.9). ``cfg.norm_by_std=False`` drops
    both std divisions.
    """
    gidx, num_groups = _group_index(rewards.group_ids)
    _warn_singletons(gidx, num_groups, cfg, "turn_group")
    a_out = _outcome_advantage(
        rewards.outcomes, gidx, num_groups, eps=cfg.eps, norm_by_std=cfg.norm_by_std
    )
    dense, present = _padded(rewards.turn_rewards)
    n, k_max = dense.shape
    rows, cols = np.nonzero(present)
    z = np.zeros((n, k_max))
    z[rows, cols] = _zero_singleton_zscore(
        dense[rows, cols],
        gidx[rows] * k_max + cols,
        num_groups * k_max,
        eps=cfg.eps,
        norm_by_std=cfg.norm_by_std,
    )
    acc = np.zeros(n)
    terms = np.zeros(n)
    accumulated = np.zeros((n, k_max))
    for k in range(k_max - 1, -1, -1):
        acc = z[:, k] + cfg.gamma * acc
        terms = terms + present[:, k]
        accumulated[:, k] = np.where(terms > 0, acc / np.sqrt(np.maximum(terms, 1.0)), 0.0)
    adv = a_out[:, None] + cfg.alpha * accumulated
    clip = np.where(present, 1.0 + cfg.clip_beta * np.tanh(z / 2.0), 1.0)  # 2σ(x)−1 = tanh(x/2)
    n_turns = rewards.num_turns
    return Advantages(
        per_turn=[adv[i, : n_turns[i]].copy() for i in range(n)],
        clip_scale=[clip[i, : n_turns[i]].copy() for i in range(n)],
    )


@register_estimator("rae")
def rae(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """SPIRAL role-conditioned advantage estimation (§4.3). Stateful through ``state``.

    Rollouts are folded in input order; for rollout ``i`` with role ``p = roles[i]`` and
    return ``R_i`` (:func:`episode_returns`)::

        b      = b_p                              # read BEFORE the update
        b_p   ← α b_p + (1 − α) R_i               # α = cfg.ema_decay
        A_i    = R_i − b
        A_{i,k} = A_i · γ^{n_i − 1 − k}            # γ = cfg.gamma = 1 ⇒ every turn gets A_i

    Group ids are ignored. The input state is not mutated; the updated copy is returned in
    :attr:`Advantages.rae_state` for the trainer to carry (and checkpoint) to the next batch.
    """
    if rewards.roles is None:
        raise ValueError("estimator 'rae' needs roles=[(game id, seat), ...] in the RewardBatch")
    state = RAEState() if state is None else state.copy()
    returns = episode_returns(rewards, cfg)
    per_turn = []
    for (game, seat), ret, n in zip(rewards.roles, returns, rewards.num_turns):
        before = state.update(game, seat, float(ret), cfg.ema_decay)
        powers = (int(n) - 1 - np.arange(int(n))).astype(np.float64)
        per_turn.append((float(ret) - before) * np.power(cfg.gamma, powers))
    return Advantages(per_turn=per_turn, rae_state=state)


@register_estimator("turn_naive")
def turn_naive(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """Ablation baseline: the naive per-turn-index baseline (MT-GRPO style; verl issue 7244).

    ``turn_group`` without its two fixes — no std division of the turn terms and no √n rescale::

        Â^O_i   = as in turn_group (outcome z-score per group)
        ĨR_{i,k} = r_{i,k} − μ_{g,k}                  # mean of C(g,k), the rollouts that reached k
        A_{i,k} = Â^O_i + α · Σ_{j ≥ k, j ∈ P_i} γ^{j−k} ĨR_{i,j}

    The number of baseline terms a rollout subtracts is set by its own stopping turn, so the
    baseline depends on the action when the policy controls the episode length, and a long
    episode's early turns sum more terms than a short one's. Kept only for the ``turn-credit``
    ablation study; ``clip_scale`` is not produced (scale 1).
    """
    gidx, num_groups = _group_index(rewards.group_ids)
    _warn_singletons(gidx, num_groups, cfg, "turn_naive")
    a_out = _outcome_advantage(rewards.outcomes, gidx, num_groups, eps=cfg.eps, norm_by_std=cfg.norm_by_std)
    dense, present = _padded(rewards.turn_rewards)
    n, k_max = dense.shape
    rows, cols = np.nonzero(present)
    centred = np.zeros((n, k_max))
    centred[rows, cols] = _zero_singleton_zscore(
        dense[rows, cols], gidx[rows] * k_max + cols, num_groups * k_max, eps=cfg.eps, norm_by_std=False
    )
    acc = np.zeros(n)
    accumulated = np.zeros((n, k_max))
    for k in range(k_max - 1, -1, -1):
        acc = centred[:, k] + cfg.gamma * acc
        accumulated[:, k] = acc
    adv = a_out[:, None] + cfg.alpha * accumulated
    n_turns = rewards.num_turns
    return Advantages(per_turn=[adv[i, : n_turns[i]].copy() for i in range(n)])


@register_estimator("rae_shared")
def rae_shared(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """Ablation baseline of ``rae``: one EMA baseline per game shared by all seats (SPIRAL without
    role conditioning). Identical to :func:`rae` with every seat mapped to the pseudo-seat ``-1``,
    so a seat advantage (e.g. the first mover's) stays in the advantages. For the ``role-baseline``
    ablation study."""
    if rewards.roles is None:
        raise ValueError("estimator 'rae_shared' needs roles=[(game id, seat), ...] in the RewardBatch")
    shared = RewardBatch(
        group_ids=rewards.group_ids, outcomes=rewards.outcomes, turn_rewards=rewards.turn_rewards,
        roles=[(game, -1) for game, _ in rewards.roles], failed=rewards.failed, gates=rewards.gates,
    )
    return rae.__wrapped__(shared, cfg, state)  # type: ignore[attr-defined]


@register_estimator("gigpo")
def gigpo(rewards: RewardBatch, cfg: AdvantageConfig, state: RAEState | None = None) -> Advantages:
    """GiGPO (§5.1): episode advantage plus ω × anchor-state step advantage.

    Step rewards are the finite dense signals with the outcome added on the last turn::

        r_{i,t}  = turn_rewards_{i,t} (absent ⇒ 0) + outcome_i · 1[t = n_i − 1]
        R_i      = Σ_t r_{i,t}                     (= outcome_i + Σ dense; n_i = 0 ⇒ outcome_i)
        A^E_i    = (R_i − mean_g R) / F            # G = 1 ⇒ R_i
        R_{i,t}  = Σ_{k ≥ t} γ^{k−t} r_{i,k}       # γ = cfg.gigpo_gamma = 0.95
        U        = {(j,s) : j ∈ g, anchor_{j,s} = anchor_{i,t}}
        A^S_{i,t} = (R_{i,t} − mean_U) / F_U       # |U| = 1 or all equal ⇒ 0; anchor None ⇒ 0
        A_{i,t}  = A^E_i + ω A^S_{i,t}             # ω = cfg.step_weight

    ``F`` is the population std + ε (``cfg.norm_by_std``, "mean_std_norm") or 1 ("mean_norm").
    Episode statistics count each rollout once (verl-agent weights them by length instead).
    """
    if rewards.anchors is None:
        raise ValueError(
            "estimator 'gigpo' needs anchors=[[anchor state per turn], ...] in the RewardBatch "
            "(rewards.assemble reads them from Turn.anchor, filled from the env's info['anchor'])"
        )
    gidx, num_groups = _group_index(rewards.group_ids)
    _warn_singletons(gidx, num_groups, cfg, "gigpo")
    dense, _ = _padded(rewards.turn_rewards)
    n, k_max = dense.shape
    n_turns = rewards.num_turns
    step_rewards = dense.copy()
    has_turns = n_turns > 0
    step_rewards[np.flatnonzero(has_turns), n_turns[has_turns] - 1] += rewards.outcomes[has_turns]
    returns = rewards.outcomes + dense.sum(axis=1)
    a_ep = _outcome_advantage(returns, gidx, num_groups, eps=cfg.eps, norm_by_std=cfg.norm_by_std)

    step_returns = np.zeros((n, k_max))
    acc = np.zeros(n)
    for k in range(k_max - 1, -1, -1):
        acc = step_rewards[:, k] + cfg.gigpo_gamma * acc
        step_returns[:, k] = acc
    rows = np.repeat(np.arange(n), n_turns)
    cols = np.concatenate([np.arange(int(m)) for m in n_turns]) if n else np.zeros(0, np.int64)
    anchors: dict[Hashable, int] = {}
    seg = np.empty(rows.size, dtype=np.int64)
    for e, (i, t) in enumerate(zip(rows, cols)):
        key = rewards.anchors[i][t]
        seg[e] = anchors.setdefault(
            ("anchor", int(gidx[i]), key) if key is not None else e, len(anchors)
        )
    a_step = np.zeros((n, k_max))
    a_step[rows, cols] = _zero_singleton_zscore(
        step_returns[rows, cols], seg, len(anchors), eps=cfg.eps, norm_by_std=cfg.norm_by_std
    )
    adv = a_ep[:, None] + cfg.step_weight * a_step
    return Advantages(per_turn=[adv[i, : n_turns[i]].copy() for i in range(n)])


# --------------------------------------------------------------------------------------------
# Dense signals and filters
# --------------------------------------------------------------------------------------------


def information_gain(
    gold_logprobs: Sequence[np.ndarray], mode: Literal["logprob", "prob"] = "logprob"
) -> list[np.ndarray]:
    """Per-turn information gain (IGPO / A²TGPO, §1.2 and §3.1).

    Args:
        gold_logprobs: per rollout, ``[n_i + 1]`` mean log-probs ``ℓ_t`` of the gold answer
            under the policy after ``t`` turns (index 0 = before any turn).
        mode: ``"logprob"`` — ``IG = ℓ_t − ℓ_prev`` (A²TGPO's released ``log_prob_diff``);
            ``"prob"`` — ``IG = exp(ℓ_t) − exp(ℓ_prev)`` (the IGPO paper's probability gain).

    Returns:
        per rollout, ``[n_i]`` with ``IG[t−1]`` the gain of turn ``t−1`` (turn id = index).
        A non-finite ``ℓ_t`` (unalignable gold span, NaN, inf) gives ``IG[t−1] = nan`` (absent)
        and keeps the previous baseline ``ℓ_prev`` (§1.2, §1.9); the first finite ``ℓ`` only
        sets the baseline. An empty gold answer should be passed as all-``nan`` (no IG).
    """
    if mode not in ("logprob", "prob"):
        raise ValueError(f"unknown information-gain mode {mode!r}; expected 'logprob' or 'prob'")
    out: list[np.ndarray] = []
    for i, lp in enumerate(gold_logprobs):
        ell = np.asarray(lp, dtype=np.float64)
        if ell.ndim != 1:
            raise ValueError(f"gold_logprobs[{i}] must be 1-D [n_turns + 1], got shape {ell.shape}")
        if ell.size == 0:
            out.append(np.zeros(0))
            continue
        finite = np.isfinite(ell)
        with np.errstate(over="ignore", invalid="ignore"):
            score = np.exp(ell) if mode == "prob" else ell.copy()
        # index of the last finite ℓ at or before t (−1: none yet)
        last = np.maximum.accumulate(np.where(finite, np.arange(ell.size), -1))
        prev = last[:-1]  # baseline available for ℓ_t, t = 1..n
        ok = finite[1:] & (prev >= 0)
        ig = np.full(ell.size - 1, np.nan)
        ig[ok] = score[1:][ok] - score[prev[ok]]
        out.append(ig)
    return out


def dynamic_sampling_mask(rewards: RewardBatch) -> np.ndarray:
    """DAPO dynamic sampling for multi-turn groups (§7.2, §8.5): which rollouts to keep.

    A group is dropped when it can give no gradient: its outcomes are all equal **and** its
    dense signals have zero variance — read strictly, every (non-failed) rollout of the group
    has the same dense value at every turn index, with "absent" (turn not reached or non-finite)
    counted as a value of its own. That is, the group's reward sequences are identical. A group
    with a single rollout is kept (G = 1 ⇒ ``Â^O = R``, §8.6); a group whose rollouts all
    failed is dropped.

    Returns:
        ``[N]`` bool, True for every rollout of a kept group (failed rollouts included: their
        loss is masked through :attr:`Advantages.valid`).
    """
    n = rewards.n
    outcomes, turn_rewards, failed_arr = rewards.outcomes, rewards.turn_rewards, rewards.failed
    gidx, num_groups = _group_index(rewards.group_ids)
    keep_group = np.zeros(num_groups, dtype=bool)
    first: dict[int, tuple[float, np.ndarray]] = {}
    members = np.zeros(num_groups, dtype=np.int64)
    for i in range(n):
        if failed_arr[i]:
            continue
        g = int(gidx[i])
        members[g] += 1
        r = np.where(np.isfinite(turn_rewards[i]), turn_rewards[i], np.nan)
        if g not in first:
            first[g] = (float(outcomes[i]), r)
            continue
        o0, r0 = first[g]
        same = (
            o0 == float(outcomes[i])
            and r0.shape == r.shape
            and np.array_equal(r0, r, equal_nan=True)
        )
        if not same:
            keep_group[g] = True
    keep_group |= members == 1
    return keep_group[gidx]


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def gate_deltas(gate_threshold: float | None | str, env_ids: Sequence[str]) -> Delta:
    """The G-RA δ of ``algo.gate_threshold``: ``"spec"`` reads each env's registered default
    (``{env_id: turngym.spec(env_id).gate_threshold}``); a number or ``None`` applies to all."""
    if gate_threshold == "spec":
        return {env_id: env_spec(env_id).gate_threshold for env_id in sorted(set(env_ids))}
    if gate_threshold is None or isinstance(gate_threshold, (int, float)):
        return gate_threshold
    raise ValueError(f"gate_threshold must be a number, None or 'spec', got {gate_threshold!r}")


def compute(
    trajectories: Sequence[Trajectory],
    algo: AlgoSection,
    state: RAEState | None = None,
    *,
    information_gains: Sequence[np.ndarray] | None = None,
) -> tuple[Advantages, np.ndarray, RAEState | None]:
    """Per-turn advantages of a rollout batch, as the trainer's ``algo:`` section configures them.

    1. :func:`~turngym.training.rewards.assemble`: each trajectory's dense turn rewards (plus
       ``algo.info_gain_weight`` × ``information_gains``, per trajectory and turn, ``nan`` = none),
       G-RA gated (``algo.gate``, δ from :func:`gate_deltas`; the components named in
       ``algo.ungated_components`` bypass the gate), into one :class:`RewardBatch` (failed
       rollouts masked, or scored 0 with ``algo.failed_rollouts: score_zero``);
    2. the estimator ``algo.estimator`` (``gamma``, ``alpha`` from ``algo``; ``state`` is the RAE
       baselines before this batch);
    3. the keep mask: DAPO dynamic sampling (``algo.dynamic_sampling``) and failed rollouts dropped.

    Returns:
        ``(advantages, keep, state)``: :class:`Advantages` (``clip_scale`` only with
        ``algo.adaptive_clip``), ``keep`` ``[N]`` bool (which trajectories reach the loss), and the
        RAE state to carry to the next batch (``state`` itself unless the estimator updated it).
    """
    rewards = assemble(
        trajectories,
        gate_deltas(algo.gate_threshold, [t.env_id for t in trajectories]),
        algo.gate,
        information_gains=information_gains,
        info_gain_weight=algo.info_gain_weight,
        ungated_components=frozenset(algo.ungated_components),
        failed_outcome=0.0 if algo.failed_rollouts == "score_zero" else None,
    )
    if algo.estimator == "gigpo":
        _require_anchors(trajectories, rewards)
    cfg = AdvantageConfig(gamma=algo.gamma, alpha=algo.alpha, warn_singleton_groups=False)
    out = get_estimator(algo.estimator)(rewards, cfg, state)
    keep = dynamic_sampling_mask(rewards) if algo.dynamic_sampling else np.ones(rewards.n, dtype=bool)
    if out.valid is not None:
        keep &= out.valid
    if not algo.adaptive_clip:
        out.clip_scale = None
    out.rewards = rewards
    return out, keep, out.rae_state if out.rae_state is not None else state


def _require_anchors(trajectories: Sequence[Trajectory], rewards: RewardBatch) -> None:
    """GiGPO without a single anchor state would silently be GRPO: refuse, naming the envs."""
    assert rewards.anchors is not None
    blind = sorted({
        t.env_id
        for t, anchors, failed in zip(trajectories, rewards.anchors, rewards.failed)
        if not failed and anchors and all(a is None for a in anchors)
    })
    if blind:
        raise ValueError(
            f"estimator 'gigpo' groups turns by anchor state, but {blind} reported none "
            "(no info['anchor'] from reset/step); use grpo, turn_group or rae for these environments"
        )


__all__ = [
    "ESTIMATORS",
    "TURN_VAR_FLOOR",
    "AdvantageConfig",
    "Advantages",
    "Estimator",
    "RAEState",
    "SingletonGroupWarning",
    "compute",
    "dr_grpo",
    "dynamic_sampling_mask",
    "episode_returns",
    "gate_deltas",
    "get_estimator",
    "gigpo",
    "grpo",
    "information_gain",
    "rae",
    "rae_shared",
    "register_estimator",
    "turn_group",
    "turn_naive",
]

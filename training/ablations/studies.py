"""The registry of ablation studies: what each trains, which mechanism each arm switches, what it claims.

A :class:`Study` trains matched arms — the same tasks, seeds and model, one config switch apart —
on a purpose-built environment of :mod:`turngym.envs.ablation`, and tests each :class:`Effect`: a
difference of a per-seed summary of one metric between two arms (or two windows of one arm),
expected to have a sign. ``turngym ablate --list`` prints :data:`STUDIES`; :mod:`.run` runs them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

Window = Literal["first", "last", "all"]
"""Steps a per-seed summary averages: the first 20 %, the last 25 %, or all (the area under the curve)."""


@dataclass(frozen=True)
class Arm:
    """One arm: a name and the dotted config overrides (``algo.gate=ungated``) that switch the mechanism."""

    name: str
    overrides: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Effect:
    """``summary(a_arm, a_window) − summary(b_arm, b_window)`` of ``metric``, paired by seed.

    ``expected``: +1 or −1, the sign the claim predicts (the verdict tests it); 0 for a quantity
    that is measured and reported without a predicted sign.
    """

    name: str
    description: str
    metric: str
    a_arm: str
    b_arm: str
    expected: int
    a_window: Window = "last"
    b_window: Window = "last"

    def __post_init__(self) -> None:
        if self.expected not in (-1, 0, 1):
            raise ValueError(f"Effect {self.name!r}: expected must be -1, 0 or +1, got {self.expected!r}")


@dataclass(frozen=True)
class Study:
    """One ablation study (module docstring). ``base`` is a :class:`TrainConfig` mapping every arm shares."""

    name: str
    title: str
    claim: str
    env_id: str
    base: dict[str, Any]
    arms: tuple[Arm, ...]
    effects: tuple[Effect, ...]
    plot_metrics: tuple[tuple[str, str], ...]
    """``(metric, axis title)`` per panel of ``curves.png``."""
    steps: int = 40
    seeds: int = 5
    notes: str = ""

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"study {self.name!r} needs two or more arms with distinct names, got {names}")
        for e in self.effects:
            unknown = {e.a_arm, e.b_arm} - set(names)
            if unknown:
                raise ValueError(f"study {self.name!r}: effect {e.name!r} names unknown arm(s) {sorted(unknown)}; arms: {names}")

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise ValueError(f"study {self.name!r} has no arm {name!r}; arms: {[a.name for a in self.arms]}")

    @property
    def primary(self) -> Effect:
        """The effect that decides the study's verdict (the first with a predicted sign)."""
        return next(e for e in self.effects if e.expected)


def _base(env_id: str, *, env_kwargs: dict[str, Any] | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    """The shared config of a study: ``tiny-char`` at the CI preset's scale, one thread, no evals."""
    config: dict[str, Any] = {
        "envs": [{"id": env_id, "kwargs": dict(env_kwargs or {})}],
        "model": {"name": "tiny-char", "tiny_layers": 2, "tiny_hidden": 64, "threads": 1},
        "rollout": {"tasks_per_step": 4, "group_size": 8, "max_new_tokens": 8, "max_episode_tokens": 256, "temperature": 1.0},
        "algo": {"estimator": "grpo"},
        "optim": {"lr": 0.003, "micro_batch_size": 32},
        "eval": {"episodes": 0},
        "tensorboard": False,
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


STUDIES: dict[str, Study] = {}


def register_study(study: Study) -> Study:
    if study.name in STUDIES:
        raise ValueError(f"ablation study {study.name!r} is already registered")
    STUDIES[study.name] = study
    return study


def get_study(name: str) -> Study:
    """The study named ``name``; ``ValueError`` with the list and a suggestion otherwise."""
    if name in STUDIES:
        return STUDIES[name]
    close = difflib.get_close_matches(name, list(STUDIES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown ablation study {name!r}; studies: {', '.join(STUDIES)}{hint} (turngym ablate --list)")


register_study(Study(
    name="gating",
    title="G-RA gated vs ungated (D-RA) accumulation of a farmable dense reward",
    claim="Ungated accumulation farms the dense reward while the outcome stalls or collapses; gated accumulation raises the outcome.",
    env_id="turngym/PingFarm-v0",
    base=_base("turngym/PingFarm-v0"),
    arms=(
        Arm("gated", ("algo.gate=gated",), "G-RA: pings count only once the outcome reaches δ = 0.8"),
        Arm("ungated", ("algo.gate=ungated",), "D-RA: every ping counts"),
    ),
    effects=(
        Effect("outcome", "final outcome (vowel share), gated − ungated", "reward/mean_outcome", "gated", "ungated", +1),
        Effect("dense_share", "final share of the return from pings, ungated − gated", "dense_share", "ungated", "gated", +1),
        Effect("ungated_outcome_change", "ungated outcome, last steps − first steps (≤ 0: stalls or collapses)",
               "reward/mean_outcome", "ungated", "ungated", -1, "last", "first"),
    ),
    plot_metrics=(("reward/mean_outcome", "outcome (mean vowel share)"), ("reward/mean_turn_reward", "ping reward per episode"),
                  ("dense_share", "dense share of the return")),
    steps=60,
))

register_study(Study(
    name="turn-credit",
    title="A²TGPO turn-group normalisation vs outcome-only GRPO vs a naive per-turn baseline; adaptive vs fixed clip",
    claim=("Turn-group normalisation learns faster than outcome-only GRPO; the naive per-turn baseline is biased when turn counts "
           "vary (verl issue 7244); √n rescaling keeps long episodes from dominating; adaptive turn clipping beats a fixed clip."),
    env_id="turngym/KeyTurn-v0",
    base=_base("turngym/KeyTurn-v0", optim={"mini_batches": 2}),
    arms=(
        Arm("grpo", ("algo.estimator=grpo",), "outcome-only: one episode advantage for every turn (return = outcome + Σ progress)"),
        Arm("turn_group", ("algo.estimator=turn_group",), "A²TGPO turn-group z-score, √n accumulation, fixed clip"),
        Arm("naive", ("algo.estimator=turn_naive",), "per-turn-index mean baseline, no std, no √n (MT-GRPO style)"),
        Arm("turn_group_aclip", ("algo.estimator=turn_group", "algo.adaptive_clip=true"), "turn_group with A²TGPO's adaptive turn clip"),
    ),
    effects=(
        Effect("faster", "outcome (key-turn digit share) over all steps, turn_group − grpo", "reward/mean_outcome", "turn_group", "grpo", +1,
               "all", "all"),
        Effect("naive_length_bias", "final episode length, naive − grpo (the true return pays 0.1 a turn; a biased baseline hides it)",
               "episode/mean_turns", "naive", "grpo", -1),
        Effect("turn_group_length", "final episode length, turn_group − grpo (turn_group also subtracts per-index means)",
               "episode/mean_turns", "turn_group", "grpo", 0),
        Effect("sqrt_n", "correlation of |advantage| with episode length, turn_group − naive", "adv/abs_len_corr", "turn_group", "naive", -1,
               "all", "all"),
        Effect("adaptive_clip", "outcome over all steps, adaptive clip − fixed clip", "reward/mean_outcome", "turn_group_aclip", "turn_group", +1,
               "all", "all"),
    ),
    plot_metrics=(("reward/mean_outcome", "outcome (digit share of turn 1)"), ("episode/mean_turns", "turns per episode"),
                  ("adv/abs_len_corr", "corr(|advantage|, turns)")),
    steps=40,
    notes="optim.mini_batches = 2 in every arm, so that the importance ratio moves and clipping acts.",
))

register_study(Study(
    name="info-gain",
    title="IGPO information-gain turn rewards vs outcome only",
    claim="Information-gain turn rewards learn a sparse search task with fewer steps than the outcome alone.",
    env_id="turngym/Lookup-v0",
    base=_base("turngym/Lookup-v0", algo={"estimator": "turn_group"}),
    arms=(
        Arm("outcome", ("algo.info_gain=false",), "turn_group on the outcome alone (no dense signal)"),
        Arm("info_gain", ("algo.info_gain=true",), "turn_group with IGPO information gain as the lookup turn's dense signal"),
    ),
    effects=(
        Effect("faster", "outcome over all steps (area under the curve), info_gain − outcome", "reward/mean_outcome", "info_gain", "outcome", +1,
               "all", "all"),
        Effect("final", "final outcome, info_gain − outcome", "reward/mean_outcome", "info_gain", "outcome", +1),
    ),
    plot_metrics=(("reward/mean_outcome", "outcome (share of the answer letter)"), ("reward/success_rate", "episodes with outcome > 0")),
    steps=60,
))

register_study(Study(
    name="role-baseline",
    title="SPIRAL role-conditioned advantage estimation (RAE) vs one shared baseline, in self-play",
    claim=("Without role-conditioned baselines the seat advantage leaks into the gradient (per-seat advantage means drift apart, "
           "advantage variance grows); with RAE the advantages are centred per role."),
    env_id="turngym/VowelDuel-v0",
    base=_base("turngym/VowelDuel-v0", rollout={"self_play": True, "tasks_per_step": 8, "group_size": 4},
               algo={"estimator": "rae", "gate": "ungated", "dynamic_sampling": False}),
    arms=(
        Arm("rae", ("algo.estimator=rae",), "one EMA baseline per (game, seat)"),
        Arm("shared", ("algo.estimator=rae_shared",), "one EMA baseline per game, shared by the seats"),
    ),
    effects=(
        Effect("seat_gap", "|mean advantage of seat 0 − seat 1| over all steps, shared − rae", "adv/seat_gap", "shared", "rae", +1, "all", "all"),
        Effect("adv_std", "advantage std over all steps, shared − rae", "adv/std", "shared", "rae", +1, "all", "all"),
    ),
    plot_metrics=(("adv/seat0/mean", "mean advantage, Player 0"), ("adv/seat1/mean", "mean advantage, Player 1"), ("adv/std", "advantage std")),
    steps=40,
    notes="dynamic sampling is off: RAE does not use groups, and dropping equal-outcome seat groups would hide the seat effect.",
))

register_study(Study(
    name="failures",
    title="Masking failed rollouts vs scoring them 0",
    claim=("Masking keeps group statistics unbiased; scoring failures 0 teaches the policy to avoid whatever triggers "
           "infrastructure errors."),
    env_id="turngym/FlakyVowels-v0",
    base=_base("turngym/FlakyVowels-v0", env_kwargs={"fail_rate": 0.5}, rollout={"max_failed_share": 1.0}),
    arms=(
        Arm("mask", ("algo.failed_rollouts=mask",), "failed rollouts masked (the default)"),
        Arm("score_zero", ("algo.failed_rollouts=score_zero",), "failed rollouts scored as outcome 0"),
    ),
    effects=(
        Effect("avoids_trigger", "final failure rate (rollouts that called the flaky 'e' service and died), score_zero − mask",
               "rollout/failure_rate", "score_zero", "mask", -1),
        Effect("outcome", "final outcome of the rollouts that did not fail, score_zero − mask", "reward/mean_outcome", "score_zero", "mask", 0),
    ),
    plot_metrics=(("rollout/failure_rate", "failed rollouts (injected errors)"), ("reward/mean_outcome", "outcome (vowel share)")),
    steps=60,
))

_OPRL = "{source: oprl, weight: 1.0, options: {beta: 0.1, lr: 0.003}}"
_SPA = "{source: spa, weight: 1.0, options: {lr: 0.003, epochs: 20}}"
register_study(Study(
    name="turn-rewards",
    title="Learned turn rewards (OPRL implicit PRM, SPA progress attribution) vs the outcome alone, gated and ungated",
    claim=("A learned per-turn reward (OPRL's online implicit PRM, SPA's progress attribution) learns a sparse-reward task "
           "faster than the outcome alone; G-RA gating keeps its benefit."),
    env_id="turngym/Lookup-v0",
    base=_base("turngym/Lookup-v0", algo={"estimator": "turn_group"}),
    arms=(
        Arm("outcome", ("algo.turn_rewards=[]",), "turn_group on the outcome alone (no dense signal)"),
        Arm("oprl_ungated", (f"algo.turn_rewards=[{_OPRL}]", "algo.gate=ungated"), "OPRL step rewards, every one credited"),
        Arm("oprl_gated", (f"algo.turn_rewards=[{_OPRL}]", "algo.gate=gated", "algo.gate_threshold=0.5"),
            "OPRL step rewards credited only when the outcome reaches δ = 0.5"),
        Arm("spa_ungated", (f"algo.turn_rewards=[{_SPA}]", "algo.gate=ungated"), "SPA contributions + grounding, ungated"),
        Arm("spa_gated", (f"algo.turn_rewards=[{_SPA}]", "algo.gate=gated", "algo.gate_threshold=0.5"),
            "SPA contributions + grounding, gated at δ = 0.5"),
    ),
    effects=(
        Effect("oprl_faster", "outcome over all steps, oprl_ungated − outcome", "reward/mean_outcome", "oprl_ungated", "outcome", +1,
               "all", "all"),
        Effect("oprl_gated_faster", "outcome over all steps, oprl_gated − outcome", "reward/mean_outcome", "oprl_gated", "outcome", +1,
               "all", "all"),
        Effect("spa_faster", "outcome over all steps, spa_ungated − outcome", "reward/mean_outcome", "spa_ungated", "outcome", +1,
               "all", "all"),
        Effect("spa_gated_faster", "outcome over all steps, spa_gated − outcome", "reward/mean_outcome", "spa_gated", "outcome", +1,
               "all", "all"),
        Effect("oprl_gate", "final outcome, oprl_gated − oprl_ungated", "reward/mean_outcome", "oprl_gated", "oprl_ungated", 0),
        Effect("spa_gate", "final outcome, spa_gated − spa_ungated", "reward/mean_outcome", "spa_gated", "spa_ungated", 0),
    ),
    plot_metrics=(("reward/mean_outcome", "outcome (share of the answer letter)"), ("reward/mean_turn_reward", "dense reward per episode")),
    steps=40,
    notes="turn_group estimator in every arm (OPRL's A = A^E + α·A^S form); Lookup's registered gate is always open, so "
          "the gated arms set δ = 0.5.",
))

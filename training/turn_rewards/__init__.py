"""Turn-reward sources beyond environment rules: one protocol, one registry (``base.py``).

Selected in config as ``algo.turn_rewards: [{source: oprl, weight: 0.5, options: {...}}, ...]``:

    info_gain  IGPO information gain of the gold answer          (info_gain.py; also algo.info_gain)
    oprl       OPRL online implicit PRM, trajectory DPO           (oprl.py)
    spa        SPA-RL progress attribution + grounding            (spa.py)
    rlvmr      RLVMR meta-reasoning rules                         (rlvmr.py; env wrapper in envs/)
    judge      LLM judge against a rubric, per turn or per group  (judge.py)

:func:`build_turn_rewards` builds a run's :class:`TurnRewards`; see ``docs/turn-rewards.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turngym.training.turn_rewards import info_gain, judge, oprl, rlvmr, spa
from turngym.training.turn_rewards.base import (
    SOURCES,
    ActiveSource,
    SourceContext,
    TurnRewards,
    TurnRewardSource,
    check_source_name,
    register_source,
)

if TYPE_CHECKING:
    from turngym.training.config import TrainConfig

register_source("info_gain", info_gain.build)
register_source("oprl", oprl.build)
register_source("spa", spa.build)
register_source("rlvmr", rlvmr.build)
register_source("judge", judge.build)


def build_turn_rewards(config: TrainConfig, policy: Any) -> TurnRewards:
    """The run's sources: ``algo.info_gain`` (as source ``info_gain``, weight ``info_gain_weight``)
    first, then ``algo.turn_rewards`` in order. ``policy`` is the rollout policy's whole weights."""
    context = SourceContext(policy=policy, seed=config.seed, device=config.model.device,
                            micro_batch_tokens=config.optim.micro_batch_tokens,
                            gradient_checkpointing=config.optim.gradient_checkpointing)
    active = []
    if config.algo.info_gain:
        active.append(ActiveSource(info_gain.build({}, context), config.algo.info_gain_weight, "info_gain"))
    for spec in config.algo.turn_rewards:
        source = SOURCES[check_source_name(spec.source)](spec.options, context)
        active.append(ActiveSource(source, spec.weight, spec.name or spec.source))
    names = [a.component for a in active]
    duplicate = sorted({n for n in names if names.count(n) > 1})
    if duplicate:
        raise ValueError(f"algo.turn_rewards names component(s) {duplicate} twice; give each a distinct `name`")
    return TurnRewards(active)


__all__ = [
    "SOURCES",
    "ActiveSource",
    "SourceContext",
    "TurnRewardSource",
    "TurnRewards",
    "build_turn_rewards",
    "check_source_name",
    "register_source",
]

"""RLVMR meta-reasoning rewards as a turn-reward source (component ``rlvmr``).

The rules are :func:`turngym.envs.meta_reasoning.meta_components` (plan / explore / reflect /
format, see that module), read off the trajectory: a turn's reply is its text, its action failed
when its record says ``valid_action`` false, and the state it reached is the next turn's anchor
(the env's state before that turn; ``None`` after the last turn and for envs without anchors).
The plan reward is credited on the plan turn (the outcome is known here). The value of a turn is
the sum of its RLVMR components; use it with replies in the RLVMR format (``FORMAT_HINT`` in the
system prompt, or the :class:`~turngym.envs.meta_reasoning.MetaReasoning` env wrapper, which
adds the same rules as ``mr_*`` env components — use one or the other, not both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from turngym.envs.meta_reasoning import MetaRewards, MetaStep, meta_components
from turngym.training.trajectory import Trajectory
from turngym.training.turn_rewards.base import SourceContext, TurnRewardSource, options_of


def trajectory_steps(t: Trajectory) -> list[MetaStep]:
    """The :class:`MetaStep` of every turn of ``t`` (module docstring)."""
    steps = []
    for k, turn in enumerate(t.turns):
        after = t.turns[k + 1].anchor if k + 1 < len(t.turns) else None
        steps.append(MetaStep(turn.text, not turn.record.valid_action, after))
    return steps


class RLVMRSource(TurnRewardSource):
    name = "rlvmr"

    def __init__(self, rewards: MetaRewards = MetaRewards()):
        self.meta = rewards

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        out = []
        for t in trajectories:
            if t.failed or not t.turns:
                out.append(np.full(len(t.turns), np.nan))
                continue
            comps = meta_components(trajectory_steps(t), t.turns[0].anchor, t.outcome, self.meta)
            out.append(np.array([sum(c.values()) for c in comps], dtype=np.float64))
        return out


def build(options: Mapping[str, Any], context: SourceContext) -> RLVMRSource:
    return RLVMRSource(options_of(MetaRewards, options, "rlvmr"))

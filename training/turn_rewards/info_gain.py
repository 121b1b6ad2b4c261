"""IGPO information gain as a turn-reward source (``algo.info_gain: true`` selects it too).

The values are :func:`turngym.training.info_gain.information_gain_rewards` of the rollout policy
(``nan`` where undefined); component ``info_gain``. Stateless and per trajectory, so it is
``local``: each data-parallel rank scores its own rollouts before they are gathered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from turngym.training.info_gain import information_gain_rewards
from turngym.training.trajectory import Trajectory
from turngym.training.turn_rewards.base import SourceContext, TurnRewardSource, options_of


@dataclass(frozen=True)
class InfoGainOptions:
    mode: Literal["logprob", "prob"] = "logprob"


class InfoGainSource(TurnRewardSource):
    name = "info_gain"
    local = True

    def __init__(self, policy: Any, options: InfoGainOptions = InfoGainOptions()):
        self.policy = policy
        self.options = options

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        return information_gain_rewards(self.policy, list(trajectories), mode=self.options.mode)


def build(options: Mapping[str, Any], context: SourceContext) -> InfoGainSource:
    return InfoGainSource(context.policy, options_of(InfoGainOptions, options, "info_gain"))

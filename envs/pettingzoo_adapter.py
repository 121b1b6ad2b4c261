"""PettingZoo AEC view of a :class:`~turngym.envs.multiagent.TurnGame`.

``TurnGameAEC(game)`` exposes agents ``seat_0 … seat_{n-1}`` with text observation and action spaces.
PettingZoo's ``api_test`` requires every observation to carry a numpy ``dtype``, so observations are
:class:`TextObservation` — a ``str`` subclass with ``dtype = object``; actions are plain strings. Rewards produced by any step are accumulated per agent and
delivered by ``last()`` when that agent is next selected (PettingZoo's contract; the game's own
``info["seat_rewards"]`` feeds it). ``infos[agent]["action_mask"]`` holds the legal move texts of the
selected agent, so ``action_space(agent).sample(info["action_mask"])`` draws a legal move — which is
what PettingZoo's ``api_test`` does. Illegal text is passed to the game unchanged and handled by its
invalid-move rule.

    from pettingzoo.test import api_test
    api_test(TurnGameAEC(gymnasium.make("turngym/KuhnPoker-v0").unwrapped))
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo import AECEnv

from turngym.envs.multiagent import TurnGame
from turngym.envs.types import TextSpace


class TextObservation(str):
    """A ``str`` that also carries ``dtype`` (numpy ``object``), as PettingZoo's checks expect."""

    dtype = np.dtype(object)


class ObjectTextSpace(TextSpace):
    """:class:`TextSpace` declaring ``dtype = object`` to match :class:`TextObservation`."""

    def __init__(self) -> None:
        super().__init__()
        self.dtype = np.dtype(object)


class TurnGameAEC(AECEnv):
    """PettingZoo ``AECEnv`` adapter over a :class:`TurnGame` (see module docstring)."""

    metadata = {"render_modes": ["ansi"], "name": "turngym_aec", "is_parallelizable": False}

    def __init__(self, game: TurnGame):
        super().__init__()
        if not isinstance(game, TurnGame):
            raise TypeError(f"TurnGameAEC needs a TurnGame (use env.unwrapped), got {type(game).__name__}")
        self.game = game
        self.render_mode = game.render_mode
        self.possible_agents = [f"seat_{s}" for s in range(game.num_seats)]
        self._observation_spaces = {a: ObjectTextSpace() for a in self.possible_agents}
        self._action_spaces = {a: TextSpace() for a in self.possible_agents}

    def observation_space(self, agent: str) -> ObjectTextSpace:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> TextSpace:
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.game.reset(seed=seed, options=options)
        for space in (*self._observation_spaces.values(), *self._action_spaces.values()):
            if seed is not None:
                space.seed(seed)
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._select(self.game.current_seat)

    def observe(self, agent: str) -> TextObservation:
        return TextObservation(self.game.observe(self._seat(agent)))

    def step(self, action: str | None) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        _, _, terminated, truncated, info = self.game.step(action)
        self.rewards = {a: float(info["seat_rewards"].get(self._seat(a), 0.0)) for a in self.agents}
        if self.game.done:
            for a in self.agents:
                self.terminations[a] = bool(terminated)
                self.truncations[a] = bool(truncated)
                self.infos[a] = {"outcome": float((self.game.outcomes or {}).get(self._seat(a), 0.0))}
            following = (self._seat(agent) + 1) % self.game.num_seats
            self.agent_selection = self.possible_agents[following]
        else:
            self._select(self.game.current_seat)
        self._accumulate_rewards()

    def render(self) -> str | None:
        return self.game.render()

    def close(self) -> None:
        self.game.close()

    def _select(self, seat: int) -> None:
        self.agent_selection = self.possible_agents[seat]
        for a in self.agents:
            self.infos[a] = {}
        self.infos[self.agent_selection] = {"action_mask": list(self.game._legal_moves())}

    @staticmethod
    def _seat(agent: str) -> int:
        return int(agent.rsplit("_", 1)[1])

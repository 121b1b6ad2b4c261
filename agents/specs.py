"""Agent specs on the command line → agents.

Accepted now: the scripted names of :mod:`turngym.agents.scripted` (``random``, ``minimax``, ``nash``…,
valid per game), and ``random`` for any single-agent environment (it plays
``env.sample_valid_action``). Model-backed specs (``hf:…``, ``openai:…``, ``smollm2-135m``) arrive
with the rollout engine.
"""

from __future__ import annotations

import numpy as np

from turngym.envs.core import TurnEnv
from turngym.envs.registration import spec as env_spec


class SampleValidAgent:
    """Plays ``env.sample_valid_action(rng)`` — a uniform-random baseline for any environment that can
    propose valid actions (every game, and single-agent tasks that implement the hook)."""

    name = "random"

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, env: TurnEnv) -> str:
        action = env.sample_valid_action(self.rng)
        if action is None:
            raise ValueError(
                f"{type(env).__name__} cannot propose valid actions (sample_valid_action returned None); "
                "the 'random' agent needs that hook"
            )
        return action


def resolve_agent(agent_spec: str, env_id: str, seed: int | None = None):
    """Build the agent named by ``agent_spec`` for ``env_id``; errors list the valid names."""
    turn_spec = env_spec(env_id)
    if turn_spec.num_seats == 1:
        if agent_spec == "random":
            return SampleValidAgent(seed)
        raise ValueError(
            f"unknown agent {agent_spec!r} for single-agent env {env_id!r}; available: random"
        )
    from turngym.agents.scripted import make_agent

    return make_agent(agent_spec, env_id, seed=seed)

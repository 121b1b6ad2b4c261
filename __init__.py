"""turngym: multi-turn, agentic reinforcement learning for LLMs.

``import turngym`` registers the built-in environments in Gymnasium's registry::

    import gymnasium, turngym
    env = gymnasium.make("turngym/TicTacToe-v0")      # raw two-seat game ("hot seat")
    env = turngym.make("turngym/TicTacToe-v0", opponent=turngym.agents.make_agent("random"))
"""

from turngym.envs import (
    StopReason,
    TurnEnv,
    TurnGame,
    TurnRecord,
    TurnSpec,
    VsOpponent,
    make,
    register,
    registry,
    spec,
)

__version__ = "0.1.0"

__all__ = [
    "StopReason",
    "TurnEnv",
    "TurnGame",
    "TurnRecord",
    "TurnSpec",
    "VsOpponent",
    "__version__",
    "make",
    "register",
    "registry",
    "spec",
]

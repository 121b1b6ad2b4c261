"""Environments: the ``TurnEnv`` contract, two-player games, registry, wrappers and checker."""

from turngym.envs.builtin import register_builtin_envs
from turngym.envs.core import EpisodeOver, ForkNotSupported, TurnEnv
from turngym.envs.multiagent import TurnGame, VsOpponent
from turngym.envs.registration import (
    TurnSpec,
    UnknownEnvironment,
    load_plugins,
    make,
    register,
    registry,
    spec,
)
from turngym.envs.types import StopReason, TextSpace, TurnRecord

register_builtin_envs()

__all__ = [
    "EpisodeOver",
    "ForkNotSupported",
    "StopReason",
    "TextSpace",
    "TurnEnv",
    "TurnGame",
    "TurnRecord",
    "TurnSpec",
    "UnknownEnvironment",
    "VsOpponent",
    "load_plugins",
    "make",
    "register",
    "registry",
    "spec",
]

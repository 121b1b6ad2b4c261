"""Typed records shared by every turngym environment.

These are the only shapes that cross the env → rollout → learner boundary:

* :class:`StopReason` — why an episode ended.
* :class:`TurnRecord` — what one ``step`` did, for whom, and which rewards it produced.
* :class:`TextSpace` — the Gymnasium space of text observations and actions.

Reward contract of a :class:`TurnRecord` (checked by ``turngym check``)::

    record.reward == sum(record.components.values()) + (record.outcome or 0.0)

``components`` are the dense, turn-level reward terms (``format``, ``invalid_move``, ``test_progress``…);
``outcome`` is the episode-level reward and is set exactly on the step that ends the episode for that
seat, including when a turn limit truncates it.
"""

from __future__ import annotations

import enum
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces


class StopReason(str, enum.Enum):
    """Why an episode ended. Stored as its string value in JSONL."""

    SOLVED = "solved"  # single-agent task completed successfully
    FAILED = "failed"  # single-agent task ended without success (wrong answer, failed tests…)
    GAME_OVER = "game_over"  # a game reached a terminal state under its rules
    TURN_LIMIT = "turn_limit"  # the turn budget ran out; the outcome is still computed
    TOKEN_LIMIT = "token_limit"  # the token budget ran out; the outcome is still computed
    TIME_LIMIT = "time_limit"  # the wall-time budget ran out (e.g. sandbox time); the outcome is still computed
    INVALID_ACTION = "invalid_action"  # too many malformed / illegal actions
    ENV_ERROR = "env_error"  # the environment itself failed (masked by the learner)
    SANDBOX_ERROR = "sandbox_error"  # the code sandbox failed (masked by the learner)

    def __str__(self) -> str:
        return self.value


@dataclass
class TurnRecord:
    """What one ``step`` produced, delivered as ``info["turn"]``.

    Attributes:
        turn: 0-based index of this step in the episode (counts every seat's moves).
        seat: the seat that acted (always 0 for single-agent environments).
        reward: the scalar returned by ``step``; equals ``sum(components) + (outcome or 0)``.
        components: named dense reward terms of this turn, e.g. ``{"invalid_move": -1.5}``.
        outcome: the acting seat's episode-level reward, set only on the step that ends the episode.
        terminated: the episode reached a terminal state of the task/game.
        truncated: the episode was cut off from outside (turn, token or invalid-action limit).
        stop_reason: set on the final step, ``None`` before.
        valid_action: whether the action parsed and was legal; invalid actions get a corrective observation.
    """

    turn: int
    seat: int
    reward: float
    components: dict[str, float] = field(default_factory=dict)
    outcome: float | None = None
    terminated: bool = False
    truncated: bool = False
    stop_reason: StopReason | None = None
    valid_action: bool = True

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    @property
    def turn_reward(self) -> float:
        """The dense part of :attr:`reward` (everything but the outcome)."""
        return float(sum(self.components.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "seat": self.seat,
            "reward": self.reward,
            "components": dict(self.components),
            "outcome": self.outcome,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "stop_reason": None if self.stop_reason is None else self.stop_reason.value,
            "valid_action": self.valid_action,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TurnRecord:
        reason = data.get("stop_reason")
        return cls(
            turn=int(data["turn"]),
            seat=int(data["seat"]),
            reward=float(data["reward"]),
            components={str(k): float(v) for k, v in data.get("components", {}).items()},
            outcome=None if data.get("outcome") is None else float(data["outcome"]),
            terminated=bool(data.get("terminated", False)),
            truncated=bool(data.get("truncated", False)),
            stop_reason=None if reason is None else StopReason(reason),
            valid_action=bool(data.get("valid_action", True)),
        )

    def reward_consistent(self, tol: float = 1e-9) -> bool:
        """Whether ``reward == sum(components) + (outcome or 0)`` holds."""
        expected = self.turn_reward + (self.outcome or 0.0)
        return math.isclose(self.reward, expected, rel_tol=0.0, abs_tol=tol)


_SAMPLE_ALPHABET = string.printable + "éßøæ中文한국어ÆΩ→✓\u200b"


class TextSpace(spaces.Space[str]):
    """Gymnasium space of Python strings of at most ``max_length`` characters (any Unicode).

    Unlike :class:`gymnasium.spaces.Text` it has no charset restriction: model replies and rendered
    boards contain arbitrary characters. ``sample(mask)`` accepts a sequence of candidate strings
    (e.g. ``info["legal_actions"]``) and picks one of them; without a mask it returns random text,
    which environments must treat as a malformed action.
    """

    def __init__(self, max_length: int = 1_000_000, seed: int | np.random.Generator | None = None):
        if max_length <= 0:
            raise ValueError(f"TextSpace max_length must be positive, got {max_length!r}")
        self.max_length = int(max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Sequence[str] | None = None, probability: Any = None) -> str:
        if mask is not None and len(mask) > 0:
            return str(mask[int(self.np_random.integers(len(mask)))])
        length = int(self.np_random.integers(0, 24))
        picks = self.np_random.integers(len(_SAMPLE_ALPHABET), size=length)
        return "".join(_SAMPLE_ALPHABET[int(i)] for i in picks)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length

    def __hash__(self) -> int:
        return hash(("TextSpace", self.max_length))

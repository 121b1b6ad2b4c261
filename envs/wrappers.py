"""Standard wrappers that :func:`turngym.make` applies. One concern each.

* :class:`TurnLimit` — ends the episode after ``max_turns`` steps *and still computes the outcome*:
  the truncating step's record carries ``outcome`` (from ``env.unwrapped.stop``), ``truncated=True``
  and ``stop_reason="turn_limit"``; its ``reward`` includes the outcome.
* :class:`InvalidActionLimit` — tolerates ``allowance`` invalid actions per episode (each one already
  got a corrective observation from the env); the next one ends the episode with
  ``stop_reason="invalid_action"``, again with the outcome computed.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import gymnasium

from turngym.envs.types import StopReason, TurnRecord


def _truncate(
    env: gymnasium.Env, step: tuple[str, float, bool, bool, dict[str, Any]], reason: StopReason
) -> tuple[str, float, bool, bool, dict[str, Any]]:
    """Rewrite a non-final step into a final, truncated one whose outcome ``env.unwrapped.stop`` computed."""
    obs, _, _, _, info = step
    record: TurnRecord = info["turn"]
    outcomes = env.unwrapped.stop(reason)
    if record.seat not in outcomes:
        raise KeyError(
            f"{type(env.unwrapped).__name__}.stop({reason.value!r}) returned no outcome for seat "
            f"{record.seat} (got {outcomes!r}); stop() must return every seat's outcome"
        )
    outcome = float(outcomes[record.seat])
    new_record = dataclasses.replace(
        record,
        components=dict(record.components),
        outcome=outcome,
        reward=record.turn_reward + outcome,
        truncated=True,
        stop_reason=reason,
    )
    info = dict(info, turn=new_record, outcomes=dict(outcomes), seat=-1, legal_actions=[])
    if "seat_rewards" in info:
        seat_rewards = {s: r + float(outcomes.get(s, 0.0)) for s, r in info["seat_rewards"].items()}
        info["seat_rewards"] = seat_rewards
    obs = f"{obs}\n\nThe episode ended: {reason.value.replace('_', ' ')}."
    return obs, new_record.reward, False, True, info


class TurnLimit(gymnasium.Wrapper):
    """End the episode after ``max_turns`` steps, with the outcome computed (see module docstring)."""

    def __init__(self, env: gymnasium.Env, max_turns: int):
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns!r}")
        super().__init__(env)
        self.max_turns = int(max_turns)
        self._turns = 0

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        self._turns = 0
        return self.env.reset(**kwargs)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        self._turns += 1
        _, _, terminated, truncated, _ = result
        if self._turns >= self.max_turns and not (terminated or truncated):
            return _truncate(self.env, result, StopReason.TURN_LIMIT)
        return result


class InvalidActionLimit(gymnasium.Wrapper):
    """End the episode at the ``allowance + 1``-th invalid action (``info["turn"].valid_action`` false)."""

    def __init__(self, env: gymnasium.Env, allowance: int):
        if allowance < 0:
            raise ValueError(f"allowance must be >= 0, got {allowance!r}")
        super().__init__(env)
        self.allowance = int(allowance)
        self._invalid = 0

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        self._invalid = 0
        return self.env.reset(**kwargs)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        _, _, terminated, truncated, info = result
        if not info["turn"].valid_action:
            self._invalid += 1
            if self._invalid > self.allowance and not (terminated or truncated):
                return _truncate(self.env, result, StopReason.INVALID_ACTION)
        return result


def fork_env(env: gymnasium.Env) -> gymnasium.Env:
    """An independent copy of a (wrapped) environment that continues exactly like ``env``.

    The innermost env's :meth:`~turngym.envs.core.TurnEnv.fork` copies the state; every wrapper
    around it is copied shallowly (its counters are plain values) and re-pointed at the copy below it.
    Raises :class:`~turngym.envs.core.ForkNotSupported` when the env cannot fork.
    """
    if isinstance(env, gymnasium.Wrapper):
        clone = copy.copy(env)
        clone.env = fork_env(env.env)
        return clone
    return env.fork()

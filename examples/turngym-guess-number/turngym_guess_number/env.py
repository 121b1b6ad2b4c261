"""GuessNumber: the smallest complete turngym environment. Copy it to start your own.

The env draws a hidden whole number from 1 to 100; the agent guesses, the env answers "higher" or
"lower". Every promise of the ``TurnEnv`` contract (``turngym/envs/core.py``) is kept, and marked
below with ``# contract:``.

Rewards of one step (``info["turn"]`` is the :class:`~turngym.envs.types.TurnRecord`):

* ``closer``: +0.1 if the guess is closer to the number than the previous valid guess, −0.1 if not,
  0 on the first guess;
* ``format``: −0.1 for a reply that is not one number from 1 to 100 (plus a corrective observation);
* outcome 1.0 on the guess that finds the number (``stop_reason="solved"``); 0.0 when the episode is
  stopped from outside (turn limit, too many invalid replies).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.types import StopReason, TurnRecord

LOW, HIGH = 1, 100
_BRACKETED = re.compile(r"\[\s*([0-9]+)\s*\]")  # "[42]" anywhere in the reply
_BARE = re.compile(r"\s*([0-9]+)[\s.!]*")  # or the whole reply is "42"


class GuessNumberEnv(TurnEnv):
    system_prompt = (
        f"I am thinking of a whole number from {LOW} to {HIGH}. Find it in as few guesses as you "
        "can. After each guess I say whether the number is higher or lower. Reply with your guess "
        "in brackets, e.g. [50]."
    )
    action_format = f"Reply with one whole number from {LOW} to {HIGH} in brackets, e.g. [50]."

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)  # contract: per-instance TextSpace spaces
        self._secret: int | None = None  # None until the first reset()
        self._done = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        # contract: seeds self.np_random, which must be the env's ONLY source of randomness.
        super().reset(seed=seed)
        self._secret = int(self.np_random.integers(LOW, HIGH + 1))
        self._low, self._high = LOW, HIGH  # what the hints allow so far (for sample_valid_action)
        self._last_distance: int | None = None
        self._turn = 0
        self._done = False
        obs = f"I am thinking of a whole number from {LOW} to {HIGH}. {self.action_format}"
        return obs, {"system_prompt": self.system_prompt, "seat": 0}  # contract: reset info keys

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._secret is None:
            raise ResetNeeded("call reset() before step()")
        if self._done:
            raise EpisodeOver("the number was found or the episode was stopped; call reset()")
        record = TurnRecord(turn=self._turn, seat=0, reward=0.0)
        self._turn += 1
        guess, problem = self._parse(action)
        if problem is not None:
            # contract: bad input is data — say what was wrong AND the expected format, never raise.
            record.valid_action = False
            record.components["format"] = -0.1
            obs = f"Invalid reply: {problem}. {self.action_format}"
        else:
            distance = abs(guess - self._secret)
            last = self._last_distance
            closer = 0.0 if last is None else (0.1 if distance < last else -0.1)
            record.components["closer"] = closer
            self._last_distance = distance
            if guess == self._secret:
                self._done = True
                record.outcome, record.terminated, record.stop_reason = 1.0, True, StopReason.SOLVED
                obs = f"[{guess}] is correct! You found the number in {self._turn} turn(s)."
            elif guess < self._secret:
                self._low = max(self._low, guess + 1)
                obs = f"[{guess}] is too low: the number is higher. {self.action_format}"
            else:
                self._high = min(self._high, guess - 1)
                obs = f"[{guess}] is too high: the number is lower. {self.action_format}"
        # contract: reward == sum(components) + (outcome or 0), always computed the same way.
        record.reward = record.turn_reward + (record.outcome or 0.0)
        return obs, record.reward, record.terminated, False, {"turn": record, "seat": 0}

    def stop(self, reason: StopReason) -> dict[int, float]:
        # contract: wrappers call this at the turn limit / invalid-action limit; the outcome is
        # computed from the current state (not found ⇒ 0.0) and the episode is over afterwards.
        if self._done:
            raise EpisodeOver("the episode is already over")
        self._done = True
        return {0: 0.0}

    def fork(self) -> GuessNumberEnv:
        return copy.deepcopy(self)  # contract: the copy (RNG included) continues identically

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        # A well-formed guess consistent with the hints so far, drawn from the CALLER's rng.
        if self._done:
            return None
        return f"[{int(rng.integers(self._low, self._high + 1))}]"

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._secret is None:
            return None
        return f"turn {self._turn}: the number is in [{self._low}, {self._high}]"  # no spoilers

    @staticmethod
    def _parse(action: Any) -> tuple[int | None, str | None]:
        text, problem = action_text(action)  # bytes → str; non-UTF-8 / non-str / huge → problem
        if problem is not None:
            return None, problem
        if not text.strip():
            return None, "your reply was empty"
        found = _BRACKETED.findall(text)
        if not found and (bare := _BARE.fullmatch(text)):
            found = [bare.group(1)]
        if len(set(found)) != 1:
            return None, "give exactly one number" if found else "no number in brackets was found"
        digits = found[0].lstrip("0") or "0"
        # Length first: int() of a 100,000-digit string raises ValueError.
        if len(digits) > 3 or not LOW <= int(digits) <= HIGH:
            return None, f"{found[0][:12]} is not a number from {LOW} to {HIGH}"
        return int(digits), None

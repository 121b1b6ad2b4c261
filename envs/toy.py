"""``turngym/Vowels-v0``: a three-turn toy task for smoke tests and the CI learning test.

Each turn the agent is asked to type vowels. The turn component ``vowels`` is the fraction of the
reply's characters that are one of ``aeiouAEIOU`` (0 for an empty reply); the outcome is the mean of
the three fractions. A randomly initialised model's replies score about 0.2-0.3 with a wide spread,
so GRPO has signal from the first step, and raising the score means shifting probability mass onto a
specific subset of the vocabulary — the smallest honest "does the learner learn" check on a CPU.
Deterministic: the observation depends only on the turn index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.types import StopReason, TurnRecord

_VOWELS = "aeiouAEIOU"


class VowelsEnv(TurnEnv):
    system_prompt = "Type vowels only."
    action_format = "Reply with vowels only, e.g. aeiou."

    def __init__(self, turns: int = 3, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        if turns < 1:
            raise ValueError(f"turns must be >= 1, got {turns!r}")
        self.turns = int(turns)
        self._t = 0
        self._scores: list[float] = []
        self._over = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._t, self._scores, self._over = 0, [], False
        return self._prompt(), {"system_prompt": self.system_prompt, "seat": 0}

    def _prompt(self) -> str:
        return f"Turn {self._t + 1} of {self.turns}. Type vowels."

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._over:
            raise EpisodeOver("the episode is over; call reset()")
        text, problem = action_text(action)
        score = 0.0 if problem is not None or not text else sum(c in _VOWELS for c in text) / len(text)
        record = TurnRecord(turn=self._t, seat=0, reward=0.0, components={"vowels": score}, valid_action=problem is None)
        self._scores.append(score)
        self._t += 1
        obs = f"{problem}. {self.action_format}\n" if problem else ""
        if self._t >= self.turns:
            self._over = True
            record.outcome = float(np.mean(self._scores))
            record.terminated = True
            record.stop_reason = StopReason.SOLVED if record.outcome == 1.0 else StopReason.FAILED
            obs += f"Done. Mean vowel share {record.outcome:.2f}."
        else:
            obs += self._prompt()
        record.reward = record.turn_reward + (record.outcome or 0.0)
        return obs, record.reward, record.terminated, False, {"turn": record, "seat": 0}

    def stop(self, reason: StopReason) -> dict[int, float]:
        if self._over:
            raise EpisodeOver("the episode is already over")
        self._over = True
        return {0: float(np.mean(self._scores)) if self._scores else 0.0}

    def fork(self) -> VowelsEnv:
        import copy

        return copy.deepcopy(self)

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        if self._over:
            return None
        return "".join(_VOWELS[int(i)] for i in rng.integers(0, len(_VOWELS), size=int(rng.integers(1, 6))))


class ArithmeticEnv(TurnEnv):
    """``turngym/Arithmetic-v0``: one turn, "What is a+b?"; outcome 1 for the right number, else 0.

    The single-turn setting every GRPO trainer supports, used to compare our step time with TRL's
    ``GRPOTrainer`` on identical prompts (``bench/grpo.py``). The answer counts if the reply contains
    the sum as a standalone integer. ``a, b`` are drawn from the seed in ``[2, 60]``.
    """

    system_prompt = ""
    action_format = "Answer with just the number."

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self._over = True
        self._a = self._b = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._a, self._b = (int(x) for x in self.np_random.integers(2, 61, size=2))
        self._over = False
        return f"What is {self._a}+{self._b}? {self.action_format}", {"system_prompt": self.system_prompt, "seat": 0, "answer": str(self._a + self._b)}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        import re

        if self._over:
            raise EpisodeOver("the episode is over; call reset()")
        text, problem = action_text(action)
        correct = problem is None and re.search(rf"(?<!\d){self._a + self._b}(?!\d)", text[:10_000]) is not None
        outcome = 1.0 if correct else 0.0
        self._over = True
        record = TurnRecord(turn=0, seat=0, reward=outcome, outcome=outcome, terminated=True,
                            stop_reason=StopReason.SOLVED if correct else StopReason.FAILED, valid_action=problem is None)
        obs = "Correct." if correct else f"The answer was {self._a + self._b}."
        if problem:
            obs = f"{problem}. {self.action_format}\n{obs}"
        return obs, outcome, True, False, {"turn": record, "seat": 0}

    def stop(self, reason: StopReason) -> dict[int, float]:
        if self._over:
            raise EpisodeOver("the episode is already over")
        self._over = True
        return {0: 0.0}

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        return None if self._over else str(int(rng.integers(4, 121)))

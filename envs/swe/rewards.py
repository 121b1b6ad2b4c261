"""Reward rules of the code/SWE family, as pure functions.

Outcome ladder (the G-RA high-level reward ``r_high``, algorithms.md §2.2), strictly ordered::

    no submit (-1.0) < empty patch (-0.5) < hidden tests fail (0.0) < hidden tests pass (1.0)

Success (``outcome > 0``) is exactly "hidden tests pass". Every register() call of this family
sets ``gate_threshold`` on this ladder: the default δ = 0.0 opens the gate at "submitted a
non-empty patch" (the paper's motivation: turn rewards must never pay for not submitting).

Turn components (the low-level rewards ``r_low``):

* ``valid_call`` — ``+0.01`` for a well-formed call that the tool executed without error.
* ``error`` — ``-0.05`` for a malformed call or a tool error (text not found, bad path…).
* ``test_progress`` — ``0.5 × (new − previous)`` visible-test pass fraction, on ``run_tests`` turns
  (the previous fraction starts at the buggy repo's build-time baseline).

* ``format`` — optional (``RepairEnv(format_reward=…)``, ≤ 0.1, first ``format_reward_turns`` replies):
  the reply parsed into a tool call. Meant to be ungated (``algo.ungated_components``); its episode
  total stays below the ladder's smallest step, so it can never pay for not submitting.

Per step, ``|reward| <= 1 + 0.5 + 0.05 + 0.1``, inside the registered bounds ``(-2, 2)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(str, enum.Enum):
    NO_SUBMIT = "no_submit"
    EMPTY_PATCH = "empty_patch"
    TESTS_FAIL = "tests_fail"
    TESTS_PASS = "tests_pass"


@dataclass(frozen=True)
class OutcomeLadder:
    """Numeric levels of the outcome ladder; must be strictly increasing."""

    no_submit: float = -1.0
    empty_patch: float = -0.5
    tests_fail: float = 0.0
    tests_pass: float = 1.0

    def __post_init__(self) -> None:
        levels = [self.no_submit, self.empty_patch, self.tests_fail, self.tests_pass]
        if any(a >= b for a, b in zip(levels, levels[1:])):
            raise ValueError(f"OutcomeLadder levels must increase strictly, got {levels!r}")

    def value(self, outcome: Outcome) -> float:
        return float(getattr(self, outcome.value))


LADDER = OutcomeLadder()
DEFAULT_GATE = LADDER.tests_fail
VALID_CALL = 0.01
FORMAT = "format"
ERROR = -0.05
PROGRESS_SCALE = 0.5
REWARD_BOUNDS = (-2.0, 2.0)


def classify(submitted: bool, patch: str, tests_passed: bool) -> Outcome:
    """The ladder rung of an episode: submitted?, the (test-filtered) patch, did grading pass?"""
    if not submitted:
        return Outcome.NO_SUBMIT
    if not patch.strip():
        return Outcome.EMPTY_PATCH
    return Outcome.TESTS_PASS if tests_passed else Outcome.TESTS_FAIL


def test_progress(previous: float, current: float) -> float:
    """The ``test_progress`` component: scaled change of the visible pass fraction."""
    return PROGRESS_SCALE * (current - previous)


def gated_return(r_high: float, turn_rewards: list[float], delta: float = DEFAULT_GATE) -> float:
    """G-RA: ``r_high + 1[r_high >= delta] * sum(turn_rewards)`` (the learner's rewards.assemble does
    this for training; kept here so the env's documentation and tests state the rule)."""
    return r_high + (sum(turn_rewards) if r_high >= delta else 0.0)

"""The conformance checker passes real environments and catches each kind of violation."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from turngym.envs.checker import check
from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.registration import register
from turngym.envs.types import StopReason, TurnRecord


def test_every_registered_game_conforms(game_id):
    report = check(game_id)
    assert report.ok, "\n".join(f"{r.name}: {r.detail}" for r in report.results if not r.ok)


class CountTo(TurnEnv):
    """A well-behaved toy: say the next number; +0.1 per correct count, outcome 1 at ``goal``."""

    action_format = "Reply with the next integer, e.g. 3."

    def __init__(self, goal: int = 5, **flaws):
        super().__init__()
        self.goal = goal
        self.flaws = flaws

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = int(self.np_random.integers(0, 3))
        self.t = 0
        self.done = False
        if self.flaws.get("nondeterministic_reset"):
            self.n = int(np.random.default_rng().integers(0, 1000))
        self.shared = self.flaws.get("shared_state_holder", {"n": self.n})
        return f"Count from {self.n}.", {"system_prompt": "count", "seat": 0}

    def step(self, action):
        if self.done:
            raise EpisodeOver("over")
        text, problem = action_text(action)
        if self.flaws.get("crash_on_bytes") and isinstance(action, bytes):
            action.decode("utf-8")
        record = TurnRecord(turn=self.t, seat=0, reward=0.0)
        self.t += 1
        if problem is None and len(text) < 12 and text.strip().isdigit() and int(text) == self.n + 1:
            self.n += 1
            record.components["count"] = 0.1
        else:
            record.valid_action = False
            record.components["format"] = -0.1
            fmt = "" if self.flaws.get("silent_rejections") else self.action_format
            return self._finish_step(record, f"No. {fmt}")
        if self.n >= self.goal:
            record.outcome = 1.0 if not self.flaws.get("outcome_too_big") else 5.0
            record.terminated = True
            record.stop_reason = StopReason.SOLVED
            self.done = True
        return self._finish_step(record, f"{self.n}")

    def _finish_step(self, record, obs):
        record.reward = record.turn_reward + (record.outcome or 0.0)
        if self.flaws.get("wrong_reward"):
            record.reward += 0.05
        return obs, record.reward, record.terminated, False, {"turn": record, "seat": 0}

    def stop(self, reason):
        self.done = True
        return {0: 0.0} if not self.flaws.get("no_outcome_on_stop") else {}

    def fork(self):
        twin = copy.copy(self)  # shallow: np_random shared unless deep-copied
        if not self.flaws.get("shallow_fork"):
            twin = copy.deepcopy(self)
        return twin

    def sample_valid_action(self, rng):
        return str(self.n + 1)


def _register(name, **flaws):
    env_id = f"test/{name}-v0"
    register(env_id, lambda **kw: CountTo(goal=40, **flaws, **kw), family="toy", max_turns=10, reward_bounds=(-0.1, 1.1))
    return env_id


def test_a_conforming_toy_passes_every_check():
    report = check(_register("CountGood"))
    assert report.ok, [r for r in report.results if not r.ok]
    statuses = {r.name: r.status for r in report.results}
    assert statuses["outcome_on_truncation"] == "passed"
    assert statuses["fork"] == "passed"


@pytest.mark.parametrize(
    "flaw, failing_check, message",
    [
        ("nondeterministic_reset", "reset_determinism", "reset observation differs"),
        ("wrong_reward", "turn_records", "!= sum(components) + outcome"),
        ("silent_rejections", "bad_actions", "does not state the expected format"),
        ("crash_on_bytes", "bad_actions", "raised UnicodeDecodeError"),
        ("no_outcome_on_stop", "outcome_on_truncation", "returned no outcome for seat 0"),
    ],
)
def test_checker_catches_each_violation(flaw, failing_check, message):
    report = check(_register(f"Count{flaw.title().replace('_', '')}", **{flaw: True}))
    assert not report.ok
    result = next(r for r in report.results if r.name == failing_check)
    assert result.status == "failed" and message in result.detail, result.detail


def test_checker_catches_rewards_outside_the_declared_bounds():
    env_id = "test/CountShortGoal-v0"
    register(env_id, lambda **kw: CountTo(goal=3, outcome_too_big=True, **kw), family="toy", max_turns=10, reward_bounds=(-0.1, 1.1))
    report = check(env_id)
    result = next(r for r in report.results if r.name == "turn_records")
    assert result.status == "failed" and "outside reward_bounds" in result.detail


def test_cli_exit_code_is_1_on_a_violation(capsys):
    from turngym.cli import main

    env_id = _register("CountCliBad", wrong_reward=True)
    assert main(["check", env_id]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "turn_records" in out

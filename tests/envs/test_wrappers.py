from __future__ import annotations

import pytest

import turngym
from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.registration import register
from turngym.envs.types import StopReason, TurnRecord
from turngym.envs.wrappers import InvalidActionLimit, TurnLimit


class Echo(TurnEnv):
    """Valid iff the reply is 'ok'; outcome on stop = fraction of valid replies so far."""

    action_format = "Reply with ok."

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.valid = self.total = 0
        self.over = False
        return "say ok", {"seat": 0}

    def step(self, action):
        if self.over:
            raise EpisodeOver("over")
        text, _ = action_text(action)
        ok = text == "ok"
        self.valid += ok
        self.total += 1
        record = TurnRecord(turn=self.total - 1, seat=0, reward=0.0, valid_action=ok, components={"format": 0.0 if ok else -0.1})
        record.reward = record.turn_reward
        return ("fine" if ok else f"bad. {self.action_format}"), record.reward, False, False, {"turn": record, "seat": 0}

    def stop(self, reason):
        self.over = True
        return {0: self.valid / self.total}


register("test/Echo-v0", Echo, family="toy", max_turns=4, invalid_action_allowance=1)


def test_turn_limit_truncates_with_the_outcome_computed_from_state():
    env = turngym.make("test/Echo-v0", invalid_action_allowance=None)
    env.reset(seed=0)
    for action in ("ok", "no", "ok"):
        *_, truncated, _ = env.step(action)
        assert not truncated
    obs, reward, terminated, truncated, info = env.step("ok")
    record = info["turn"]
    assert truncated and not terminated
    assert record.outcome == pytest.approx(0.75) and record.stop_reason is StopReason.TURN_LIMIT
    assert reward == pytest.approx(0.75) and record.reward_consistent()
    with pytest.raises(EpisodeOver):
        env.step("ok")


def test_invalid_action_limit_ends_the_episode_after_the_allowance():
    env = turngym.make("test/Echo-v0")
    assert isinstance(env, TurnLimit) and isinstance(env.env, InvalidActionLimit)
    env.reset(seed=0)
    _, reward, _, truncated, info = env.step("no")
    assert not truncated and reward == pytest.approx(-0.1)
    _, reward, _, truncated, info = env.step("nope")
    record = info["turn"]
    assert truncated and record.stop_reason is StopReason.INVALID_ACTION
    assert record.outcome == 0.0 and reward == pytest.approx(-0.1)


def test_wrappers_reset_their_counters():
    env = turngym.make("test/Echo-v0")
    env.reset(seed=0)
    env.step("no")
    env.reset(seed=0)
    *_, truncated, _ = env.step("no")
    assert not truncated


def test_wrapper_arguments_are_validated():
    with pytest.raises(ValueError, match="max_turns must be >= 1, got 0"):
        TurnLimit(Echo(), 0)
    with pytest.raises(ValueError, match="allowance must be >= 0, got -1"):
        InvalidActionLimit(Echo(), -1)

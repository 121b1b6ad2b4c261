"""A broken environment during training: failures below ``rollout.max_failed_share`` are masked and
counted; above it the run stops with an error naming the env, and the checkpoint before it survives."""

from __future__ import annotations

import json

import pytest

from turngym.envs.core import TurnEnv, action_text
from turngym.envs.registration import register
from turngym.envs.types import StopReason, TurnRecord
from turngym.training.config import load_preset
from turngym.training.rollout import RolloutFailures, check_failures
from turngym.training.trainer import train
from turngym.training.trajectory import Trajectory


class ServiceDownAfter(TurnEnv):
    """Plays 2-turn episodes; after ``healthy_resets`` resets, its backing service is down for every
    ``down_every``-th episode (1: every episode)."""

    action_format = "Reply with anything."
    resets = 0

    def __init__(self, healthy_resets: int = 0, down_every: int = 1):
        super().__init__()
        self.healthy_resets, self.down_every = healthy_resets, down_every

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        type(self).resets += 1
        self.seed_, self.t = seed, 0
        self.down = type(self).resets > self.healthy_resets and type(self).resets % self.down_every == 0
        return "say a vowel", {"seat": 0}

    def step(self, action):
        text = action_text(action)[0] or ""
        if self.down:
            raise ConnectionError("search service at 127.0.0.1:9 refused the connection")
        self.t += 1
        record = TurnRecord(turn=self.t - 1, seat=0, reward=0.0)
        if self.t == 2:
            record.outcome = record.reward = float(any(c in "aeiou" for c in text))
            record.terminated, record.stop_reason = True, StopReason.SOLVED
        return "again", record.reward, record.terminated, False, {"turn": record, "seat": 0}

    def stop(self, reason):
        return {0: 0.0}


register("test/ServiceDown-v0", ServiceDownAfter, family="toy", reward_bounds=(0.0, 1.0))


def _config(tmp_path, **kwargs):
    env = json.dumps([{"id": "test/ServiceDown-v0", "kwargs": kwargs}])
    return load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=4", "checkpoint_every=1", f"envs={env}",
                                   "rollout.tasks_per_step=4", "rollout.group_size=2"])


def test_a_step_where_most_rollouts_fail_stops_the_run_naming_the_env_and_keeps_the_checkpoint(tmp_path):
    ServiceDownAfter.resets = 0
    # steps 1-2 healthy (8 resets each); from step 3 on every episode fails
    with pytest.raises(RolloutFailures, match=r"8 of 8 rollouts failed .*test/ServiceDown-v0 seed \d+: .*ConnectionError: search service"):
        train(_config(tmp_path, healthy_resets=16), show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    state = (tmp_path / "checkpoint" / "state.pt")
    assert state.exists()  # step 2's checkpoint: --resume continues once the service is back


def test_failures_below_the_limit_are_masked_and_counted(tmp_path):
    ServiceDownAfter.resets = 0
    train(_config(tmp_path, down_every=2), show_progress=False)  # every other episode fails: exactly the limit
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["rollout/failed"] for r in rows] == [4, 4, 4, 4]


def test_check_failures_allows_exactly_the_share_and_quotes_the_first_failure():
    def traj(i, failed):
        return Trajectory("e", i, f"e#{i}", 0, 0, outcome=None if failed else 1.0, failed=failed, error=f"boom {i}" if failed else None)

    check_failures([traj(0, True), traj(1, False)], 0.5)  # 1 of 2 is not more than half
    check_failures([], 0.5)
    with pytest.raises(RolloutFailures, match="2 of 3 rollouts failed .*the first: e seed 0: boom 0"):
        check_failures([traj(0, True), traj(1, True), traj(2, False)], 0.5)


def test_a_run_stopped_in_its_first_step_resumes_without_repeating_the_evaluation_before_rl(tmp_path):
    ServiceDownAfter.resets = 0
    env = json.dumps([{"id": "test/ServiceDown-v0", "kwargs": {"healthy_resets": 2}}])
    overrides = [f"out_dir={tmp_path}", "steps=1", f"envs={env}", "rollout.tasks_per_step=4", "rollout.group_size=2",
                 "eval.episodes=2", "eval.temperatures=[0.0]"]
    with pytest.raises(RolloutFailures):  # the 2 evaluation episodes were healthy, step 1's rollouts all fail
        train(load_preset("ci-tiny", overrides), show_progress=False)
    saved = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == 0 and set(saved["evals"]) == {"before"}

    ServiceDownAfter.resets = -1_000  # the service is back
    summary = train(load_preset("ci-tiny", overrides), resume=True, show_progress=False)
    assert ServiceDownAfter.resets == -1_000 + 8 + 2  # step 1's rollouts and the evaluation after; not the one before
    assert summary["evals"]["before"] == saved["evals"]["before"] and set(summary["evals"]) == {"before", "after"}

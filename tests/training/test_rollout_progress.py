"""``collect(on_episode_done=...)``: one call per episode as it ends for good, with what it contributes."""

from __future__ import annotations

import re

import pytest

from turngym.agents.models import load_smollm2_tokenizer
from turngym.agents.text_policy import TextFunctionPolicy
from turngym.envs.core import TurnEnv, action_text
from turngym.envs.registration import register, registry
from turngym.envs.types import StopReason, TurnRecord
from turngym.training.rollout import RolloutConfig, Task, collect


@pytest.fixture(scope="module")
def tokenizer():
    return load_smollm2_tokenizer()


def lowest_free_cell(prompt: str) -> str:
    free = re.findall(r"Choose one of: ((?:\[\d\] ?)+)", prompt)
    return free[-1].split()[0] if free else "[1]"


class SlowOnOddSeeds(TurnEnv):
    """Solved after 1 turn on even seeds, after 4 on odd ones; raises on turn 2 when ``fail`` is set."""

    action_format = "Reply with anything."

    def __init__(self, fail: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fail = fail

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.length, self.t = (4 if seed % 2 else 1), 0
        return "say something", {"seat": 0}

    def step(self, action):
        action_text(action)
        self.t += 1
        if self.fail and self.t == 2:
            raise ConnectionError("backend went away")
        record = TurnRecord(turn=self.t - 1, seat=0, reward=0.0)
        if self.t == self.length:
            record.outcome = record.reward = 1.0
            record.terminated, record.stop_reason = True, StopReason.SOLVED
        return "ok", record.reward, record.terminated, False, {"turn": record, "seat": 0}

    def stop(self, reason):
        return {0: 0.0}


if "test/SlowOnOdd-v0" not in registry():
    register("test/SlowOnOdd-v0", SlowOnOddSeeds, family="toy", reward_bounds=(0.0, 1.0))
    register("test/SlowOnOddFailing-v0", lambda **kw: SlowOnOddSeeds(fail=True, **kw), family="toy",
             reward_bounds=(0.0, 1.0))


def test_each_episode_is_reported_once_as_it_ends_before_the_batch_does(tokenizer):
    events: list[tuple[str, object]] = []
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "hi")
    batch = collect(
        [Task("test/SlowOnOdd-v0", s) for s in range(4)], policy, RolloutConfig(group_size=2),
        on_progress=lambda done, total: events.append(("round", done)),
        on_episode_done=lambda trajectories: events.append(("done", trajectories)),
    )
    done = [t for kind, t in events if kind == "done"]
    assert len(done) == 8 and all(len(ts) == 1 for ts in done)
    assert sorted(id(ts[0]) for ts in done) == sorted(id(t) for t in batch.trajectories)
    # the four one-turn episodes (even seeds) are reported right after the first round, not at the end
    rounds = [i for i, (kind, _) in enumerate(events) if kind == "round"]
    assert len(rounds) == 4
    between_rounds_1_and_2 = [ts[0].seed for kind, ts in events[rounds[0] : rounds[1]] if kind == "done"]
    assert sorted(between_rounds_1_and_2) == [0, 0, 2, 2]


def test_self_play_reports_both_seats_of_one_episode_together(tokenizer):
    reports = []
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    collect([Task("turngym/TicTacToe-v0", 5)], policy, RolloutConfig(group_size=2, self_play=True),
            on_episode_done=reports.append)
    assert [[t.seat for t in ts] for ts in reports] == [[0, 1], [0, 1]]
    assert all(sum(t.outcome for t in ts) == 0.0 for ts in reports)


def test_a_replayed_failure_is_reported_only_once_finally(tokenizer):
    reports = []
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "hi")
    config = RolloutConfig(group_size=2, on_env_error="resample", max_resamples=2)
    batch = collect([Task("test/SlowOnOddFailing-v0", 1)], policy, config, on_episode_done=reports.append)
    assert batch.metrics.resampled == 4
    assert len(reports) == 2 and all(ts[0].failed for ts in reports)


def test_branches_are_reported_not_the_trunk(tokenizer):
    reports = []
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    config = RolloutConfig(group_size=3, opponent="random", branch_turn=1, context="turn")
    batch = collect([Task("turngym/TicTacToe-v0", 4)], policy, config, on_episode_done=reports.append)
    assert sorted(ts[0].sample_index for ts in reports) == [0, 1, 2]
    assert len(batch.trajectories) == 3

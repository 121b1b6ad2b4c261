"""Task sampling: a function of (seed, step); opponent mixes drawn per group, by weight."""

from __future__ import annotations

from collections import Counter

import pytest

from turngym.training.config import load_preset
from turngym.training.trainer import sample_tasks


def test_opponent_mix_draws_one_opponent_per_group_by_weight():
    config = load_preset("quickstart", ["rollout.tasks_per_step=400", "rollout.opponent_mix={random: 3, heuristic: 1}"])
    tasks = sample_tasks(config, step=5)
    counts = Counter(t.opponent for t in tasks)
    assert set(counts) == {"random", "heuristic"}
    assert counts["random"] / len(tasks) == pytest.approx(0.75, abs=0.07)
    assert sample_tasks(config, step=5) == tasks  # a function of (seed, step): resume replays it
    assert [t.seed for t in tasks] == [t.seed for t in sample_tasks(load_preset("quickstart", ["rollout.tasks_per_step=400"]), 5)]


def test_without_a_mix_tasks_leave_the_opponent_to_the_rollout_config():
    assert {t.opponent for t in sample_tasks(load_preset("quickstart"), step=0)} == {None}


def test_opponent_mix_refuses_zero_weights_and_self_play():
    with pytest.raises(ValueError, match=r"weights must be > 0, got \{'heuristic': 0.0\}"):
        load_preset("quickstart", ["rollout.opponent_mix={random: 1, heuristic: 0}"])
    with pytest.raises(ValueError, match="does not combine with rollout.self_play"):
        load_preset("quickstart", ["rollout.opponent_mix={random: 1}", "rollout.self_play=true"])

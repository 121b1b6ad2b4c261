"""The trajectory log: a real tiny run logs what the learner used, bounded, indexed, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import turngym
from turngym.training.config import load_preset
from turngym.training.trainer import train
from turngym.training.trajectory_log import (
    INDEX,
    TRAJECTORIES,
    StepEntry,
    TrajectoryLog,
    read_episodes,
    read_index,
)

SCHEMA = {"step", "env_id", "env_kwargs", "seed", "group_id", "sample_index", "seat", "opponent", "context",
          "outcome", "stop_reason", "failed", "policy_version", "turns"}
TURN_SCHEMA = {"turn", "seat", "observation", "action", "prompt_tokens", "completion_tokens", "completion_ids",
               "finish_reason", "reward", "components", "gate_open", "gated_reward", "advantage", "clip_scale"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """Three ci-tiny steps with every group logged (4 tasks × 8 rollouts) and the adaptive clip on."""
    out = tmp_path_factory.mktemp("run")
    config = load_preset("ci-tiny", [f"out_dir={out}", "steps=3", "checkpoint_every=3",
                                     "log.trajectory_groups=4", "algo.adaptive_clip=true"])
    train(config, show_progress=False)
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_logged_credit_equals_what_the_trainer_used(tiny_run):
    episodes = _lines(tiny_run / TRAJECTORIES)
    metrics = _lines(tiny_run / "metrics.jsonl")
    assert [e.step for e in read_index(tiny_run / INDEX)] == [1, 2, 3]
    for row in metrics:
        step = [e for e in episodes if e["step"] == row["step"]]
        assert len(step) == 32
        for e in step:
            assert SCHEMA <= set(e) and all(TURN_SCHEMA <= set(t) for t in e["turns"])
        # the trainer's own adv/* and reward/* metrics, recomputed from the log alone
        adv = np.array([np.mean([t["advantage"] for t in e["turns"]]) for e in step if e["kept"]])
        assert adv.mean() == pytest.approx(row["adv/mean"], abs=1e-9)
        assert adv.std() == pytest.approx(row["adv/std"], abs=1e-9)
        assert np.mean([e["outcome"] for e in step]) == pytest.approx(row["reward/mean_outcome"])
        assert np.mean([sum(t["reward"] for t in e["turns"]) for e in step]) == pytest.approx(row["reward/mean_turn_reward"])
    for e in episodes:
        assert e["policy_version"] == e["step"] - 1
        for t in e["turns"]:
            assert t["completion_tokens"] == len(t["completion_ids"]) > 0
            assert t["reward"] == pytest.approx(sum(t["components"].values()))
            assert t["gated_reward"] == pytest.approx(t["reward"] if t["gate_open"] else 0.0)
            assert t["clip_scale"] is not None and 0.7 <= t["clip_scale"] <= 1.3  # 1 ± β, β = 0.3


def test_logged_env_and_observations_rebuild_the_episode(tiny_run):
    e = _lines(tiny_run / TRAJECTORIES)[5]
    env = turngym.make(e["env_id"], **e["env_kwargs"])
    obs, _ = env.reset(seed=e["seed"])
    for turn in e["turns"]:
        assert turn["observation"] == obs
        obs, reward, *_ , info = env.step(turn["action"])
        assert info["turn"].turn_reward == pytest.approx(turn["reward"])


def test_read_episodes_seeks_only_the_page_it_returns(tiny_run):
    index = read_index(tiny_run / INDEX)
    all_of_step_2 = [e for e in _lines(tiny_run / TRAJECTORIES) if e["step"] == 2]
    page = read_episodes(tiny_run / TRAJECTORIES, step=2, offset=5, limit=3)
    assert page.total == 32
    assert page.episodes == all_of_step_2[5:8]
    assert page.bytes_read == sum(index[1].lengths[5:8])

    success = read_episodes(tiny_run / TRAJECTORIES, outcome="success", limit=1000)
    assert success.total == sum(1 for e in _lines(tiny_run / TRAJECTORIES) if e["outcome"] > 0)
    assert all(e["outcome"] > 0 for e in success.episodes)
    group = all_of_step_2[0]["group_key"]
    assert [e["sample_index"] for e in read_episodes(tiny_run / TRAJECTORIES, step=2, group=group).episodes] == list(range(8))
    with pytest.raises(ValueError, match="unknown outcome filter 'won'"):
        read_episodes(tiny_run / TRAJECTORIES, outcome="won")


def test_a_resumed_run_drops_what_was_logged_past_its_checkpoint(tiny_run, tmp_path):
    for name in (TRAJECTORIES, INDEX):
        (tmp_path / name).write_bytes((tiny_run / name).read_bytes())
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "log.trajectory_groups=4"])
    TrajectoryLog(tmp_path, config, start_step=2)
    entries = read_index(tmp_path / INDEX)
    assert [e.step for e in entries] == [1, 2]
    assert (tmp_path / TRAJECTORIES).stat().st_size == entries[-1].end
    assert {e["step"] for e in _lines(tmp_path / TRAJECTORIES)} == {1, 2}


def test_the_size_cap_stops_the_log_and_says_so_once(tmp_path, capfd):
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=2", "checkpoint_every=2",
                                     "log.trajectory_groups=2", "log.trajectory_max_mb=0.03"])
    train(config, show_progress=False)
    err = capfd.readouterr().err
    assert err.count("reached log.trajectory_max_mb") == 1
    entries = read_index(tmp_path / INDEX)
    assert [(e.step, e.capped) for e in entries] == [(1, False), (2, True)]  # one step is ~25 KB
    assert (tmp_path / TRAJECTORIES).stat().st_size == entries[0].end <= 0.03 * 2**20
    assert len(_lines(tmp_path / "metrics.jsonl")) == 2  # the run itself went on


def test_a_torn_index_line_is_ignored(tmp_path):
    entry = StepEntry(step=1, offset=0, lengths=[3], outcomes=[1.0], stop_reasons=["done"], failed=[False], groups=["g"])
    (tmp_path / TRAJECTORIES).write_text("{}\n")
    (tmp_path / INDEX).write_text(json.dumps(entry.to_dict()) + '\n{"step": 2, "off')
    assert read_index(tmp_path / INDEX) == [entry]
    assert read_episodes(tmp_path / TRAJECTORIES).episodes == [{}]


def test_a_fresh_run_that_logs_nothing_leaves_no_old_episodes_behind(tiny_run, tmp_path):
    for name in (TRAJECTORIES, INDEX):
        (tmp_path / name).write_bytes((tiny_run / name).read_bytes())
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "log.trajectory_groups=0"])
    log = TrajectoryLog(tmp_path, config, start_step=0)
    assert read_index(tmp_path / INDEX) == [] and (tmp_path / TRAJECTORIES).stat().st_size == 0
    assert log.write(0, [], None, np.ones(0, dtype=bool)) == 0

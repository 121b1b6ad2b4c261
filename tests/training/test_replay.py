"""``turngym replay``: recorded actions re-run through the real environments — a tiny training run's
trajectory log, a game against a random opponent, a self-play game, ``turngym eval`` output — replay
identically, and a tampered record is caught at the turn that was changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from turngym.agents.specs import resolve_agent
from turngym.agents.tiny import char_tokenizer
from turngym.training.config import load_preset
from turngym.training.episode_records import trajectory_records, write_records
from turngym.training.replay import read_log, replay_log
from turngym.training.rollout import RolloutConfig, Task, play_scripted
from turngym.training.trainer import train


def turngym(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "turngym.cli", "--quiet", *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode not in (0, 1, 2):
        raise AssertionError(result.stderr)
    return result


def rewrite(path: Path, target: Path, change) -> Path:
    """Copy the log at ``path`` to ``target`` with ``change(record)`` applied to its first line."""
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    change(first)
    target.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    return target


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(load_preset("ci-tiny", [f"out_dir={out}", "steps=1", "checkpoint_every=1", "log.trajectory_groups=1"]),
          show_progress=False)
    return out


def scripted_games(path: Path, *, self_play: bool, seeds: range = range(4)) -> Path:
    """ConnectFour played through the rollout engine's episode book-keeping (``play_scripted``) by a
    random agent — against the random opponent the rollout seeds, or in self-play — logged as eval
    records."""
    tokenizer = char_tokenizer()
    config = RolloutConfig(group_size=1, max_new_tokens=64, max_episode_tokens=100_000, opponent="random", self_play=self_play)
    tasks = [Task("turngym/ConnectFour-v0", seed) for seed in seeds]
    trajectories = play_scripted(tasks, lambda task: resolve_agent("random", task.env_id, seed=task.seed + 99),
                                 tokenizer, tokenizer.eos_token_id, config)
    return write_records(trajectory_records(trajectories), path)


def test_a_training_runs_trajectory_log_replays_identically_and_tampering_is_named(tiny_run, tmp_path):
    log = tiny_run / "trajectories.jsonl"
    results = replay_log(log)
    assert len(results) == 8 and all(r.status == "identical" for r in results), [r.describe() for r in results]
    assert results[0].turns == 3

    def bump_reward(record):
        record["turns"][1]["reward"] += 0.25

    different = replay_log(rewrite(log, tmp_path / "reward.jsonl", bump_reward), episode=0)[0]
    assert different.status == "different" and different.difference.turn == 1
    assert different.difference.field == "reward"

    def edit_observation(record):
        record["turns"][2]["observation"] += " (edited)"

    different = replay_log(rewrite(log, tmp_path / "obs.jsonl", edit_observation), episode=0)[0]
    assert (different.difference.turn, different.difference.field) == (2, "observation")
    assert different.difference.recorded.endswith("(edited)")

    def rename_component(record):
        record["turns"][0]["components"] = {"bonus": record["turns"][0]["reward"]}

    different = replay_log(rewrite(log, tmp_path / "comp.jsonl", rename_component), episode=0)[0]
    assert (different.difference.turn, different.difference.field) == (0, "components")


def test_the_cli_exit_status_says_identical_or_different(tiny_run, tmp_path):
    same = turngym("replay", str(tiny_run / "trajectories.jsonl"))
    assert same.returncode == 0 and "8 identical of 8 episodes" in same.stdout

    def bump_reward(record):
        record["turns"][1]["reward"] -= 1

    tampered = rewrite(tiny_run / "trajectories.jsonl", tmp_path / "t.jsonl", bump_reward)
    result = turngym("replay", str(tampered), "--episode", "0")
    assert result.returncode == 1
    assert "episode 0 (turngym/Vowels-v0" in result.stdout and "turn 1 (seat 0): reward differs" in result.stdout
    data = json.loads(turngym("replay", str(tampered), "--json").stdout)
    assert data["counts"] == {"identical": 7, "different": 1, "cannot": 0, "skipped": 0}


def test_a_game_against_a_random_opponent_replays_identically(tmp_path):
    log = scripted_games(tmp_path / "vs.jsonl", self_play=False)
    records = [r for _, r in read_log(log)]
    assert [r["seat"] for r in records] == [0, 1, 0, 1] and all(len(r["turns"]) > 3 for r in records)
    results = replay_log(log)
    assert all(r.status == "identical" for r in results), [r.describe() for r in results]

    def other_opponent(record):  # the opponent's moves show in the next observation: it must be the recorded one
        record["opponent"] = "first"

    different = replay_log(rewrite(log, tmp_path / "first.jsonl", other_opponent), episode=0)[0]
    assert different.status == "different" and different.difference.field == "observation"


def test_self_play_merges_both_seats_and_refuses_a_missing_seat(tmp_path):
    log = scripted_games(tmp_path / "self.jsonl", self_play=True, seeds=range(2))
    results = replay_log(log)
    assert len(results) == 2 and all(r.status == "identical" for r in results), [r.describe() for r in results]
    assert results[0].lines == [0, 1]
    assert replay_log(log, episode=1)[0].lines == [0, 1]  # either seat's line replays the whole game
    with pytest.raises(ValueError, match="out of range: .* holds 4 episodes"):
        replay_log(log, episode=4)
    assert results[0].turns == sum(len(r["turns"]) for _, r in list(read_log(log))[:2])

    lines = log.read_text().splitlines()
    (tmp_path / "half.jsonl").write_text(lines[0] + "\n")  # seat 0 only
    result = replay_log(tmp_path / "half.jsonl")[0]
    assert result.status == "cannot" and "seat [1]" in result.reason
    cli = turngym("replay", str(tmp_path / "half.jsonl"))
    assert cli.returncode == 2 and "cannot replay" in cli.stdout


def test_eval_saves_trajectories_that_replay_identically(tmp_path):
    traj = tmp_path / "eval.jsonl"
    turngym("eval", "turngym/TicTacToe-v0", "--agent", "random", "--opponent", "random", "--episodes", "3",
            "--save-trajectories", str(traj))
    manifest = json.loads((tmp_path / "eval.manifest.json").read_text())
    assert manifest["kind"] == "eval" and manifest["envs"][0]["id"] == "turngym/TicTacToe-v0"
    result = turngym("replay", str(traj))
    assert result.returncode == 0 and "3 identical of 3 episodes" in result.stdout, result.stdout + result.stderr


def test_a_log_that_is_not_a_trajectory_log_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1}\n')
    result = turngym("replay", str(bad))
    assert result.returncode == 2 and "line 1 is not a trajectory-log episode" in result.stderr
    assert turngym("replay", str(tmp_path / "none.jsonl")).returncode == 2


def test_replay_warns_where_the_env_differs_from_the_recorded_manifest(tiny_run, tmp_path):
    (tmp_path / "trajectories.jsonl").write_text((tiny_run / "trajectories.jsonl").read_text())
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    manifest["envs"][0]["spec"] = "0" * 64  # the env's registration changed since the run
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    result = turngym("replay", str(tmp_path / "trajectories.jsonl"))
    assert result.returncode == 0 and "8 identical" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: differs from {tmp_path / 'manifest.json'}: envs.turngym/Vowels-v0.spec: "
                        f"{json.loads((tiny_run / 'manifest.json').read_text())['envs'][0]['spec']} here, {'0' * 64} in the manifest"]

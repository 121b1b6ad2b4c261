"""The command line, run as a user runs it: the installed `turngym` console script."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

GAMES = {"TicTacToe-v0", "ConnectFour-v0", "KuhnPoker-v0", "LeducPoker-v0", "LiarsDice-v0", "Negotiation-v0"}


def turngym(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "turngym.cli", *args], capture_output=True, text=True, input=input, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"turngym {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_list_json_lists_the_six_games():
    data = json.loads(turngym("list", "--json").stdout)
    ids = {e["id"].split("/")[1] for e in data["environments"] if e["id"].startswith("turngym/")}
    assert GAMES <= ids
    assert data["plugin_errors"] == {}


def test_check_all_exits_zero():
    # the games and toys here; every other family's ids are checked by its own tests (tests/<family>/)
    result = turngym("check", "--all", "--family", "game,toy")
    assert "environments conform" in result.stdout
    assert "FAIL" not in result.stdout
    assert "turngym/TicTacToe-v0" in result.stdout and "SearchQA" not in result.stdout
    bad = turngym("check", "--all", "--family", "boardgame", check=False)
    assert bad.returncode == 2 and "'boardgame'" in bad.stderr


def test_check_unknown_id_suggests_and_exits_2():
    result = turngym("check", "turngym/TicTacToo-v0", check=False)
    assert result.returncode == 2
    assert "Did you mean: 'turngym/TicTacToe-v0'?" in result.stderr


def test_eval_minimax_never_loses_to_random(tmp_path):
    out = tmp_path / "eval.json"
    turngym("eval", "turngym/TicTacToe-v0", "--agent", "minimax", "--opponent", "random",
            "--episodes", "200", "--json", str(out))
    summary = json.loads(out.read_text())
    assert summary["episodes"] == 200
    assert summary["loss"]["count"] == 0
    assert summary["win"]["value"] > 0.7
    assert summary["invalid_action_rate"]["count"] == 0


def test_eval_env_args_reach_the_constructor():
    result = turngym("eval", "turngym/TicTacToe-v0", "--agent", "first", "--opponent", "random", "--episodes", "2",
                     "--env-arg", "valid_move_reward=0.25", "--json")
    summary = json.loads(result.stdout)
    assert summary["mean_return"]["value"] > summary["mean_outcome"]["value"]  # the dense reward was paid
    bad = turngym("eval", "turngym/TicTacToe-v0", "--agent", "first", "--opponent", "random", "--episodes", "2",
                  "--env-arg", "colour=red", check=False)
    assert bad.returncode == 2 and "'colour'" in bad.stderr


def test_eval_kuhn_nash_beats_random_with_interval_above_zero():
    result = turngym("eval", "turngym/KuhnPoker-v0", "--agent", "nash", "--opponent", "random",
                     "--episodes", "2000", "--json")
    summary = json.loads(result.stdout)
    assert summary["mean_return"]["low"] > 0, summary["mean_return"]


def test_eval_json_to_stdout_and_saved_trajectories(tmp_path):
    traj = tmp_path / "t.jsonl"
    result = turngym("eval", "turngym/ConnectFour-v0", "--agent", "random", "--opponent", "random",
                     "--episodes", "4", "--json", "--save-trajectories", str(traj))
    assert json.loads(result.stdout)["episodes"] == 4
    lines = [json.loads(line) for line in traj.read_text().splitlines()]
    assert len(lines) == 4 and [line["agent_seat"] for line in lines] == [0, 1, 0, 1]
    assert all(line["records"][-1]["outcome"] is not None for line in lines)


def test_eval_rejects_unknown_agent_with_suggestions():
    result = turngym("eval", "turngym/TicTacToe-v0", "--agent", "minimx", "--opponent", "random", check=False)
    assert result.returncode == 2
    assert "'minimx'" in result.stderr and "minimax" in result.stderr


def test_eval_of_a_game_requires_an_opponent():
    result = turngym("eval", "turngym/TicTacToe-v0", "--agent", "random", check=False)
    assert result.returncode == 2 and "add --opponent" in result.stderr


def test_play_in_the_terminal_against_an_agent():
    # Seat 0 (X) against the deterministic 'first' agent: X takes 1, 4, 7 while O answers 2, 3.
    result = turngym("play", "turngym/TicTacToe-v0", "--opponent", "first", input="1\n4\n7\n")
    assert "Episode over (game_over); your return +1." in result.stdout


def test_play_handles_end_of_input():
    result = turngym("play", "turngym/TicTacToe-v0", input="")
    assert "bye" in result.stdout


@pytest.mark.parametrize("command", ["list", "check", "play", "eval", "bench", "train", "tournament"])
def test_every_command_explains_itself(command):
    result = turngym(command, "--help")
    assert "usage: turngym" in result.stdout and len(result.stdout) > 200

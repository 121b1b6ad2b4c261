"""The command line, run as a user runs it: the installed `turngym` console script."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import termios

import pytest

GAMES = {"TicTacToe-v0", "ConnectFour-v0", "KuhnPoker-v0", "LeducPoker-v0", "LiarsDice-v0", "Negotiation-v0"}


def turngym(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "turngym.cli", *args], capture_output=True, text=True, input=input, timeout=600,
        check=False,
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
    lines = [json.loads(line) for line in traj.read_text().splitlines()]  # trajectory-log records, every seat's moves
    assert len(lines) == 4 and [line["seat"] for line in lines] == [0, 1, 0, 1]
    assert all(line["outcome"] is not None and {t["seat"] for t in line["turns"]} == {0, 1} for line in lines)
    assert (tmp_path / "t.manifest.json").exists()


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


@pytest.mark.parametrize("command", ["list", "check", "play", "eval", "bench", "train", "ablate", "tournament", "view", "replay"])
def test_every_command_explains_itself(command):
    result = turngym(command, "--help")
    assert "usage: turngym" in result.stdout and len(result.stdout) > 200


# ================================================================ the output contract (docs/cli.md)
# Every command run below has its stdout piped, as in `turngym list | grep X`: tables must come out as
# tab-separated lines with a header and whole cells, progress must go to stderr, --json must parse,
# and the exit status must be the documented one (0 ok, 1 a check/target failed, 2 usage/input).
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "turngym.cli", *args], capture_output=True, text=True, input=input,
                          timeout=600, env={**os.environ, **(env or {})}, check=False)


def tsv(stdout: str, header: list[str]) -> list[list[str]]:
    """The rows of the first TSV table in ``stdout`` whose header is ``header``."""
    lines = stdout.splitlines()
    start = lines.index("\t".join(header))
    rows = []
    for line in lines[start + 1:]:
        cells = line.split("\t")
        if len(cells) != len(header):
            break
        rows.append(cells)
    return rows


def assert_progress_only_on_stderr(result: subprocess.CompletedProcess, label: str) -> None:
    assert f"{label}:" in result.stderr, result.stderr
    assert f"{label}:" not in result.stdout
    assert "\r" not in result.stderr  # a log file gets lines, not carriage-return redraws


def test_list_piped_into_grep_prints_the_whole_row():
    result = subprocess.run(f"{shlex.quote(sys.executable)} -m turngym.cli list | grep -F CodeRepair-v0",
                            shell=True, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("turngym/CodeRepair-v0\tcode\t1\t"), result.stdout


def test_list_piped_is_tsv_with_every_id_whole_even_on_a_narrow_terminal():
    ids = [e["id"] for e in json.loads(run_cli("list", "--json").stdout)["environments"]]
    result = run_cli("list", env={"COLUMNS": "20"})
    assert result.returncode == 0
    assert "…" not in result.stdout and "..." not in result.stdout
    rows = tsv(result.stdout, ["id", "family", "seats", "turn limit", "description"])
    assert [r[0] for r in rows] == ids
    assert all(r[2].isdigit() for r in rows)
    assert "turngym environments" in result.stderr  # the title is not data: stderr


def test_list_in_a_narrow_terminal_folds_but_never_cuts():
    ids = [e["id"] for e in json.loads(run_cli("list", "--json").stdout)["environments"]]
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "turngym.cli", "list"], stdin=subprocess.DEVNULL, stdout=terminal,
                            stderr=subprocess.PIPE, env={**os.environ, "TERM": "xterm", "COLUMNS": "50"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end closed: the command is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert proc.wait(timeout=600) == 0
    screen = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    assert "┃" in screen  # a drawn table, not TSV
    assert "…" not in screen
    assert all(env_id in screen for env_id in ids)


def test_check_reports_progress_per_env_on_stderr_and_a_table_on_stdout():
    result = run_cli("check", "--all", "--family", "toy", env={"TURNGYM_PROGRESS_INTERVAL": "0"})
    assert result.returncode == 0, result.stderr
    assert_progress_only_on_stderr(result, "check")
    ids = [e["id"] for e in json.loads(run_cli("list", "--json").stdout)["environments"] if e["family"] == "toy"]
    rows = tsv(result.stdout, ["env_id", "result", "passed", "failed", "skipped", "seconds", "failing checks"])
    assert [r[0] for r in rows] == ids and {r[1] for r in rows} == {"PASS"}
    assert all(float(r[5]) >= 0 for r in rows)
    assert f"check: 0/{len(ids)} envs" in result.stderr and f"check: {len(ids)}/{len(ids)} envs" in result.stderr
    assert "turngym/Vowels-v0 PASS in" in result.stderr  # env i of n, with its time


def test_quiet_silences_progress_but_not_results():
    result = run_cli("check", "turngym/Vowels-v0", "--quiet")
    assert result.returncode == 0 and result.stderr == ""
    assert "turngym/Vowels-v0\tPASS" in result.stdout
    result = run_cli("--quiet", "list")
    assert result.returncode == 0 and result.stderr == "" and "turngym/Vowels-v0\t" in result.stdout


def test_check_json_parses_and_matches_the_file(tmp_path):
    result = run_cli("check", "turngym/Vowels-v0", "--json")
    assert result.returncode == 0
    reports = json.loads(result.stdout)
    assert [r["env_id"] for r in reports] == ["turngym/Vowels-v0"] and reports[0]["ok"] is True
    assert {"results", "warnings", "seconds"} <= set(reports[0])
    out = tmp_path / "check.json"
    again = run_cli("check", "turngym/Vowels-v0", "--json", str(out))
    assert "turngym/Vowels-v0\tPASS" in again.stdout  # --json FILE keeps the table
    assert [r["env_id"] for r in json.loads(out.read_text())] == ["turngym/Vowels-v0"]


CHECK_A_BROKEN_ENV = """
import sys
from turngym.cli import main
from turngym.envs.registration import register
from turngym.envs.toy import VowelsEnv as Vowels

class Broken(Vowels):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward + 5.0, terminated, truncated, info  # outside reward_bounds, != its components

register("test/Broken-v0", Broken, family="toy", max_turns=4, reward_bounds=(0.0, 1.0))
sys.exit(main(sys.argv[1:]))
"""


def test_a_failed_check_exits_1_with_the_failure_in_the_table_and_json():
    result = subprocess.run([sys.executable, "-c", CHECK_A_BROKEN_ENV, "check", "test/Broken-v0"],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = tsv(result.stdout, ["env_id", "result", "passed", "failed", "skipped", "seconds", "failing checks"])
    assert rows[0][:2] == ["test/Broken-v0", "FAIL"] and "turn_records" in rows[0][6]
    details = tsv(result.stdout, ["env_id", "check", "status", "detail"])
    assert any(d[1] == "turn_records" and d[2] == "failed" for d in details)
    as_json = subprocess.run([sys.executable, "-c", CHECK_A_BROKEN_ENV, "check", "test/Broken-v0", "--json"],
                             capture_output=True, text=True, timeout=600, check=False)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)[0]["ok"] is False


def test_eval_pipes_a_tsv_table_and_reports_progress_on_stderr():
    result = run_cli("eval", "turngym/TicTacToe-v0", "--agent", "minimax", "--opponent", "random", "--episodes", "20")
    assert result.returncode == 0
    assert_progress_only_on_stderr(result, "eval minimax vs random")
    assert "eval minimax vs random: 0/20 episodes" in result.stderr
    assert re.search(r"eval minimax vs random: 20/20 episodes \(100%\) · win \d\.\d\d · done in", result.stderr)
    rows = {r[0]: r[1:] for r in tsv(result.stdout, ["metric", "value", "95% interval"])}
    assert rows["loss"][0] == "0.000" and rows["stop reasons"][0].startswith("game_over: ")


def test_play_json_reports_the_episode():
    result = run_cli("play", "turngym/TicTacToe-v0", "--opponent", "first", "--json", input="1\n4\n7\n")
    assert result.returncode == 0
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data == {"env_id": "turngym/TicTacToe-v0", "seed": 0, "seat": 0, "finished": True, "return": 1.0,
                    "turns": 3, "outcome": 1.0, "stop_reason": "game_over"}


def test_train_shows_eval_progress_and_step_phases_and_json_is_the_summary(tmp_path, capsys):
    result = run_cli("train", "--preset", "ci-tiny", "--set", "steps=2", "--set", "eval.episodes=4",
                     "--set", "eval.temperatures=[0.0]", "--out", str(tmp_path), "--json",
                     env={"TURNGYM_PROGRESS_INTERVAL": "0", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 2 and set(summary["evals"]) == {"before", "after"}
    assert_progress_only_on_stderr(result, "train")
    err = result.stderr
    # evaluation before training reports from its first line, then per episode with the running success rate
    assert err.index("eval greedy: 0/4 episodes") < err.index("train: 0/2 steps")
    assert re.search(r"eval greedy: 4/4 episodes \(100%\) · turn \d+ · success \d\.\d\d · done in", err)
    for phase in ("rollout", "advantages", "update"):
        assert f"step 1: {phase}" in err and f"step 2: {phase}" in err
    assert "train: 2/2 steps (100%)" in err

    from turngym.cli import _print_train_summary

    _print_train_summary(summary)  # the end-of-training table, with stdout captured (not a terminal)
    out = capsys.readouterr().out
    rows = tsv(out, ["decoding", "metric", "before [95%]", "after [95%]", "separated"])
    assert [r[:2] for r in rows] == [["greedy", "success"], ["greedy", "invalid"], ["greedy", "mean_outcome"]]
    assert "…" not in out and f"plot {tmp_path / 'curves.png'}" in out


def test_tournament_json_has_the_ratings_file_fields_and_the_table_pipes(tmp_path):
    args = ["tournament", "--env", "turngym/TicTacToe-v0", "--agents", "random,minimax", "--games", "4",
            "--out", str(tmp_path), "--no-plots", "--bootstrap", "20"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert_progress_only_on_stderr(result, "tournament turngym/TicTacToe-v0")
    rows = tsv(result.stdout, ["rank", "player", "Elo", "95% interval", "OpenSkill μ ± σ", "games"])
    assert [r[1] for r in rows] == ["minimax", "random"]
    data = json.loads(run_cli(*args, "--json").stdout)
    assert set(json.loads((tmp_path / "ratings.json").read_text())) <= set(data)
    assert data["new_games"] == 0 and data["games"] == 4  # resumed: nothing left to play


def test_sandbox_doctor_json_parses():
    result = run_cli("sandbox", "doctor", "--no-selftest", "--json")
    assert result.returncode == 0, result.stderr
    assert {"ok", "facts", "selftests"} <= set(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["eval", "turngym/TicTacToe-v0", "--agent", "random", "--episodes", "many"], "invalid int value"),
        (["check"], "exactly one of"),
        (["check", "turngym/TicTacToo-v0"], "Did you mean"),
        (["train"], "exactly one of --preset"),
        (["train", "--preset", "quickstrat"], "quickstart"),
        (["tournament", "--env", "turngym/TicTacToe-v0", "--agents", "random,nobody", "--out", "/nonexistent/x"], "nobody"),
        (["bench", "nosuchsuite"], "nosuchsuite"),
        (["models", "frobnicate"], "prepare"),
        (["sandbox", "frobnicate"], "invalid choice"),
    ],
)
def test_usage_and_input_errors_exit_2_with_the_reason_on_stderr(args, stderr):
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert stderr in result.stderr and "Traceback" not in result.stderr


def test_every_command_that_reports_a_result_takes_json_and_quiet(capsys):
    from turngym.cli import build_parser
    from turngym.training.tournament import build_parser as tournament_parser

    def help_text(parse, argv) -> str:
        with pytest.raises(SystemExit) as exit_info:
            parse(argv)
        assert exit_info.value.code == 0
        return capsys.readouterr().out

    parser = build_parser()
    for command in ("list", "check", "play", "eval", "train", "bench"):
        text = help_text(parser.parse_args, [command, "--help"])
        assert "--json" in text and "--quiet" in text, command
    text = help_text(tournament_parser().parse_args, ["--help"])
    assert "--json" in text and "--quiet" in text
    from turngym.envs.household.cli import main as household
    from turngym.envs.search_qa.cli import main as search
    from turngym.envs.swe.cli import main as swe
    from turngym.sandbox.cli import main as sandbox

    for main, commands in ((sandbox, ("build-image", "doctor", "reap")), (search, ("build", "eval", "query")),
                           (household, ("generate", "show", "export", "info")), (swe, ("build", "verify", "fixture"))):
        for command in commands:
            text = help_text(main, [command, "--help"])
            assert "--json" in text and "--quiet" in text, command

"""``turngym view``'s API on a real server thread: run folders, pagination over the index of a large
synthetic log (only the requested slice is read), tournaments, binding and token checks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from turngym.cli import main
from turngym.training.trajectory_log import INDEX, TRAJECTORIES, StepEntry
from turngym.training.viewer.server import ViewerThread


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _episode(step: int, i: int) -> dict:
    return {"step": step, "env_id": "turngym/Vowels-v0", "env_kwargs": {}, "seed": step, "group_id": f"g{step}",
            "group_key": f"g{step}/seat0", "sample_index": i, "seat": 0, "opponent": None, "context": "full",
            "outcome": 1.0 if i % 2 else 0.0, "stop_reason": "done" if i % 2 else "turn_limit", "failed": False,
            "policy_version": step - 1, "turns": [{"turn": 0, "advantage": 0.5 * i}]}


def write_large_log(out: Path, steps: int, per_step: int, readable: set[tuple[int, int]]) -> None:
    """A synthetic log of ``steps`` × ``per_step`` episodes plus metrics. Only the episodes in
    ``readable`` are JSON; every other line is filler of a similar length that no JSON parser
    accepts, so a reader that touches anything but its slice fails."""
    out.mkdir(parents=True, exist_ok=True)
    offset = 0
    with open(out / TRAJECTORIES, "wb") as data, open(out / INDEX, "w") as index, open(out / "metrics.jsonl", "w") as metrics:
        for step in range(1, steps + 1):
            entry = StepEntry(step=step, offset=offset)
            for i in range(per_step):
                line = json.dumps(_episode(step, i)).encode() + b"\n"
                if (step, i) not in readable:
                    line = b"#" * (len(line) - 1) + b"\n"
                data.write(line)
                offset += len(line)
                entry.lengths.append(len(line))
                entry.outcomes.append(1.0 if i % 2 else 0.0)
                entry.stop_reasons.append("done" if i % 2 else "turn_limit")
                entry.failed.append(False)
                entry.groups.append(f"g{step}/seat0")
            index.write(json.dumps(entry.to_dict()) + "\n")
            metrics.write(json.dumps({"step": step, "loss": 1.0 / step, "reward/mean_outcome": step / steps}) + "\n")


def test_a_large_run_is_paginated_through_its_index(tmp_path):
    run = tmp_path / "big"
    write_large_log(run, steps=10_000, per_step=4, readable={(7500, 1), (7500, 3), (9999, 3)})
    assert (run / TRAJECTORIES).stat().st_size > 3_000_000
    with ViewerThread([run]) as viewer:
        base = viewer.url + "api/runs/big/"
        [described] = get(viewer.url + "api/runs")["runs"]
        assert (described["kind"], described["steps"], described["trajectory_steps"]) == ("run", 10_000, 10_000)

        page = get(base + "episodes?step=7500&outcome=success&offset=0&limit=2")
        assert page["total"] == 2
        assert [(e["step"], e["sample_index"]) for e in page["episodes"]] == [(7500, 1), (7500, 3)]
        assert page["bytes_read"] == sum(len(json.dumps(_episode(7500, i))) + 1 for i in (1, 3))

        page = get(base + "episodes?stop_reason=done&offset=19997&limit=1")  # the 19 998th "done" of all steps
        assert page["total"] == 20_000 and [(e["step"], e["sample_index"]) for e in page["episodes"]] == [(9999, 3)]

        steps = get(base + "steps?offset=9990&limit=20")
        assert steps["total"] == 10_000 and [s["step"] for s in steps["steps"]] == list(range(9991, 10_001))
        assert (steps["first"], steps["last"], steps["stop_reasons"]) == (1, 10_000, ["done", "turn_limit"])
        assert steps["steps"][0] | {"groups": None} == {"step": 9991, "episodes": 4, "groups": None, "mean_outcome": 0.5,
                                                       "successes": 2, "failed": 0, "capped": False,
                                                       "stop_reasons": {"turn_limit": 2, "done": 2}}

        curves = get(base + "curves?keys=loss&max_points=500")
        assert len(curves["step"]) == len(curves["series"]["loss"]) == 500
        assert curves["step"][0] == 1 and curves["step"][-1] == 10_000 and curves["rows"] == 10_000

        with open(run / "metrics.jsonl", "a") as f:  # a live run appends: only the new row is parsed
            f.write(json.dumps({"step": 10_001, "loss": 0.5}) + "\n")
        assert get(base + "curves?keys=loss&max_points=100000")["step"][-1] == 10_001

        for bad in ("episodes?outcome=won", "episodes?limit=100000", "steps?offset=-1"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                get(base + bad)
            assert caught.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as caught:
            get(viewer.url + "api/runs/nope/curves")
        assert caught.value.code == 404 and "known: ['big']" in caught.value.read().decode()


def test_a_folder_of_runs_and_a_tournament(tmp_path):
    write_large_log(tmp_path / "runs" / "a", steps=3, per_step=2, readable={(s, i) for s in range(1, 4) for i in range(2)})
    write_large_log(tmp_path / "runs" / "b", steps=5, per_step=2, readable=set())
    (tmp_path / "runs" / "a" / "summary.json").write_text(json.dumps({"name": "a", "evals": {"before": {"greedy": {
        "success": {"value": 0.25, "low": 0.1, "high": 0.5, "count": 5, "n": 20}, "mean_outcome": {"value": float("nan")}}}}}))
    tour = tmp_path / "tour"
    tour.mkdir()
    game = {"player_a": "minimax", "player_b": "random", "score_a": 1.0, "env_id": "turngym/TicTacToe-v0", "seed": 3,
            "seat_a": 0, "index": 0, "outcome_a": 1.0, "outcome_b": -1.0, "stop_reason": "game_over", "turns": 5}
    (tour / "games.jsonl").write_text(json.dumps(game) + "\n" + json.dumps(game | {"index": 1, "seat_a": 1}) + "\n")
    (tour / "replays.jsonl").write_text(json.dumps(game | {"moves": [{"seat": 0, "observation": "board", "action": "4"}],
                                                           "outcomes": {"0": 1.0, "1": -1.0}}) + "\n")
    (tour / "ratings.json").write_text(json.dumps({"env_id": "turngym/TicTacToe-v0", "games": 2, "ratings": [
        {"rank": 1, "player": "minimax", "elo": 1600.0, "low": 1550.0, "high": 1650.0}],
        "payoff": {"players": ["minimax", "random"], "mean_score": [[None, 1.0], [0.0, None]], "counts": [[0, 2], [2, 0]]}}))
    with ViewerThread([tmp_path / "runs", tour]) as viewer:
        runs = get(viewer.url + "api/runs")["runs"]
        assert [(r["id"], r["kind"]) for r in runs] == [("a", "run"), ("b", "run"), ("tour", "tournament")]
        summary = get(viewer.url + "api/runs/a/summary")["summary"]
        assert summary["evals"]["before"]["greedy"]["success"]["high"] == 0.5
        assert summary["evals"]["before"]["greedy"]["mean_outcome"]["value"] is None  # nan is not JSON
        assert get(viewer.url + "api/runs/tour/tournament")["payoff"]["mean_score"][0][1] == 1.0
        games = get(viewer.url + "api/runs/tour/games")
        assert games["total"] == 2 and [g["replay"] for g in games["games"]] == [True, False]
        replay = get(viewer.url + "api/runs/tour/replay?player_a=minimax&player_b=random&index=0")
        assert replay["moves"][0]["action"] == "4"
        with pytest.raises(urllib.error.HTTPError) as caught:
            get(viewer.url + "api/runs/tour/episodes")
        assert caught.value.code == 404


def test_other_addresses_need_a_token_and_every_api_call_carries_it(tmp_path):
    write_large_log(tmp_path / "r", steps=2, per_step=1, readable=set())
    with pytest.raises(ValueError, match=r"binding '127.0.0.2' shows the runs beyond this machine: give --token"):
        ViewerThread([tmp_path / "r"], host="127.0.0.2")
    with ViewerThread([tmp_path / "r"], host="127.0.0.2", token="s3cret") as viewer:
        assert viewer.url.endswith("/?token=s3cret")
        assert get(viewer.url.replace("/?", "/api/runs?"))["runs"][0]["id"] == "r"
        for url in (f"http://127.0.0.2:{viewer.port}/api/runs", f"http://127.0.0.2:{viewer.port}/api/runs?token=wrong"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                get(url)
            assert caught.value.code == 401
        request = urllib.request.Request(f"http://127.0.0.2:{viewer.port}/api/runs", headers={"Authorization": "Bearer s3cret"})
        assert json.loads(urllib.request.urlopen(request, timeout=30).read())["runs"]


def test_the_cli_names_a_folder_without_runs(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert main(["view", str(tmp_path), "--host", "0.0.0.0"]) == 2
    assert "give --token" in capsys.readouterr().err


def test_a_real_tournament_keeps_bounded_replays_the_viewer_serves(tmp_path):
    import turngym
    from turngym.training.tournament import run_tournament

    run_tournament("turngym/TicTacToe-v0", ["minimax", "random"], 4, tmp_path / "tour", plots=False)
    replays = [json.loads(line) for line in (tmp_path / "tour" / "replays.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in replays) == [0, 1]  # the first 2 of the pair's 4 games
    for replay in replays:  # the recorded moves replay to the recorded result
        env = turngym.make(replay["env_id"])
        obs, _ = env.reset(seed=replay["seed"])
        for move in replay["moves"]:
            assert move["observation"] == obs
            obs, *_, info = env.step(move["action"])
        assert {int(s): v for s, v in info["outcomes"].items()} == {int(s): v for s, v in replay["outcomes"].items()}
    with ViewerThread([tmp_path / "tour"]) as viewer:
        games = get(viewer.url + "api/runs/tour/games")["games"]
        assert sorted(g["index"] for g in games if g["replay"]) == [0, 1]
        shown = get(viewer.url + f"api/runs/tour/replay?player_a={games[0]['player_a']}&player_b={games[0]['player_b']}&index=0")
        assert shown["moves"] == next(r for r in replays if r["index"] == 0)["moves"]
        ratings = get(viewer.url + "api/runs/tour/tournament")
        assert {r["player"] for r in ratings["ratings"]} == {"minimax", "random"} and ratings["payoff"]["players"]


def test_turngym_view_serves_until_stopped_and_prints_its_url(tmp_path):
    import subprocess
    import sys

    write_large_log(tmp_path / "r", steps=2, per_step=1, readable={(1, 0)})
    proc = subprocess.Popen([sys.executable, "-m", "turngym.cli", "view", str(tmp_path / "r"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("turngym view: 1 source(s) on http://localhost:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" on ")[1].strip().replace("localhost", "127.0.0.1")
        assert get(url + "api/runs/r/episodes?step=1")["episodes"][0]["step"] == 1
        with urllib.request.urlopen(url, timeout=30) as page:
            assert b"<title>turngym view</title>" in page.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_run_still_training_shows_the_evaluations_of_its_last_checkpoint(tmp_path):
    write_large_log(tmp_path / "live", steps=2, per_step=1, readable=set())
    (tmp_path / "live" / "checkpoint").mkdir()
    before = {"greedy": {"success": {"value": 0.5, "low": 0.2, "high": 0.8, "count": 2, "n": 4}}}
    (tmp_path / "live" / "checkpoint" / "trainer_state.json").write_text(json.dumps({"step": 2, "evals": {"before": before}}))
    with ViewerThread([tmp_path / "live"]) as viewer:
        summary = get(viewer.url + "api/runs/live/summary")["summary"]
        assert summary == {"in_progress": True, "steps": 2, "evals": {"before": before}}

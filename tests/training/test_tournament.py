"""Round-robin tournaments: output files, resume, worker invariance, and the ratings they must show."""

from __future__ import annotations

import collections
import csv
import itertools
import json
from pathlib import Path

import pytest

from turngym.training.ratings import GameResult
from turngym.training.tournament import game_seed, run_tournament, tournament_main

TTT = "turngym/TicTacToe-v0"
KUHN = "turngym/KuhnPoker-v0"
TTT_AGENTS = ["random", "heuristic", "minimax"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def per_pair(path: Path) -> collections.Counter:
    return collections.Counter(GameResult.from_json(line).pair for line in lines(path))


def test_small_tournament_writes_every_file(tmp_path):
    result = run_tournament(TTT, TTT_AGENTS, 20, tmp_path, n_boot=200)
    for name in ("games.jsonl", "tournament.json", "ratings.json", "ratings.csv", "ratings.md", "ratings.png", "payoff.png"):
        assert (tmp_path / name).is_file(), name
    for png in ("ratings.png", "payoff.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert per_pair(tmp_path / "games.jsonl") == {("heuristic", "random"): 20, ("minimax", "random"): 20, ("heuristic", "minimax"): 20}
    assert result.new_games == 60 and len(result.games) == 60 and result.scoring == "game"
    assert sorted(result.players) == sorted(TTT_AGENTS)
    assert result.games_per_player == {p: 40 for p in TTT_AGENTS}

    # seats alternate on paired seeds: games 2k and 2k+1 of a pair share a seed, seats swapped
    for g in result.games:
        assert g.seat_a == g.index % 2
        assert g.seed == game_seed(0, g.player_a, g.player_b, g.index // 2)

    data = json.loads((tmp_path / "ratings.json").read_text())
    assert data["env_id"] == TTT and data["games"] == 60 and data["games_per_pair"] == 20
    assert [row["player"] for row in data["ratings"]] == result.players
    assert sum(row["elo"] for row in data["ratings"]) / 3 == pytest.approx(1500.0)
    for row in data["ratings"]:
        assert row["low"] <= row["elo"] <= row["high"]
    assert data["payoff"]["players"] == result.players
    assert data["payoff"]["counts"][0][1] == 20 and data["payoff"]["mean_score"][0][0] is None

    with open(tmp_path / "ratings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["player", "elo", "low", "high", "openskill_mu", "openskill_sigma", "games"]
    assert [r["player"] for r in rows] == result.players and all(r["games"] == "40" for r in rows)

    md = (tmp_path / "ratings.md").read_text()
    assert "| rank | player | Elo |" in md and "## Payoff matrix" in md
    for p in TTT_AGENTS:
        assert f"| {p} |" in md


def test_resume_plays_only_the_missing_games(tmp_path):
    first = run_tournament(TTT, TTT_AGENTS, 10, tmp_path, n_boot=50, plots=False)
    assert first.new_games == 30
    before = lines(tmp_path / "games.jsonl")
    second = run_tournament(TTT, TTT_AGENTS, 20, tmp_path, n_boot=50, plots=False)
    assert second.new_games == 30 and len(second.games) == 60
    after = lines(tmp_path / "games.jsonl")
    assert after[: len(before)] == before  # appended only: the first run's lines are unchanged
    assert after[:10] == before[:10]
    assert per_pair(tmp_path / "games.jsonl") == {("heuristic", "random"): 20, ("minimax", "random"): 20, ("heuristic", "minimax"): 20}
    keys = [(g.pair, g.index) for g in map(GameResult.from_json, after)]
    assert len(set(keys)) == len(keys) == 60
    # nothing left to play; a smaller N rates a subset and says so
    third = run_tournament(TTT, TTT_AGENTS, 20, tmp_path, n_boot=50, plots=False)
    assert third.new_games == 0 and len(third.games) == 60
    fewer = run_tournament(TTT, TTT_AGENTS[:2], 4, tmp_path, n_boot=50, plots=False)
    assert fewer.new_games == 0 and len(fewer.games) == 4 and fewer.ignored_games == 56
    assert lines(tmp_path / "games.jsonl") == after
    # resumed games equal games played in one go
    fresh = run_tournament(TTT, TTT_AGENTS, 20, tmp_path / "fresh", n_boot=50, plots=False)
    assert set(lines(tmp_path / "fresh" / "games.jsonl")) == set(after)
    assert fresh.ratings == second.ratings and fresh.intervals == second.intervals


def test_resume_drops_a_torn_last_line_and_refuses_other_settings(tmp_path):
    run_tournament(TTT, TTT_AGENTS[:2], 6, tmp_path, n_boot=20, plots=False)
    path = tmp_path / "games.jsonl"
    good = lines(path)
    path.write_text("\n".join(good[:-1]) + "\n" + good[-1][: len(good[-1]) // 2])  # crash mid-write
    again = run_tournament(TTT, TTT_AGENTS[:2], 6, tmp_path, n_boot=20, plots=False)
    assert again.new_games == 1
    assert sorted(lines(path)) == sorted(good)
    with pytest.raises(ValueError, match="seed"):
        run_tournament(TTT, TTT_AGENTS[:2], 6, tmp_path, seed=1, plots=False)
    with pytest.raises(ValueError, match="TicTacToe"):
        run_tournament(KUHN, ["random", "nash"], 6, tmp_path, plots=False)


def test_an_interrupted_run_keeps_its_games_and_resumes(tmp_path, monkeypatch):
    from turngym.training import play

    real = play.play_episode
    calls = {"n": 0}

    def flaky(env, agents, seed, **kw):
        calls["n"] += 1
        if calls["n"] == 8:
            raise OSError("model server went away")
        return real(env, agents, seed, **kw)

    monkeypatch.setattr(play, "play_episode", flaky)
    with pytest.raises(RuntimeError, match=r"game \d+ of .* failed: OSError: model server went away"):
        run_tournament(TTT, TTT_AGENTS, 6, tmp_path, plots=False)
    assert len(lines(tmp_path / "games.jsonl")) == 7  # every game finished before the failure is kept
    monkeypatch.setattr(play, "play_episode", real)
    resumed = run_tournament(TTT, TTT_AGENTS, 6, tmp_path, n_boot=20, plots=False)
    assert resumed.new_games == 11 and len(resumed.games) == 18


def test_two_workers_play_the_same_games_as_one(tmp_path):
    one = run_tournament(TTT, TTT_AGENTS, 12, tmp_path / "one", workers=1, seed=7, n_boot=50, plots=False)
    two = run_tournament(TTT, TTT_AGENTS, 12, tmp_path / "two", workers=2, seed=7, n_boot=50, plots=False)
    assert set(lines(tmp_path / "one" / "games.jsonl")) == set(lines(tmp_path / "two" / "games.jsonl"))
    assert one.games == two.games  # canonical order does not depend on finishing order
    assert one.ratings == two.ratings and one.intervals == two.intervals and one.openskill == two.openskill


def test_bad_arguments_fail_before_any_game(tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        run_tournament(TTT, ["random"], 10, tmp_path)
    with pytest.raises(ValueError, match="repeated"):
        run_tournament(TTT, ["random", "random"], 10, tmp_path)
    with pytest.raises(ValueError, match="unknown agent"):
        run_tournament(TTT, ["random", "minimaxx"], 10, tmp_path)
    with pytest.raises(ValueError, match="even"):
        run_tournament(KUHN, ["random", "nash"], 5, tmp_path)  # duplicate scoring needs seat-swapped pairs
    with pytest.raises(ValueError, match="workers"):
        run_tournament(TTT, ["random", "minimax"], 10, tmp_path, workers=0)
    assert not (tmp_path / "games.jsonl").exists()


def test_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tournament_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--env", "--agents", "--games", "--out", "--workers", "--seed", "resume"):
        assert option in text
    code = tournament_main(["--env", TTT, "--agents", "random,minimax", "--games", "4", "--out", str(tmp_path), "--no-plots", "--bootstrap", "20"])
    assert code == 0
    assert "minimax" in capsys.readouterr().out
    assert len(lines(tmp_path / "games.jsonl")) == 4
    assert tournament_main(["--env", TTT, "--agents", "random,nobody", "--out", str(tmp_path / "x")]) == 2


# ---------------------------------------------------------------------------------- must show
def assert_strictly_ordered(result, order: list[str]) -> None:
    assert result.players == order, result.ratings
    for better, worse in itertools.pairwise(order):
        assert result.intervals[better][0] > result.intervals[worse][1], (better, worse, result.intervals)


@pytest.mark.slow
def test_tictactoe_minimax_over_heuristic_over_random(tmp_path):
    result = run_tournament(TTT, TTT_AGENTS, 200, tmp_path, seed=0)
    assert_strictly_ordered(result, ["minimax", "heuristic", "random"])
    players, mean, counts = result.payoff
    assert all(counts[i][j] == 200 for i in range(3) for j in range(3) if i != j)
    minimax = players.index("minimax")
    assert all(mean[minimax][j] >= 0.5 for j in range(3) if j != minimax)  # perfect play never loses


@pytest.mark.slow
def test_kuhn_poker_nash_over_random(tmp_path):
    # Scored as duplicate matches (the default for games of chance). Exact expectations, by enumerating
    # the 6 deals: per hand, heuristic wins 0.208 chips from random, nash 0.139 from random, and
    # heuristic vs nash is exactly 0 (nash makes it indifferent) — so heuristic edges nash by beating
    # random harder. Duplicate-match scores: heuristic-random 0.708, nash-random 0.652, heuristic-nash 0.5.
    result = run_tournament(KUHN, ["random", "nash", "heuristic"], 400, tmp_path, seed=0)
    assert result.scoring == "duplicate" and len(result.rated) == 600
    assert result.ratings["nash"] > result.ratings["random"]
    assert result.intervals["nash"][0] > result.intervals["random"][1]
    assert result.intervals["heuristic"][0] > result.intervals["random"][1]
    assert result.players == ["heuristic", "nash", "random"]

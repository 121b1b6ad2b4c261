"""ConnectFourEnv: parsing, rendering, determinism, outcomes, registration."""

from __future__ import annotations

import pytest

import turngym  # noqa: F401  (registers the ids)
from turngym.envs.games.connect_four import ConnectFourEnv
from turngym.envs.types import StopReason

# A full board with no four in a row (found once by random play; checked against OpenSpiel below).
DRAW_GAME = "461547114517541355666172452242736227373363"


def new_env(seed: int = 0, **kwargs) -> ConnectFourEnv:
    env = ConnectFourEnv(**kwargs)
    env.reset(seed=seed)
    return env


def play(env: ConnectFourEnv, moves) -> dict:
    info: dict = {}
    for move in moves:
        _, _, _, _, info = env.step(move)
    return info


@pytest.mark.parametrize(
    "text, action",
    [
        ("4", 3),
        ("[4]", 3),
        ("column 4", 3),
        ("Column 4.", 3),
        ("drop 4", 3),
        ("drop in column 4", 3),
        ("col 7", 6),
        ("\\boxed{1}", 0),
        ("I play [2]", 1),
        ("  5\n", 4),
    ],
)
def test_accepted_spellings(text, action):
    move, problem = new_env()._parse_move(text)
    assert problem is None
    assert move == action


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("8", "no column 8"),
        ("[0]", "no column 0"),
        ("column four", "could not read"),
        ("[3] or [4]", "several moves"),
        ("the middle one", "could not read"),
    ],
)
def test_rejected_text(text, fragment):
    env = new_env(error_allowance=1)
    obs, reward, terminated, _, info = env.step(text)
    assert info["turn"].valid_action is False
    assert not terminated and reward == 0.0
    assert fragment in obs
    assert env.action_format in obs
    assert env.current_seat == 0  # the same seat moves again


def test_full_column_is_rejected_with_reason():
    env = new_env(error_allowance=1)
    play(env, ["4"] * 6)
    obs, _, _, _, info = env.step("4")
    assert info["turn"].valid_action is False
    assert "column 4 is full" in obs
    assert "4" not in info["legal_actions"]
    assert "Open columns: 1 2 3 5 6 7." in obs


def test_invalid_move_forfeits_by_default():
    env = new_env()
    _, reward, terminated, _, info = env.step("nonsense")
    assert terminated and reward == -1.5
    assert info["outcomes"] == {0: -1.5, 1: 0.5}
    assert info["turn"].stop_reason == StopReason.INVALID_ACTION


SNAPSHOT_O = """\
X: dropped a disc in column 3

 1 2 3 4 5 6 7
 . . . . . . .
 . . . . . . .
 . . . . . . .
 . . . . . . .
 . . . O . . .
 . . X X . . .

You are O. Open columns: 1 2 3 4 5 6 7.
Reply with the number of one open column (1-7) in brackets, e.g. [4]."""

SNAPSHOT_X_WAITING = """\
 1 2 3 4 5 6 7
 . . . . . . .
 . . . . . . .
 . . . . . . .
 . . . . . . .
 . . . O . . .
 . . X X . . .

You are X. Waiting for the opponent."""


def test_render_snapshot():
    env = new_env(seed=3)
    obs = None
    for move in ["4", "4", "3"]:
        obs, *_ = env.step(move)
    assert obs == SNAPSHOT_O
    assert env.observe(1) == SNAPSHOT_O
    assert env.observe(0) == SNAPSHOT_X_WAITING


def test_reset_observation_and_info():
    env = ConnectFourEnv()
    obs, info = env.reset(seed=0)
    assert info["seat"] == 0
    assert info["legal_actions"] == [str(c) for c in range(1, 8)]
    assert info["system_prompt"] == env.system_prompt
    assert obs.startswith(" 1 2 3 4 5 6 7\n")
    assert "Open columns: 1 2 3 4 5 6 7." in obs


def test_determinism_same_seed_same_episode():
    def episode(seed):
        env = ConnectFourEnv()
        out = [env.reset(seed=seed)[0]]
        for move in "4453627":
            obs, reward, terminated, truncated, info = env.step(move)
            out.append((obs, reward, terminated, truncated, info["turn"].to_dict()))
        return out

    assert episode(11) == episode(11)


def test_vertical_win_outcome():
    env = new_env()
    info = play(env, ["1", "2", "1", "2", "1", "2"])
    assert "outcomes" not in info
    obs, reward, terminated, _, info = env.step("1")
    assert terminated and reward == 1.0
    assert info["outcomes"] == {0: 1.0, 1: -1.0}
    assert info["turn"].stop_reason == StopReason.GAME_OVER
    assert "you won" in obs and "Open columns" not in obs
    assert "you lost" in env.observe(1)
    assert "Open columns" not in env.observe(1)


def test_second_player_win_outcome():
    env = new_env()
    info = play(env, ["1", "2", "1", "2", "1", "2", "7", "2"])
    assert info["outcomes"] == {0: -1.0, 1: 1.0}


def test_draw_outcome_on_full_board():
    env = new_env()
    info = play(env, list(DRAW_GAME))
    assert env.done and env.state.is_terminal()
    assert info["outcomes"] == {0: 0.0, 1: 0.0}
    assert "draw" in env.observe(0)
    assert "." not in "".join("".join(r) for r in env.board_rows())


"""The seat-based game contract: whose turn, per-seat rewards, VsOpponent, PettingZoo adapter."""

import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test

import turngym
from turngym.envs.core import EpisodeOver
from turngym.envs.pettingzoo_adapter import TurnGameAEC
from turngym.envs.types import StopReason


def first_free(game) -> str:
    return f"[{game._legal_moves()[0]}]"


def test_gymnasium_check_env_passes_on_every_game(game_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium's passive warnings count as failures here
        check_env(gymnasium.make(game_id).unwrapped, skip_render_check=True)


def test_pettingzoo_api_test_passes_on_every_game(game_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api_test warns that text observations are not numpy arrays
        api_test(TurnGameAEC(gymnasium.make(game_id).unwrapped), num_cycles=300)


def test_hot_seat_reports_whose_turn_and_per_seat_rewards():
    env = gymnasium.make("turngym/TicTacToe-v0")
    _, info = env.reset(seed=0)
    assert info["seat"] == 0 and info["legal_actions"] == [str(i) for i in range(1, 10)]
    # X takes the top row while O plays 4 and 5.
    for move, seat in (("1", 0), ("4", 1), ("2", 0), ("5", 1)):
        _, reward, terminated, _, info = env.step(move)
        assert info["turn"].seat == seat and reward == 0.0 and not terminated
    _, reward, terminated, _, info = env.step("3")
    assert terminated and reward == 1.0
    assert info["outcomes"] == {0: 1.0, 1: -1.0}
    assert info["seat_rewards"] == {0: 1.0, 1: -1.0}
    assert info["turn"].stop_reason is StopReason.GAME_OVER and info["turn"].outcome == 1.0
    game = env.unwrapped
    obs, pending, term, trunc, _ = game.last(1)  # the loser learns it at its next look
    assert pending == -1.0 and term and not trunc and "you lost" in obs
    with pytest.raises(EpisodeOver):
        env.step("9")


def test_invalid_move_forfeits_with_spiral_rewards():
    env = gymnasium.make("turngym/TicTacToe-v0")
    env.reset(seed=0)
    env.step("5")
    obs, reward, terminated, _, info = env.step("5")  # O plays the taken centre
    assert terminated and reward == -1.5
    assert info["outcomes"] == {0: 0.5, 1: -1.5}
    assert info["turn"].stop_reason is StopReason.INVALID_ACTION and not info["turn"].valid_action
    assert "cell 5 is already taken by X" in obs
    assert "Answer with one free cell number in brackets, like [5]." in obs


def test_error_allowance_lets_the_same_seat_retry():
    env = gymnasium.make("turngym/TicTacToe-v0", error_allowance=1, invalid_move_penalty=-1.0, invalid_move_bonus=0.0)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("banana")
    assert not terminated and reward == 0.0 and info["seat"] == 0 and not info["turn"].valid_action
    assert "Try again (0 more invalid move(s) allowed)" in obs
    _, reward, terminated, _, info = env.step("banana")
    assert terminated and info["outcomes"] == {0: -1.0, 1: 0.0}


def test_turn_limit_truncates_as_a_draw_with_outcome():
    env = turngym.make("turngym/TicTacToe-v0", max_turns=3)
    env.reset(seed=0)
    env.step("1")
    env.step("5")
    obs, reward, terminated, truncated, info = env.step("9")
    record = info["turn"]
    assert truncated and not terminated
    assert record.outcome == 0.0 and record.stop_reason is StopReason.TURN_LIMIT
    assert info["outcomes"] == {0: 0.0, 1: 0.0}
    assert "The episode ended: turn limit." in obs


def test_vs_opponent_plays_the_other_seat_and_delivers_the_agents_outcome():
    # Opponent always takes the lowest free cell; agent (O, seed 1) plays 5 then 9, letting X win on the top row.
    env = turngym.make("turngym/TicTacToe-v0", opponent=first_free)
    obs, info = env.reset(seed=1)
    assert info["game_seat"] == 1 and "X: played 1" in obs
    obs, reward, terminated, _, info = env.step("[5]")
    assert not terminated and "X: played 2" in obs
    obs, reward, terminated, _, info = env.step("[9]")
    assert terminated and reward == -1.0 and info["turn"].outcome == -1.0 and info["turn"].seat == 1
    assert "you lost" in obs


def test_vs_opponent_seat_follows_the_seed_unless_fixed():
    env = turngym.make("turngym/TicTacToe-v0", opponent=first_free)
    assert env.reset(seed=4)[1]["game_seat"] == 0
    assert env.reset(seed=7)[1]["game_seat"] == 1
    env = turngym.make("turngym/TicTacToe-v0", opponent=first_free, agent_seat=1)
    assert env.reset(seed=4)[1]["game_seat"] == 1


def test_observations_are_pure():
    env = gymnasium.make("turngym/KuhnPoker-v0")
    env.reset(seed=3)
    game = env.unwrapped
    assert game.observe(0) == game.observe(0)
    assert game.observe(1) == game.observe(1)


def test_fork_is_independent_of_the_original():
    env = gymnasium.make("turngym/TicTacToe-v0")
    env.reset(seed=0)
    env.step("1")
    game = env.unwrapped
    twin = game.fork()
    twin.step("5")
    assert game.observe(1) != twin.observe(0)
    assert game._legal_moves() == [str(i) for i in range(2, 10)]

"""LiarsDiceEnv: parsing, rendering, hidden dice, determinism, outcomes, registration."""

from __future__ import annotations

import numpy as np
import pytest

import turngym  # registers the ids
from turngym.envs.games.liars_dice import LiarsDiceEnv

# Seeded rolls (checked in test_seeded_rolls): seed -> (seat 0 die, seat 1 die).
ROLLS = {0: (4, 2), 1: (4, 6), 2: (2, 2), 3: (1, 2), 5: (5, 5), 6: (4, 3), 9: (6, 2)}


def new_env(seed: int = 0, **kwargs) -> LiarsDiceEnv:
    env = LiarsDiceEnv(**kwargs)
    env.reset(seed=seed)
    return env


def play(env: LiarsDiceEnv, moves) -> dict:
    info: dict = {}
    for move in moves:
        _, _, _, _, info = env.step(move)
    return info


def test_seeded_rolls():
    for seed, (d0, d1) in ROLLS.items():
        env = new_env(seed)
        assert env.dice(0) == [d0] and env.dice(1) == [d1]


def test_labels():
    env = new_env()
    assert env._legal_moves() == [f"{q}-{f}" for q in (1, 2) for f in range(1, 7)]
    env.step("1-4")
    assert env._legal_moves() == ["1-5", "1-6"] + [f"2-{f}" for f in range(1, 7)] + ["liar"]


@pytest.mark.parametrize(
    "text, action",
    [
        ("1-5", 4),
        ("[1-5]", 4),
        ("1 5", 4),
        ("1x5", 4),
        ("1 x 5", 4),
        ("bid 1-5", 4),
        ("bid 1 5", 4),
        ("Bid 2-6.", 11),
        ("\\boxed{2-1}", 6),
        ("liar", 12),
        ("[Liar]", 12),
        ("Liar!", 12),
        ("call liar", 12),
        ("challenge", 12),
    ],
)
def test_accepted_spellings(text, action):
    env = new_env()
    env.step("1-4")
    move, problem = env._parse_move(text)
    assert problem is None and move == action


@pytest.mark.parametrize(
    "prefix, text, fragment",
    [
        ([], "", "empty"),
        ([], "liar", "no bid to call liar on"),
        ([], "3-4", "quantity must be between 1 and 2"),
        ([], "1-7", "face 7 does not exist"),
        (["1-4"], "1-3", "not higher than the current bid 1-4"),
        (["1-4"], "bid 1 4", "not higher than the current bid 1-4"),
        (["1-4"], "one five", "could not read"),
        (["1-4"], "[1-5] [liar]", "several moves"),
    ],
)
def test_rejected_text(prefix, text, fragment):
    env = new_env(error_allowance=1)
    play(env, prefix)
    seat = env.current_seat
    obs, reward, terminated, _, info = env.step(text)
    assert info["turn"].valid_action is False
    assert not terminated and reward == 0.0
    assert fragment in obs
    assert env.action_format in obs
    assert env.current_seat == seat


SNAPSHOT_P1 = """\
Player 0: bids 1-4

You are Player 1. Your die: 6.
Bids so far: Player 0 bid 1-4.
Current bid: 1-4 (Player 0's claim: at least 1 die shows 4, sixes wild).
Legal bids: 1-5, 1-6, 2-1 … 2-6; or call [liar].
Reply with one legal move in brackets: a bid quantity-face such as [1-4], or [liar]."""

SNAPSHOT_P1_WAITING = """\
You are Player 1. Your die: 6.
Bids so far: Player 0 bid 1-4, you bid 1-6.
Current bid: 1-6 (your claim: at least 1 die shows 6, sixes wild).
Waiting for the opponent."""

SNAPSHOT_P0_END = """\
Player 1: calls liar

You are Player 0. Your die: 4.
Bids so far: you bid 1-4, Player 1 bid 1-6, you bid 2-4.
Current bid: 2-4 (your claim: at least 2 dice show 4, sixes wild).
Player 1 called liar. Dice revealed: you: 4; Player 1: 6.
2 dice match face 4 (sixes wild): the bid 2-4 holds.

Game over (game_over): you won; your reward +1."""


def test_render_snapshots():
    env = LiarsDiceEnv()
    obs, _ = env.reset(seed=1)
    assert obs == (
        "You are Player 0. Your die: 4.\n"
        "No bids yet.\n"
        "Legal bids: 1-1 … 1-6, 2-1 … 2-6.\n"
        "Reply with one legal move in brackets: a bid quantity-face such as [1-4], or [liar]."
    )
    obs, *_ = env.step("1-4")
    assert obs == SNAPSHOT_P1
    env.step("1-6")
    assert env.observe(1) == SNAPSHOT_P1_WAITING
    env.step("2-4")
    obs, *_ = env.step("liar")
    assert env.observe(0) == SNAPSHOT_P0_END


def test_highest_bid_leaves_only_liar():
    env = new_env(1)
    obs, _, _, _, info = env.step("2-6")
    assert info["legal_actions"] == ["liar"]
    assert "No higher bid is possible: you must call [liar]." in obs


PATHS = [["1-1", "1-3", "2-2", "liar"], ["2-5", "liar"], ["1-6", "2-1", "2-6", "liar"]]


@pytest.mark.parametrize("seat, a, b", [(0, 0, 1), (0, 0, 6), (1, 0, 9), (1, 2, 9)])
def test_opponent_dice_never_shown_before_the_end(seat, a, b):
    assert ROLLS[a][seat] == ROLLS[b][seat] and ROLLS[a][1 - seat] != ROLLS[b][1 - seat]
    for path in PATHS:
        env_a, env_b = new_env(a), new_env(b)
        for move in path:
            env_a.step(move)
            env_b.step(move)
            if env_a.done:
                assert "Dice revealed" in env_a.observe(seat)
                break
            assert env_a.observe(seat) == env_b.observe(seat)
            assert "Dice revealed" not in env_a.observe(seat)


def test_forfeit_does_not_reveal_dice():
    env = new_env(0)
    env.step("1-4")
    env.step("gibberish")
    assert env.done
    assert "Dice revealed" not in env.observe(0) and "Dice revealed" not in env.observe(1)


def test_determinism_same_seed_same_episode():
    def episode(seed):
        env = LiarsDiceEnv()
        out = [env.reset(seed=seed)]
        for move in ["1-3", "1-5", "2-2", "liar"]:
            obs, reward, terminated, truncated, info = env.step(move)
            out.append((obs, reward, terminated, truncated, info["turn"].to_dict(), info.get("outcomes")))
        return out

    assert episode(8) == episode(8)
    assert len({tuple(new_env(seed).state.history()) for seed in range(20)}) > 1


@pytest.mark.parametrize(
    "seed, moves, outcomes",
    [
        (0, ["1-4", "liar"], {0: 1.0, 1: -1.0}),  # 4 and 2: one 4, the bid holds
        (0, ["1-4", "2-4", "liar"], {0: 1.0, 1: -1.0}),  # only one 4: seat 1 bluffed
        (1, ["2-4", "liar"], {0: 1.0, 1: -1.0}),  # 4 and a wild 6 make two 4s
        (3, ["2-5", "liar"], {0: -1.0, 1: 1.0}),  # 1 and 2: no 5 at all
        (5, ["1-1", "2-5", "liar"], {0: -1.0, 1: 1.0}),  # two 5s: seat 1's bid holds
    ],
)
def test_outcomes(seed, moves, outcomes):
    env = new_env(seed)
    info = play(env, moves)
    assert info["outcomes"] == outcomes
    assert info["turn"].outcome == outcomes[info["turn"].seat]


def test_reveal_matches_openspiel_result():
    (low, high) = turngym.spec("turngym/LiarsDice-v0").reward_bounds
    rng = np.random.default_rng(0)
    env = LiarsDiceEnv()
    for seed in range(80):
        env.reset(seed=seed)
        while not env.done:
            env.step(env.sample_valid_action(rng))
        bidder = env._bids[-1][0]
        holds = "holds." in env.observe(0)
        assert env.outcomes[bidder] == (1.0 if holds else -1.0)
        assert all(low <= r <= high for r in env.outcomes.values())


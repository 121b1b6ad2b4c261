"""NegotiationEnv: seeded pools, parsing, rendering, private values, zero-sum outcomes, registration."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import turngym  # registers the ids
from turngym.envs.games.negotiation import NegotiationEnv

# Seed 1 (checked in test_seeded_negotiation): pool 3 books, 1 hat, 2 balls; 7 moves.
SEED1 = {"pool": (3, 1, 2), "values": ((8, 2, 7), (2, 10, 6)), "moves": 7}


def new_env(seed: int = 1, **kwargs) -> NegotiationEnv:
    env = NegotiationEnv(**kwargs)
    env.reset(seed=seed)
    return env


def play(env: NegotiationEnv, moves) -> dict:
    info: dict = {}
    for move in moves:
        _, _, _, _, info = env.step(move)
    return info


def test_seeded_negotiation():
    env = new_env(1)
    assert env.pool() == SEED1["pool"]
    assert (env.values(0), env.values(1)) == SEED1["values"]
    assert env.max_moves() == SEED1["moves"]


def test_reset_is_deterministic_by_seed():
    a, b = NegotiationEnv(), NegotiationEnv()
    obs_a, info_a = a.reset(seed=123)
    a.reset(seed=5)  # an unrelated episode in between must not matter
    obs_a2, _ = a.reset(seed=123)
    obs_b, info_b = b.reset(seed=123)
    assert obs_a == obs_a2 == obs_b
    assert info_a == info_b
    assert a.observe(1) == b.observe(1)
    setups = set()
    for seed in range(12):
        env = new_env(seed)
        setups.add((env.pool(), env.values(0), env.values(1), env.max_moves()))
    assert len(setups) > 6


def test_same_seed_same_episode():
    def episode(seed):
        env = NegotiationEnv()
        out = [env.reset(seed=seed)]
        while not env.done:
            move = env._legal_moves()[len(out) % len(env._legal_moves())]
            obs, reward, terminated, truncated, info = env.step(move)
            out.append((obs, reward, terminated, truncated, info["turn"].to_dict(), info.get("outcomes")))
        return out

    assert episode(42) == episode(42)


def test_fork_continues_identically():
    env = new_env(3)
    env.step(env._legal_moves()[5])
    twin = env.fork()
    for move in [env._legal_moves()[2], "accept"]:
        assert env.step(move)[0] == twin.step(move)[0]
    assert env.outcomes == twin.outcomes


@pytest.mark.parametrize(
    "text, keep",
    [
        ("propose 1 0 2", (1, 0, 2)),
        ("[propose 1 0 2]", (1, 0, 2)),
        ("Propose 1 0 2.", (1, 0, 2)),
        ("1 0 2", (1, 0, 2)),
        ("[1, 0, 2]", (1, 0, 2)),
        ("propose [1,0,2]", (1, 0, 2)),
        ("I propose 1, 0, 2", (1, 0, 2)),
        ("keep 3 1 2", (3, 1, 2)),
        ("offer 0 0 0", (0, 0, 0)),
        ("\\boxed{2 1 0}", (2, 1, 0)),
    ],
)
def test_accepted_proposal_spellings(text, keep):
    env = new_env(1)
    move, problem = env._parse_move(text)
    assert problem is None
    assert env.proposal_of(move) == keep
    assert move == keep[0] * 36 + keep[1] * 6 + keep[2]  # OpenSpiel's encoding (base 6)


@pytest.mark.parametrize("text", ["accept", "[accept]", "Accept.", "agree", "deal", "I accept", "accept the deal"])
def test_accepted_accept_spellings(text):
    env = new_env(1)
    env.step("propose 1 0 2")
    move, problem = env._parse_move(text)
    assert problem is None and move == env.agree_action


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("accept", "no proposal to accept"),
        ("propose 4 0 0", "cannot keep 4 books: the pool has only 3 books"),
        ("[1, 2, 0]", "cannot keep 2 hats: the pool has only 1 hat"),
        ("propose 1 2", "exactly 3 numbers"),
        ("I want all the books", "could not read"),
        ("[propose 1 0 2] [propose 0 0 0]", "several moves"),
    ],
)
def test_rejected_text(text, fragment):
    env = new_env(1, error_allowance=1)
    obs, reward, terminated, _, info = env.step(text)
    assert info["turn"].valid_action is False
    assert not terminated and reward == 0.0
    assert fragment in obs
    assert env.action_format in obs
    # The corrective message summarises the proposals instead of listing all of them.
    assert "Legal moves: propose B H L with 0-3 books, 0-1 hats, 0-2 balls." in obs
    assert len(re.findall(r"propose \d", obs)) <= 3  # the format example and moves quoted back


def test_legal_moves_list_every_proposal():
    env = new_env(1)
    moves = env._legal_moves()
    assert len(moves) == math.prod(n + 1 for n in SEED1["pool"]) == 24
    assert moves[0] == "propose 0 0 0" and moves[-1] == "propose 3 1 2"
    assert "accept" not in moves
    env.step("propose 3 1 2")
    assert env._legal_moves()[-1] == "accept" and len(env._legal_moves()) == 25


SNAPSHOT_RESET = """\
You are Player 0. Item pool: 3 books, 1 hat, 2 balls.
Your private values per item: book 8, hat 2, ball 7 (the whole pool is worth 40 to you).
No proposal yet.
Moves left (including this one): 7.
Your move: [propose B H L] with the books, hats and balls you keep (0-3 books, 0-1 hats, 0-2 balls); \
the opponent gets the rest."""

SNAPSHOT_P1 = """\
Player 0: proposes to keep 2 books, 1 hat, 1 ball

You are Player 1. Item pool: 3 books, 1 hat, 2 balls.
Your private values per item: book 2, hat 10, ball 6 (the whole pool is worth 28 to you).
Latest proposal (Player 0's): they keep 2 books, 1 hat, 1 ball; you get 1 book, 0 hats, 1 ball. \
Worth 8 to you if you accept.
Moves left (including this one): 6.
Your move: [propose B H L] with the books, hats and balls you keep (0-3 books, 0-1 hats, 0-2 balls); \
the opponent gets the rest; or [accept] the latest proposal."""

SNAPSHOT_P0_WAITING = """\
You are Player 0. Item pool: 3 books, 1 hat, 2 balls.
Your private values per item: book 8, hat 2, ball 7 (the whole pool is worth 40 to you).
Latest proposal (yours): you keep 2 books, 1 hat, 1 ball; Player 1 gets 1 book, 0 hats, 1 ball. \
Worth 25 to you.
Moves left: 6. Waiting for the opponent."""

SNAPSHOT_P1_END = """\
Player 0: accepts the latest proposal

You are Player 1. Item pool: 3 books, 1 hat, 2 balls.
Your private values per item: book 2, hat 10, ball 6 (the whole pool is worth 28 to you).
Latest proposal (yours): you keep 1 book, 0 hats, 2 balls; Player 0 gets 2 books, 1 hat, 0 balls. \
Worth 14 to you.
Deal reached. Your deal value: 14; Player 0's deal value: 18 (their values per item: book 8, hat 2, ball 7).

Game over (game_over): you lost; your reward -1."""


def test_render_snapshots():
    env = NegotiationEnv()
    obs, _ = env.reset(seed=1)
    assert obs == SNAPSHOT_RESET
    obs, *_ = env.step("propose 2 1 1")
    assert obs == SNAPSHOT_P1
    assert env.observe(0) == SNAPSHOT_P0_WAITING
    env.step("propose 1 0 2")
    env.step("accept")
    assert env.observe(1) == SNAPSHOT_P1_END


def _values_text(values) -> str:
    return f"book {values[0]}, hat {values[1]}, ball {values[2]}"


@pytest.mark.parametrize("seed", range(8))
def test_opponent_values_never_shown_before_the_end(seed):
    rng = np.random.default_rng(seed)
    env = new_env(seed)
    while True:
        for seat in (0, 1):
            obs = env.observe(seat)
            mine, theirs = env.values(seat), env.values(1 - seat)
            assert "util vec" not in obs and "Agent" not in obs
            if env.state.is_terminal():
                if env.agreed():
                    assert _values_text(theirs) in obs
                continue
            assert "their values" not in obs
            if theirs != mine:
                assert _values_text(theirs) not in obs
        if env.done:
            break
        env.step(env.sample_valid_action(rng))


@pytest.mark.parametrize(
    "seed, moves, deal, outcomes",
    [
        (1, ["propose 2 1 1", "propose 1 0 2", "accept"], [18, 14], {0: 1.0, 1: -1.0}),
        (1, ["propose 3 1 2", "accept"], [40, 0], {0: 1.0, 1: -1.0}),
        (1, ["propose 0 0 0", "accept"], [0, 28], {0: -1.0, 1: 1.0}),
        (8, ["propose 1 2 0", "accept"], [26, 26], {0: 0.0, 1: 0.0}),  # equal deal values: a draw
    ],
)
def test_zero_sum_outcomes(seed, moves, deal, outcomes):
    env = new_env(seed)
    info = play(env, moves)
    assert env.agreed()
    assert env.deal_values() == deal  # OpenSpiel's returns
    assert info["outcomes"] == outcomes
    assert info["turn"].outcome == outcomes[info["turn"].seat]


def test_no_deal_is_a_draw():
    env = new_env(1)
    info: dict = {}
    for _ in range(SEED1["moves"]):
        assert not env.done
        _, _, _, _, info = env.step("propose 3 1 2")
    assert env.state.is_terminal() and not env.agreed()
    assert info["outcomes"] == {0: 0.0, 1: 0.0}
    assert "No deal" in env.observe(0)


def test_last_move_is_announced():
    env = new_env(1)
    play(env, ["propose 3 1 2"] * (SEED1["moves"] - 1))
    assert "This is the last move" in env.observe(env.current_seat)


def test_outcomes_within_registered_bounds():
    (low, high) = turngym.spec("turngym/Negotiation-v0").reward_bounds
    rng = np.random.default_rng(0)
    env = NegotiationEnv()
    for seed in range(40):
        env.reset(seed=seed)
        while not env.done:
            env.step(env.sample_valid_action(rng))
        assert all(low <= r <= high for r in env.outcomes.values())
        assert sum(env.outcomes.values()) == 0


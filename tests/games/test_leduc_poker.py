"""LeducPokerEnv: parsing, rendering, hidden cards, determinism, outcomes, registration."""

from __future__ import annotations

import numpy as np
import pytest

import turngym  # registers the ids
from turngym.envs.games.leduc_poker import LeducPokerEnv, card_name

# Seeded deals (checked in test_seeded_deals): seed -> (seat 0 card, seat 1 card, public card).
DEALS = {
    0: (3, 1, 0),  # Q hearts vs J hearts, public J spades
    1: (3, 5, 0),
    4: (5, 2, 4),  # K hearts vs Q spades, public K spades
    5: (4, 5, 2),  # K spades vs K hearts, public Q spades: split pot
    12: (1, 5, 0),
    16: (3, 2, 0),
    27: (4, 1, 0),
}


def new_env(seed: int = 0, **kwargs) -> LeducPokerEnv:
    env = LeducPokerEnv(**kwargs)
    env.reset(seed=seed)
    return env


def play(env: LeducPokerEnv, moves) -> dict:
    info: dict = {}
    for move in moves:
        _, _, _, _, info = env.step(move)
    return info


def test_card_names():
    assert [card_name(c) for c in range(6)] == [
        "Jack of spades", "Jack of hearts", "Queen of spades",
        "Queen of hearts", "King of spades", "King of hearts",
    ]


def test_seeded_deals():
    for seed, (c0, c1, public) in DEALS.items():
        env = new_env(seed)
        assert (env.private_card(0), env.private_card(1), env.public_card()) == (c0, c1, None)
        play(env, ["check", "check"])
        assert env.public_card() == public and env.round() == 2


@pytest.mark.parametrize(
    "prefix, text, action",
    [
        ([], "call", 1),
        ([], "check", 1),
        ([], "[Check]", 1),
        ([], "raise", 2),
        ([], "bet", 2),
        ([], "\\boxed{raise}", 2),
        (["raise"], "fold", 0),
        (["raise"], "[call]", 1),
        (["raise"], "I choose raise", 2),
        (["check", "check"], "check", 1),  # round 2, nothing owed
        (["check", "check"], "bet", 2),
    ],
)
def test_accepted_spellings(prefix, text, action):
    env = new_env()
    play(env, prefix)
    move, problem = env._parse_move(text)
    assert problem is None and move == action


@pytest.mark.parametrize(
    "prefix, text, fragment",
    [
        ([], "", "empty"),
        ([], "fold", "folding is not allowed"),
        ([], "all in", "could not read"),
        ([], "[call] [raise]", "several moves"),
        (["raise"], "check", "you owe 2 chips"),
        (["raise"], "bet", "could not read"),
        (["raise", "raise"], "raise", "raise limit"),
        (["check", "check", "raise"], "check", "you owe 4 chips"),
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


SNAPSHOT_RESET = """\
You are Player 0. Your card: Queen of hearts.
Public card: not revealed yet (it is revealed after round 1).
Round 1 betting: none yet.
Pot: 2 chips (you 1, Player 1 1).
Round 1. Nothing owed (call = check). Your move: [call], [raise]."""

SNAPSHOT_ROUND2_P0 = """\
Player 1: calls 2 chips

You are Player 0. Your card: Queen of hearts.
Public card: Jack of spades.
Round 1 betting: you checked, Player 1 bet, you raised, Player 1 called.
Round 2 betting: none yet.
Pot: 10 chips (you 5, Player 1 5).
Round 2. Nothing owed (call = check). Your move: [call], [raise]."""

SNAPSHOT_ROUND2_P1_WAITING = """\
You are Player 1. Your card: Jack of hearts.
Public card: Jack of spades.
Round 1 betting: Player 0 checked, you bet, Player 0 raised, you called.
Round 2 betting: none yet.
Pot: 10 chips (you 5, Player 0 5).
Round 2. Waiting for the opponent."""

SNAPSHOT_SHOWDOWN_P1 = """\
Player 0: calls 4 chips

You are Player 1. Your card: Jack of hearts.
Public card: Jack of spades.
Round 1 betting: Player 0 checked, you bet, Player 0 raised, you called.
Round 2 betting: Player 0 bet, you raised, Player 0 called.
Pot: 26 chips (you 13, Player 0 13).
Showdown: your Jack of hearts against Player 0's Queen of hearts.

Game over (game_over): you won; your reward +13."""


def test_render_snapshots():
    env = LeducPokerEnv()
    obs, _ = env.reset(seed=0)
    assert obs == SNAPSHOT_RESET
    obs = None
    for move in ["check", "bet", "raise", "call"]:
        obs, *_ = env.step(move)
    assert obs == SNAPSHOT_ROUND2_P0
    assert env.observe(1) == SNAPSHOT_ROUND2_P1_WAITING
    info = play(env, ["bet", "raise", "call"])
    assert info["outcomes"] == {0: -13.0, 1: 13.0}  # the largest possible pot
    # Seat 1 last acted with its raise: its view opens with Player 0's call.
    assert env.observe(1) == SNAPSHOT_SHOWDOWN_P1


PATHS = [
    ["check", "check", "check", "check"],
    ["raise", "call", "bet", "raise", "fold"],
    ["check", "raise", "raise", "call", "check", "bet", "call"],
    ["raise", "fold"],
]


@pytest.mark.parametrize("seat, a, b", [(0, 0, 1), (0, 0, 16), (1, 1, 12), (1, 0, 27)])
def test_opponent_card_never_shown_before_showdown(seat, a, b):
    assert DEALS[a][seat] == DEALS[b][seat] and DEALS[a][1 - seat] != DEALS[b][1 - seat]
    assert DEALS[a][2] == DEALS[b][2]
    hidden_a = card_name(DEALS[a][1 - seat])
    for path in PATHS:
        env_a, env_b = new_env(a), new_env(b)
        for move in path:
            env_a.step(move)
            env_b.step(move)
            if env_a.showdown():
                assert hidden_a in env_a.observe(seat)
                break
            assert env_a.observe(seat) == env_b.observe(seat)
            if hidden_a != card_name(DEALS[a][seat]) and hidden_a != card_name(DEALS[a][2]):
                assert hidden_a not in env_a.observe(seat)


def test_fold_keeps_cards_hidden():
    env = new_env(0)
    play(env, ["raise", "fold"])
    assert env.done
    assert "Player 1 folded; the cards are not shown." in env.observe(0)
    assert "Jack of hearts" not in env.observe(0)


def test_determinism_same_seed_same_episode():
    def episode(seed):
        env = LeducPokerEnv()
        out = [env.reset(seed=seed)]
        for move in ["raise", "call", "check", "bet", "call"]:
            obs, reward, terminated, truncated, info = env.step(move)
            out.append((obs, reward, terminated, truncated, info["turn"].to_dict(), info.get("outcomes")))
        return out

    assert episode(3) == episode(3)
    assert len({new_env(seed).observe(0) for seed in range(20)}) > 1


@pytest.mark.parametrize(
    "seed, moves, outcomes",
    [
        (0, ["check", "check", "check", "check"], {0: -1.0, 1: 1.0}),  # J pairs the public J
        (0, ["bet", "fold"], {0: 1.0, 1: -1.0}),
        (0, ["raise", "raise", "fold"], {0: -3.0, 1: 3.0}),
        (0, ["check", "check", "bet", "fold"], {0: 1.0, 1: -1.0}),
        (0, ["raise", "call", "bet", "fold"], {0: 3.0, 1: -3.0}),
        (5, ["raise", "call", "bet", "call"], {0: 0.0, 1: 0.0}),  # two kings: split pot
        (27, ["raise", "raise", "call", "raise", "raise", "call"], {0: -13.0, 1: 13.0}),  # J pairs
        (4, ["raise", "raise", "call", "raise", "raise", "call"], {0: 13.0, 1: -13.0}),  # K pairs K
    ],
)
def test_outcomes(seed, moves, outcomes):
    env = new_env(seed)
    info = play(env, moves)
    assert info["outcomes"] == outcomes
    assert info["turn"].outcome == outcomes[info["turn"].seat]


def test_outcomes_within_registered_bounds():
    (low, high) = turngym.spec("turngym/LeducPoker-v0").reward_bounds
    rng = np.random.default_rng(0)
    env = LeducPokerEnv()
    for seed in range(60):
        env.reset(seed=seed)
        while not env.done:
            env.step(env.sample_valid_action(rng))
        assert all(low <= r <= high for r in env.outcomes.values())
        assert sum(env.outcomes.values()) == 0


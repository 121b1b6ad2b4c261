"""KuhnPokerEnv: parsing, rendering, hidden cards, determinism, outcomes, registration."""

from __future__ import annotations

import numpy as np
import pytest

import turngym  # registers the ids
from turngym.envs.games.kuhn_poker import KuhnPokerEnv

J, Q, K = 0, 1, 2
# Deals of the seeded RNG (checked in test_seeded_deals): seed -> (card of seat 0, card of seat 1).
DEALS = {0: (Q, J), 1: (Q, K), 2: (J, Q), 4: (K, Q), 8: (J, K), 9: (K, J)}
# Every complete betting sequence of Kuhn poker, in canonical labels.
SEQUENCES = [
    ["check", "check"],
    ["check", "bet", "fold"],
    ["check", "bet", "call"],
    ["bet", "fold"],
    ["bet", "call"],
]


def new_env(seed: int = 0, **kwargs) -> KuhnPokerEnv:
    env = KuhnPokerEnv(**kwargs)
    env.reset(seed=seed)
    return env


def play(env: KuhnPokerEnv, moves) -> dict:
    info: dict = {}
    for move in moves:
        _, _, _, _, info = env.step(move)
    return info


def test_seeded_deals():
    for seed, cards in DEALS.items():
        env = new_env(seed)
        assert (env.private_card(0), env.private_card(1)) == cards


@pytest.mark.parametrize(
    "text, action",
    [
        ("check", 0),
        ("[check]", 0),
        ("Check.", 0),
        ("pass", 0),
        ("bet", 1),
        ("[BET]", 1),
        ("\\boxed{bet}", 1),
        ("I choose bet", 1),
    ],
)
def test_accepted_spellings_nothing_to_call(text, action):
    move, problem = new_env()._parse_move(text)
    assert problem is None and move == action


@pytest.mark.parametrize(
    "text, action",
    [
        ("fold", 0),
        ("[fold]", 0),
        ("pass", 0),
        ("call", 1),
        ("[call]", 1),
        ("bet", 1),  # OpenSpiel's name of action 1
        ("I play call", 1),
    ],
)
def test_accepted_spellings_facing_bet(text, action):
    env = new_env()
    env.step("bet")
    move, problem = env._parse_move(text)
    assert problem is None and move == action


@pytest.mark.parametrize(
    "prefix, text, fragment",
    [
        ([], "", "empty"),
        ([], "call", "no bet to call"),
        ([], "[fold]", "no bet to call"),
        ([], "raise", "could not read"),
        ([], "[check] [bet]", "several moves"),
        (["bet"], "check", "cannot check"),
        (["check", "bet"], "[check]", "cannot check"),
        (["bet"], "all in", "could not read"),
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


def test_labels_depend_on_context():
    env = new_env()
    assert env._legal_moves() == ["check", "bet"]
    env.step("bet")
    assert env._legal_moves() == ["fold", "call"]


SNAPSHOT_P0_FACING_BET = """\
Player 1: bets

You are Player 0 (first to act). Your card: K (King).
Betting so far: you checked, Player 1 bet.
Pot: 3 chips. You have put in 1.
You face a bet. Your move: [fold] or [call]."""

SNAPSHOT_P1_WAITING = """\
You are Player 1 (second to act). Your card: Q (Queen).
Betting so far: Player 0 checked, you bet.
Pot: 3 chips. You have put in 2.
Waiting for the opponent."""

SNAPSHOT_P1_SHOWDOWN = """\
Player 0: calls

You are Player 1 (second to act). Your card: Q (Queen).
Betting so far: Player 0 checked, you bet, Player 0 called.
Pot: 4 chips. You have put in 2.
Showdown: your Q against Player 0's K.

Game over (game_over): you lost; your reward -2."""


def test_render_snapshots():
    env = new_env(seed=4)
    first, _ = env.reset(seed=4)
    assert first == (
        "You are Player 0 (first to act). Your card: K (King).\n"
        "Betting so far: none.\n"
        "Pot: 2 chips. You have put in 1.\n"
        "Nothing to call. Your move: [check] or [bet]."
    )
    env.step("check")
    obs, *_ = env.step("bet")
    assert obs == SNAPSHOT_P0_FACING_BET
    assert env.observe(1) == SNAPSHOT_P1_WAITING
    env.step("call")
    assert env.observe(1) == SNAPSHOT_P1_SHOWDOWN


def test_fold_keeps_cards_hidden():
    env = new_env(seed=9)  # seat 0 K, seat 1 J
    play(env, ["bet", "fold"])
    for seat in (0, 1):
        obs = env.observe(seat)
        assert "folded; the cards are not shown" in obs
        other = ("J (Jack)", "K (King)")[seat]
        assert other not in obs and "Showdown" not in obs


@pytest.mark.parametrize("seat", [0, 1])
def test_opponent_card_never_shown_before_showdown(seat):
    # Pairs of deals where `seat` holds the same card and the opponent's differs.
    pairs = [(0, 1), (4, 9)] if seat == 0 else [(0, 9), (1, 8)]
    for a, b in pairs:
        assert DEALS[a][seat] == DEALS[b][seat] and DEALS[a][1 - seat] != DEALS[b][1 - seat]
        for sequence in SEQUENCES:
            env_a, env_b = new_env(a), new_env(b)
            for move in sequence:
                env_a.step(move)
                env_b.step(move)
                if env_a.showdown():
                    break
                assert env_a.observe(seat) == env_b.observe(seat)


def test_determinism_same_seed_same_episode():
    def episode(seed):
        env = KuhnPokerEnv()
        out = [env.reset(seed=seed)]
        for move in ["check", "bet", "call"]:
            obs, reward, terminated, truncated, info = env.step(move)
            out.append((obs, reward, terminated, truncated, info["turn"].to_dict(), info.get("outcomes")))
        return out

    assert episode(5) == episode(5)
    deals = {tuple(new_env(seed).state.history()) for seed in range(20)}
    assert len(deals) > 1


@pytest.mark.parametrize(
    "seed, moves, outcomes",
    [
        (4, ["check", "check"], {0: 1.0, 1: -1.0}),  # K vs Q showdown
        (2, ["check", "check"], {0: -1.0, 1: 1.0}),  # J vs Q showdown
        (4, ["bet", "call"], {0: 2.0, 1: -2.0}),
        (8, ["check", "bet", "call"], {0: -2.0, 1: 2.0}),  # J vs K
        (8, ["bet", "fold"], {0: 1.0, 1: -1.0}),  # the bluff works
        (9, ["check", "bet", "fold"], {0: -1.0, 1: 1.0}),  # K folds to a bluff
    ],
)
def test_outcomes(seed, moves, outcomes):
    env = new_env(seed)
    info = play(env, moves)
    assert info["outcomes"] == outcomes
    assert info["turn"].outcome == outcomes[info["turn"].seat]


def test_outcomes_within_registered_bounds():
    (low, high) = turngym.spec("turngym/KuhnPoker-v0").reward_bounds
    rng = np.random.default_rng(0)
    env = KuhnPokerEnv()
    for seed in range(60):
        env.reset(seed=seed)
        while not env.done:
            env.step(env.sample_valid_action(rng))
        assert all(low <= r <= high for r in env.outcomes.values())
        assert sum(env.outcomes.values()) == 0
    assert low <= env.invalid_move_penalty and env.invalid_move_bonus <= high


"""Registration of turngym's built-in environment ids. Imported by ``turngym.envs``."""

from __future__ import annotations

from turngym.envs.household.ids import register_ids as register_household_ids
from turngym.envs.registration import register
from turngym.envs.search_qa.ids import register_ids as register_search_qa_ids
from turngym.envs.swe.ids import register_ids as register_swe_ids

# SPIRAL's defaults: invalid move ⇒ offender −1.5, other +0.5; 50 turns then a draw.
_GAME_TURN_LIMIT = 50

# Each game: (name, entry point, description, reward bounds, tags, constructor defaults, G-RA gate δ).
# Poker scales SPIRAL's forfeit rule to its chip stakes (a forfeit must cost more than the worst
# ordinary loss, or forfeiting a bad hand would pay), and its gate opens on any ordinary result.
GAMES: tuple[tuple[str, str, str, tuple[float, float], tuple[str, ...], dict, float], ...] = (
    (
        "TicTacToe-v0",
        "turngym.envs.games.tictactoe:TicTacToeEnv",
        "Tic-tac-toe (OpenSpiel rules); cells 1-9; +1/0/-1.",
        (-1.5, 1.0),
        ("openspiel", "perfect-information"),
        {},
        -1.0,
    ),
    (
        "ConnectFour-v0",
        "turngym.envs.games.connect_four:ConnectFourEnv",
        "Connect Four, 6x7 (OpenSpiel rules); columns 1-7; +1/0/-1.",
        (-1.5, 1.0),
        ("openspiel", "perfect-information"),
        {},
        -1.0,
    ),
    (
        "KuhnPoker-v0",
        "turngym.envs.games.kuhn_poker:KuhnPokerEnv",
        "Kuhn poker, 3 cards (OpenSpiel rules); check/bet/call/fold; chips won.",
        (-2.5, 2.0),
        ("openspiel", "imperfect-information", "chance"),
        {"invalid_move_penalty": -2.5, "invalid_move_bonus": 0.5},
        -2.0,
    ),
    (
        "LeducPoker-v0",
        "turngym.envs.games.leduc_poker:LeducPokerEnv",
        "Leduc hold'em, 6 cards, 2 rounds (OpenSpiel rules); fold/call/raise; chips won.",
        (-13.5, 13.0),
        ("openspiel", "imperfect-information", "chance"),
        {"invalid_move_penalty": -13.5, "invalid_move_bonus": 0.5},
        -13.0,
    ),
    (
        "LiarsDice-v0",
        "turngym.envs.games.liars_dice:LiarsDiceEnv",
        "Liar's dice, one six-sided die each (OpenSpiel rules); bid or call liar; +1/-1.",
        (-1.5, 1.0),
        ("openspiel", "imperfect-information", "chance"),
        {},
        -1.0,
    ),
    (
        "Negotiation-v0",
        "turngym.envs.games.negotiation:NegotiationEnv",
        "Item-pool negotiation (OpenSpiel rules, no utterances), scored zero-sum: higher deal value wins.",
        (-1.5, 1.0),
        ("openspiel", "imperfect-information", "chance"),
        {},
        -1.0,
    ),
)


def register_builtin_envs() -> None:
    """Register every built-in id under the ``turngym/`` namespace."""
    register(
        "turngym/Vowels-v0",
        "turngym.envs.toy:VowelsEnv",
        family="toy",
        description="Three turns of 'type vowels'; reward = vowel share. The CI learning test's task.",
        max_turns=10,
        reward_bounds=(0.0, 2.0),
        gate_threshold=None,
        num_seats=1,
    )
    register(
        "turngym/Arithmetic-v0",
        "turngym.envs.toy:ArithmeticEnv",
        family="toy",
        description="One turn: 'What is a+b?'; 1 for the right sum. The single-turn GRPO benchmark task.",
        max_turns=1,
        reward_bounds=(0.0, 1.0),
        gate_threshold=None,
        num_seats=1,
    )
    for name, entry_point, description, bounds, tags, kwargs, gate in GAMES:
        register(
            f"turngym/{name}",
            entry_point,
            family="game",
            description=description,
            kwargs=kwargs,
            max_turns=_GAME_TURN_LIMIT,
            reward_bounds=bounds,
            gate_threshold=gate,  # G-RA: the gate opens unless the seat forfeited by an invalid move
            num_seats=2,
            tags=tags,
        )
    register_search_qa_ids()
    register_household_ids()
    register_swe_ids()

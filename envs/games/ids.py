"""Registration of the ``turngym/…`` game ids. Imported by :mod:`turngym.envs.builtin`.

Entry points are ``"module:Class"`` strings, loaded on ``make``; each game's scripted bots are its
``TurnSpec.agents`` (:func:`turngym.envs.games.bots.game_agents`).

Every game: two seats, SPIRAL's defaults — an invalid move costs the offender −1.5 and pays the other
seat +0.5, and 50 turns end in a draw — and the G-RA gate opens unless the seat forfeited by an
invalid move. Poker scales the forfeit rule to its chip stakes (a forfeit must cost more than the
worst ordinary loss, or forfeiting a bad hand would pay), and its gate opens on any ordinary result.
"""

from __future__ import annotations

from typing import Any

from turngym.envs.games.bots import game_agents
from turngym.envs.registration import register

GAME_TURN_LIMIT = 50


def _register_game(
    name: str,
    entry_point: str,
    *,
    game: str,
    description: str,
    reward_bounds: tuple[float, float],
    gate_threshold: float,
    tags: tuple[str, ...],
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Register ``turngym/<name>``, a two-seat game playing the pyspiel game ``game``."""
    register(
        f"turngym/{name}",
        entry_point,
        family="game",
        description=description,
        kwargs=kwargs,
        max_turns=GAME_TURN_LIMIT,
        reward_bounds=reward_bounds,
        gate_threshold=gate_threshold,
        num_seats=2,
        tags=tags,
        agents=game_agents(game),
    )


def register_ids() -> None:
    """Register the six built-in games."""
    _register_game(
        "TicTacToe-v0", "turngym.envs.games.tictactoe:TicTacToeEnv", game="tic_tac_toe",
        description="Tic-tac-toe (OpenSpiel rules); cells 1-9; +1/0/-1.",
        reward_bounds=(-1.5, 1.0), gate_threshold=-1.0, tags=("openspiel", "perfect-information"),
    )
    _register_game(
        "ConnectFour-v0", "turngym.envs.games.connect_four:ConnectFourEnv", game="connect_four",
        description="Connect Four, 6x7 (OpenSpiel rules); columns 1-7; +1/0/-1.",
        reward_bounds=(-1.5, 1.0), gate_threshold=-1.0, tags=("openspiel", "perfect-information"),
    )
    _register_game(
        "KuhnPoker-v0", "turngym.envs.games.kuhn_poker:KuhnPokerEnv", game="kuhn_poker",
        description="Kuhn poker, 3 cards (OpenSpiel rules); check/bet/call/fold; chips won.",
        reward_bounds=(-2.5, 2.0), gate_threshold=-2.0,
        tags=("openspiel", "imperfect-information", "chance"),
        kwargs={"invalid_move_penalty": -2.5, "invalid_move_bonus": 0.5},
    )
    _register_game(
        "LeducPoker-v0", "turngym.envs.games.leduc_poker:LeducPokerEnv", game="leduc_poker",
        description="Leduc hold'em, 6 cards, 2 rounds (OpenSpiel rules); fold/call/raise; chips won.",
        reward_bounds=(-13.5, 13.0), gate_threshold=-13.0,
        tags=("openspiel", "imperfect-information", "chance"),
        kwargs={"invalid_move_penalty": -13.5, "invalid_move_bonus": 0.5},
    )
    _register_game(
        "LiarsDice-v0", "turngym.envs.games.liars_dice:LiarsDiceEnv", game="liars_dice",
        description="Liar's dice, one six-sided die each (OpenSpiel rules); bid or call liar; +1/-1.",
        reward_bounds=(-1.5, 1.0), gate_threshold=-1.0,
        tags=("openspiel", "imperfect-information", "chance"),
    )
    _register_game(
        "Negotiation-v0", "turngym.envs.games.negotiation:NegotiationEnv", game="negotiation",
        description="Item-pool negotiation (OpenSpiel rules, no utterances), scored zero-sum: higher deal value wins.",
        reward_bounds=(-1.5, 1.0), gate_threshold=-1.0,
        tags=("openspiel", "imperfect-information", "chance"),
    )

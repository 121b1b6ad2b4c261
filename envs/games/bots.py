"""Scripted reference agents ("bots") for turngym's two-player games.

Each built-in game registers its bots as ``TurnSpec.agents`` (:func:`game_agents`, used by
:mod:`turngym.envs.games.ids`), so ``turngym eval --opponent minimax`` and training opponents find
them through the env spec like any env's own agents.

Contract
--------
An agent is a callable ``agent(game) -> str``: given the (privileged)
:class:`~turngym.envs.multiagent.TurnGame` object, it returns the reply text for
``game.current_seat``. Every agent is therefore an :class:`~turngym.envs.multiagent.Opponent`,
usable as ``turngym.make(id, opponent=agent)``. Agents also have

* ``reset(seed)`` — reseed the agent's private :class:`numpy.random.Generator` (``seed=None``
  keeps the current stream, like Gymnasium's ``reset``). ``VsOpponent`` and the eval loop call
  it at each episode start, so the same seed gives the same moves;
* ``name`` — the registry name (``"random"``, ``"minimax"``…).

Agents derive from :class:`ScriptedAgent`: they read ``game.state`` (the live ``pyspiel.State``
of an :class:`~turngym.envs.games.base.OpenSpielGame`), pick an OpenSpiel action id with
``choose(game) -> int`` and reply with the canonical label ``game.move_label(action)`` in
brackets (``[5]``) — or in ``\\boxed{...}`` / bare if the label itself holds brackets. The reply
is checked against the game's own parser, so the env always reads it back as that very action.

Agents (``make_agent(name, env_id)``; ``available_agents(env_id)`` lists an env id's names):

=========  ==========================================================================
random     uniform over legal moves (any game)
first      the lowest legal action id (any game; deterministic, weak)
minimax    TicTacToe: perfect play (memoized negamax); never loses
alphabeta  ConnectFour: depth-limited alpha-beta (default depth 4), window-count eval
nash       KuhnPoker: closed-form Nash equilibrium (Kuhn 1950; alpha family, 1/6)
heuristic  a weak rule-based player for each game (win/block, card strength, odds…)
=========  ==========================================================================

``make_agent("alphabeta:6", env_id)`` sets an agent's single parameter (``depth`` for
alphabeta, ``alpha`` for nash); keyword arguments of ``make_agent`` go to the agent too.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "AlphaBetaAgent",
    "ConnectFourHeuristicAgent",
    "FirstAgent",
    "KuhnHeuristicAgent",
    "KuhnNashAgent",
    "LeducHeuristicAgent",
    "LiarsDiceHeuristicAgent",
    "MinimaxAgent",
    "NegotiationHeuristicAgent",
    "PerGameAgent",
    "RandomAgent",
    "ScriptedAgent",
    "TicTacToeHeuristicAgent",
    "available_agents",
    "game_agents",
    "make_agent",
    "reply_text",
]

# Built-in env names (without the ``turngym/`` namespace) → the pyspiel game each one plays.
ENV_GAMES: dict[str, str] = {
    "TicTacToe-v0": "tic_tac_toe",
    "ConnectFour-v0": "connect_four",
    "KuhnPoker-v0": "kuhn_poker",
    "LeducPoker-v0": "leduc_poker",
    "LiarsDice-v0": "liars_dice",
    "Negotiation-v0": "negotiation",
}


# ==================================================================================== base
def reply_text(game: Any, action: int) -> str:
    """The reply that ``game`` parses as ``action``: ``[label]``, else ``\\boxed{label}``, else the label."""
    label = game.move_label(action)
    return _spell(game, label, action)


def _spell(game: Any, label: str, expected: Any) -> str:
    candidates = []
    if "[" not in label and "]" not in label:
        candidates.append(f"[{label}]")
    if "{" not in label and "}" not in label:
        candidates.append(f"\\boxed{{{label}}}")
    candidates.append(label)
    parse = getattr(game, "_parse_move", None)
    if parse is None:
        return candidates[0]
    for text in candidates:
        move, problem = parse(text)
        if problem is None and move == expected:
            return text
    raise RuntimeError(
        f"{type(game).__name__} does not read its own label {label!r} back as move {expected!r}; "
        "its move_label/_parse_move disagree"
    )


class ScriptedAgent:
    """Base class: ``agent(game) -> str`` plays ``choose(game)`` (an OpenSpiel action id) for the seat to act.

    Subclasses set :attr:`name`, :attr:`games` (pyspiel game names they play; ``None`` = any) and
    implement :meth:`choose`. Randomness comes only from :attr:`rng`, so a seed fixes every move.
    """

    name: ClassVar[str] = ""
    games: ClassVar[tuple[str, ...] | None] = None
    param: ClassVar[str | None] = None
    """The parameter that ``make_agent("name:value")`` sets, if any."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the private RNG (``None`` keeps the current stream) and forget per-episode state."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def choose(self, game: Any) -> int:
        """The OpenSpiel action id to play for ``game.current_seat``."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose(game) -> action id")

    def __call__(self, game: Any) -> str:
        self._check(game)
        return reply_text(game, int(self.choose(game)))

    def _check(self, game: Any) -> None:
        if getattr(game, "done", False):
            raise ValueError(f"{self.name} agent asked to move, but the game is over")
        if self.games is not None and getattr(game, "game_name", None) not in self.games:
            raise ValueError(
                f"the {self.name!r} agent plays {', '.join(self.games)}, "
                f"not {type(game).__name__} ({getattr(game, 'game_name', '?')!r})"
            )

    def _pick(self, options: Sequence[int]) -> int:
        """A uniformly random element of ``options`` (drawn from :attr:`rng`)."""
        return int(options[int(self.rng.integers(len(options)))])

    def __repr__(self) -> str:
        extra = f", {self.param}={getattr(self, self.param)!r}" if self.param else ""
        return f"{type(self).__name__}(name={self.name!r}{extra})"


def _legal(game: Any) -> list[int]:
    legal = game.legal_action_ids()
    if not legal:
        raise ValueError("no legal moves: the game is over")
    return legal


# ==================================================================================== any game
class RandomAgent(ScriptedAgent):
    """Uniformly random legal move. Works on any game (non-OpenSpiel games: ``sample_valid_action``)."""

    name = "random"

    def choose(self, game: Any) -> int:
        return self._pick(_legal(game))

    def __call__(self, game: Any) -> str:
        if hasattr(game, "legal_action_ids"):
            return super().__call__(game)
        self._check(game)
        label = game.sample_valid_action(self.rng)
        if label is None:
            raise ValueError("no legal moves: the game is over")
        return _spell(
            game, label, game._parse_move(label)[0] if hasattr(game, "_parse_move") else None
        )


class FirstAgent(ScriptedAgent):
    """The lowest legal action id (the first legal move for non-OpenSpiel games). Deterministic, weak."""

    name = "first"

    def choose(self, game: Any) -> int:
        return min(_legal(game))

    def __call__(self, game: Any) -> str:
        if hasattr(game, "legal_action_ids"):
            return super().__call__(game)
        self._check(game)
        label = game._legal_moves()[0]
        return _spell(game, label, game._parse_move(label)[0])


# ==================================================================================== tic-tac-toe
_TTT_LINES = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)
# str(state) -> negamax value for the player to move; shared by all instances (a pure function).
_TTT_VALUES: dict[str, int] = {}


def _ttt_value(state: Any) -> int:
    """Negamax value for the player to move: ``+(10 - plies)`` for a win at ``plies`` total moves."""
    key = str(state)
    value = _TTT_VALUES.get(key)
    if value is None:
        value = max(_ttt_move_value(state, a) for a in state.legal_actions())
        _TTT_VALUES[key] = value
    return value


def _ttt_move_value(state: Any, action: int) -> int:
    player = state.current_player()
    child = state.child(action)
    if child.is_terminal():
        return round(child.returns()[player]) * (10 - len(child.history()))
    return -_ttt_value(child)


def _ttt_cells(state: Any) -> list[int]:
    """Cells as 0 (free), 1 (seat 0, X) or 2 (seat 1, O), rebuilt from the move history."""
    cells = [0] * 9
    for ply, action in enumerate(state.history()):
        cells[action] = 1 + ply % 2
    return cells


def _ttt_completes(cells: list[int], cell: int, mark: int) -> bool:
    return any(
        cell in line and all(cells[c] == mark for c in line if c != cell) for line in _TTT_LINES
    )


class MinimaxAgent(ScriptedAgent):
    """Perfect tic-tac-toe: full negamax over cloned pyspiel states, memoized by the state string.

    Prefers faster wins and slower losses; breaks ties among optimal moves at random. Never loses
    (vs random it wins ~97% as X and ~77% as O; vs itself every game is a draw).
    """

    name = "minimax"
    games = ("tic_tac_toe",)

    def optimal_moves(self, game: Any) -> list[int]:
        """Every legal action id with the best negamax value (the moves this agent may play)."""
        values = {a: _ttt_move_value(game.state, a) for a in _legal(game)}
        best = max(values.values())
        return [a for a, v in values.items() if v == best]

    def choose(self, game: Any) -> int:
        return self._pick(self.optimal_moves(game))


class TicTacToeHeuristicAgent(ScriptedAgent):
    """Weak tic-tac-toe: complete a line if possible, else block the opponent's, else a random cell."""

    name = "heuristic"
    games = ("tic_tac_toe",)

    def choose(self, game: Any) -> int:
        legal = _legal(game)
        cells = _ttt_cells(game.state)
        mine = 1 + game.state.current_player()
        for mark in (mine, 3 - mine):  # win first, then block
            hits = [a for a in legal if _ttt_completes(cells, a, mark)]
            if hits:
                return self._pick(hits)
        return self._pick(legal)


# ==================================================================================== connect four
class _C4Geometry:
    """Bitboard layout (column-major, ``rows + 1`` bits per column) and the scoring windows of a board size."""

    _cache: ClassVar[dict[tuple[int, int, int], _C4Geometry]] = {}

    def __init__(self, rows: int, cols: int, k: int):
        self.rows, self.cols, self.k = rows, cols, k
        self.h1 = rows + 1
        self.order = sorted(range(cols), key=lambda c: (abs(2 * c - (cols - 1)), c))
        self.shifts = (1, self.h1, self.h1 - 1, self.h1 + 1)
        windows = []
        for c in range(cols):
            for r in range(rows):
                for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                    end_c, end_r = c + dc * (k - 1), r + dr * (k - 1)
                    if 0 <= end_c < cols and 0 <= end_r < rows:
                        windows.append(
                            sum(1 << ((c + dc * i) * self.h1 + r + dr * i) for i in range(k))
                        )
        self.windows = tuple(windows)
        center = [c for c in range(cols) if abs(2 * c - (cols - 1)) <= 1]
        self.center = sum(1 << (c * self.h1 + r) for c in center for r in range(rows))

    @classmethod
    def of(cls, game: Any) -> _C4Geometry:
        params = game.state.get_game().get_parameters()
        key = (
            int(params.get("rows", 6)),
            int(params.get("columns", 7)),
            int(params.get("x_in_row", 4)),
        )
        if key not in cls._cache:
            cls._cache[key] = cls(*key)
        return cls._cache[key]

    def position(self, state: Any) -> tuple[int, int, list[int]]:
        """``(bits of the player to move, bits of the other, column heights)`` from the move history."""
        boards = [0, 0]
        heights = [0] * self.cols
        for ply, col in enumerate(state.history()):
            boards[ply % 2] |= 1 << (col * self.h1 + heights[col])
            heights[col] += 1
        to_move = len(state.history()) % 2
        return boards[to_move], boards[1 - to_move], heights

    def wins(self, bits: int) -> bool:
        for s in self.shifts:
            m = bits
            for i in range(1, self.k):
                m &= bits >> (i * s)
            if m:
                return True
        return False


_WIN = 1_000_000


class AlphaBetaAgent(ScriptedAgent):
    """Connect Four: depth-limited negamax alpha-beta on bitboards (default depth 4).

    Evaluation: for every 4-cell window holding pieces of one side only, +1/+3/+9 for 1/2/3 pieces
    (negated for the opponent), plus 3 per piece in the center column. Center-first move ordering;
    immediate wins are taken, faster wins preferred, ties broken at random. Wins 100% vs random and
    ~98% vs the Connect Four ``heuristic``; at depth 4 about 2-3 ms per move (worst seen ~16 ms).
    Deeper is stronger (depth 6 beats depth 4) and costs ~10 ms per move on average.
    """

    name = "alphabeta"
    games = ("connect_four",)
    param = "depth"
    window_weights: ClassVar[tuple[int, ...]] = (0, 1, 3, 9)
    """Score of a window holding 0, 1, 2, 3 pieces of one side only (longer lines: the last weight)."""
    center_weight: ClassVar[int] = 3

    def __init__(self, seed: int | None = None, depth: int = 4):
        super().__init__(seed)
        if int(depth) != depth or depth < 1:
            raise ValueError(f"alphabeta depth must be a positive integer, got {depth!r}")
        self.depth = int(depth)

    def choose(self, game: Any) -> int:
        geo = _C4Geometry.of(game)
        self._window_scores = self._weights(geo.k)
        me, opp, heights = geo.position(game.state)
        legal = _legal(game)
        best, ties = -math.inf, []
        for col in [c for c in geo.order if c in legal]:
            bit = 1 << (col * geo.h1 + heights[col])
            if geo.wins(me | bit):
                value = _WIN + self.depth
            else:
                heights[col] += 1
                # Window (best - 1, +inf): a move as good as the best so far gets its exact value.
                value = -self._search(
                    geo, opp, me | bit, heights, self.depth - 1, -math.inf, -(best - 1)
                )
                heights[col] -= 1
            if value > best:
                best, ties = value, [col]
            elif value == best:
                ties.append(col)
        return self._pick(ties)

    def _search(
        self,
        geo: _C4Geometry,
        me: int,
        opp: int,
        heights: list[int],
        depth: int,
        alpha: float,
        beta: float,
    ) -> float:
        moves = [c for c in geo.order if heights[c] < geo.rows]
        if not moves:
            return 0  # full board: draw
        bits = [1 << (c * geo.h1 + heights[c]) for c in moves]
        for bit in bits:
            if geo.wins(me | bit):
                return _WIN + depth
        if depth == 0:
            return self._evaluate(geo, me, opp)
        best = -math.inf
        for col, bit in zip(moves, bits):
            heights[col] += 1
            value = -self._search(geo, opp, me | bit, heights, depth - 1, -beta, -alpha)
            heights[col] -= 1
            if value > best:
                best = value
                if value > alpha:
                    alpha = value
                    if alpha >= beta:
                        break
        return best

    def _evaluate(self, geo: _C4Geometry, me: int, opp: int) -> int:
        weights = self._window_scores
        score = self.center_weight * (
            (me & geo.center).bit_count() - (opp & geo.center).bit_count()
        )
        for w in geo.windows:
            a = me & w
            b = opp & w
            if a:
                if not b:
                    score += weights[a.bit_count()]
            elif b:
                score -= weights[b.bit_count()]
        return score

    def _weights(self, k: int) -> tuple[int, ...]:
        """Scores by piece count 0..k (a full window never reaches the evaluation: it is a win)."""
        ws = tuple(self.window_weights[:k])
        return ws + (ws[-1],) * (k - len(ws)) + (0,)


class ConnectFourHeuristicAgent(ScriptedAgent):
    """Weak Connect Four: win if possible, else block, else the most central column (random among equals)."""

    name = "heuristic"
    games = ("connect_four",)

    def choose(self, game: Any) -> int:
        geo = _C4Geometry.of(game)
        me, opp, heights = geo.position(game.state)
        legal = _legal(game)
        for bits in (me, opp):
            hits = [c for c in legal if geo.wins(bits | 1 << (c * geo.h1 + heights[c]))]
            if hits:
                return self._pick(hits)
        spread = min(abs(2 * c - (geo.cols - 1)) for c in legal)
        return self._pick([c for c in legal if abs(2 * c - (geo.cols - 1)) == spread])


# ==================================================================================== Kuhn poker
_PASS, _BET = 0, 1  # kuhn_poker actions: 0 = pass/check/fold, 1 = bet/call
_J, _Q, _K = 0, 1, 2


def _kuhn_view(game: Any) -> tuple[int, int, list[int]]:
    """``(seat to act, its card, betting actions so far)``; ``history()`` opens with the two dealt cards."""
    state = game.state
    seat = state.current_player()
    history = state.history()
    return seat, history[seat], history[2:]


class KuhnNashAgent(ScriptedAgent):
    """Kuhn poker Nash equilibrium (Kuhn 1950), the alpha-parameterized family, ``0 <= alpha <= 1/3``.

    First seat: bets J with prob. alpha, K with prob. 3*alpha, never Q; after check-bet calls Q
    with prob. alpha + 1/3, always calls K, folds J. Second seat: facing a bet calls K, Q with
    prob. 1/3, folds J; facing a check bets K, J with prob. 1/3, checks Q. Unexploitable (game
    value -1/18 for the first seat). Against uniform random it wins exactly 5/36 ≈ +0.14 chips per
    hand averaged over both seats (alpha = 1/6); being an equilibrium, not a best response, it
    exploits random less than the ``heuristic`` (+0.21).
    """

    name = "nash"
    games = ("kuhn_poker",)
    param = "alpha"

    def __init__(self, seed: int | None = None, alpha: float = 1 / 6):
        super().__init__(seed)
        if not 0.0 <= float(alpha) <= 1 / 3 + 1e-12:
            raise ValueError(f"Kuhn Nash alpha must be in [0, 1/3], got {alpha!r}")
        self.alpha = float(alpha)

    def bet_probability(self, seat: int, card: int, actions: Sequence[int]) -> float:
        """Probability of action 1 (bet/call) at this information set."""
        a = self.alpha
        if seat == 0 and not actions:  # open
            return (a, 0.0, 3 * a)[card]
        if seat == 1 and list(actions) == [_PASS]:  # facing a check
            return (1 / 3, 0.0, 1.0)[card]
        if seat == 1 and list(actions) == [_BET]:  # facing a bet
            return (0.0, 1 / 3, 1.0)[card]
        if seat == 0 and list(actions) == [_PASS, _BET]:  # checked, then facing a bet
            return (0.0, a + 1 / 3, 1.0)[card]
        raise ValueError(f"not a Kuhn poker decision point: seat {seat}, actions {list(actions)}")

    def choose(self, game: Any) -> int:
        p = self.bet_probability(*_kuhn_view(game))
        if p <= 0.0:
            return _PASS
        if p >= 1.0:
            return _BET
        return _BET if self.rng.random() < p else _PASS


class KuhnHeuristicAgent(ScriptedAgent):
    """Weak Kuhn poker: bet/call with K, check/fold with J, check/call with Q. Deterministic."""

    name = "heuristic"
    games = ("kuhn_poker",)

    def choose(self, game: Any) -> int:
        _, card, actions = _kuhn_view(game)
        facing_bet = bool(actions) and actions[-1] == _BET
        if card == _K:
            return _BET
        if card == _Q:
            return _BET if facing_bet else _PASS
        return _PASS


# ==================================================================================== Leduc poker
_FOLD, _CALL, _RAISE = 0, 1, 2  # leduc_poker actions; Fold is legal only when facing a raise
_LEDUC_PRIVATE = re.compile(r"\[Private: (-?\d+)\]")
_LEDUC_PUBLIC = re.compile(r"\[Public: (-?\d+)\]")


class LeducHeuristicAgent(ScriptedAgent):
    """Weak Leduc hold'em: raise with a pair or a K (call when the raise cap is hit), call with a Q,
    and with a J fold to a raise, else check. Deterministic. Card ranks: ``card // 2`` (J, Q, K)."""

    name = "heuristic"
    games = ("leduc_poker",)

    def choose(self, game: Any) -> int:
        state = game.state
        seat = state.current_player()
        legal = _legal(game)
        text = state.information_state_string(seat)
        private = _LEDUC_PRIVATE.search(text)
        card = int(private.group(1)) if private else state.history()[seat]
        public = _LEDUC_PUBLIC.search(text)
        rank = card // 2
        pair = (
            public is not None and int(public.group(1)) >= 0 and int(public.group(1)) // 2 == rank
        )
        if pair or rank == 2:
            return _RAISE if _RAISE in legal else _CALL
        if rank == 1:
            return _CALL
        return _FOLD if _FOLD in legal else _CALL


# ==================================================================================== Liar's dice
_BID = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class LiarsDiceHeuristicAgent(ScriptedAgent):
    """Liar's dice by the odds of the own dice (the highest face is wild, as in OpenSpiel).

    For each bid ``q-f`` it computes P(at least ``q`` dice show ``f`` or wild | own dice), treating the
    unseen dice as uniform. It calls liar when the standing bid is less likely true than its own best
    legal bid; otherwise it makes the legal bid most likely to be true (the lowest among equals).
    Beats random clearly; no bluffing.
    """

    name = "heuristic"
    games = ("liars_dice",)

    def choose(self, game: Any) -> int:
        state = game.state
        seat = state.current_player()
        params = state.get_game().get_parameters()
        sides = int(params.get("dice_sides", 6))
        players = int(params.get("players", 2))
        per_player = [
            int(params.get(f"numdice{p}", params.get("numdice", 1))) for p in range(players)
        ]
        tokens = state.information_state_string(seat).split()
        mine = [int(ch) for ch in tokens[0]] if tokens and tokens[0].isascii() and tokens[0].isdigit() else []
        unseen = sum(per_player) - len(mine)

        def p_true(quantity: int, face: int) -> float:
            have = sum(1 for d in mine if d == face or d == sides)
            p_match = (1 if face == sides else 2) / sides
            return _at_least(quantity - have, unseen, p_match)

        liar, bids = None, []
        for action in _legal(game):
            match = _BID.match(state.action_to_string(seat, action))
            if match:
                bids.append((p_true(int(match.group(1)), int(match.group(2))), action))
            else:
                liar = action
        standing = [m for m in map(_BID.match, tokens[1:]) if m]
        p_standing_false = 0.0
        if standing:
            p_standing_false = 1.0 - p_true(int(standing[-1].group(1)), int(standing[-1].group(2)))
        best_p = max((p for p, _ in bids), default=-1.0)
        if liar is not None and (not bids or p_standing_false > best_p):
            return liar
        return min(a for p, a in bids if p == best_p)


def _at_least(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


# ==================================================================================== negotiation
_NEG_POOL = re.compile(r"Item pool:\s*([\d ]+)")
_NEG_VALUES = re.compile(r"util vec:\s*([\d ]+)")
_NEG_LAST = re.compile(r"Most recent proposal:\s*\[([\d ,]+)\]")
_NEG_PROPOSAL = re.compile(r"Proposal:\s*\[([\d ,]+)\]")


class NegotiationHeuristicAgent(ScriptedAgent):
    """Item-pool negotiation: accept an offer worth at least half the pool's total value to this seat;
    otherwise propose to keep the items most valuable to it (per unit, greedily) until they are worth at
    least half the total, conceding the rest. Reads pool, own values and the last proposal (the
    proposer's share) from ``observation_string``. Deterministic; utterance turns (if enabled) are random.
    """

    name = "heuristic"
    games = ("negotiation",)

    def choose(self, game: Any) -> int:
        state = game.state
        seat = state.current_player()
        legal = _legal(game)
        obs = state.observation_string(seat)
        pool = _ints(_NEG_POOL, obs)
        values = _ints(_NEG_VALUES, obs)
        proposals: dict[tuple[int, ...], int] = {}
        agree = None
        for action in legal:
            label = state.action_to_string(seat, action)
            match = _NEG_PROPOSAL.search(label)
            if match:
                proposals[tuple(int(x) for x in match.group(1).split(","))] = action
            elif "agree" in label.lower():
                agree = action
        if (not proposals and agree is None) or pool is None or values is None:
            return self._pick(legal)  # utterance turn, or an observation format we cannot read
        total = sum(n * v for n, v in zip(pool, values))
        last = _ints(_NEG_LAST, obs)
        if agree is not None and last is not None:
            offered = sum((n - k) * v for n, k, v in zip(pool, last, values))
            if 2 * offered >= total:
                return agree
        keep = [0] * len(pool)
        kept = 0
        for item in sorted(range(len(pool)), key=lambda i: (-values[i], i)):
            while keep[item] < pool[item] and 2 * kept < total:
                keep[item] += 1
                kept += values[item]
        action = proposals.get(tuple(keep))
        if action is None:  # should not happen (our proposal is within the pool); stay legal anyway
            return agree if agree is not None else self._pick(legal)
        return action


def _ints(pattern: re.Pattern[str], text: str) -> list[int] | None:
    """The integers of ``pattern``'s first group (space- or comma-separated), or ``None``."""
    match = pattern.search(text)
    return None if match is None else [int(x) for x in match.group(1).replace(",", " ").split()]


# ==================================================================================== registry
_GENERIC: dict[str, type[ScriptedAgent]] = {"random": RandomAgent, "first": FirstAgent}
_PER_GAME: dict[str, dict[str, type[ScriptedAgent]]] = {
    "tic_tac_toe": {"minimax": MinimaxAgent, "heuristic": TicTacToeHeuristicAgent},
    "connect_four": {"alphabeta": AlphaBetaAgent, "heuristic": ConnectFourHeuristicAgent},
    "kuhn_poker": {"nash": KuhnNashAgent, "heuristic": KuhnHeuristicAgent},
    "leduc_poker": {"heuristic": LeducHeuristicAgent},
    "liars_dice": {"heuristic": LiarsDiceHeuristicAgent},
    "negotiation": {"heuristic": NegotiationHeuristicAgent},
}


class PerGameAgent(ScriptedAgent):
    """A name with one variant per game (``heuristic``) made without an env id: dispatches on the game."""

    def __init__(
        self,
        name: str,
        variants: dict[str, Callable[..., ScriptedAgent]],
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(seed)
        self.name = name  # type: ignore[misc]
        self.games = tuple(variants)  # type: ignore[misc]
        seeds = np.random.SeedSequence(seed).spawn(len(variants))
        self.agents = {
            g: cls(seed=int(s.generate_state(1)[0]), **kwargs)
            for (g, cls), s in zip(variants.items(), seeds)
        }

    def reset(self, seed: int | None = None) -> None:
        if seed is None:
            for agent in self.agents.values():
                agent.reset(None)
            return
        for agent, s in zip(
            self.agents.values(), np.random.SeedSequence(seed).spawn(len(self.agents))
        ):
            agent.reset(int(s.generate_state(1)[0]))

    def choose(self, game: Any) -> int:
        return self.agents[game.game_name].choose(game)

    def __call__(self, game: Any) -> str:
        self._check(game)
        return self.agents[game.game_name](game)


def _number(text: str, spec: str) -> int | float:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    raise ValueError(f"cannot read a number from {text!r} in agent spec {spec!r}")


def _env_name(env_id: str) -> str:
    return env_id.split("/", 1)[1] if env_id.startswith("turngym/") else env_id


def _names_for_game(game: str | None) -> dict[str, type[ScriptedAgent]]:
    names = dict(_GENERIC)
    if game is not None:
        names.update(_PER_GAME.get(game, {}))
    return names


def game_agents(game: str) -> dict[str, str]:
    """The ``TurnSpec.agents`` of an env that plays the pyspiel game ``game``: each bot's name →
    ``"turngym.envs.games.bots:Class"`` (constructed as ``Class(seed=...)``)."""
    return {name: f"{__name__}:{cls.__name__}" for name, cls in sorted(_names_for_game(game).items())}


def available_agents(env_id: str | None = None) -> list[str]:
    """Agent names valid for ``env_id`` (``turngym/TicTacToe-v0`` or ``TicTacToe-v0``); all names if ``None``.

    Ids other than the built-in games (e.g. plugin games) get the game-agnostic ``first`` and ``random``.
    """
    if env_id is None:
        names = set(_GENERIC).union(*(set(v) for v in _PER_GAME.values()))
        return sorted(names)
    return sorted(_names_for_game(ENV_GAMES.get(_env_name(env_id))))


def make_agent(
    spec: str, env_id: str | None = None, seed: int | None = None, **kwargs: Any
) -> ScriptedAgent:
    """Build the scripted agent ``spec`` for ``env_id``, seeded with ``seed``.

    ``spec`` is a name from :func:`available_agents`, optionally ``name:value`` for the agent's single
    parameter (``alphabeta:6``, ``nash:0.2``); ``kwargs`` go to the agent's constructor. Without
    ``env_id`` a name is accepted if some game has it, and ``heuristic`` dispatches on the game it is
    given. Unknown names, or names the env does not support, raise ``ValueError`` listing the valid
    names with close-match suggestions.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"agent spec must be a non-empty string, got {spec!r}")
    name, _, value = spec.strip().partition(":")
    name = name.strip().lower()
    valid = available_agents(env_id)
    if name not in valid:
        where = "any game" if env_id is None else repr(env_id)
        envs = [f"turngym/{e}" for e, g in ENV_GAMES.items() if name in _PER_GAME.get(g, {})]
        if envs:  # a real agent, for another game
            problem = f"agent {name!r} does not play {where} (it plays {', '.join(envs)})"
        else:
            problem = f"unknown agent {spec.strip()!r} for {where}"
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if env_id is not None and _env_name(env_id) not in ENV_GAMES:
            env_close = difflib.get_close_matches(_env_name(env_id), list(ENV_GAMES), n=1)
            hint += f" ({env_id!r} is not a built-in game" + (
                f"; did you mean 'turngym/{env_close[0]}'?)" if env_close else ")"
            )
        raise ValueError(f"{problem}; valid names: {', '.join(valid)}.{hint}")
    if env_id is not None:
        cls: type[ScriptedAgent] = _names_for_game(ENV_GAMES.get(_env_name(env_id)))[name]
    elif name in _GENERIC:
        cls = _GENERIC[name]
    else:
        variants = {g: names[name] for g, names in _PER_GAME.items() if name in names}
        if len(variants) > 1:
            if value:
                raise ValueError(f"agent {name!r} takes no ':value' parameter")
            return PerGameAgent(name, variants, seed=seed, **kwargs)
        cls = next(iter(variants.values()))
    if value:
        if cls.param is None:
            raise ValueError(f"agent {name!r} takes no ':value' parameter (got {spec!r})")
        kwargs[cls.param] = _number(value.strip(), spec)
    return cls(seed=seed, **kwargs)

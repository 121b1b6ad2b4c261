"""OpenSpiel-backed :class:`~turngym.envs.multiagent.TurnGame`: rules from ``pyspiel``, text from us.

A concrete game sets :attr:`OpenSpielGame.game_name` (and :attr:`game_params`), and implements
:meth:`move_label` (the canonical text of an action id) and :meth:`_render` (what a seat sees).
Everything else — chance nodes drawn from the env's seeded RNG, move parsing, invalid moves,
outcomes — lives here, so each game module is a thin, table-testable renderer.

Move parsing (:meth:`OpenSpielGame._parse_move`) accepts, case-insensitively: the canonical label
(``3``), the label in brackets (``[3]``) or ``\\boxed{3}``, and the label after a verb (``place 3``,
``play 3``, ``I choose 3``). A reply that names two different moves, or none, is rejected with a
message that quotes it and lists the legal moves.
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import numpy as np
import pyspiel

from turngym.envs.multiagent import TurnGame

_VERBS = (
    "i play", "i choose", "i pick", "i will play", "my move is", "move", "play", "place", "choose",
    "pick", "select", "action", "answer", "bid", "i bid", "column", "cell", "drop",
)
_BRACKETED = re.compile(r"\\boxed\{([^{}]*)\}|\[([^\[\]]*)\]")
_STRIP = " \t\r\n.,;:!?'\"`*_()"


def normalize_move_text(text: str) -> str:
    """Lowercase, collapse whitespace and strip surrounding punctuation/markup."""
    return " ".join(text.lower().split()).strip(_STRIP)


# Move spellings (labels, aliases) repeat on every step; user replies are never cached.
_normalize_spelling = functools.lru_cache(maxsize=4096)(normalize_move_text)


class _SpellingTable:
    """``{normalized spelling: action}`` of ``game``'s legal moves, filled only as lookups need.

    Filled move by move, in the order and with the ``setdefault`` rule of a table built up front
    (a spelling's first occurrence wins), so every lookup answers exactly as the full table would;
    but a reply that names a move stops the filling at that move instead of normalizing every
    spelling of every legal move.
    """

    __slots__ = ("_game", "_legal", "_next", "_known")

    def __init__(self, game: OpenSpielGame, legal: list[int]):
        self._game = game
        self._legal = legal
        self._next = 0
        self._known: dict[str, int] = {}

    def __contains__(self, key: str) -> bool:
        known = self._known
        if key in known:
            return True
        game, legal = self._game, self._legal
        while self._next < len(legal):
            action = legal[self._next]
            self._next += 1
            for spelling in (game.move_label(action), *game.move_aliases(action)):
                known.setdefault(_normalize_spelling(spelling), action)
            if key in known:
                return True
        return False

    def __getitem__(self, key: str) -> int:
        return self._known[key]


def quote(text: str, limit: int = 60) -> str:
    """A short repr of (possibly huge) user text for error messages."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class OpenSpielGame(TurnGame):
    """A :class:`TurnGame` whose rules are a ``pyspiel`` game (see the module docstring)."""

    game_name: ClassVar[str] = ""
    game_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._pyspiel_game = pyspiel.load_game(self.game_name, dict(self.game_params))
        self.state: pyspiel.State | None = None

    # ------------------------------------------------------------ per-game hooks
    def move_label(self, action: int) -> str:
        """Canonical text of ``action`` for the seat to act (e.g. ``"5"``, ``"bet"``)."""
        raise NotImplementedError

    def move_aliases(self, action: int) -> tuple[str, ...]:
        """Extra accepted spellings of ``action`` (already normalized). Defaults to none."""
        return ()

    def load_game(self, rng: np.random.Generator) -> pyspiel.Game:
        """The ``pyspiel`` game for a new episode (override when parameters depend on the seed)."""
        return self._pyspiel_game

    # ------------------------------------------------------------ TurnGame hooks
    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self._pyspiel_game = self.load_game(rng)
        self.state = self._pyspiel_game.new_initial_state()
        self._resolve_chance()

    def _to_move(self) -> int:
        return int(self.state.current_player())

    def _is_over(self) -> bool:
        return bool(self.state.is_terminal())

    def _legal_moves(self) -> list[str]:
        if self.state.is_terminal():
            return []
        return [self.move_label(a) for a in self.state.legal_actions()]

    def _returns(self) -> list[float]:
        return [float(r) for r in self.state.returns()]

    def _apply_move(self, move: int) -> str:
        label = self.move_label(move)
        self.state.apply_action(move)
        self._resolve_chance()
        return self.describe_move(label)

    def describe_move(self, label: str) -> str:
        """Public description of a move, shown to the other seats."""
        return f"played {label}"

    def _parse_move(self, text: str) -> tuple[int | None, str | None]:
        table = _SpellingTable(self, self.state.legal_actions())
        bracketed = [a or b for a, b in _BRACKETED.findall(text)]
        candidates = bracketed if bracketed else [text]
        found: set[int] = set()
        for candidate in candidates:
            action = self._lookup(normalize_move_text(candidate), table)
            if action is not None:
                found.add(action)
        if len(found) == 1:
            return found.pop(), None
        if len(found) > 1:
            names = ", ".join(sorted(self.move_label(a) for a in found))
            return None, f"your reply names several moves ({names}); give exactly one"
        if not text.strip():
            return None, "your reply was empty"
        illegal = self._illegal_hint(candidates)
        if illegal is not None:
            return None, illegal
        return None, f"could not read a legal move from {quote(text)}"

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        """Override to explain why a well-formed move is illegal (e.g. an occupied cell)."""
        return None

    @staticmethod
    def _lookup(candidate: str, table: dict[str, int] | _SpellingTable) -> int | None:
        if candidate in table:
            return table[candidate]
        for verb in _VERBS:
            if candidate.startswith(verb + " "):
                rest = candidate[len(verb) + 1 :].strip(_STRIP)
                if rest in table:
                    return table[rest]
        return None

    def _resolve_chance(self) -> None:
        while self.state.is_chance_node():
            outcomes = self.state.chance_outcomes()
            # inverse-CDF draw: the same outcome ``Generator.choice(p=...)`` picks, a few µs cheaper
            cdf = np.cumsum([p for _, p in outcomes])
            pick = int(np.searchsorted(cdf / cdf[-1], self.np_random.random(), side="right"))
            self.state.apply_action(outcomes[min(pick, len(outcomes) - 1)][0])

    def is_to_act(self, seat: int) -> bool:
        """Whether ``seat`` must move now (false once the game is over, also after a forfeit)."""
        return not self.done and not self.state.is_terminal() and self.state.current_player() == seat

    def legal_action_ids(self) -> list[int]:
        """OpenSpiel action ids legal for the seat to act (for scripted agents)."""
        return [] if self.done or self.state.is_terminal() else list(self.state.legal_actions())

"""Item-pool negotiation: OpenSpiel's negotiation rules, scored zero-sum like SPIRAL's SimpleNegotiation.

Rules (OpenSpiel ``negotiation`` with ``enable_utterances=False``): a pool of three item types —
here called books, hats and balls — is on the table, and each seat values each type privately
(points per item). The game draws the pool, both value vectors and the number of moves (4–10) from
its ``rng_seed`` parameter, which :meth:`NegotiationEnv.load_game` draws from the env's seeded RNG,
so ``reset(seed=s)`` always gives the same negotiation. Seats alternate; seat 0 moves first. A move
is either a proposal — how many items of each type the proposer KEEPS, the other seat receiving the
rest of the pool — or, once a proposal exists, accepting the latest proposal, which ends the game
with that split. When the moves run out without an accepted proposal there is no deal.

Scoring (zero-sum, as SPIRAL's SimpleNegotiation): each seat's deal value is OpenSpiel's return for
it — the value, under its own private values, of the items it receives (0 without a deal). The seat
with the higher deal value gets +1, the other −1; equal values and no deal give 0 to both.

What a seat sees: the item pool, ITS OWN values only (the opponent's values are never shown before
the game ends), the latest proposal in plain words from its own perspective (what it would get and
what that is worth to it), the moves left, and the move syntax. The ~216 possible proposals are not
listed; ``info["legal_actions"]`` still holds every canonical label. At the end both seats' values
and deal values are shown.

Actions: ``propose 1 0 2`` (canonical: you keep 1 book, 0 hats, 2 balls), also ``1 0 2``,
``[1, 0, 2]``, ``propose [1,0,2]``, ``keep 1 0 2``, ``offer 1 0 2``; and ``accept`` (canonical), also
``agree``, ``deal``, ``I accept``. Asking for more items than the pool holds, or accepting when no
proposal exists, is rejected with a message saying why.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyspiel

from turngym.envs.games.base import OpenSpielGame, normalize_move_text

ITEM_NAMES = ("book", "hat", "ball")
_TRIPLE_SEPARATOR = re.compile(r"(?<=\d)\s*,\s*(?=\d)")  # "1, 0,2" -> "1 0 2"; linear time
_NUMBERS = re.compile(r"^(?:propose|offer|keep|i keep|i propose)?\s*((?:\d+\s+)*\d+)$")
_PROPOSAL_TEXT = re.compile(r"Proposal: \[([\d, ]*)\]")


def _items(counts: tuple[int, ...], names: tuple[str, ...] = ITEM_NAMES) -> str:
    """``"1 book, 0 hats, 2 balls"``."""
    return ", ".join(f"{n} {name}{'' if n == 1 else 's'}" for n, name in zip(counts, names))


class NegotiationEnv(OpenSpielGame):
    game_name = "negotiation"
    game_params = {"enable_utterances": False}
    seat_names = ("Player 0", "Player 1")
    system_prompt = (
        "You are negotiating with an opponent over how to split a pool of books, hats and balls. "
        "Each of you values each item type privately. Players take turns. On your turn either "
        "propose a split, saying how many books, hats and balls YOU keep (the opponent gets the "
        "rest), or accept the opponent's latest proposal, which ends the game with that split. If "
        "the moves run out with no accepted proposal, there is no deal. Your deal value is the total "
        "value, to you, of the items you receive; whoever gets the higher deal value wins (+1), the "
        "other loses (-1); equal values or no deal is a draw (0). "
        "Reply with one move in brackets, e.g. [propose 1 0 2] or [accept]."
    )
    action_format = (
        "Reply with one move in brackets: [propose B H L] with the numbers of books, hats and balls "
        "you keep, e.g. [propose 1 0 2], or [accept] to accept the latest proposal."
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.agree_action = self._pyspiel_game.num_distinct_actions() - 1

    def load_game(self, rng: np.random.Generator) -> pyspiel.Game:
        seed = int(rng.integers(0, 2**31 - 1))
        return pyspiel.load_game(self.game_name, {**self.game_params, "rng_seed": seed})

    # ------------------------------------------------------------ state helpers
    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self._proposals: list[tuple[int, tuple[int, ...]]] = []  # (proposer, items it keeps)
        super()._new_game(rng, options)

    def _fields(self, seat: int) -> dict[str, str]:
        fields = {}
        for line in self.state.observation_string(seat).splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        return fields

    def pool(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self._fields(0)["Item pool"].split())

    def values(self, seat: int) -> tuple[int, ...]:
        """``seat``'s private value of one item of each type (privileged: for rendering that seat)."""
        return tuple(int(x) for x in self._fields(seat)[f"Agent {seat} util vec"].split())

    def max_moves(self) -> int:
        return int(self._fields(0)["Max steps"])

    def moves_made(self) -> int:
        return len(self.state.history()) - 1  # the first history entry is the chance draw

    def proposal_of(self, action: int) -> tuple[int, ...]:
        """The items the proposer keeps, decoded from OpenSpiel's action string."""
        text = self.state.action_to_string(0, action)
        match = _PROPOSAL_TEXT.match(text)
        if match is None:
            raise ValueError(f"action {action} is not a proposal: {text!r}")
        return tuple(int(x) for x in match.group(1).split(","))

    def worth(self, seat: int, items: tuple[int, ...]) -> int:
        return int(sum(n * v for n, v in zip(items, self.values(seat))))

    def deal_values(self) -> list[float]:
        """Each seat's deal value (OpenSpiel's returns: value of the items received; 0 if no deal)."""
        return [float(r) for r in self.state.returns()]

    def agreed(self) -> bool:
        history = self.state.history()
        return self.state.is_terminal() and len(history) > 1 and history[-1] == self.agree_action

    # ------------------------------------------------------------ OpenSpielGame hooks
    def move_label(self, action: int) -> str:
        if action == self.agree_action:
            return "accept"
        return "propose " + " ".join(map(str, self.proposal_of(action)))

    def move_aliases(self, action: int) -> tuple[str, ...]:
        if action == self.agree_action:
            return ("agree", "deal", "i accept", "i agree", "accept deal", "accept the deal",
                    "accept proposal", "accept the proposal")
        numbers = " ".join(map(str, self.proposal_of(action)))
        return tuple(f"{prefix}{numbers}" for prefix in ("", "keep ", "i keep ", "offer ", "i propose "))

    def _parse_move(self, text: str) -> tuple[int | None, str | None]:
        if isinstance(text, str):
            text = _TRIPLE_SEPARATOR.sub(" ", text)
        return super()._parse_move(text)

    def _apply_move(self, move: int) -> str:
        seat = self._to_move()
        if move == self.agree_action:
            description = "accepts the latest proposal"
        else:
            keep = self.proposal_of(move)
            self._proposals.append((seat, keep))
            description = f"proposes to keep {_items(keep)}"
        self.state.apply_action(move)
        self._resolve_chance()
        return description

    def _returns(self) -> list[float]:
        values = self.deal_values()
        if values[0] == values[1]:
            return [0.0, 0.0]
        return [1.0, -1.0] if values[0] > values[1] else [-1.0, 1.0]

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        pool = self.pool()
        for candidate in candidates:
            if len(candidate) > 60:  # only short, well-formed replies get a specific reason
                continue
            text = normalize_move_text(_TRIPLE_SEPARATOR.sub(" ", candidate))
            if text.split(" ")[-1] in ("accept", "agree") and not self._proposals:
                return "there is no proposal to accept yet; make one with propose B H L"
            match = _NUMBERS.match(text)
            if not match:
                continue
            numbers = [int(x) for x in match.group(1).split()]
            if len(numbers) != len(pool):
                return (
                    f"a proposal has exactly {len(pool)} numbers (the books, hats and balls you keep), "
                    f"got {len(numbers)}"
                )
            for n, available, name in zip(numbers, pool, ITEM_NAMES):
                if n > available:
                    asked, held = _items((n,), (name,)), _items((available,), (name,))
                    return f"you cannot keep {asked}: the pool has only {held}"
        return None

    def _ranges(self) -> str:
        return ", ".join(f"0-{n} {name}s" for n, name in zip(self.pool(), ITEM_NAMES))

    def _legal_moves_text(self) -> str:
        """Invalid-move messages summarise the proposals instead of listing them all."""
        accept = "; or accept" if self.agree_action in self.state.legal_actions() else ""
        return f"propose B H L with {self._ranges()}{accept}"

    # ------------------------------------------------------------ rendering
    def _render(self, seat: int) -> str:
        other = 1 - seat
        pool = self.pool()
        values = self.values(seat)
        value_text = ", ".join(f"{name} {v}" for name, v in zip(ITEM_NAMES, values))
        lines = [
            f"You are {self.seat_names[seat]}. Item pool: {_items(pool)}.",
            f"Your private values per item: {value_text} "
            f"(the whole pool is worth {self.worth(seat, pool)} to you).",
        ]
        if self._proposals:
            proposer, keep = self._proposals[-1]
            rest = tuple(p - k for p, k in zip(pool, keep))
            if proposer == seat:
                lines.append(
                    f"Latest proposal (yours): you keep {_items(keep)}; {self.seat_names[other]} "
                    f"gets {_items(rest)}. Worth {self.worth(seat, keep)} to you."
                )
            else:
                lines.append(
                    f"Latest proposal ({self.seat_names[other]}'s): they keep {_items(keep)}; you "
                    f"get {_items(rest)}. Worth {self.worth(seat, rest)} to you if you accept."
                )
        else:
            lines.append("No proposal yet.")
        if self.state.is_terminal():
            deal = self.deal_values()
            if self.agreed():
                theirs = ", ".join(f"{n} {v}" for n, v in zip(ITEM_NAMES, self.values(other)))
                lines.append(
                    f"Deal reached. Your deal value: {deal[seat]:g}; {self.seat_names[other]}'s deal "
                    f"value: {deal[other]:g} (their values per item: {theirs})."
                )
            else:
                lines.append("No deal: the moves ran out. Both deal values are 0.")
        elif self.is_to_act(seat):
            left = self.max_moves() - self.moves_made()
            last = ""
            if left == 1:
                last = " This is the last move: if you do not accept, there is no deal."
            lines.append(f"Moves left (including this one): {left}.{last}")
            accept = "; or [accept] the latest proposal" if self._proposals else ""
            lines.append(
                f"Your move: [propose B H L] with the books, hats and balls you keep "
                f"({self._ranges()}); the opponent gets the rest{accept}."
            )
        elif not self.done:
            left = self.max_moves() - self.moves_made()
            lines.append(f"Moves left: {left}. Waiting for the opponent.")
        return "\n".join(lines)

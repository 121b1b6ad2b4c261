"""Liar's dice on OpenSpiel's ``liars_dice`` rules (default: two players, one six-sided die each).

Each seat rolls its dice in secret. Seat 0 bids first. A bid ``Q-F`` claims that at least ``Q``
of all dice on the table show face ``F``; sixes are wild (they count for every face). Each new
bid must be higher: a larger quantity (any face), or the same quantity with a higher face. Instead of
bidding, a seat may call the last bid a lie: the dice are revealed and the bidder wins if the bid
holds, otherwise the challenger wins.

What a seat sees: its own dice (never the opponent's before the end), the bid history, the current
bid and — when it must act — its legal bids, written compactly per quantity
(``1-5, 1-6, 2-1 … 2-6``), and whether it may call liar. At the end all dice are revealed, with how
many dice matched the challenged bid.

Actions: bids ``1-5`` (canonical), ``1 5``, ``1x5``, ``bid 1-5``, ``bid 1 5``, ``[1-5]``; the
challenge ``liar``, ``call liar``, ``challenge``, ``[liar]``. A bid that is not higher than the
current one, or names an impossible quantity or face, is rejected with a message saying why.
Outcome: OpenSpiel's returns, +1 for the winner of the challenge, −1 for the loser.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from turngym.envs.games.base import OpenSpielGame, normalize_move_text

_BID = re.compile(r"^(?:bid\s+)?(\d+)\s*(?:-|x|\s)\s*(\d+)$")


class LiarsDiceEnv(OpenSpielGame):
    game_name = "liars_dice"
    seat_names = ("Player 0", "Player 1")
    system_prompt = (
        "You are playing Liar's dice against an opponent. Each player rolls one six-sided die and "
        "keeps it secret. Players take turns bidding: a bid Q-F claims that at least Q of all dice "
        "on the table show face F. Sixes are wild: they count for every face. Each bid must be "
        "higher than the last: a larger quantity, or the same quantity with a higher face. Instead "
        "of bidding you may call liar: the dice are revealed and the bidder wins if the bid holds, "
        "otherwise you win. Reply with one legal move in brackets, e.g. [1-4] or [liar]."
    )
    action_format = (
        "Reply with one legal move in brackets: a bid quantity-face such as [1-4], or [liar]."
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        params = self._pyspiel_game.get_parameters()
        self.sides = int(params["dice_sides"])
        self.dice_per_seat = int(params["numdice"])
        self.liar_action = self._pyspiel_game.num_distinct_actions() - 1

    # ------------------------------------------------------------ state helpers
    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self._bids: list[tuple[int, int]] = []  # (seat, action) of every bid
        super()._new_game(rng, options)

    def bid_of(self, action: int) -> tuple[int, int]:
        """``(quantity, face)`` of a bid action id."""
        return action // self.sides + 1, action % self.sides + 1

    def dice(self, seat: int) -> list[int]:
        """``seat``'s dice values (1-based), from its OpenSpiel information state."""
        return [int(c) for c in self.state.information_state_string(seat).split()[0]]

    def current_bid(self) -> tuple[int, int] | None:
        """``(seat, action)`` of the bid standing now, or ``None`` before the first bid."""
        return self._bids[-1] if self._bids else None

    # ------------------------------------------------------------ OpenSpielGame hooks
    def move_label(self, action: int) -> str:
        if action == self.liar_action:
            return "liar"
        quantity, face = self.bid_of(action)
        return f"{quantity}-{face}"

    def move_aliases(self, action: int) -> tuple[str, ...]:
        if action == self.liar_action:
            return ("call liar", "challenge", "i call liar", "liar liar")
        quantity, face = self.bid_of(action)
        return (f"{quantity} {face}", f"{quantity}x{face}", f"{quantity} x {face}")

    def _apply_move(self, move: int) -> str:
        seat = self._to_move()
        if move == self.liar_action:
            description = "calls liar"
        else:
            self._bids.append((seat, move))
            description = f"bids {self.move_label(move)}"
        self.state.apply_action(move)
        self._resolve_chance()
        return description

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        for candidate in candidates:
            if len(candidate) > 40:  # only short, well-formed replies get a specific reason
                continue
            text = normalize_move_text(candidate)
            if text in ("liar", "call liar", "challenge") and not self._bids:
                return "there is no bid to call liar on yet; make the first bid"
            match = _BID.match(text)
            if not match:
                continue
            quantity, face = int(match.group(1)), int(match.group(2))
            total = self.dice_per_seat * self.num_seats
            if not 1 <= face <= self.sides:
                return f"face {face} does not exist; faces are 1-{self.sides}"
            if not 1 <= quantity <= total:
                return f"the quantity must be between 1 and {total} (there are {total} dice)"
            standing = self.current_bid()
            if standing is not None:
                return (
                    f"bid {quantity}-{face} is not higher than the current bid "
                    f"{self.move_label(standing[1])}"
                )
        return None

    # ------------------------------------------------------------ rendering
    def _compact_bids(self) -> str:
        groups: dict[int, list[int]] = {}
        for action in self.state.legal_actions():
            if action != self.liar_action:
                quantity, face = self.bid_of(action)
                groups.setdefault(quantity, []).append(face)
        parts = []
        for quantity, faces in groups.items():
            if len(faces) <= 2:
                parts.extend(f"{quantity}-{f}" for f in faces)
            else:
                parts.append(f"{quantity}-{faces[0]} … {quantity}-{faces[-1]}")
        return ", ".join(parts)

    def _render(self, seat: int) -> str:
        own = self.dice(seat)
        noun = "die" if len(own) == 1 else "dice"
        lines = [f"You are {self.seat_names[seat]}. Your {noun}: {' '.join(map(str, own))}."]
        if self._bids:
            history = ", ".join(
                f"{'you' if s == seat else self.seat_names[s]} bid {self.move_label(a)}"
                for s, a in self._bids
            )
            lines.append(f"Bids so far: {history}.")
            bidder, action = self._bids[-1]
            quantity, face = self.bid_of(action)
            who = "your" if bidder == seat else f"{self.seat_names[bidder]}'s"
            lines.append(
                f"Current bid: {quantity}-{face} ({who} claim: at least {quantity} "
                f"{'die shows' if quantity == 1 else 'dice show'} {face}, sixes wild)."
            )
        else:
            lines.append("No bids yet.")
        if self.state.is_terminal():
            bidder, action = self._bids[-1]
            quantity, face = self.bid_of(action)
            rolled = "; ".join(
                f"{'you' if s == seat else self.seat_names[s]}: {' '.join(map(str, self.dice(s)))}"
                for s in range(self.num_seats)
            )
            count = sum(
                1 for s in range(self.num_seats) for d in self.dice(s) if d == face or d == self.sides
            )
            challenger = 1 - bidder
            who = "You" if challenger == seat else self.seat_names[challenger]
            lines.append(f"{who} called liar. Dice revealed: {rolled}.")
            lines.append(
                f"{count} {'die matches' if count == 1 else 'dice match'} face {face} "
                f"(sixes wild): the bid {quantity}-{face} {'holds' if count >= quantity else 'fails'}."
            )
        elif self.is_to_act(seat):
            bids = self._compact_bids()
            if not bids:
                lines.append("No higher bid is possible: you must call [liar].")
            else:
                liar = "; or call [liar]" if self.liar_action in self.state.legal_actions() else ""
                lines.append(f"Legal bids: {bids}{liar}.")
            lines.append(self.action_format)
        elif not self.done:
            lines.append("Waiting for the opponent.")
        return "\n".join(lines)

"""Leduc hold'em on OpenSpiel's ``leduc_poker`` rules (two players, six cards, two betting rounds).

The deck holds two suits (spades, hearts) of Jack, Queen and King. Each seat antes 1 chip and gets
one private card. Round 1 is bet with raises of 2 chips, then one public card is revealed and round 2
is bet with raises of 4 chips; at most two raises per round. At showdown a private card that pairs
the public card wins, otherwise the higher private card; equal ranks split the pot.

OpenSpiel cards are ints 0–5: rank ``card // 2`` (Jack, Queen, King), suit ``card % 2`` (spades,
hearts), so card 3 is the Queen of hearts.

What a seat sees: its private card (never the opponent's before a showdown), the public card once
dealt, the round, the betting so far in words, the pot and what each seat has committed, what it
owes, and — when it must act — its legal moves. After a showdown both private cards are shown;
after a fold they stay hidden.

Actions (OpenSpiel: 0 = Fold, 1 = Call, 2 = Raise): ``fold``, ``call``, ``raise``, also in
brackets (``[raise]``) or after a verb (``I call``). With nothing owed, ``check`` is accepted for
``call`` and ``bet`` for ``raise`` (OpenSpiel does not allow folding then). Illegal moves (``check``
when owing chips, ``fold`` with nothing owed, ``raise`` past the raise limit) are rejected with a
message saying why. Outcome: OpenSpiel's returns, the chips won or lost (at most 13).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from turngym.envs.games.base import OpenSpielGame, normalize_move_text

FOLD, CALL, RAISE = 0, 1, 2
RANKS = ("Jack", "Queen", "King")
SUITS = ("spades", "hearts")
_LABELS = ("fold", "call", "raise")
_PAST = {"fold": "folded", "check": "checked", "call": "called", "bet": "bet", "raise": "raised"}
_FIELD = re.compile(r"\[(\w+):? ?([^\]]*)\]")


def card_name(card: int) -> str:
    """``"Jack of spades"`` … ``"King of hearts"`` for OpenSpiel card 0 … 5."""
    return f"{RANKS[card // 2]} of {SUITS[card % 2]}"


class LeducPokerEnv(OpenSpielGame):
    game_name = "leduc_poker"
    seat_names = ("Player 0", "Player 1")
    system_prompt = (
        "You are playing Leduc hold'em poker against an opponent. The deck has six cards: the Jack, "
        "Queen and King of spades and of hearts. Each player antes 1 chip and gets one private card. "
        "There are two betting rounds; after the first, one public card is revealed. Raises are 2 "
        "chips in round 1 and 4 chips in round 2, at most two raises per round. Facing a bet you may "
        "fold, call or raise; with nothing owed you may check (call) or bet (raise). At showdown a "
        "private card matching the public card's rank wins, otherwise the higher rank wins "
        "(Jack < Queen < King); equal ranks split the pot. Your reward is the chips you win or lose. "
        "Reply with one legal move in brackets, e.g. [call]."
    )
    action_format = "Reply with one legal move in brackets: [fold], [call] (or [check]), or [raise]."

    # ------------------------------------------------------------ state helpers
    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self._actions: list[tuple[int, int, str]] = []  # (round, seat, word) of every betting move
        super()._new_game(rng, options)

    def _fields(self, seat: int) -> dict[str, str]:
        return dict(_FIELD.findall(self.state.observation_string(seat)))

    def private_card(self, seat: int) -> int:
        return int(self._fields(seat)["Private"])

    def public_card(self) -> int | None:
        value = self._fields(0).get("Public")
        return None if value is None else int(value)

    def round(self) -> int:
        return int(self._fields(0)["Round"])

    def committed(self) -> list[int]:
        """Chips each seat has put in the pot so far (ante included)."""
        return [int(x) for x in self._fields(0)["Ante"].split()]

    def owed(self) -> int:
        """Chips the seat to act must add to call (0: it may check)."""
        committed = self.committed()
        return max(committed) - committed[self._to_move()]

    def showdown(self) -> bool:
        return self.state.is_terminal() and bool(self._actions) and self._actions[-1][2] != "fold"

    # ------------------------------------------------------------ OpenSpielGame hooks
    def move_label(self, action: int) -> str:
        return _LABELS[action]

    def move_aliases(self, action: int) -> tuple[str, ...]:
        if self.owed() == 0:
            return {CALL: ("check",), RAISE: ("bet",)}.get(action, ())
        return ()

    def _word(self, action: int) -> str:
        if self.owed() == 0:
            return {CALL: "check", RAISE: "bet"}.get(action, _LABELS[action])
        return _LABELS[action]

    def _apply_move(self, move: int) -> str:
        seat, round_, word = self._to_move(), self.round(), self._word(move)
        before = self.committed()[seat]
        self.state.apply_action(move)
        self._resolve_chance()
        added = self.committed()[seat] - before
        self._actions.append((round_, seat, word))
        if word in ("bet", "call"):
            return f"{word}s {added} chip{'s' if added != 1 else ''}"
        if word == "raise":
            return f"raises (puts in {added} chips)"
        return f"{word}s"

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        words = {normalize_move_text(c).split(" ")[-1] for c in candidates if c.strip()}
        owed = self.owed()
        legal = self.state.legal_actions()
        if owed and "check" in words:
            return f"you owe {owed} chips, so you cannot check: fold, call or raise"
        if not owed and "fold" in words:
            return "nothing is owed, so folding is not allowed: check or bet"
        if RAISE not in legal and words & {"raise", "bet"}:
            return "the raise limit of this round is reached: call or fold"
        return None

    # ------------------------------------------------------------ rendering
    def _render(self, seat: int) -> str:
        other = 1 - seat
        card = self.private_card(seat)
        public = self.public_card()
        committed = self.committed()
        lines = [f"You are {self.seat_names[seat]}. Your card: {card_name(card)}."]
        if public is None:
            lines.append("Public card: not revealed yet (it is revealed after round 1).")
        else:
            lines.append(f"Public card: {card_name(public)}.")
        for r in (1, 2):
            moves = [
                f"{'you' if s == seat else self.seat_names[s]} {_PAST[w]}"
                for rr, s, w in self._actions
                if rr == r
            ]
            if moves or (r == 1 or public is not None):
                lines.append(f"Round {r} betting: {', '.join(moves) if moves else 'none yet'}.")
        lines.append(
            f"Pot: {sum(committed)} chips (you {committed[seat]}, "
            f"{self.seat_names[other]} {committed[other]})."
        )
        if self.state.is_terminal():
            if self.showdown():
                lines.append(
                    f"Showdown: your {card_name(card)} against {self.seat_names[other]}'s "
                    f"{card_name(self.private_card(other))}."
                )
            else:
                folder = self._actions[-1][1]
                who = "You" if folder == seat else self.seat_names[folder]
                lines.append(f"{who} folded; the cards are not shown.")
        elif self.is_to_act(seat):
            owed = self.owed()
            situation = f"Round {self.round()}. "
            situation += f"You owe {owed} chips." if owed else "Nothing owed (call = check)."
            moves = ", ".join(f"[{m}]" for m in self._legal_moves())
            lines.append(f"{situation} Your move: {moves}.")
        elif not self.done:
            lines.append(f"Round {self.round()}. Waiting for the opponent.")
        return "\n".join(lines)

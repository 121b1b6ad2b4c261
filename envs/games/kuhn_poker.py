"""Kuhn poker on OpenSpiel's ``kuhn_poker`` rules (two players, a three-card deck J < Q < K).

Each seat antes 1 chip and is dealt one private card. Seat 0 acts first. A seat may check or bet
1 chip; facing a bet it may call (match it) or fold (give up the pot). After check-check or a
called bet the higher card wins the pot (showdown).

What a seat sees: its own card (never the opponent's), the betting so far in words, the pot, the
chips it has committed, and — when it must act — its legal moves. Opponent moves are described
publicly ("bets", "checks", "calls", "folds"). When the hand ends in a showdown both cards are
shown; after a fold they stay hidden.

Actions (OpenSpiel: 0 = Pass, 1 = Bet). Labels depend on the situation:

* nothing to call: ``check`` (0) or ``bet`` (1); ``pass`` is accepted for ``check``;
* facing a bet: ``fold`` (0) or ``call`` (1); ``pass`` is accepted for ``fold`` and ``bet``
  (OpenSpiel's name of action 1) for ``call``.

Spellings ``call``, ``[call]``, ``\\boxed{call}``, ``I call`` all work. ``check`` while facing a bet,
or ``fold``/``call`` with nothing to call, are rejected with a message saying why.
Outcome: OpenSpiel's returns, the chips won or lost (±1 or ±2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from turngym.envs.games.base import OpenSpielGame, normalize_move_text

CARD_NAMES = ("J", "Q", "K")
_LONG_CARD_NAMES = ("Jack", "Queen", "King")
PASS, BET = 0, 1
_PAST = {"check": "checked", "bet": "bet", "call": "called", "fold": "folded"}
_PRESENT = {"check": "checks", "bet": "bets", "call": "calls", "fold": "folds"}


def card_name(card: int) -> str:
    """``"J"``, ``"Q"`` or ``"K"`` for OpenSpiel card 0, 1 or 2."""
    return CARD_NAMES[card]


class KuhnPokerEnv(OpenSpielGame):
    game_name = "kuhn_poker"
    seat_names = ("Player 0", "Player 1")
    system_prompt = (
        "You are playing Kuhn poker against an opponent. The deck has three cards: J < Q < K. "
        "Each player antes 1 chip and gets one private card. Player 0 acts first. With nothing to "
        "call you may check or bet 1 chip; facing a bet you may call 1 chip or fold. If both check, "
        "or a bet is called, the higher card wins the pot. Your reward is the chips you win or lose. "
        "Reply with one legal move in brackets, e.g. [bet]."
    )
    action_format = (
        "Reply with one legal move in brackets: [check] or [bet], or facing a bet [call] or [fold]."
    )

    # ------------------------------------------------------------ state helpers
    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self._actions: list[tuple[int, str]] = []  # (seat, label) of every betting move
        super()._new_game(rng, options)

    def _betting(self) -> list[int]:
        """OpenSpiel betting actions so far (the first two history entries are the deal)."""
        return list(self.state.history()[2:])

    def facing_bet(self) -> bool:
        """Whether the seat to act faces an uncalled bet."""
        return BET in self._betting()

    def private_card(self, seat: int) -> int:
        return int(self.state.history()[seat])

    def committed(self) -> list[int]:
        """Chips each seat has put in the pot (ante included), from OpenSpiel's observation."""
        text = self.state.observation_string(0)
        return [int(c) for c in text[1:]]

    def showdown(self) -> bool:
        """Whether the hand ended with the cards compared (no fold)."""
        betting = self._betting()
        return self.state.is_terminal() and betting[-2:] != [BET, PASS]

    # ------------------------------------------------------------ OpenSpielGame hooks
    def move_label(self, action: int) -> str:
        if self.facing_bet():
            return "fold" if action == PASS else "call"
        return "check" if action == PASS else "bet"

    def move_aliases(self, action: int) -> tuple[str, ...]:
        return ("pass",) if action == PASS else ("bet",)

    def _apply_move(self, move: int) -> str:
        label = self.move_label(move)
        self._actions.append((self._to_move(), label))
        self.state.apply_action(move)
        self._resolve_chance()
        return _PRESENT[label]

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        words = {normalize_move_text(c).split(" ")[-1] for c in candidates if c.strip()}
        if self.facing_bet() and "check" in words:
            return "you face a bet, so you cannot check: call or fold"
        if not self.facing_bet() and words & {"call", "fold"}:
            return "there is no bet to call or fold against: check or bet"
        return None

    # ------------------------------------------------------------ rendering
    def _render(self, seat: int) -> str:
        me = self.seat_names[seat]
        card = self.private_card(seat)
        lines = [f"You are {me} ({'first' if seat == 0 else 'second'} to act). "
                 f"Your card: {card_name(card)} ({_LONG_CARD_NAMES[card]})."]
        if self._actions:
            history = ", ".join(
                f"{'you' if s == seat else self.seat_names[s]} {_PAST[label]}"
                for s, label in self._actions
            )
            lines.append(f"Betting so far: {history}.")
        else:
            lines.append("Betting so far: none.")
        committed = self.committed()
        lines.append(f"Pot: {sum(committed)} chips. You have put in {committed[seat]}.")
        if self.state.is_terminal():
            if self.showdown():
                other = 1 - seat
                lines.append(
                    f"Showdown: your {card_name(card)} against {self.seat_names[other]}'s "
                    f"{card_name(self.private_card(other))}."
                )
            else:
                folder = self._actions[-1][0]
                who = "You" if folder == seat else self.seat_names[folder]
                lines.append(f"{who} folded; the cards are not shown.")
        elif self.is_to_act(seat):
            moves = " or ".join(f"[{m}]" for m in self._legal_moves())
            situation = "You face a bet." if self.facing_bet() else "Nothing to call."
            lines.append(f"{situation} Your move: {moves}.")
        elif not self.done:
            lines.append("Waiting for the opponent.")
        return "\n".join(lines)

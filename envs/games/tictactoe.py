"""Tic-tac-toe on OpenSpiel's ``tic_tac_toe`` rules.

Seat 0 plays X and moves first. Cells are numbered 1–9 row by row; free cells show their number::

     X | 2 | 3
    ---+---+---
     4 | O | 6
    ---+---+---
     7 | 8 | 9

Actions: ``5``, ``[5]``, ``place 5``, ``\\boxed{5}``. Outcome: +1 win, −1 loss, 0 draw.
"""

from __future__ import annotations

from turngym.envs.games.base import OpenSpielGame, normalize_move_text


class TicTacToeEnv(OpenSpielGame):
    game_name = "tic_tac_toe"
    seat_names = ("X", "O")
    system_prompt = (
        "Play tic-tac-toe: get three of your marks in a row, column or diagonal. "
        "Cells are numbered 1-9, left to right, top to bottom."
    )
    action_format = "Answer with one free cell number in brackets, like [5]."

    def move_label(self, action: int) -> str:
        return str(action + 1)

    def move_aliases(self, action: int) -> tuple[str, ...]:
        return (f"cell {action + 1}", f"square {action + 1}")

    def board_cells(self) -> list[str]:
        """The 9 cells as ``"X"``, ``"O"`` or their 1-based number when free."""
        text = self.state.observation_string(0).replace("\n", "")
        return [str(i + 1) if c == "." else c.upper() for i, c in enumerate(text)]

    def _render(self, seat: int) -> str:
        cells = self.board_cells()
        rows = [" " + " | ".join(cells[r * 3 : r * 3 + 3]) for r in range(3)]
        board = "\n---+---+---\n".join(rows)
        mark = self.seat_names[seat]
        if self.done or self.state.is_terminal():
            return f"{board}\n\nYou are {mark}."
        if not self.is_to_act(seat):
            return f"{board}\n\nYou are {mark}. Waiting for the opponent."
        legal = " ".join(f"[{m}]" for m in self._legal_moves())
        return f"{board}\n\nYou are {mark}. {self.action_format} Choose one of: {legal}"

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        cells = self.board_cells()
        for candidate in candidates:
            text = normalize_move_text(candidate)
            digits = [c for c in text if c in "0123456789"]  # ASCII only: "²".isdigit() but int("²") fails
            if len(digits) == 1 and text.endswith(digits[0]) and digits[0] != "0":
                cell = int(digits[0])
                if cells[cell - 1] in ("X", "O"):
                    return f"cell {cell} is already taken by {cells[cell - 1]}"
        return None

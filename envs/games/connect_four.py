"""Connect Four (6 rows x 7 columns) on OpenSpiel's ``connect_four`` rules.

Seat 0 plays X and moves first; seat 1 plays O. A disc dropped into a column falls to the lowest
free row. The board is drawn top row first, with the column numbers 1–7 above it and ``.`` for an
empty cell::

     1 2 3 4 5 6 7
     . . . . . . .
     . . . . . . .
     . . . . . . .
     . . . . . . .
     . . . O . . .
     X . X X O . .

The observation then names the open (not yet full) columns.

Actions: the column number, ``4``, ``[4]``, ``\\boxed{4}``, ``column 4``, ``col 4``, ``drop 4``,
``drop in column 4``. A full column or a number outside 1–7 is rejected with a message saying why.
Outcome: +1 win (four in a row, column or diagonal), −1 loss, 0 draw (board full).
"""

from __future__ import annotations

import re

from turngym.envs.games.base import OpenSpielGame, normalize_move_text

ROWS = 6
COLUMNS = 7


class ConnectFourEnv(OpenSpielGame):
    game_name = "connect_four"
    seat_names = ("X", "O")
    system_prompt = (
        "You are playing Connect Four against an opponent on a board of 6 rows and 7 columns. "
        "Columns are numbered 1-7 from left to right. On your turn you drop one of your discs "
        "into a column that is not full; it falls to the lowest empty cell of that column. "
        "The first player to line up four discs horizontally, vertically or diagonally wins. "
        "Reply with the number of an open column in brackets, e.g. [4]."
    )
    action_format = "Reply with the number of one open column (1-7) in brackets, e.g. [4]."

    def move_label(self, action: int) -> str:
        return str(action + 1)

    def move_aliases(self, action: int) -> tuple[str, ...]:
        n = action + 1
        return (f"column {n}", f"col {n}", f"drop {n}", f"drop in column {n}")

    def describe_move(self, label: str) -> str:
        return f"dropped a disc in column {label}"

    def board_rows(self) -> list[list[str]]:
        """The grid, top row first, cells ``"X"``, ``"O"`` or ``"."``."""
        text = self.state.observation_string(0)
        return [[c.upper() for c in line] for line in text.split("\n") if line.strip()]

    def _render(self, seat: int) -> str:
        header = " " + " ".join(str(c + 1) for c in range(COLUMNS))
        rows = [" " + " ".join(row) for row in self.board_rows()]
        board = "\n".join([header, *rows])
        mark = self.seat_names[seat]
        if self.done or self.state.is_terminal():
            return f"{board}\n\nYou are {mark}."
        if not self.is_to_act(seat):
            return f"{board}\n\nYou are {mark}. Waiting for the opponent."
        legal = " ".join(self._legal_moves())
        return f"{board}\n\nYou are {mark}. Open columns: {legal}.\n{self.action_format}"

    def _illegal_hint(self, candidates: list[str]) -> str | None:
        for candidate in candidates:
            if len(candidate) > 40:  # only short, well-formed replies get a specific reason
                continue
            text = normalize_move_text(candidate)
            numbers = re.findall(r"\d+", text)
            if len(numbers) != 1 or not text.endswith(numbers[0]):
                continue
            column = int(numbers[0])
            if not 1 <= column <= COLUMNS:
                return f"there is no column {column}; columns are numbered 1-{COLUMNS}"
            if column - 1 not in self.state.legal_actions():
                return f"column {column} is full"
        return None

"""``turngym household …``: this family's command-line tools."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym household``; returns the exit status."""
    print("turngym household: no commands yet", file=sys.stderr)
    return 2

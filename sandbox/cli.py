"""``turngym sandbox …``: build-image, doctor, serve."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym sandbox``; returns the exit status."""
    print("turngym sandbox: no commands yet", file=sys.stderr)
    return 2

"""Registration of the ``turngym/…`` ids of this family. Imported by :mod:`turngym.envs.builtin`.

Keep this module import-light: entry points are ``"module:Class"`` strings, loaded on ``make``.
"""

from __future__ import annotations

from turngym.envs.registration import register


def register_ids() -> None:
    """Register this family's ids (none yet)."""

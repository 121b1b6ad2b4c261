"""Shared fixtures. Tests import the installed ``turngym`` (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import pytest

import turngym

GAME_IDS = sorted(i for i, s in turngym.registry().items() if s.family == "game" and i.startswith("turngym/"))


@pytest.fixture(params=GAME_IDS)
def game_id(request: pytest.FixtureRequest) -> str:
    return request.param

"""Shared fixtures. Tests import the installed ``turngym`` (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

import turngym

# CI replays a fixed set of examples (reproducible runs; no example database on a clean clone);
# on a workstation every run explores new ones. TURNGYM_FUZZ_SCALE multiplies the fuzz budget.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

GAME_IDS = sorted(i for i, s in turngym.registry().items() if s.family == "game" and i.startswith("turngym/"))


@pytest.fixture(params=GAME_IDS)
def game_id(request: pytest.FixtureRequest) -> str:
    return request.param

"""The golden playthroughs in this folder still match what the games produce."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parent / "make_playthroughs.py"
_spec = importlib.util.spec_from_file_location("turngym_golden_make_playthroughs", _SCRIPT)
make_playthroughs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_playthroughs)


@pytest.mark.parametrize("name", make_playthroughs.game_names())
def test_playthrough_matches_golden(name):
    path = make_playthroughs.golden_path(name)
    assert path.exists(), f"{path} is missing: run python tests/golden/make_playthroughs.py"
    expected = path.read_text(encoding="utf-8")
    actual = make_playthroughs.playthrough(name)
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{path.name} (checked in)",
                tofile=f"{path.name} (generated now)",
            )
        )
        print(diff)
        pytest.fail(
            f"{name}: the playthrough differs from {path.name} (diff above); "
            "run python tests/golden/make_playthroughs.py to regenerate if the change is intended"
        )


def test_playthroughs_are_deterministic():
    name = make_playthroughs.game_names()[-1]
    assert make_playthroughs.playthrough(name) == make_playthroughs.playthrough(name)

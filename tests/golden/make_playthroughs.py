"""Regenerate the golden playthroughs of the built-in games: ``python tests/golden/make_playthroughs.py``.

For every built-in game id (family ``game`` in the ``turngym/`` namespace) this plays ONE episode from ``reset(seed=7)``
in which each move is drawn by ``numpy.random.default_rng(7)`` among ``info["legal_actions"]``, and
writes ``tests/golden/<Name>-v0.txt``: the id, the seed, then per step the seat to act, the observation
shown to it, the action and the step's ``TurnRecord`` as a dict, and finally the outcomes and each
seat's final observation. ``test_playthroughs.py`` regenerates the texts in memory and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium
import numpy as np

import turngym  # registers the ids

SEED = 7
MAX_STEPS = 500  # a safety net; every built-in game ends far sooner
GOLDEN_DIR = Path(__file__).resolve().parent


def game_names() -> list[str]:
    """``["TicTacToe-v0", ...]``: the built-in game ids without the namespace."""
    return [
        env_id.split("/", 1)[1]
        for env_id, spec in turngym.registry().items()
        if spec.family == "game" and env_id.startswith("turngym/")
    ]


def playthrough(name: str, seed: int = SEED) -> str:
    """The golden text of one seeded random episode of ``turngym/<name>``."""
    env_id = f"turngym/{name}"
    env = gymnasium.make(env_id, disable_env_checker=True)
    game = env.unwrapped
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    lines = [f"id: {env_id}", f"seed: {seed}", ""]
    for step in range(MAX_STEPS):
        legal = info["legal_actions"]
        action = legal[int(rng.integers(len(legal)))]
        lines += [
            f"=== step {step} ===",
            f"seat: {info['seat']}",
            "observation:",
            obs,
            f"action: {json.dumps(action, ensure_ascii=False)}",
        ]
        obs, _, terminated, truncated, info = env.step(action)
        lines += [f"record: {json.dumps(info['turn'].to_dict(), ensure_ascii=False)}", ""]
        if terminated or truncated:
            break
    else:
        raise RuntimeError(f"{env_id} did not end within {MAX_STEPS} steps")
    lines += ["=== end ===", f"outcomes: {json.dumps({str(s): r for s, r in info['outcomes'].items()})}"]
    for seat in range(game.num_seats):
        lines += [f"final observation (seat {seat}):", game.observe(seat)]
    env.close()
    return "\n".join(lines) + "\n"


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.txt"


def main() -> int:
    for name in game_names():
        path = golden_path(name)
        path.write_text(playthrough(name), encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

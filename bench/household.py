"""Household throughput: turngym's ``Household-v0`` vs the raw ALFWorld TextWorld env, same games, same run.

Run as a script::

    python bench/household.py --json out.json      # full run
    python bench/household.py --quick              # smoke run, prints the JSON

or through ``turngym bench household``.

Measured:

``ours``
    ``turngym.make("turngym/Household-v0")`` (TurnLimit wrapper included); each step sends a
    command and gets the observation text with the admissible-command list appended, the milestone
    components and the ``TurnRecord``.
``alfworld_raw``
    what ALFWorld's own ``AlfredTWEnv.init_env`` builds, one per game: ``textworld.gym.register_game``
    with ``EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])`` and the wrappers
    ``[AlfredDemangler(), AlfredInfos]``, in-process (``asynchronous=False``, ``batch_size=None``:
    no IPC, generous to the peer); each step is ``env.step(command)``.

Both play the **same games** (problems of the seen split, all six task types) with the **same
command sequences**: random admissible commands drawn once from a seeded RNG, replayed in both. The
overhead figure compares the two on the same engine configuration: turngym installs two caches of
pure engine functions (:mod:`turngym.envs.household.engine`), so ``alfworld_raw`` is timed with
them installed (``overhead``) and as shipped (``alfworld_shipped``, caches removed). Rounds
interleave the implementations; figures are medians, ratios are medians of per-round pairs. Resets
are timed apart from steps. Also measured: problem generation rate (fresh problems into an empty
cache, each verified by the planner expert).

Target (issue #6): our overhead over the raw engine <= 10%, i.e. ``ours / alfworld_raw >= 0.909``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from typing import Any

from turngym.bench._script import script_main


def _games(per_type: int, steps: int, seed: int) -> list[dict[str, Any]]:
    """Pick games and record a random admissible command sequence for each (untimed)."""
    import numpy as np

    from turngym.envs.household.env import HouseholdEnv
    from turngym.envs.household.generator import TASK_TYPES

    env = HouseholdEnv()
    rng = np.random.default_rng(seed)
    games = []
    for task in TASK_TYPES:
        for index in range(per_type):
            env.reset(options={"task_type": task, "index": index})
            commands = []
            for _ in range(steps):
                command = env.sample_valid_action(rng)
                commands.append(command)
                if env.step(command)[2]:
                    break
            games.append({"task_type": task, "index": index, "game_file": env.game.game_file, "commands": commands})
    return games


def _time_ours(env, games) -> tuple[float, float, int]:
    reset_s = step_s = 0.0
    n = 0
    for g in games:
        t0 = time.perf_counter()
        env.reset(options={"task_type": g["task_type"], "index": g["index"]})
        t1 = time.perf_counter()
        for command in g["commands"]:
            env.step(command)
        t2 = time.perf_counter()
        reset_s, step_s, n = reset_s + t1 - t0, step_s + t2 - t1, n + len(g["commands"])
    return reset_s, step_s, n


def _raw_envs(games):
    import textworld
    import textworld.gym
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    envs = []
    for g in games:
        env_id = textworld.gym.register_game(g["game_file"], infos, max_episode_steps=10_000, asynchronous=False,
                                             wrappers=[AlfredDemangler(), AlfredInfos])
        envs.append(textworld.gym.make(env_id))
    return envs


def _time_raw(envs, games) -> tuple[float, float, int]:
    reset_s = step_s = 0.0
    n = 0
    for env, g in zip(envs, games):
        t0 = time.perf_counter()
        env.reset()
        t1 = time.perf_counter()
        for command in g["commands"]:
            env.step(command)
        t2 = time.perf_counter()
        reset_s, step_s, n = reset_s + t1 - t0, step_s + t2 - t1, n + len(g["commands"])
    return reset_s, step_s, n


def _same_transcripts(ours_env, raw_envs, games) -> bool:
    """Both implementations print the same engine text for the same commands (sanity check)."""
    for env, g in zip(raw_envs, games):
        ours_env.reset(options={"task_type": g["task_type"], "index": g["index"]})
        env.reset()
        for command in g["commands"]:
            obs_ours = ours_env.step(command)[0]
            obs_raw = env.step(command)[0]
            if not obs_ours.startswith(obs_raw.strip()):
                return False
    return True


def _generation_rate(count: int) -> dict[str, Any]:
    from turngym.envs.household.generator import TASK_TYPES, ProblemStore

    with tempfile.TemporaryDirectory() as tmp:
        store = ProblemStore(tmp)
        store.get("seen", TASK_TYPES[0], 10_000)  # start the planner worker outside the timing
        t0 = time.perf_counter()
        for i in range(count):
            store.get("seen", TASK_TYPES[i % len(TASK_TYPES)], i // len(TASK_TYPES))
        elapsed = time.perf_counter() - t0
    return {"problems": count, "seconds": round(elapsed, 2), "problems_per_s": round(count / elapsed, 3)}


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    import turngym
    from turngym.envs.household import engine

    per_type, steps, rounds = (1, 10, 2) if quick else (2, 25, 3)
    engine.install_caches()
    games = _games(per_type, steps, seed)
    ours_env = turngym.make("turngym/Household-v0", max_turns=None)
    raw = _raw_envs(games)
    same = _same_transcripts(ours_env, raw, games)
    # warm-up (untimed)
    _time_ours(ours_env, games[:2])
    _time_raw(raw, games[:2])
    results: dict[str, list[tuple[float, float, int]]] = {"ours": [], "alfworld_raw": [], "alfworld_shipped": []}
    gc.disable()
    try:
        for r in range(rounds):
            order = ["ours", "alfworld_raw", "alfworld_shipped"]
            order = order[r % 3:] + order[: r % 3]
            for name in order:
                if name == "ours":
                    results[name].append(_time_ours(ours_env, games))
                elif name == "alfworld_raw":
                    results[name].append(_time_raw(raw, games))
                else:
                    engine.uninstall_caches()
                    try:
                        results[name].append(_time_raw(raw, games))
                    finally:
                        engine.install_caches()
    finally:
        gc.enable()

    def figures(name: str) -> dict[str, float]:
        rows = results[name]
        return {
            "steps_per_s": round(statistics.median(n / s for _, s, n in rows), 2),
            "reset_s": round(statistics.median(rs / len(games) for rs, _, _ in rows), 4),
        }

    ratio = statistics.median(
        (n_o / s_o) / (n_r / s_r) for (_, s_o, n_o), (_, s_r, n_r) in zip(results["ours"], results["alfworld_raw"])
    )
    shipped = statistics.median(
        (n_o / s_o) / (n_r / s_r) for (_, s_o, n_o), (_, s_r, n_r) in zip(results["ours"], results["alfworld_shipped"])
    )
    out = {
        "suite": "household",
        "quick": quick,
        "games": len(games),
        "steps_per_round": sum(len(g["commands"]) for g in games),
        "rounds": rounds,
        "same_engine_text": same,
        "ours": figures("ours"),
        "alfworld_raw": figures("alfworld_raw"),
        "alfworld_shipped": figures("alfworld_shipped"),
        "ratio_ours_vs_raw": round(ratio, 3),
        "overhead_vs_raw": round(1 / ratio - 1, 3),
        "ratio_ours_vs_shipped": round(shipped, 3),
        "generation": _generation_rate(6 if quick else 18),
    }
    out["target"] = {"overhead_le_10pct": {"value": out["overhead_vs_raw"], "pass": out["overhead_vs_raw"] <= 0.10}}
    return out


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, None, argv)


if __name__ == "__main__":
    sys.exit(main())

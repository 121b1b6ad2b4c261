"""Tournament throughput: games per second with 1 vs 2 worker processes, in one run.

Run as a script::

    python bench/tournament.py --json out.json     # full run
    python bench/tournament.py --quick             # smoke run, prints the JSON

or import it by path and call :func:`run` (``bench/`` is a folder of scripts, not a package; see
``bench/run.py``).

What is measured: :func:`turngym.training.tournament.run_tournament` on TicTacToe with the agents
``random``, ``heuristic`` and ``minimax`` (three pairs), ``games_per_pair`` games each, into a fresh
directory every time, once with ``workers=1`` (games played in the calling process) and once with
``workers=2`` (a ``spawn`` process pool). Each run is a fresh Python process (its imports untimed), so
both settings start cold, as ``turngym tournament`` does: the minimax table is built on first use by
the playing process (each worker, with 2). Two figures per setting:

``play``
    new games / seconds spent playing them — process-pool start-up (spawning and importing turngym in
    each worker), task round trips and the per-game ``games.jsonl`` append are inside it; the ratings
    and files written afterwards are not.
``end_to_end``
    new games / wall time of the whole ``run_tournament`` call, with the bootstrap (``n_boot`` 1000)
    and the JSON/CSV/markdown files (plots off: matplotlib's one-off import would dominate).

Rounds interleave the two settings (the order alternates each round); the figures are medians over
rounds and the ratio (2 workers / 1 worker) is the median of the per-round paired ratios. The ideal
ratio is 2.0 on an otherwise idle machine with at least 2 free cores; the machine's core count and
load average are recorded, since on a shared machine they bound what a second process can add. CPU
seconds (this process plus its workers) are recorded too: ``cpu_efficiency_2`` = CPU of the 1-worker
run / CPU of the 2-worker run is the pool's overhead-adjusted efficiency, a figure that load on the
machine does not distort; ``2 × cpu_efficiency_2`` is the speed-up two idle cores would give.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

from turngym.bench._script import script_main

ENV_ID = "turngym/TicTacToe-v0"
AGENTS = ["random", "heuristic", "minimax"]
SEED = 1234


_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from turngym.training.tournament import run_tournament
env_id, agents, games_per_pair, workers, seed = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory(prefix="turngym-bench-tournament-") as tmp:
    cpu0 = time.process_time()
    started = time.perf_counter()
    result = run_tournament(env_id, agents, games_per_pair, Path(tmp), workers=workers, seed=seed, plots=False)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
children = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu += children.ru_utime + children.ru_stime
print(json.dumps({"games": result.new_games, "play_s": result.play_s, "wall_s": wall, "cpu_s": cpu, "order": result.players}))
"""


def _one(workers: int, games_per_pair: int, seed: int) -> dict[str, Any]:
    """One tournament in a fresh Python process (imports untimed), so both settings start equally cold."""
    args = json.dumps([ENV_ID, AGENTS, games_per_pair, workers, seed])
    done = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tournament run failed (workers={workers}):\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["play_games_per_s"] = out["games"] / out["play_s"]
    out["end_to_end_games_per_s"] = out["games"] / out["wall_s"]
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    games_per_pair = 200 if quick else 2000
    rounds = 2 if quick else 3
    started = time.time()
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for r in range(rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            runs[workers].append(_one(workers, games_per_pair, SEED + r))

    def median(workers: int, key: str) -> float:
        return statistics.median(x[key] for x in runs[workers])

    def ratio(key: str) -> float:
        return statistics.median(b[key] / a[key] for a, b in zip(runs[1], runs[2]))

    figures = {
        f"workers_{w}": {
            "play_games_per_s": round(median(w, "play_games_per_s"), 1),
            "end_to_end_games_per_s": round(median(w, "end_to_end_games_per_s"), 1),
            "play_s": [round(x["play_s"], 3) for x in runs[w]],
            "cpu_s": [round(x["cpu_s"], 3) for x in runs[w]],
        }
        for w in (1, 2)
    }
    same_order = all(x["order"] == runs[1][0]["order"] for w in (1, 2) for x in runs[w])
    return {
        "suite": "tournament",
        "quick": quick,
        "metric": "tournament games per second (higher is better); the 2-vs-1-worker ratio is the figure",
        "setup": {
            "env_id": ENV_ID,
            "agents": AGENTS,
            "games_per_pair": games_per_pair,
            "games_per_run": games_per_pair * len(AGENTS) * (len(AGENTS) - 1) // 2,
            "rounds": rounds,
        },
        "method": "fresh output dir per run; settings interleaved, order alternating by round; medians over rounds; "
        "ratio = median of per-round paired ratios",
        "figures": figures,
        "ratio_2_vs_1": {"play": round(ratio("play_games_per_s"), 3), "end_to_end": round(ratio("end_to_end_games_per_s"), 3)},
        # CPU seconds of the whole run (this process and its workers), 1 worker / 2 workers: the
        # parallel efficiency. Times 2 it is the speed-up two otherwise idle cores would give.
        "cpu_efficiency_2": round(statistics.median(a["cpu_s"] / b["cpu_s"] for a, b in zip(runs[1], runs[2])), 3),
        "rating_order_identical": same_order,
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "wall_s": round(time.time() - started, 2),
    }


def summary(result: dict[str, Any]) -> str:
    f = result["figures"]
    r = result["ratio_2_vs_1"]
    return (
        f"{result['setup']['games_per_run']} games/run: "
        f"1 worker {f['workers_1']['play_games_per_s']:.0f} games/s (end to end {f['workers_1']['end_to_end_games_per_s']:.0f}), "
        f"2 workers {f['workers_2']['play_games_per_s']:.0f} games/s (end to end {f['workers_2']['end_to_end_games_per_s']:.0f}); "
        f"ratio 2/1 = {r['play']:.2f} (end to end {r['end_to_end']:.2f}); cpu efficiency {result['cpu_efficiency_2']:.2f}; "
        f"cpus {result['environment']['cpus']}, load {result['environment']['load_average_1m']}"
    )


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv)


if __name__ == "__main__":
    sys.exit(main())

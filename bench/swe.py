"""Code/SWE environment throughput: oracle episodes, sandbox share, warm pool vs no pool.

Run as a script::

    python bench/swe.py --json out.json     # full run
    python bench/swe.py --quick             # smoke run

or through ``turngym bench swe``. What is measured:

``episode``
    The ``oracle`` agent (gold patch through the tools, ``run_tests``, ``submit``) on the first N
    tasks of ``turngym/CodeRepair-v0`` and ``turngym/SWE-v0``, one episode at a time: wall time per
    episode (reset included, grading in a fresh sandbox included) and the share of it spent inside
    sandbox calls (``RepairEnv.sandbox_seconds``: acquire, exec, file transfer, grading).
``throughput``
    Tasks per minute with 2 worker threads (the 2-core budget), each running oracle episodes on its
    own env, **with the warm pool** (``pool_size=2``: sandboxes pre-started and recycled by reset)
    **vs without** (``pool_size=0``: every episode and every grading starts and removes a
    container). Both runs use the same tasks in the same order; the ratio is the figure.

Absolute times on shared machines are noise; the ratios inside one run are the figures.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from turngym.bench._script import script_main


def _oracle_episode(env, seed: int) -> tuple[float, float, float]:
    from turngym.envs.swe.agents import OracleAgent

    agent = OracleAgent()
    start = time.perf_counter()
    env.reset(seed=seed)
    done, outcome = False, None
    while not done:
        *_, terminated, truncated, info = env.step(agent(env))
        done = terminated or truncated
        outcome = info["turn"].outcome
    return time.perf_counter() - start, env.sandbox_seconds, float(outcome)


def _episodes(task_set: str, n: int) -> dict[str, Any]:
    from turngym.envs.swe.env import RepairEnv

    env = RepairEnv(task_set=task_set, pool_size=2)
    _oracle_episode(env, 0)  # warm-up: task set loaded, pool warm
    walls, shares, solved = [], [], 0
    for seed in range(n):
        wall, sandbox_s, outcome = _oracle_episode(env, seed)
        walls.append(wall)
        shares.append(sandbox_s / wall)
        solved += outcome == 1.0
    env.close()
    return {
        "episodes": n, "solved": solved,
        "wall_s_mean": statistics.mean(walls), "wall_s_median": statistics.median(walls),
        "sandbox_share_mean": statistics.mean(shares),
    }


def _throughput(task_set: str, n: int, pool_size: int, workers: int = 2) -> dict[str, Any]:
    from turngym.envs.swe.env import RepairEnv
    from turngym.envs.swe.env import task_set as load

    load(task_set)  # build/load outside the timed region
    seeds = list(range(n))
    lock = threading.Lock()
    solved = [0]
    errors: list[str] = []

    def worker() -> None:
        env = RepairEnv(task_set=task_set, pool_size=pool_size)
        try:
            while True:
                with lock:
                    if not seeds:
                        return
                    seed = seeds.pop(0)
                _, _, outcome = _oracle_episode(env, seed)
                with lock:
                    solved[0] += outcome == 1.0
        except Exception as exc:  # recorded in the result, never hidden
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            env.close()

    if pool_size:
        from turngym.envs.swe.env import sandbox_pool

        env = RepairEnv(task_set=task_set, pool_size=pool_size)
        sandbox_pool(None, pool_size, env.sandbox_options).wait_warm(60)
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"tasks": n, "solved": solved[0], "seconds": elapsed, "tasks_per_minute": 60 * n / elapsed,
            "workers": workers, "pool_size": pool_size, "errors": errors}


def run(quick: bool = False) -> dict[str, Any]:
    n_episode = 5 if quick else 20
    n_throughput = 6 if quick else 24
    result: dict[str, Any] = {"quick": quick}
    result["episode"] = {ts: _episodes(ts, n_episode) for ts in ("coderepair", "swe")}
    warm = _throughput("coderepair", n_throughput, pool_size=2)
    cold = _throughput("coderepair", n_throughput, pool_size=0)
    result["throughput"] = {"warm_pool": warm, "no_pool": cold,
                            "ratio_warm_over_no_pool": warm["tasks_per_minute"] / cold["tasks_per_minute"]}
    return result


def summary(result: dict[str, Any]) -> str:
    lines = []
    for ts, e in result["episode"].items():
        lines.append(f"{ts}: oracle episode {e['wall_s_mean']:.2f} s mean ({e['sandbox_share_mean']:.0%} in the sandbox), "
                     f"{e['solved']}/{e['episodes']} solved")
    t = result["throughput"]
    lines.append(f"2 workers: {t['warm_pool']['tasks_per_minute']:.1f} tasks/min with the warm pool vs "
                 f"{t['no_pool']['tasks_per_minute']:.1f} without ({t['ratio_warm_over_no_pool']:.2f}x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv)


if __name__ == "__main__":
    raise SystemExit(main())

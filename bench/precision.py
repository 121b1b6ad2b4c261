"""bf16 vs fp32 on CPU: rollout engine throughput, learner step time and memory, and the mismatch.

Run as a script (``nice -n 10`` on a shared machine)::

    python bench/precision.py --json out.json    # 16 games, 2 rounds per arm
    python bench/precision.py --quick            # 4 games, 1 round

**Workload.** The rollout engine's own setting (``bench/rollout.py``'s ``engine``): SmolLM2-135M
(embedded) plays ``turngym/TicTacToe-v0`` against ``random``, ``context: full``, temperature 1.0,
8 new tokens per turn, game ``i`` seeded ``i``, one batched ``collect`` with cross-turn KV reuse,
one torch thread (``--threads``).
The **fp32** arm plays on the fp32 model; the **bf16** arm on a bf16 cast copy of the same weights
(:func:`~turngym.agents.cast_copy.cast_copy_policy`, what ``model.dtype: bf16`` builds). Same games,
same sampling seeds; rounds alternate the arms (ABAB) so shared load hits both alike.

Figures:

* ``rollout`` — useful (generated) tokens per second of ``collect`` wall time per arm, medians over
  rounds, and the ratio bf16/fp32 (median of per-round ratios). Goals: ≥ 2.5× and ≥ 100 tok/s.
* ``learner`` — one learner step (``training/update.py`` ``optimize``: forward, backward, AdamW) on
  the same rows (the first ``LEARNER_ROWS`` of the fp32 arm's rollouts, seeded random advantages),
  from the same weights, with ``learner.precision`` ``fp32`` and ``bf16-autocast``, alternating, each
  in a fresh process (``--child``): seconds (median), peak RSS above the loaded model's, the
  speed-up (goal ≥ 1.8×), and the update's loss in both (agreement).
* ``mismatch`` — the bf16 arm's rollout log-probs against the fp32 learner's recomputation of the
  same tokens (``training/off_policy.py`` statistics: mean and max ``|Δ log π|`` per token, the
  sequence-level KL estimate, the truncated-IS weights at the default cap 2).

Absolute figures on a shared machine are noise: the load averages are recorded; ratios are the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from turngym.bench._machine import MachineProbe
from turngym.bench._script import script_main

ENV_ID = "turngym/TicTacToe-v0"
MODEL = "smollm2-135m"
MAX_NEW_TOKENS = 8
SAMPLING_SEED = 1234
FULL_GAMES, QUICK_GAMES = 16, 4
FULL_ROUNDS, QUICK_ROUNDS = 2, 1
LEARNER_ROWS = 8
"""Rows of the learner batch (the first of the fp32 arm's): one fp32 step on 16 took 4–6 min here."""
THREADS = 1
"""torch threads: 1 by default — on a shared, loaded machine two OpenMP threads stall each other (a
first run here at load 11 measured 0.3 tok/s in both arms); ``--threads 0`` keeps torch's choice."""
GOALS = {"rollout_ratio": 2.5, "rollout_tok_per_s": 100.0, "learner_ratio": 1.8}


def _play(policy: Any, games: int) -> tuple[list[Any], float, int]:
    from turngym.training.rollout import RolloutConfig, Task, collect

    config = RolloutConfig(group_size=1, max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, top_p=1.0, top_k=0,
                           opponent="random", context="full", seed=SAMPLING_SEED)
    started = time.perf_counter()
    trajectories = collect([Task(ENV_ID, s) for s in range(games)], policy, config).trajectories
    wall = time.perf_counter() - started
    return trajectories, wall, sum(t.num_generated_tokens for t in trajectories)


def _rows(trajectories: list[Any]) -> list[Any]:
    import numpy as np

    from turngym.training.batching import make_rows

    rng = np.random.default_rng(0)
    rows = []
    for i, t in enumerate(trajectories):
        rows += make_rows(t, rng.standard_normal(len(t.turns)), None, group=str(i))
    return rows


def _learner_child(arm: str, rows_path: str) -> dict[str, Any]:
    """In a fresh process: load the fp32 model, run one ``optimize`` on the pickled rows with
    ``learner.precision`` ``arm``; seconds, peak RSS above the loaded level, and the loss."""
    import pickle
    import resource

    import torch

    from turngym.agents.factory import load_policy
    from turngym.training.config import AlgoSection, OptimSection
    from turngym.training.precision import set_learner_precision
    from turngym.training.update import optimize

    torch.set_num_threads(THREADS)
    policy = load_policy(MODEL, device="cpu", dtype="fp32")
    rows = pickle.loads(Path(rows_path).read_bytes())
    set_learner_precision(policy.model, arm)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-5)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    stats = optimize(policy.model, optimizer, rows, AlgoSection(), OptimSection(micro_batch_size=16), policy.pad_token_id)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_above_loaded_gib": (peak - loaded) / 2**20,
            "peak_rss_gib": peak / 2**20, "loss": stats.per_update[0]["loss"], "policy_tokens": stats.policy_tokens}


def _learner_step(arm: str, rows_path: str) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "turngym.bench.precision", "--child", arm, "--rows", rows_path],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"learner child {arm} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False, threads: int | None = THREADS) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    import os
    import pickle
    import tempfile

    import torch

    if threads:
        torch.set_num_threads(threads)

    from turngym.agents.cast_copy import cast_copy_policy
    from turngym.agents.factory import load_policy
    from turngym.agents.precision import bf16_verdict, machine_key
    from turngym.training.config import OptimSection
    from turngym.training.off_policy import behaviour_correction

    probe = MachineProbe()
    games = QUICK_GAMES if quick else FULL_GAMES
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    fp32 = load_policy(MODEL, device="cpu", dtype="fp32")
    bf16 = cast_copy_policy(fp32, torch.bfloat16)
    arms = {"fp32": fp32, "bf16": bf16}
    for policy in arms.values():  # untimed warm-up (allocator, kernels)
        _play(policy, 1)
    played: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    kept: dict[str, list[Any]] = {}
    for r in range(rounds):
        for name in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            trajectories, wall, tokens = _play(arms[name], games)
            played[name].append({"wall_s": wall, "tokens": tokens, "tok_per_s": tokens / wall})
            kept[name] = trajectories
    rollout = {name: {"tok_per_s": statistics.median(p["tok_per_s"] for p in runs), "rounds": runs}
               for name, runs in played.items()}
    rollout["ratio"] = statistics.median(b["tok_per_s"] / f["tok_per_s"] for b, f in zip(played["bf16"], played["fp32"]))

    rows = _rows(kept["fp32"])[:LEARNER_ROWS]
    steps: dict[str, list[dict[str, float]]] = {"fp32": [], "bf16-autocast": []}
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = str(Path(tmp) / "rows.pkl")
        Path(rows_path).write_bytes(pickle.dumps(rows))
        for r in range(rounds):
            for name in (("fp32", "bf16-autocast") if r % 2 == 0 else ("bf16-autocast", "fp32")):
                steps[name].append(_learner_step(name, rows_path))
    learner = {name: {"seconds": statistics.median(s["seconds"] for s in runs),
                      "peak_rss_above_loaded_gib": statistics.median(s["peak_rss_above_loaded_gib"] for s in runs),
                      "loss": runs[0]["loss"], "rounds": runs} for name, runs in steps.items()}
    learner["speedup"] = statistics.median(f["seconds"] / b["seconds"] for f, b in zip(steps["fp32"], steps["bf16-autocast"]))
    learner["loss_abs_diff"] = abs(learner["fp32"]["loss"] - learner["bf16-autocast"]["loss"])
    learner["rows"], learner["policy_tokens"] = len(rows), steps["fp32"][0]["policy_tokens"]
    learner["tokens"] = sum(len(r.token_ids) for r in rows)

    bf16_rows = _rows(kept["bf16"])
    _, correction = behaviour_correction(fp32.model, bf16_rows, [True] * len(bf16_rows), 2.0,
                                         OptimSection(micro_batch_size=16), fp32.pad_token_id)
    verdict = bf16_verdict("cpu")
    return {
        "suite": "precision",
        "quick": quick,
        "method": f"{games} games per arm and round, {rounds} round(s) alternating the arms; learner: one "
                  "optimize() on the same rows from the same weights per arm and round",
        "workload": {"env": ENV_ID, "model": MODEL, "context": "full", "max_new_tokens": MAX_NEW_TOKENS,
                     "threads": torch.get_num_threads()},
        "rollout": rollout,
        "learner": learner,
        "mismatch": correction.to_metrics(),
        "probe": {"key": machine_key(), "use_bf16": verdict.use_bf16, "reason": verdict.reason},
        "goals": {
            "rollout_ratio": {"goal": GOALS["rollout_ratio"], "value": rollout["ratio"],
                              "pass": rollout["ratio"] >= GOALS["rollout_ratio"]},
            "rollout_tok_per_s": {"goal": GOALS["rollout_tok_per_s"], "value": rollout["bf16"]["tok_per_s"],
                                  "pass": rollout["bf16"]["tok_per_s"] >= GOALS["rollout_tok_per_s"]},
            "learner_ratio": {"goal": GOALS["learner_ratio"], "value": learner["speedup"],
                              "pass": learner["speedup"] >= GOALS["learner_ratio"]},
        },
        "machine": {**probe.finish(), "nice": os.nice(0)},
        "script": Path(__file__).name,
    }


def summary(result: dict[str, Any]) -> str:
    r, learner, m = result["rollout"], result["learner"], result["mismatch"]
    load = result["machine"]["loadavg_before"][0], result["machine"]["loadavg_after"][0]
    return "\n".join([
        f"rollout useful tok/s: fp32 {r['fp32']['tok_per_s']:.1f}, bf16 {r['bf16']['tok_per_s']:.1f} "
        f"({r['ratio']:.2f}×; goals 2.5× and 100 tok/s)",
        f"learner step: fp32 {learner['fp32']['seconds']:.1f} s, bf16-autocast {learner['bf16-autocast']['seconds']:.1f} s "
        f"({learner['speedup']:.2f}×; goal 1.8×); peak RSS above the loaded model {learner['fp32']['peak_rss_above_loaded_gib']:.2f} "
        f"vs {learner['bf16-autocast']['peak_rss_above_loaded_gib']:.2f} GiB; |Δloss| {learner['loss_abs_diff']:.2g}",
        f"mismatch bf16 rollout vs fp32 learner: mean |Δ| {m['offpolicy/gap_mean']:.3f}, max {m['offpolicy/gap_max']:.3f} "
        f"nats/token, seq KL {m['offpolicy/seq_kl_mean']:.3f}, truncated {m['offpolicy/truncated_share']:.3%}",
        f"load average {load[0]} → {load[1]} on {result['machine']['cpus']} CPUs",
    ])


def _before_run(args: Any) -> int | None:
    if args.child is None:
        return None
    import json

    print(json.dumps(_learner_child(args.child, args.rows)))
    return 0


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: Any) -> None:
        parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (0: torch's choice)")
        parser.add_argument("--child", choices=["fp32", "bf16-autocast"], help=argparse.SUPPRESS)
        parser.add_argument("--rows", help=argparse.SUPPRESS)

    return script_main(__doc__, run, summary, argv, add_arguments=add_arguments, before_run=_before_run,
                       run_options=lambda args: {"threads": args.threads or None})


if __name__ == "__main__":
    import sys

    sys.exit(main())

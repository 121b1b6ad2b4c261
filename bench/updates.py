"""Reusing each rollout batch: 1 × 1 updates vs mini-batches × epochs, same rollouts, same machine.

Two measurements, both on our learner (``training/update.py``):

1. **One batch** — rollouts of the quickstart task (TicTacToe vs random, ``context: turn``, SmolLM2)
   and of a tool family (``turngym/Household-v0``, milestone turn rewards, a random 2-layer model
   with SmolLM2's tokenizer, so that long household episodes fit the 2-core budget) are collected
   once; the same rows are then optimized with ``1 × 1`` and with ``M × E`` updates from identical
   weights. Reported: rollout seconds, update seconds, the policy tokens the learner
   consumed (tokens × updates) per second of rollout + update wall time, and the clip/KL figures
   that the extra updates make non-zero.
2. **Equal wall time** — the CI task (``ci-tiny``: a random tiny model learns to type vowels) trained
   for the same number of seconds with ``1 × 1`` and with ``M × E``, over seeds; reported: steps
   reached and the mean outcome of the last 3 steps, with the ratio.

The peer figure is our own default (``1 × 1``, TRL's ``num_iterations=1``): the ratio says what the
reuse buys on this machine. Absolute seconds are noise on a shared machine; ratios within one run
are the figures.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.bench._script import script_main


def _one_batch(model_name: str, tasks: int, mini_batches: int, epochs: int, overrides: list[str] = ()) -> dict[str, Any]:
    from turngym.agents.factory import load_policy
    from turngym.training import advantages as adv_lib
    from turngym.training.batching import make_rows
    from turngym.training.config import load_preset
    from turngym.training.rollout import collect
    from turngym.training.trainer import rollout_config, sample_tasks
    from turngym.training.update import optimize

    # dynamic sampling off: every rollout enters the update, so the work measured does not depend on
    # which groups happened to vary (a random model's household groups often all score the same)
    config = load_preset("quickstart", [f"model.name={model_name}", f"rollout.tasks_per_step={tasks}",
                                        "algo.dynamic_sampling=false", *overrides])
    policy = load_policy(config.model.name, **config.policy_options())
    t0 = time.perf_counter()
    batch = collect(sample_tasks(config, 0), policy, rollout_config(config, 0))
    rollout_s = time.perf_counter() - t0
    advantages, keep, _ = adv_lib.compute(batch.trajectories, config.algo, None)
    rows = [row for i, t in enumerate(batch.trajectories) if keep[i] and t.num_generated_tokens > 0
            for row in make_rows(t, advantages.per_turn[i], None, t.group_key)]
    start = copy.deepcopy(policy.model.state_dict())
    out: dict[str, Any] = {"rollout_s": rollout_s, "sequences": len(rows)}
    for label, (m, e) in (("1x1", (1, 1)), (f"{mini_batches}x{epochs}", (mini_batches, epochs))):
        policy.model.load_state_dict(start)
        optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.optim.lr)
        optim = config.optim.model_copy(update={"mini_batches": m, "epochs": e})
        t0 = time.perf_counter()
        stats = optimize(policy.model, optimizer, rows, config.algo, optim, policy.pad_token_id,
                         rng=np.random.default_rng(0))
        update_s = time.perf_counter() - t0
        metrics = stats.to_metrics()
        consumed = stats.policy_tokens * stats.updates
        out[label] = {
            "updates": stats.updates,
            "update_s": update_s,
            "tokens_consumed": consumed,
            "tokens_consumed_per_s": consumed / (rollout_s + update_s),
            "clip_frac": metrics["clip_frac"],
            "approx_kl": metrics["approx_kl"],
            "ratio_max": metrics["ratio_max"],
        }
    reuse = out[f"{mini_batches}x{epochs}"]
    out["ratio_tokens_per_s"] = reuse["tokens_consumed_per_s"] / out["1x1"]["tokens_consumed_per_s"]
    return out


def _equal_wall_time(seconds: float, seeds: int, mini_batches: int, epochs: int) -> dict[str, Any]:
    from turngym.training.config import load_preset
    from turngym.training.trainer import train

    out: dict[str, Any] = {"seconds": seconds, "seeds": seeds}
    for label, (m, e) in (("1x1", (1, 1)), (f"{mini_batches}x{epochs}", (mini_batches, epochs))):
        finals, steps = [], []
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                config = load_preset("ci-tiny", [
                    f"out_dir={tmp}", f"seed={seed}", "steps=1000", f"time_budget_s={seconds}",
                    "checkpoint_every=1000", f"optim.mini_batches={m}", f"optim.epochs={e}",
                ])
                train(config, show_progress=False)
                rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines() if x]
            steps.append(len(rows))
            finals.append(float(np.mean([r["reward/mean_outcome"] for r in rows[-3:]])))
        half = 1.96 * float(np.std(finals, ddof=1)) / np.sqrt(len(finals)) if len(finals) > 1 else float("nan")
        out[label] = {"steps": steps, "final_outcome": float(np.mean(finals)), "final_outcome_ci95": half,
                      "per_seed": finals}
    out["ratio_final_outcome"] = out[f"{mini_batches}x{epochs}"]["final_outcome"] / max(out["1x1"]["final_outcome"], 1e-9)
    return out


def run(quick: bool = False, mini_batches: int = 4, epochs: int = 2, seconds: float | None = None,
        seeds: int | None = None) -> dict[str, Any]:
    torch.manual_seed(0)
    model = "tiny-char" if quick else "smollm2-135m"
    household = ["envs=[{id: turngym/Household-v0}]", "rollout.group_size=4", "rollout.max_new_tokens=24",
                 "rollout.max_turns=8", "rollout.max_episode_tokens=2048", "algo.estimator=turn_group"]
    return {
        "machine_note": "2-core CPU, fp32",
        "one_batch": {"model": model, **_one_batch(model, 2 if quick else 6, mini_batches, epochs)},
        "one_batch_household": {"model": "tiny-random",
                                **_one_batch("tiny-random", 2 if quick else 4, mini_batches, epochs, household)},
        "equal_wall_time": _equal_wall_time(seconds or (10.0 if quick else 60.0), seeds or (1 if quick else 5),
                                            mini_batches, epochs),
    }


def summary(result: dict[str, Any]) -> str:
    eq = result["equal_wall_time"]
    lines = []
    for name in ("one_batch", "one_batch_household"):
        one = result[name]
        reuse = next(k for k in one if k not in ("1x1", "model", "rollout_s", "sequences", "ratio_tokens_per_s") and "x" in k)
        lines.append(
            f"{name} ({one['model']}, {one['sequences']} sequences, rollout {one['rollout_s']:.1f}s): "
            f"1x1 update {one['1x1']['update_s']:.1f}s vs {reuse} {one[reuse]['update_s']:.1f}s; tokens consumed per "
            f"wall second ratio {one['ratio_tokens_per_s']:.2f}; {reuse} clip_frac {one[reuse]['clip_frac']:.3f}, "
            f"approx_kl {one[reuse]['approx_kl']:.2e}")
    return (
        "\n".join(lines) + "\n"
        f"equal wall time ({eq['seconds']:.0f}s, {eq['seeds']} seeds, ci-tiny): final outcome 1x1 "
        f"{eq['1x1']['final_outcome']:.3f} ± {eq['1x1']['final_outcome_ci95']:.3f} vs {reuse} "
        f"{eq[reuse]['final_outcome']:.3f} ± {eq[reuse]['final_outcome_ci95']:.3f} (ratio {eq['ratio_final_outcome']:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    return script_main(
        __doc__, run, summary, argv,
        add_arguments=lambda p: (p.add_argument("--mini-batches", type=int, default=4),
                                 p.add_argument("--epochs", type=int, default=2),
                                 p.add_argument("--seconds", type=float, help="equal-wall-time budget per run"),
                                 p.add_argument("--seeds", type=int, help="seeds per arm at equal wall time")),
        run_options=lambda a: {"mini_batches": a.mini_batches, "epochs": a.epochs, "seconds": a.seconds,
                               "seeds": a.seeds},
    )


if __name__ == "__main__":
    raise SystemExit(main())

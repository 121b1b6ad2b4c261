"""Overhead of each turn-reward source per training step, as a ratio to the same step without it.

One process, the study's setting (``turngym ablate turn-rewards``: ``tiny-char`` on
``turngym/Lookup-v0``, 4 tasks × 8 rollouts, ``turn_group``). Each round collects one batch of
rollouts and times, on it, the step without any source (advantages + the policy update from fixed
weights) and then each source's ``learn`` + ``rewards`` on a copy of the batch, arms interleaved
(ABAB…) so shared load hits every arm alike. Reported per source: median seconds, and the ratio
``(rollout + update + source) / (rollout + update)`` — the training step's slowdown. ``judge`` uses
the policy itself as the judge (the cheapest real judge; a separate model costs its own forward).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np
import torch

from turngym.bench._script import script_main

SOURCES = {
    "info_gain": {"source": "info_gain"},
    "oprl": {"source": "oprl", "options": {"beta": 0.1, "lr": 0.003}},
    "spa": {"source": "spa", "options": {"lr": 0.003, "epochs": 20}},
    "rlvmr": {"source": "rlvmr"},
    "judge": {"source": "judge", "options": {"model": "policy"}},
}


def run(quick: bool = False) -> dict[str, Any]:
    from turngym.agents.factory import load_policy
    from turngym.training import advantages as adv_lib
    from turngym.training.ablations.studies import get_study
    from turngym.training.batching import training_rows
    from turngym.training.config import TrainConfig
    from turngym.training.rollout import collect
    from turngym.training.trainer import rollout_config, sample_tasks
    from turngym.training.turn_rewards import build_turn_rewards
    from turngym.training.update import optimize

    torch.set_num_threads(1)
    base = copy.deepcopy(get_study("turn-rewards").base)
    config = TrainConfig.model_validate(base)
    policy = load_policy(config.model.name, **config.policy_options())
    start = copy.deepcopy(policy.model.state_dict())
    runners = {name: build_turn_rewards(TrainConfig.model_validate({**base, "algo": {**base["algo"], "turn_rewards": [spec]}}), policy)
               for name, spec in SOURCES.items()}
    rounds = 2 if quick else 6
    times: dict[str, list[float]] = {"rollout": [], "update": [], **{n: [] for n in SOURCES}}
    for r in range(rounds):
        t0 = time.perf_counter()
        batch = collect(sample_tasks(config, r), policy, rollout_config(config, r))
        times["rollout"].append(time.perf_counter() - t0)
        for name in ["update", *SOURCES]:  # interleaved, every round
            trajectories = copy.deepcopy(batch.trajectories)
            t0 = time.perf_counter()
            if name == "update":
                adv, keep, _ = adv_lib.compute(trajectories, config.algo, None)
                rows, _ = training_rows(trajectories, adv.per_turn, None, keep, [t.group_key for t in trajectories], False, 0)
                optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.optim.lr)
                if rows:
                    optimize(policy.model, optimizer, rows, config.algo, config.optim, policy.pad_token_id, rng=np.random.default_rng(r))
                policy.model.load_state_dict(start)
            else:
                runners[name].apply(trajectories, r, local=True)
                runners[name].apply(trajectories, r, local=False)
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    step = med["rollout"] + med["update"]
    return {
        "setting": "tiny-char on turngym/Lookup-v0, 4 tasks x 8 rollouts, turn_group, 1 torch thread",
        "rounds": rounds,
        "load_avg_1m": os.getloadavg()[0],
        "median_s": med,
        "step_s": step,
        "ratio": {name: (step + med[name]) / step for name in SOURCES},
    }


def summary(result: dict[str, Any]) -> str:
    lines = [f"{result['setting']}; step without sources {result['step_s']:.3f}s (load {result['load_avg_1m']:.1f})"]
    lines += [f"  {name:10s} +{result['median_s'][name]:.3f}s  ratio {ratio:.2f}x" for name, ratio in result["ratio"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv)


if __name__ == "__main__":
    raise SystemExit(main())

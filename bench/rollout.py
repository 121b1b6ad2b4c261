"""Multi-turn rollout throughput on CPU: our engine (batched + cross-turn KV reuse) vs the naive loop, in one run.

Run as a script::

    python bench/rollout.py --json out.json     # full run: 32 games, 3 rounds
    python bench/rollout.py --quick             # smoke run: 8 games, 1 round, prints the JSON

or import it by path and call :func:`run` (``bench/`` is a folder of scripts, not a package; see
``bench/run.py``).

**Workload.** ``turngym/TicTacToe-v0`` (default rules: an invalid move forfeits the game), the
embedded SmolLM2-135M-Instruct (fp32, CPU) against the ``random`` opponent, sampling at temperature
1.0 (no top-k/top-p), ``max_new_tokens=8`` per turn (``--max-new-tokens``), game ``i`` reset with seed ``SEED + i`` (so the
model plays X in even games and O in odd ones; the opponent's dice depend on the seed only). Context
``full``: each seat's episode is one growing token sequence (the whole game so far is the prompt of
every turn), the multi-turn setting the issue's baseline describes (``--context turn`` re-runs it
with bounded prompts: system prompt plus the current board).

**Implementations** (the same engine, :func:`turngym.training.rollout.collect`, the same policy
object; only batching and ``HFPolicy.kv_reuse`` differ):

``engine``
    turngym's default: one ``collect`` over all games — every round ONE batched ``generate`` over all
    games still running — with cross-turn KV reuse (each turn prefills only its new tokens, the
    environment's reply, resuming from the KV cache the previous turn left) and prompt sharing
    (identical prompts prefilled once, a prefix common to the batch once).
``batched``
    the same batching; KV reuse and prompt sharing off: every turn re-prefills every row's whole
    history (ablation).
``naive``
    the issue's baseline: one game at a time (batch size 1), the whole history re-read every turn,
    no KV reuse between turns.

Because the games are sampled, the implementations play different games (different lengths and
invalid-move rates); throughput is therefore measured in tokens per second, not per game:

* ``useful_tok_per_s`` — generated tokens (up to and including EOS; nothing after it is generated)
  per second of ``collect`` wall time (env stepping, tokenisation and generation all included).
  This is the headline figure and the one the targets apply to.
* ``prefilled_tok_per_turn`` — prompt tokens actually run through the model per generated turn
  (after KV reuse and prefix sharing); ``prompt_tokens`` counts what was *given* to ``generate``.
* ``processed_tok_per_s`` — prompt tokens given to ``generate`` plus generated tokens, per second.
* ``useful_tok_per_s_in_generate`` — generated tokens per second inside ``generate`` only.

Counting is done by a thin wrapper around the policy's ``generate`` (calls, rows, prompt tokens,
padded prompt slots, generated tokens). Fairness: one untimed warm-up of each implementation;
``rounds`` repetitions with the order rotating; figures are medians over rounds; each ratio is the
median of per-round paired ratios. Absolute figures on a shared machine are noise; ratios are the
figures.

Targets (from the issue): ``engine / naive >= 4`` in useful tokens/s, and the engine ``>= 100``
useful tokens/s absolute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections import Counter
from typing import Any

from turngym.bench._script import script_main

ENV_ID = "turngym/TicTacToe-v0"
MODEL = "smollm2-135m"
SEED = 0
SAMPLING_SEED = 1234
MAX_NEW_TOKENS = 8
TEMPERATURE = 1.0
CONTEXTS = ("full", "turn")  # the default run measures "full" only (--context turn adds the other)
IMPLEMENTATIONS = ("engine", "batched", "naive")
FULL_GAMES, QUICK_GAMES = 32, 8
FULL_ROUNDS, QUICK_ROUNDS = 3, 1

TARGETS: dict[str, dict[str, Any]] = {
    "engine/naive": {
        "min": 4.0,
        "description": "useful tokens/s, engine (batched + KV reuse) >= 4x the naive one-game-at-a-time loop",
    },
    "engine_useful_tok_per_s": {
        "min": 100.0,
        "description": "engine useful tokens/s >= 100 on 2 cores",
    },
}


class CountingPolicy:
    """Delegates to a policy; counts what every ``generate`` call was given and returned."""

    def __init__(self, policy: Any):
        self._policy = policy
        self.reset()

    @property
    def inner(self) -> Any:
        """The wrapped policy (to set its attributes; reads fall through by ``__getattr__``)."""
        return self._policy

    def __getattr__(self, name: str) -> Any:  # tokenizer, eos_token_ids, ... come from the policy
        return getattr(self._policy, name)

    def reset(self) -> None:
        self.calls = self.rows = self.prompt_tokens = self.padded_prompt_slots = (
            self.generated_tokens
        ) = 0
        self.seconds = 0.0

    def generate(self, prompts: Any, params: Any) -> Any:
        t0 = time.perf_counter()
        generations = self._policy.generate(prompts, params)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.rows += len(prompts)
        self.prompt_tokens += sum(len(p) for p in prompts)
        self.padded_prompt_slots += len(prompts) * max(len(p) for p in prompts)
        self.generated_tokens += sum(len(g.token_ids) for g in generations)
        return generations

    def counts(self) -> dict[str, Any]:
        return {
            "generate_calls": self.calls,
            "generate_rows": self.rows,
            "prompt_tokens": self.prompt_tokens,
            "padded_prompt_slots": self.padded_prompt_slots,
            "useful_generated_tokens": self.generated_tokens,
            "generate_s": self.seconds,
        }


def _config(context: str, seed: int, max_new_tokens: int) -> Any:
    from turngym.training.rollout import RolloutConfig

    return RolloutConfig(
        group_size=1,
        max_new_tokens=max_new_tokens,
        temperature=TEMPERATURE,
        top_p=1.0,
        top_k=0,
        opponent="random",
        context=context,
        seed=seed,
    )


def play(
    impl: str, policy: CountingPolicy, seeds: list[int], context: str, sampling_seed: int,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> dict[str, Any]:
    """Play the games of ``seeds`` with one implementation; returns counts and timings."""
    from turngym.training.rollout import Task, collect

    policy.reset()
    policy.inner.kv_reuse = policy.inner.share_prefix = impl == "engine"
    prefilled_before = policy.inner.prefilled_tokens
    trajectories = []
    started = time.perf_counter()
    if impl != "naive":
        trajectories += collect(
            [Task(ENV_ID, s) for s in seeds], policy, _config(context, sampling_seed, max_new_tokens)
        ).trajectories
    else:
        for i, s in enumerate(seeds):
            trajectories += collect(
                [Task(ENV_ID, s)], policy, _config(context, sampling_seed + i, max_new_tokens)
            ).trajectories
    wall = time.perf_counter() - started
    stats = policy.last_kv_stats
    counts = policy.counts()
    # prompt tokens actually run through the model: what KV reuse and prefix sharing did not save
    prefilled = policy.inner.prefilled_tokens - prefilled_before
    turns = [len(t.turns) for t in trajectories]
    processed = counts["prompt_tokens"] + counts["useful_generated_tokens"]
    return {
        **counts,
        "wall_s": wall,
        "games": len(trajectories),
        "failed": sum(t.failed for t in trajectories),
        "model_turns": sum(turns),
        "turns_per_game": Counter(turns),
        "stop_reasons": Counter(str(t.stop_reason) for t in trajectories),
        "useful_tok_per_s": counts["useful_generated_tokens"] / wall,
        "useful_tok_per_s_in_generate": counts["useful_generated_tokens"] / counts["generate_s"]
        if counts["generate_s"]
        else None,
        "processed_tok_per_s": processed / wall,
        "mean_batch_rows": counts["generate_rows"] / counts["generate_calls"]
        if counts["generate_calls"]
        else None,
        "prompt_share": counts["prompt_tokens"] / processed if processed else None,
        "prefilled_tok_per_turn": prefilled / counts["generate_rows"] if counts["generate_rows"] else None,
        "kv_reuse_share": stats.reuse_share if impl == "engine" else 0.0,
        "padding_share": 1 - counts["prompt_tokens"] / counts["padded_prompt_slots"]
        if counts["padded_prompt_slots"]
        else None,
    }


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def bench_context(
    policy: CountingPolicy, context: str, games: int, rounds: int, max_new_tokens: int = MAX_NEW_TOKENS
) -> dict[str, Any]:
    seeds = list(range(SEED, SEED + games))
    for impl in IMPLEMENTATIONS:  # warm-up, untimed (allocator, kernels, tokenizer caches)
        play(impl, policy, seeds[:2], context, SAMPLING_SEED - 1, max_new_tokens)
    samples: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLEMENTATIONS}
    for r in range(rounds):
        order = list(IMPLEMENTATIONS[r % len(IMPLEMENTATIONS):] + IMPLEMENTATIONS[: r % len(IMPLEMENTATIONS)])
        for impl in order:
            samples[impl].append(play(impl, policy, seeds, context, SAMPLING_SEED + 1000 * r, max_new_tokens))

    def med(impl: str, key: str) -> float | None:
        return _median([s[key] for s in samples[impl] if s[key] is not None])

    figures = {
        impl: {
            key: med(impl, key)
            for key in (
                "useful_tok_per_s",
                "processed_tok_per_s",
                "useful_tok_per_s_in_generate",
                "prompt_share",
                "prefilled_tok_per_turn",
                "kv_reuse_share",
                "padding_share",
                "mean_batch_rows",
                "wall_s",
            )
        }
        for impl in IMPLEMENTATIONS
    }

    def ratio(a: str, b: str) -> float | None:
        return _median([x["useful_tok_per_s"] / y["useful_tok_per_s"] for x, y in zip(samples[a], samples[b])])

    ratios = {"engine/naive": ratio("engine", "naive"), "engine/batched": ratio("engine", "batched"),
              "batched/naive": ratio("batched", "naive")}
    values = {"engine/naive": ratios["engine/naive"], "engine_useful_tok_per_s": figures["engine"]["useful_tok_per_s"]}
    return {
        "context": context,
        "games": games,
        "rounds": rounds,
        "seeds": [seeds[0], seeds[-1]],
        "figures": figures,
        "ratios_useful": ratios,
        "targets": {
            name: {**TARGETS[name], "value": value,
                   "pass": None if value is None else bool(value >= TARGETS[name]["min"])}
            for name, value in values.items()
        },
        "samples": samples,
    }


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("turngym", "torch", "transformers"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def run(
    quick: bool = False, contexts: tuple[str, ...] = ("full",), max_new_tokens: int = MAX_NEW_TOKENS
) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    import torch

    from turngym.agents.factory import load_policy

    started = time.time()
    load_before = round(os.getloadavg()[0], 2)
    games = QUICK_GAMES if quick else FULL_GAMES
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    policy = CountingPolicy(load_policy(MODEL, device="cpu", dtype=torch.float32))
    results = {ctx: bench_context(policy, ctx, games, rounds, max_new_tokens) for ctx in contexts}
    verdicts = [t["pass"] for c in results.values() for t in c["targets"].values()]
    return {
        "suite": "rollout",
        "quick": quick,
        "metric": "useful generated tokens per second of collect() wall time (higher is better); "
        "headline ratio = engine / naive",
        "note": "replies are at most 8 tokens and the history grows to hundreds of tokens, so prefill dominates a "
        "naive loop: compare prefilled_tok_per_turn (prompt tokens actually run through the model per turn)",
        "method": f"{games} games per implementation, game i seeded {SEED}+i; {rounds} round(s), order rotating, "
        "after an untimed warm-up; medians over rounds; ratios = medians of per-round paired ratios",
        "workload": {
            "env": ENV_ID,
            "opponent": "random",
            "model": "SmolLM2-135M-Instruct (embedded), float32, CPU",
            "max_new_tokens": max_new_tokens,
            "temperature": TEMPERATURE,
            "contexts": list(contexts),
        },
        "targets": TARGETS,
        "contexts": results,
        "pass": False
        if False in verdicts
        else (True if all(v is True for v in verdicts) else None),
        "environment": {
            **_versions(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            # other processes on the machine make absolute figures noisy; paired ratios less so
            "load_avg_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
        },
        "wall_s": round(time.time() - started, 2),
    }


def summary(result: dict[str, Any]) -> str:
    lines = []
    for ctx, res in result["contexts"].items():
        f = res["figures"]
        lines.append(f"context={ctx} ({res['games']} games):")
        for impl in IMPLEMENTATIONS:
            x = f[impl]
            lines.append(
                f"  {impl:8} useful {x['useful_tok_per_s']:6.1f} tok/s, prefilled {x['prefilled_tok_per_turn']:6.1f} tok/turn "
                f"(KV reuse {x['kv_reuse_share']:.0%}), mean batch {x['mean_batch_rows']:.1f} rows, wall {x['wall_s']:.1f} s"
            )
        lines.append("  ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in res["ratios_useful"].items() if v is not None))
        for name, t in res["targets"].items():
            verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
            value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
            lines.append(f"  {name} = {value} (target >= {t['min']}) {verdict}")
    warning = busy_warning(result["environment"])
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def busy_warning(environment: dict[str, Any]) -> str | None:
    """A line for the summary when other processes were using the CPU as the run started."""
    load = environment["load_avg_1m_before_after"][0]
    if load < 1.0:
        return None
    return (
        f"warning: 1-min load average {load} before the run: other processes shared the CPU; with more torch "
        f"threads than free cores timings can be several times slower (OMP_NUM_THREADS=1 helps on a shared machine)"
    )


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                            help="generation budget per turn (default: %(default)s)")
        parser.add_argument("--context", choices=CONTEXTS, action="append",
                            help="context mode(s) to measure (repeatable; default: full)")

    return script_main(
        __doc__, run, summary, argv, quick_help=f"{QUICK_GAMES} games, {QUICK_ROUNDS} round (smoke run)",
        add_arguments=add_arguments,
        run_options=lambda args: {"contexts": tuple(args.context or ("full",)), "max_new_tokens": args.max_new_tokens},
    )


if __name__ == "__main__":
    sys.exit(main())

"""VLLMPolicy vs HFPolicy in one process: generation, multi-turn rollouts and weight sync.

(Not named ``vllm.py``, so that running ``python bench/<suite>.py`` never shadows the ``vllm`` package.)

Run in an environment where vLLM imports (a GPU machine with ``[vllm]``, or the CPU venv that
``.ci/vllm-venv`` prints)::

    $(.ci/vllm-venv) bench/vllm_backend.py --json out.json   # full run
    $(.ci/vllm-venv) bench/vllm_backend.py --quick           # smoke run

**Model.** The embedded SmolLM2-135M-Instruct, float32 on CPU (bfloat16 on a GPU) for both backends,
loaded from the same files; vLLM ``enforce_eager`` on CPU (its default there).

**Workloads** (each backend measured in the same run, order alternating, medians over rounds; ratios
are medians of per-round paired ratios ``vllm / hf``):

``generate``
    64 distinct chat prompts (about 30 tokens each), one ``generate`` call, sampling at temperature
    1, ``max_new_tokens=64`` with ``ignore_eos`` (every row produces 64 tokens): decode throughput.
``rollout``
    32 ``turngym/TicTacToe-v0`` games against ``random`` through :func:`collect` (context ``full``,
    ``max_new_tokens=8``), as in ``bench/rollout.py``'s ``engine``: HFPolicy with its cross-turn KV
    store and prompt sharing vs VLLMPolicy with vLLM's automatic prefix caching. Useful (generated)
    tokens per second of ``collect`` wall time.
``sync``
    :meth:`VLLMPolicy.sync_weights` of the learner's 135M parameters (seconds, median of 3).

Also reported: greedy agreement (identical tokens on all 64 prompts) and the largest |Δ log-prob|
between the two backends on the same sampled tokens.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

from turngym.bench._script import script_main
from turngym.bench.rollout import CountingPolicy, play

NEW_TOKENS = 64
QUESTIONS = [
    "Name a colour.", "Say hello.", "What is 2+2?", "Describe a cat.", "Give me a word that rhymes with tree.",
    "What is the capital of France?", "Write a haiku about rain.", "Count to five.",
]


def _prompts(policy: Any, n: int) -> list[list[int]]:
    return [policy.encode_chat([{"role": "user", "content": f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})"}]) for i in range(n)]


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_generate(policies: dict[str, Any], prompts: list[list[int]], rounds: int) -> dict[str, Any]:
    from turngym.agents.base import SamplingParams

    params = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=1.0, ignore_eos=True, seed=7)
    tps: dict[str, list[float]] = {name: [] for name in policies}
    for r in range(rounds + 1):  # round 0: untimed warm-up
        for name in (list(policies) if r % 2 else list(reversed(policies))):
            gens, seconds = _timed(lambda p=policies[name]: p.generate(prompts, params))
            if r:
                tps[name].append(sum(len(g.token_ids) for g in gens) / seconds)
    greedy = {name: p.generate(prompts, SamplingParams(max_new_tokens=24, greedy=True)) for name, p in policies.items()}
    same = sum(a.token_ids == b.token_ids for a, b in zip(greedy["vllm"], greedy["hf"]))
    sampled = policies["vllm"].generate(prompts[:16], params)
    ref = policies["hf"].score(prompts[:16], [g.token_ids for g in sampled])
    gap = max(float(abs(g.logprobs - w).max()) for g, w in zip(sampled, ref))
    return {
        "prompts": len(prompts),
        "tok_per_s": {name: statistics.median(v) for name, v in tps.items()},
        "ratio_vllm_over_hf": statistics.median(a / b for a, b in zip(tps["vllm"], tps["hf"])),
        "greedy_identical": f"{same}/{len(prompts)}",
        "max_abs_logprob_gap": gap,
    }


def bench_rollout(policies: dict[str, Any], games: int, rounds: int) -> dict[str, Any]:
    seeds = list(range(games))
    counted = {name: CountingPolicy(p) for name, p in policies.items()}
    for c in counted.values():  # warm-up
        play("engine", c, seeds[:2], "full", 1233)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in policies}
    for r in range(rounds):
        for name in (list(counted) if r % 2 else list(reversed(counted))):
            samples[name].append(play("engine", counted[name], seeds, "full", 1234 + 1000 * r))
    figures = {
        name: {key: statistics.median(s[key] for s in runs) for key in ("useful_tok_per_s", "prefilled_tok_per_turn", "kv_reuse_share", "wall_s")}
        for name, runs in samples.items()
    }
    ratio = statistics.median(a["useful_tok_per_s"] / b["useful_tok_per_s"] for a, b in zip(samples["vllm"], samples["hf"]))
    return {"games": games, "figures": figures, "ratio_vllm_over_hf": ratio}


def bench_sync(engine: Any, model: Any) -> dict[str, Any]:
    syncs = [engine.sync_weights(model) for _ in range(3)]
    return {"tensors": syncs[0].tensors, "gib": syncs[0].bytes / 2**30, "seconds_median": statistics.median(s.seconds for s in syncs)}


def run(quick: bool = False) -> dict[str, Any]:
    import torch
    import vllm

    from turngym.agents.factory import load_policy

    started = time.time()
    rounds = 1 if quick else 3
    hf = load_policy("smollm2-135m")
    engine, load_s = _timed(lambda: load_policy("vllm:smollm2-135m", engine={"max_model_len": 2048, "kv_cache_gib": 2.0}))
    policies = {"hf": hf, "vllm": engine}
    prompts = _prompts(hf, 16 if quick else 64)
    result = {
        "suite": "vllm",
        "quick": quick,
        "engine_load_s": load_s,
        "generate": bench_generate(policies, prompts, rounds),
        "rollout": bench_rollout(policies, 8 if quick else 32, rounds),
        "sync": bench_sync(engine, hf.model),
        "environment": {
            "python": platform.python_version(), "vllm": vllm.__version__, "torch": torch.__version__,
            "cuda": torch.cuda.is_available(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        },
        "wall_s": round(time.time() - started, 1),
    }
    return result


def summary(result: dict[str, Any]) -> str:
    g, r, s = result["generate"], result["rollout"], result["sync"]
    fr = r["figures"]
    return "\n".join([
        f"engine load {result['engine_load_s']:.1f} s",
        f"generate ({g['prompts']} prompts x {NEW_TOKENS} tokens): vllm {g['tok_per_s']['vllm']:.1f} tok/s, "
        f"hf {g['tok_per_s']['hf']:.1f} tok/s, ratio {g['ratio_vllm_over_hf']:.2f}; greedy identical {g['greedy_identical']}, "
        f"max |Δ logprob| {g['max_abs_logprob_gap']:.2e}",
        f"rollout ({r['games']} TicTacToe games, full context): vllm {fr['vllm']['useful_tok_per_s']:.1f} useful tok/s "
        f"(prefilled {fr['vllm']['prefilled_tok_per_turn']:.0f} tok/turn, cached {fr['vllm']['kv_reuse_share']:.0%}), "
        f"hf {fr['hf']['useful_tok_per_s']:.1f} ({fr['hf']['prefilled_tok_per_turn']:.0f} tok/turn, reused {fr['hf']['kv_reuse_share']:.0%}); "
        f"ratio {r['ratio_vllm_over_hf']:.2f}",
        f"weight sync: {s['tensors']} tensors, {s['gib']:.2f} GiB in {s['seconds_median']:.2f} s",
    ])


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv)


if __name__ == "__main__":
    sys.exit(main())

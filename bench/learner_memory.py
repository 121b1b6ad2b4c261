"""Peak memory of one learner forward+backward: attention mask vs none, gradient checkpointing.

SmolLM2-135M (the embedded model, float32), one update (``optimize`` with a zero-learning-rate SGD,
so no optimizer state) on two rows of 2048 and 2047 tokens: the one pad position makes the batch
need a padding mask in the old code path. A quarter of the positions are policy tokens (64 of
every 256), as in a multi-turn episode where replies alternate with observations.

Each arm runs in a fresh subprocess (``--child ARM``) and reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the update, and the RSS after loading the
model (weights only), with ``torch.set_num_threads(1)``. Arms:

* ``mask`` — the decoder called with the ``[B, L]`` padding mask (the code before no-mask batching:
  transformers builds a dense ``[B, 1, L, L]`` mask for SDPA);
* ``no-mask`` — right padding, no mask: SDPA's ``is_causal`` path;
* ``checkpointing`` — no mask and ``optim.gradient_checkpointing``;
* ``checkpointing+tokens`` — also ``optim.micro_batch_tokens: 2048`` (one row per micro-batch here).

Peak RSS is a whole-process figure: the model, its gradients (≈ 0.5 GiB each) and the Python
runtime are in every arm; the differences between arms are the activations.

Run: ``PYTHONPATH=… python -m turngym.bench.learner_memory [--quick]`` (``--quick``: 2×512 tokens).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any

ARMS = {
    "mask": {"mask": True},
    "no-mask": {},
    "checkpointing": {"gradient_checkpointing": True},
    "checkpointing+tokens": {"gradient_checkpointing": True, "micro_batch_tokens": 2048},
}


def _rows(length: int, vocab: int) -> list[Any]:
    """Two rows (``length`` and ``length - 1`` tokens), policy tokens 64 of every 256 positions."""
    import numpy as np

    from turngym.training.batching import TrainRow

    rng = np.random.default_rng(0)
    rows = []
    for n in (length, length - 1):
        ids = rng.integers(10, vocab, size=n).tolist()
        mask = [1 if (t % 256) >= 192 else 0 for t in range(n)]
        rows.append(TrainRow(ids, mask, [0 if m else -1 for m in mask], [-1.0] * n,
                             [1.0 if m else 0.0 for m in mask], [1.0] * n, group="g"))
    return rows


def _child(arm: str, length: int) -> dict[str, Any]:
    """One arm in this process: load, one update, peak RSS (MiB)."""
    import torch

    import turngym.training.batching as batching
    from turngym.agents.factory import load_policy
    from turngym.training.config import AlgoSection, OptimSection
    from turngym.training.update import optimize

    torch.set_num_threads(1)
    options = dict(ARMS[arm])
    if options.pop("mask", False):  # the code before: the padding mask always goes to the decoder
        batching.decoder_mask = lambda batch: batch.attention_mask
    policy = load_policy("smollm2-135m")
    model = policy.model
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = _rows(length, model.config.vocab_size)
    optim = OptimSection(micro_batch_size=2, **options)
    start = time.perf_counter()
    optimize(model, torch.optim.SGD(model.parameters(), lr=0.0), rows, AlgoSection(), optim, policy.pad_token_id)
    return {
        "arm": arm,
        "tokens": sum(len(r.token_ids) for r in rows),
        "attn_implementation": model.config._attn_implementation,
        "rss_loaded_mib": round(loaded),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "update_s": round(time.perf_counter() - start, 1),
    }


def run(quick: bool = False, arms: list[str] | None = None) -> dict[str, Any]:
    length = 512 if quick else 2048
    results = []
    for arm in arms or list(ARMS):
        out = subprocess.run([sys.executable, "-m", "turngym.bench.learner_memory", "--child", arm,
                              "--length", str(length)], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"arm {arm!r} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"model": "smollm2-135m", "rows": [length, length - 1], "arms": results}


def summary(result: dict[str, Any]) -> str:
    lines = [f"{result['model']}, rows {result['rows']} tokens, one forward+backward:"]
    for a in result["arms"]:
        lines.append(f"  {a['arm']:<22} peak RSS {a['peak_rss_mib'] / 1024:5.2f} GiB "
                     f"(weights loaded {a['rss_loaded_mib'] / 1024:4.2f} GiB), update {a['update_s']:.0f}s")
    return "\n".join(lines)


def _before_run(args: Any) -> int | None:
    if args.child is None:
        return None
    print(json.dumps(_child(args.child, args.length)))
    return 0


def main(argv: list[str] | None = None) -> int:
    from turngym.bench._script import script_main

    return script_main(
        __doc__, run, summary, argv,
        quick_help="2×512 tokens instead of 2×2048",
        add_arguments=lambda p: (p.add_argument("--child", choices=list(ARMS), help="run one arm in this process"),
                                 p.add_argument("--length", type=int, default=2048, help="tokens of the longer row"),
                                 p.add_argument("--arms", nargs="+", choices=list(ARMS), help="arms to run")),
        run_options=lambda a: {"arms": a.arms},
        before_run=_before_run,
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""GRPO step time and peak memory: turngym's trainer vs TRL's ``GRPOTrainer``, measured in one run.

Run as a script::

    python bench/grpo.py --json out.json             # full run: 4 steps per trainer (1 warm-up + 3)
    python bench/grpo.py --quick                     # smoke run: 2 steps per trainer, prints the JSON
    python bench/grpo.py --steps 6 --repeats 2       # more steps; repeat both trainers, order alternating

or import it by path and call :func:`run` (``bench/`` is a folder of scripts, not a package; see
``bench/run.py``). Needs ``trl`` (``pip install trl==1.16.0``; it pulls ``datasets``); without it the
TRL side is reported as an error and the targets are ``"pass": null``.

**Workload (identical on both sides).** The embedded SmolLM2-135M-Instruct, fp32, CPU. Every step
takes 8 single-turn arithmetic prompts ``"What is {a}+{b}? Answer with just the number."`` (one user
message, no system message, so both render the chat template's default system prompt: 45 prompt
tokens) and samples 8 completions of each (64 completions per step), at most 32 new tokens,
temperature 1.0, no top-k/top-p. Reward 1 if the reply contains ``a+b`` as a standalone integer
(``turngym/Arithmetic-v0``'s rule; for TRL the same regex as a reward function). Group-normalised
advantages, token-mean loss (TRL ``loss_type="dapo"``), no KL (``beta=0``), one AdamW step per
batch (lr 1e-5, grad-clip 1.0, constant schedule), seed 0.

* ``ours``: ``turngym.training.trainer.train`` on a :class:`TrainConfig` (``turngym/Arithmetic-v0``,
  ``tasks_per_step=8``, ``group_size=8``, ``max_new_tokens=32``, estimator ``grpo``, ``ungated``,
  ``dynamic_sampling=false``, no evaluation, no TensorBoard, no intermediate checkpoints; other
  fields at their defaults, e.g. micro-batches of 8 sequences).
* ``trl``: ``GRPOTrainer`` with cpu_baselines.md Part A's config (``per_device_train_batch_size=64,
  num_generations=8, max_completion_length=32, loss_type="dapo", gradient_checkpointing=False,
  use_cpu=True, bf16=False, report_to="none"``), plus ``shuffle_dataset=False`` and
  ``lr_scheduler_type="constant"`` so it sees the same prompts in the same order with the same lr.
  Its dataset is built from the very tasks our trainer samples: for step ``s`` the seeds of
  ``sample_tasks(config, s)``, each reset in ``turngym/Arithmetic-v0`` and its observation used as
  the user message (``info["answer"]`` is the reward's target). The child checks that TRL's
  tokenised prompts equal ours token for token (``prompt_tokens_match``).

**How.** Each trainer runs in its own fresh subprocess (``python bench/grpo.py --child NAME``), one
after the other, so the peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) is that trainer's alone;
it is read at the end of every training step (the figure reported: the peak over training, model
load included), and again when the child exits (``peak_rss_gib_at_exit``, which for ours also covers
the final checkpoint and model export). Step wall times: our ``metrics.jsonl`` ``time/step_s``; for
TRL a ``TrainerCallback`` (``on_step_begin`` → ``on_step_end``; TRL generates inside the step). The
first ``warmup`` step is excluded; the figure is the **median** over the remaining steps.

Split: ``generate_s`` is time inside the generation call (ours: ``rollout/generate_seconds`` of
``collect``; TRL: a wrapper around ``model.generate``); ``other_s = step - generate`` (rewards,
advantages, forward/backward, optimizer; for ours also env stepping). ``rollout_s`` (ours only) is
the whole ``collect`` call. Useful tokens: generated tokens up to and including the first EOS.

With ``--repeats R`` both trainers run R times with the order alternating (ours first on even
repeats); ratios are the median of the per-repeat paired ratios. Absolute times on a shared machine
are noise; the ratios are the figures.

Targets (from the issue): ``time ours/trl <= 1.0`` (s/step) and ``memory ours/trl <= 0.5``
(peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from turngym.bench._script import script_main

ENV_ID = "turngym/Arithmetic-v0"
MODEL = "smollm2-135m"
SEED = 0
TASKS_PER_STEP = 8
GROUP_SIZE = 8
MAX_NEW_TOKENS = 32
TEMPERATURE = 1.0
LR = 1e-5
WARMUP_STEPS = 1
FULL_STEPS = 4
QUICK_STEPS = 2
TRAINERS = ("ours", "trl")

TARGETS: dict[str, dict[str, Any]] = {
    "time ours/trl": {"max": 1.0, "description": "median s/step, ours <= TRL"},
    "memory ours/trl": {"max": 0.5, "description": "peak RSS, ours <= half of TRL's"},
}


# ----------------------------------------------------------------------------- shared workload
def our_config(steps: int, out_dir: str | Path) -> Any:
    """Our trainer's config for this benchmark (TRL's dataset is derived from it too)."""
    from turngym.training.config import TrainConfig

    return TrainConfig.model_validate(
        {
            "name": "bench-grpo",
            "out_dir": str(out_dir),
            "seed": SEED,
            "steps": steps,
            "checkpoint_every": 1_000_000,
            "envs": [{"id": ENV_ID}],
            "model": {"name": MODEL, "dtype": "float32", "device": "cpu"},
            "rollout": {
                "tasks_per_step": TASKS_PER_STEP,
                "group_size": GROUP_SIZE,
                "max_new_tokens": MAX_NEW_TOKENS,
                "temperature": TEMPERATURE,
                "top_p": 1.0,
            },
            "algo": {
                "estimator": "grpo",
                "gate": "ungated",
                "dynamic_sampling": False,
                "kl_coef": 0.0,
            },
            "optim": {"lr": LR},
            "eval": {"episodes": 0},
            "tensorboard": False,
        }
    )


def step_prompts(steps: int) -> list[list[dict[str, Any]]]:
    """For each step, the tasks our trainer samples: seed, user message (env observation), answer."""
    import turngym
    from turngym.training.trainer import sample_tasks

    config = our_config(steps, tempfile.gettempdir())
    env = turngym.make(ENV_ID)
    out = []
    for step in range(steps):
        rows = []
        for task in sample_tasks(config, step):
            obs, info = env.reset(seed=task.seed)
            a, b = (int(x) for x in re.fullmatch(r"What is (\d+)\+(\d+)\? .*", obs).groups())
            if str(a + b) != info["answer"]:
                raise AssertionError(
                    f"seed {task.seed}: parsed {a}+{b} but the env's answer is {info['answer']}"
                )
            rows.append(
                {"seed": task.seed, "prompt": obs, "answer": info["answer"], "a": a, "b": b}
            )
        out.append(rows)
    return out


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# ----------------------------------------------------------------------------- children
def child_ours(steps: int, workdir: Path) -> dict[str, Any]:
    import torch

    from turngym.training.trainer import train

    config = our_config(steps, workdir / "ours")
    started = time.perf_counter()
    train(config, show_progress=False)
    wall = time.perf_counter() - started
    rows = [
        json.loads(line)
        for line in (config.output_dir / "metrics.jsonl").read_text().splitlines()
        if line
    ]
    return {
        "trainer": "ours",
        "step_s": [r["time/step_s"] for r in rows],
        "generate_s": [r["rollout/generate_seconds"] for r in rows],
        "other_s": [r["time/step_s"] - r["rollout/generate_seconds"] for r in rows],
        "rollout_s": [r["time/rollout_s"] for r in rows],
        "useful_generated_tokens": [r["rollout/generated_tokens"] for r in rows],
        "completions": [r["rollout/trajectories"] for r in rows],
        "reward_mean": [r["reward/mean_outcome"] for r in rows],
        "peak_rss_gib_per_step": [r["memory/peak_rss_gib"] for r in rows],
        "peak_rss_gib": max(r["memory/peak_rss_gib"] for r in rows),
        "peak_rss_gib_at_exit": _rss_gib(),
        "process_wall_s": wall,
        "torch_threads": torch.get_num_threads(),
    }


def child_trl(steps: int, workdir: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from turngym.agents.models import load_smollm2
    from turngym.training.chat_tokens import ChatTokens

    per_step = step_prompts(steps)
    model, tokenizer = load_smollm2(dtype=torch.float32)
    ours_prompt = ChatTokens(tokenizer).first_prompt  # what our rollout feeds the model
    expected = [
        [ours_prompt("", t["prompt"]) for t in tasks for _ in range(GROUP_SIZE)]
        for tasks in per_step
    ]
    eos_ids = {int(tokenizer.eos_token_id)}
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    eos_ids.update([gen_eos] if isinstance(gen_eos, int) else (gen_eos or []))

    # -- time every model.generate call; count its useful tokens; check its prompts are ours
    calls: list[dict[str, Any]] = []
    original_generate = model.generate

    def timed_generate(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = original_generate(*args, **kwargs)
        seconds = time.perf_counter() - t0
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        width = ids.shape[1]
        prompts = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
        useful = 0
        for row in out[:, width:].tolist():
            hit = next((i for i, t in enumerate(row) if t in eos_ids), None)
            useful += len(row) if hit is None else hit + 1
        calls.append(
            {"seconds": seconds, "useful_tokens": useful, "rows": len(prompts), "prompts": prompts}
        )
        return out

    model.generate = timed_generate

    def reward_sum(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
        """1 if the reply contains the sum as a standalone integer (Arithmetic-v0's rule)."""
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        return [
            1.0 if re.search(rf"(?<!\d){a}(?!\d)", t[:10_000]) else 0.0
            for t, a in zip(texts, answer)
        ]

    dataset = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": t["prompt"]}], "answer": t["answer"]}
            for tasks in per_step
            for t in tasks
        ]
    )

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.step_s: list[float] = []
            self.rss: list[float] = []
            self.logs: list[dict[str, Any]] = []
            self._t0 = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_s.append(time.perf_counter() - self._t0)
            self.rss.append(_rss_gib())

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs:
                self.logs.append(dict(logs))

    args = GRPOConfig(
        output_dir=str(workdir / "trl"),
        per_device_train_batch_size=TASKS_PER_STEP * GROUP_SIZE,
        gradient_accumulation_steps=1,
        num_generations=GROUP_SIZE,
        max_completion_length=MAX_NEW_TOKENS,
        learning_rate=LR,
        lr_scheduler_type="constant",
        bf16=False,
        fp16=False,
        use_cpu=True,
        use_vllm=False,
        temperature=TEMPERATURE,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        num_iterations=1,
        loss_type="dapo",
        scale_rewards="group",
        gradient_checkpointing=False,
        shuffle_dataset=False,
        logging_steps=1,
        max_steps=steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=SEED,
    )
    timer = StepTimer()
    started = time.perf_counter()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_sum],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    wall = time.perf_counter() - started
    if len(calls) != len(timer.step_s):
        raise RuntimeError(
            f"expected one generate call per step, got {len(calls)} calls for {len(timer.step_s)} steps"
        )
    match = all(c["prompts"] == want for c, want in zip(calls, expected))
    step_logs = [log for log in timer.logs if "reward" in log]
    return {
        "trainer": "trl",
        "step_s": timer.step_s,
        "generate_s": [c["seconds"] for c in calls],
        "other_s": [s - c["seconds"] for s, c in zip(timer.step_s, calls)],
        "useful_generated_tokens": [c["useful_tokens"] for c in calls],
        "completions": [c["rows"] for c in calls],
        "reward_mean": [log["reward"] for log in step_logs],
        "peak_rss_gib_per_step": timer.rss,
        "peak_rss_gib": max(timer.rss),
        "peak_rss_gib_at_exit": _rss_gib(),
        "process_wall_s": wall,
        "prompt_tokens_match": match,
        "prompt_tokens": len(expected[0][0]),
        "torch_threads": torch.get_num_threads(),
    }


CHILDREN = {"ours": child_ours, "trl": child_trl}


def _spawn(trainer: str, steps: int, workdir: Path) -> dict[str, Any]:
    """Run one trainer in a fresh interpreter; returns its result dict (or an ``error``)."""
    out = workdir / f"{trainer}.json"
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore"
    )
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        trainer,
        "--steps",
        str(steps),
        "--workdir",
        str(workdir),
        "--child-out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        return {"trainer": trainer, "error": f"exit {proc.returncode}", "stderr_tail": tail}
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------- harness
def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _summarise(child: dict[str, Any], warmup: int) -> dict[str, Any]:
    if "error" in child:
        return {"median_step_s": None, "peak_rss_gib": None, "error": child["error"]}
    measured = slice(warmup, None)
    step_s = child["step_s"][measured]
    gen_s = child["generate_s"][measured]
    toks = child["useful_generated_tokens"][measured]
    out = {
        "median_step_s": _median(step_s),
        "median_generate_s": _median(gen_s),
        "median_other_s": _median(child["other_s"][measured]),
        "generate_share": (sum(gen_s) / sum(step_s)) if step_s else None,
        "useful_tokens_per_step": _median(toks),
        "generate_tok_per_s": (sum(toks) / sum(gen_s)) if gen_s and sum(gen_s) else None,
        "peak_rss_gib": child["peak_rss_gib"],
    }
    if "rollout_s" in child:
        out["median_rollout_s"] = _median(child["rollout_s"][measured])
    return out


def run(quick: bool = False, steps: int | None = None, repeats: int = 1) -> dict[str, Any]:
    """Run both trainers ``repeats`` times (order alternating) and return the JSON-able result."""
    steps = steps or (QUICK_STEPS if quick else FULL_STEPS)
    warmup = WARMUP_STEPS if steps > WARMUP_STEPS else 0
    started = time.time()
    load_before = round(os.getloadavg()[0], 2)
    prompts = step_prompts(steps)
    runs = []
    with tempfile.TemporaryDirectory(prefix="turngym-bench-grpo-") as tmp:
        for r in range(repeats):
            order = list(TRAINERS) if r % 2 == 0 else list(reversed(TRAINERS))
            got = {}
            for name in order:
                workdir = Path(tmp) / f"repeat{r}"
                workdir.mkdir(exist_ok=True)
                got[name] = _spawn(name, steps, workdir)
            runs.append({"order": order, **got})

    per_trainer = {name: [_summarise(run_[name], warmup) for run_ in runs] for name in TRAINERS}
    ratios: dict[str, float | None] = {}
    for key, field_ in (
        ("time ours/trl", "median_step_s"),
        ("memory ours/trl", "peak_rss_gib"),
        ("generate_time ours/trl", "median_generate_s"),
        ("other_time ours/trl", "median_other_s"),
    ):
        paired = [
            o[field_] / t[field_]
            for o, t in zip(per_trainer["ours"], per_trainer["trl"])
            if o.get(field_) and t.get(field_)
        ]
        ratios[key] = _median(paired)
    targets = {
        name: {
            **t,
            "value": ratios[name],
            "pass": None if ratios[name] is None else bool(ratios[name] <= t["max"]),
        }
        for name, t in TARGETS.items()
    }
    verdicts = [t["pass"] for t in targets.values()]
    summary_by_trainer = {
        name: {
            k: _median([s[k] for s in summaries if s.get(k) is not None])
            for k in summaries[0]
            if k != "error"
        }
        for name, summaries in per_trainer.items()
    }
    errors = {
        f"{name}[{i}]": run_[name].get("error")
        for i, run_ in enumerate(runs)
        for name in TRAINERS
        if "error" in run_[name]
    }
    return {
        "suite": "grpo",
        "quick": quick,
        "metric": "seconds per GRPO step and peak RSS (lower is better); ratios ours/trl are the figures",
        "method": f"{steps} steps per trainer, first {warmup} excluded, median over the rest; each trainer in its own "
        f"subprocess, run one after the other; {repeats} repeat(s), order alternating; "
        "ratio = median of per-repeat paired ratios",
        "workload": {
            "model": "SmolLM2-135M-Instruct (embedded), float32, CPU",
            "env": ENV_ID,
            "prompts_per_step": TASKS_PER_STEP,
            "generations_per_prompt": GROUP_SIZE,
            "completions_per_step": TASKS_PER_STEP * GROUP_SIZE,
            "max_new_tokens": MAX_NEW_TOKENS,
            "temperature": TEMPERATURE,
            "lr": LR,
            "kl": 0.0,
            "seed": SEED,
            "tasks": [[(t["seed"], t["a"], t["b"]) for t in step] for step in prompts],
        },
        "steps": steps,
        "warmup_steps": warmup,
        "repeats": repeats,
        "ours": summary_by_trainer["ours"],
        "trl": summary_by_trainer["trl"],
        "ratios": ratios,
        "targets": targets,
        "pass": False
        if False in verdicts
        else (True if all(v is True for v in verdicts) else None),
        "prompt_tokens_match": [run_["trl"].get("prompt_tokens_match") for run_ in runs],
        "runs": runs,
        "errors": errors,
        "environment": {
            **_versions(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": {
                name: run_[name].get("torch_threads") for run_ in runs[:1] for name in TRAINERS
            },
            # other processes on the machine make absolute figures noisy; paired ratios less so
            "load_avg_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
        },
        "wall_s": round(time.time() - started, 2),
    }


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("turngym", "torch", "transformers", "trl", "accelerate", "datasets"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def summary(result: dict[str, Any]) -> str:
    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines = []
    for name in TRAINERS:
        s = result[name]
        lines.append(
            f"{name:4}: {fmt(s.get('median_step_s'), '.2f')} s/step (generate {fmt(s.get('median_generate_s'), '.2f')} s, "
            f"other {fmt(s.get('median_other_s'), '.2f')} s), peak RSS {fmt(s.get('peak_rss_gib'), '.2f')} GiB"
        )
    for name, t in result["targets"].items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        lines.append(f"{name} = {fmt(t['value'], '.3f')} (target <= {t['max']}) {verdict}")
    for key, err in result["errors"].items():
        lines.append(f"error[{key}]: {err}")
    load = result["environment"]["load_avg_1m_before_after"][0]
    if load >= 1.0:
        lines.append(
            f"warning: 1-min load average {load} before the run: other processes shared the CPU; with more "
            "torch threads than free cores timings can be several times slower (OMP_NUM_THREADS=1 helps)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--steps",
            type=int,
            help=f"steps per trainer (default {FULL_STEPS}; first {WARMUP_STEPS} is warm-up)",
        )
        parser.add_argument(
            "--repeats",
            type=int,
            default=1,
            help="run both trainers this many times, order alternating",
        )
        parser.add_argument("--child", choices=TRAINERS, help=argparse.SUPPRESS)
        parser.add_argument("--workdir", help=argparse.SUPPRESS)
        parser.add_argument("--child-out", help=argparse.SUPPRESS)

    def child(args: argparse.Namespace) -> int | None:
        if not args.child:
            return None
        result = CHILDREN[args.child](args.steps, Path(args.workdir))  # one trainer, in this (fresh) process
        Path(args.child_out).write_text(json.dumps(result) + "\n")
        return 0

    return script_main(
        __doc__, run, summary, argv, quick_help=f"{QUICK_STEPS} steps per trainer (smoke run)",
        add_arguments=add_arguments, before_run=child,
        run_options=lambda args: {"steps": args.steps, "repeats": args.repeats},
    )


if __name__ == "__main__":
    sys.exit(main())

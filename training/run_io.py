"""A run's files: checkpoints (with :class:`TrainerState`), the metrics log, the summary, the plots,
the exported model, and the progress display on stderr.

Everything here is plumbing that :func:`turngym.training.trainer.train` calls; nothing here decides
what the learner does. Files under ``runs/<name>/`` (see ``docs/training.md``):
``checkpoint/`` (atomic), ``metrics.jsonl`` (+ ``tensorboard/``), ``summary.json``, ``curves.png``,
``model/``.
"""

from __future__ import annotations

import copy
import json
import os
import random
import resource
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.base import LearnerPolicy
from turngym.console import Progress, format_duration
from turngym.training import advantages as adv_lib
from turngym.training.config import TrainConfig
from turngym.training.data_parallel import SINGLE, Ranks
from turngym.training.evaluate import EvalSummary, Rate
from turngym.training.sharding import full_state, load_full_state
from turngym.training.signal import no_signal_warning
from turngym.training.trajectory import Trajectory

CHECKPOINT = "checkpoint"


@dataclass
class TrainerState:
    """What a checkpoint restores besides weights and optimizer moments (JSON: :meth:`to_dict`)."""

    step: int = 0
    rae_state: adv_lib.RAEState | None = None
    """The RAE role baselines carried from batch to batch (``rae`` estimator only)."""
    train_seconds: float = 0.0
    evals: dict[str, dict[str, EvalSummary]] = field(default_factory=dict)
    """``{"before" | "after": {decoding mode: summary}}`` of :func:`evaluate_policy`."""
    pool: dict[str, Any] | None = None
    """The self-play opponent pool (:class:`~turngym.training.selfplay.OpponentPool`), with its PFSP stats."""
    ratings: list[dict[str, Any]] = field(default_factory=list)
    """Every anchor rating so far (:class:`~turngym.training.selfplay.AnchorRating` as dicts)."""
    entropy_coef: float | None = None
    """The entropy bonus in force (moved by the target-entropy controller); ``None`` before step 1."""
    no_signal_since: int | None = None
    """First step of the current run of steps whose every group was dropped (see training/signal.py)."""
    warmup: dict[str, Any] | None = None
    """The behaviour-cloning warm-up's :class:`~turngym.training.warmup.WarmupStats` once it ran."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``checkpoint/trainer_state.json``."""
        return {
            **self.__dict__,
            "rae_state": None if self.rae_state is None else self.rae_state.to_dict(),
            "evals": {when: {mode: s.to_dict() for mode, s in modes.items()} for when, modes in self.evals.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        values = dict(data)
        if values.get("rae_state") is not None:
            values["rae_state"] = adv_lib.RAEState.from_dict(values["rae_state"])
        values["evals"] = {
            when: {mode: EvalSummary.from_dict(s) for mode, s in modes.items()}
            for when, modes in values.get("evals", {}).items()
        }
        return cls(**values)


def save_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainerState,
                    *, ranks: Ranks = SINGLE) -> None:
    """Write ``out/checkpoint`` atomically (a temp folder renamed over the old one): the whole model and
    optimizer state, so any rank count and strategy can resume it. Data-parallel: call it on every rank
    (a sharded model is gathered collectively); rank 0 writes."""
    model_state, optimizer_state = full_state(model, optimizer)
    if not ranks.is_main:
        return
    tmp = out / f"{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "model": model_state,
            "optimizer": optimizer_state,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        },
        tmp / "state.pt",
    )
    (tmp / "trainer_state.json").write_text(json.dumps(state.to_dict(), indent=2))
    final = out / CHECKPOINT
    old = out / f"{CHECKPOINT}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                    truncate_metrics: bool = True) -> TrainerState:
    """Restore weights, optimizer, RNGs and trainer state from ``out/checkpoint``; with
    ``truncate_metrics`` (the process that writes the log), drop metrics of steps after it."""
    path = out / CHECKPOINT
    if not (path / "state.pt").exists():
        raise FileNotFoundError(f"no checkpoint to resume from in {path}; run without --resume to start fresh")
    blob = torch.load(path / "state.pt", weights_only=False)
    load_full_state(model, optimizer, blob["model"], blob["optimizer"])
    torch.set_rng_state(blob["torch_rng"])
    np.random.set_state(blob["numpy_rng"])
    random.setstate(blob["python_rng"])
    state = TrainerState.from_dict(json.loads((path / "trainer_state.json").read_text()))
    # metrics written after the checkpoint belong to steps that will be replayed: drop them
    metrics = out / "metrics.jsonl"
    if truncate_metrics and metrics.exists():
        kept = [line for line in metrics.read_text().splitlines() if line and json.loads(line)["step"] <= state.step]
        metrics.write_text("".join(line + "\n" for line in kept))
    return state


class MetricsLog:
    """Appends one JSON line per step to ``metrics.jsonl`` and mirrors scalars to TensorBoard."""

    def __init__(self, out: Path, tensorboard: bool):
        self.path = out / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out / "tensorboard"))
            except ImportError:  # tensorboard is in the [train] extra; JSONL is always written
                self.writer = None

    def write(self, metrics: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, metrics["step"])
            self.writer.flush()

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def flat_eval(result: EvalSummary) -> dict[str, float]:
    return {"success": result.success.value, "invalid": result.invalid.value, "mean_outcome": result.mean_outcome.value}


def resident_peak_gib() -> float:
    """This process's largest resident set so far, in GiB (``ru_maxrss``, which Linux gives in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_summary(out: Path, config: TrainConfig, state: TrainerState, rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "name": config.name,
        "steps": state.step,
        "train_seconds": state.train_seconds,
        "evals": state.to_dict()["evals"],
        **({"warmup": state.warmup} if state.warmup else {}),
        # the steps' peaks (earlier processes of a resumed run) and this process's, the final evaluation included
        "peak_rss_gib": max([r.get("memory/peak_rss_gib", 0.0) for r in rows] + [resident_peak_gib()]),
        "plot": str(out / "curves.png"),
    }
    warning = no_signal_warning(state.no_signal_since, state.step, config.algo.no_signal_warn_steps)
    if warning:
        summary["no_learning_signal"] = {"since_step": state.no_signal_since, "message": warning}
    if state.ratings:
        first = {r["env_id"]: r for r in state.ratings if r["step"] == state.ratings[0]["step"]}
        last = {r["env_id"]: r for r in state.ratings if r["step"] == state.ratings[-1]["step"]}
        summary["ratings"] = {
            env_id: {
                "before": {"step": first[env_id]["step"], "elo": first[env_id]["elo"], "interval": [first[env_id]["low"], first[env_id]["high"]]},
                "after": {"step": last[env_id]["step"], "elo": last[env_id]["elo"], "interval": [last[env_id]["low"], last[env_id]["high"]]},
                "anchors": last[env_id]["anchors"],
            }
            for env_id in last
        }
        summary["ratings_plot"] = str(out / "ratings.png")
    evals = state.evals
    if "before" in evals and "after" in evals:
        summary["comparison"] = compare_evals(evals["before"], evals["after"])  # what RL did
    if "base" in evals and "before" in evals:
        summary["comparison_warmup"] = compare_evals(evals["base"], evals["before"])  # what the warm-up did
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def compare_evals(before: dict[str, EvalSummary], after: dict[str, EvalSummary]) -> dict[str, dict[str, Any]]:
    """Per decoding mode present in both, each metric's values and whether their 95% intervals
    overlap: success, draw, invalid, mean outcome and every dense component's episode rate."""
    comparison = {}
    for mode in after:
        if mode not in before:
            continue
        b_, a_ = before[mode], after[mode]
        rates = {metric: (getattr(b_, metric), getattr(a_, metric)) for metric in ("success", "draw", "invalid", "mean_outcome")}
        for name in sorted({*b_.components, *a_.components}):  # intermediate metrics: episodes with that component
            rates[f"component/{name}"] = (b_.components.get(name, Rate.of(0, b_.episodes)), a_.components.get(name, Rate.of(0, a_.episodes)))
        comparison[mode] = {
            metric: {"before": b.value, "after": a.value, "intervals_overlap": not (a.low > b.high or b.low > a.high)}
            for metric, (b, a) in rates.items()
        }
    return comparison


def plot_curves(out: Path, rows: list[dict[str, Any]], evals: dict[str, dict[str, EvalSummary]]) -> None:
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, grid = plt.subplots(2, 3, figsize=(15, 8))
    axes = grid[0]
    for ax, key, title in (
        (grid[1][0], "entropy", "policy token entropy (nats, learner)"),
        (grid[1][1], "groups/dropped_share", "groups dropped (zero reward variance)"),
        (grid[1][2], "clip_frac", "clipped token share"),
    ):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], marker="o", ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
    for ax, key, title in (
        (axes[0], "reward/mean_outcome", "mean outcome (training rollouts)"),
        (axes[1], "reward/success_rate", "success / win rate (training rollouts)"),
        (axes[2], "reward/invalid_rate", "invalid-action episodes (training rollouts)"),
    ):
        ax.plot(steps, [r[key] for r in rows], marker="o", ms=3, label="train")
        ax.set_title(title)
        ax.set_xlabel("step")
        metric = {"reward/mean_outcome": "mean_outcome", "reward/success_rate": "success", "reward/invalid_rate": "invalid"}[key]
        for when, x in (("before", 0), ("after", steps[-1])):
            for mode, result in (evals.get(when) or {}).items():
                v = getattr(result, metric)
                below, above = max(0.0, v.value - v.low), max(0.0, v.high - v.value)  # round-off
                ax.errorbar([x], [v.value], yerr=[[below], [above]], fmt="s", capsize=4,
                            label=f"eval {when} ({mode})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)


def export_model(out: Path, policy: LearnerPolicy) -> None:
    """Save the trained weights and tokenizer as a Hugging Face folder (agent spec ``hf:<out>/model``)."""
    target = out / "model"
    model = policy.model
    if hasattr(model, "merge_and_unload"):  # LoRA: export merged weights, a plain HF model
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(target)
    policy.tokenizer.save_pretrained(target)


class _StepBar(Progress):
    """The step bar; with a time budget its ETA is the budget left plus one step (the step running
    when the budget runs out still finishes), when that comes before the last step."""

    budget_left_s: float | None = None

    def eta(self) -> float | None:
        eta = super().eta()
        done = self.completed - self._start_completed
        if eta is None or self.budget_left_s is None or done <= 0:
            return eta
        per_step = self.elapsed() / done
        return min(eta, max(self.budget_left_s - self.elapsed(), 0.0) + per_step)


class TrainProgress:
    """The training bar on stderr (:class:`turngym.console.Progress`): steps done / total, the phase of
    the step running now (rollout, advantages, update, eval) and the last step's figures; a metrics
    ``warning`` is printed as its own line when it first appears or changes."""

    def __init__(self, total: int, done: int, enabled: bool, budget_left_s: float | None = None):
        self.bar = _StepBar("train", total, unit="steps", completed=done, enabled=enabled)
        self.bar.budget_left_s = budget_left_s
        self.last = ""
        self.warning: str | None = None

    def phase(self, step: int, name: str) -> None:
        """Step ``step + 1`` is now in phase ``name``."""
        self.bar.update(info=f"step {step + 1}: {name}" + (f" · last: {self.last}" if self.last else ""))

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        """Step ``step`` finished with ``metrics`` (a ``metrics.jsonl`` row)."""
        self.last = (f"outcome {metrics['reward/mean_outcome']:+.2f}  win {metrics['reward/success_rate']:.2f}  "
                     f"invalid {metrics['reward/invalid_rate']:.2f}  {format_duration(metrics['time/step_s'])}/step")
        warning = metrics.get("warning")
        if warning and warning != self.warning:
            self.bar.note(f"warning (step {step}): {warning}")
        self.warning = warning
        self.bar.update(step, info=self.last)

    def close(self) -> None:
        self.bar.close()


class EvalProgress(Progress):
    """Evaluation progress: episodes done / total and the running success rate (outcome > 0, as in
    :class:`~turngym.training.evaluate.EvalSummary`); ``round`` and ``episode`` are :func:`collect`'s two callbacks."""

    def __init__(self, label: str, total: int, enabled: bool = True):
        self.rounds = self.episodes = self.scored = self.successes = self.failed = 0  # before the first line
        super().__init__(label, total, unit="episodes", enabled=enabled)

    def round(self, done: int, total: int) -> None:
        self.rounds += 1
        self.update(info=self._info())

    def episode(self, trajectories: list[Trajectory]) -> None:
        self.episodes += 1
        for t in trajectories:
            if t.failed or t.outcome is None:
                self.failed += 1
            else:
                self.scored += 1
                self.successes += t.outcome > 0
        self.update(self.episodes, info=self._info())

    def eta(self) -> float | None:
        """``None`` until a quarter of the episodes ended: they run in lock-step and most end together
        near the finish, so the rate of the first few says nothing about the rest."""
        return super().eta() if self.episodes * 4 >= self.total else None

    def _info(self) -> str:
        parts = [f"turn {self.rounds}"]
        if self.scored:
            parts.append(f"success {self.successes / self.scored:.2f}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return " · ".join(parts)

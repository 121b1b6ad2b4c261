"""Run an ablation study: every arm × seed trained, then curves, effects, plot and ``result.json``.

Layout of ``<out>/<study>/`` (``out`` defaults to ``runs/ablate``)::

    <arm>/seed-<k>/          the run folder of one training run (metrics.jsonl, config.yaml, …)
    <arm>/curves.json        per plotted/measured metric and step: across-seed mean and 95 % t-band
    curves.png               learning curves of every arm, with the bands
    result.json              claim, arms, each effect with its 95 % interval and verdict, wall time

Runs are independent processes (``spawn``), ``workers`` at a time, one torch thread each; arms
share seeds, so seed ``k`` of every arm starts from the same weights and draws the same tasks.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from turngym.console import Progress
from turngym.training.ablations.analysis import EffectResult, Rows, band, curve, measure
from turngym.training.ablations.studies import Study
from turngym.training.config import TrainConfig, apply_overrides

DEFAULT_OUT = Path("runs/ablate")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study: arm, seed and the complete config mapping (picklable)."""

    arm: str
    seed: int
    config: dict[str, Any]

    @property
    def out_dir(self) -> Path:
        return Path(self.config["out_dir"])


@dataclass
class StudyResult:
    """What ``result.json`` holds (see the module docstring)."""

    study: str
    title: str
    claim: str
    env_id: str
    arms: list[dict[str, Any]]
    seeds: int
    steps: int
    effects: list[EffectResult]
    verdict: str
    wall_s: float
    interval: str = "95% Student-t interval over seeds of the per-seed (paired) differences"
    notes: str = ""
    out_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """``train_s_sum``: the runs' training seconds added up (without model loading and export);
    ``workers``: runs trained at once."""

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "effects"}
        data["effects"] = [e.to_dict() for e in self.effects]
        return data


def run_specs(study: Study, seeds: int, steps: int, out_dir: Path) -> list[RunSpec]:
    """Every arm × seed of ``study`` as a validated config (seed-major, so early results cover all arms)."""
    specs = []
    for seed in range(seeds):
        for arm in study.arms:
            data = json.loads(json.dumps(study.base))  # a deep copy
            overrides = [*arm.overrides, f"seed={seed}", f"steps={steps}", f"checkpoint_every={steps}",
                         f"name=ablate-{study.name}-{arm.name}", f"out_dir={out_dir / arm.name / f'seed-{seed}'}"]
            data = apply_overrides(data, overrides)
            TrainConfig.model_validate(data)  # a bad arm fails here, before any run starts
            specs.append(RunSpec(arm.name, seed, data))
    return specs


def train_one(spec: RunSpec) -> tuple[str, int, float]:
    """Train one run (in a worker process); returns ``(arm, seed, seconds)``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from turngym.training.trainer import train

    start = time.perf_counter()
    train(TrainConfig.model_validate(spec.config), show_progress=False)
    return spec.arm, spec.seed, time.perf_counter() - start


def run_study(study: Study, *, seeds: int | None = None, steps: int | None = None, out: Path | str | None = None,
              workers: int = 2, show_progress: bool = True, train: bool = True) -> StudyResult:
    """Train every run of ``study``, measure its effects and write its files; returns the result.

    ``train=False`` skips the training and re-measures and re-draws from the run folders already
    there (``wall_s`` is then the previous ``result.json``'s training time)."""
    seeds = study.seeds if seeds is None else seeds
    steps = study.steps if steps is None else steps
    if seeds < 1 or steps < 1 or workers < 1:
        raise ValueError(f"seeds, steps and workers must be >= 1, got seeds={seeds}, steps={steps}, workers={workers}")
    out_dir = Path(out or DEFAULT_OUT) / study.name
    specs = run_specs(study, seeds, steps, out_dir)
    if train:
        wall = _train_all(study, specs, workers, show_progress)
    else:
        previous = out_dir / "result.json"
        wall = json.loads(previous.read_text()).get("wall_s", math.nan) if previous.exists() else math.nan
    runs = {arm.name: [read_rows(s.out_dir) for s in specs if s.arm == arm.name] for arm in study.arms}
    effects = [measure(e, runs, steps) for e in study.effects]
    primary = next(r for r, e in zip(effects, study.effects) if e is study.primary)
    result = StudyResult(
        study=study.name, title=study.title, claim=study.claim, env_id=study.env_id,
        arms=[{"name": a.name, "overrides": list(a.overrides), "description": a.description} for a in study.arms],
        seeds=seeds, steps=steps, effects=effects, verdict=primary.verdict, wall_s=wall, notes=study.notes,
        out_dir=str(out_dir),
        extra={"train_s_sum": sum(rows[-1].get("time/train_total_s", 0.0) for arm_runs in runs.values() for rows in arm_runs if rows),
               "workers": workers},
    )
    write_curves(study, runs, steps, out_dir)
    plot_study(study, runs, steps, out_dir / "curves.png")
    (out_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2, allow_nan=True) + "\n")
    return result


def _train_all(study: Study, specs: list[RunSpec], workers: int, show_progress: bool) -> float:
    """Train every run, ``workers`` processes at a time; returns the wall time in seconds."""
    start = time.perf_counter()
    with Progress(f"ablate {study.name}", len(specs), unit="runs", enabled=show_progress) as progress:
        if workers == 1:
            for spec in specs:
                arm, seed, seconds = train_one(spec)
                progress.advance(info=f"{arm} seed {seed}: {seconds:.0f}s")
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                for done in as_completed([pool.submit(train_one, spec) for spec in specs]):
                    arm, seed, seconds = done.result()
                    progress.advance(info=f"{arm} seed {seed}: {seconds:.0f}s")
    return time.perf_counter() - start


def read_rows(run_dir: Path) -> Rows:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the run of {run_dir} did not write its metrics")
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def study_metrics(study: Study) -> list[str]:
    """Every metric the study plots or measures, in order, once."""
    return list(dict.fromkeys([m for m, _ in study.plot_metrics] + [e.metric for e in study.effects]))


def write_curves(study: Study, runs: dict[str, list[Rows]], steps: int, out_dir: Path) -> None:
    """``<arm>/curves.json``: per metric, the per-step across-seed mean and 95 % band (nan → null)."""
    for arm, arm_runs in runs.items():
        data: dict[str, Any] = {"seeds": len(arm_runs), "steps": list(range(1, steps + 1))}
        for metric in study_metrics(study):
            mean, low, high = band(curve(arm_runs, metric, steps))
            data[metric] = {k: [None if not math.isfinite(x) else round(float(x), 6) for x in v]
                            for k, v in (("mean", mean), ("low", low), ("high", high))}
        (out_dir / arm / "curves.json").write_text(json.dumps(data) + "\n")


def plot_study(study: Study, runs: dict[str, list[Rows]], steps: int, path: Path) -> None:
    """One panel per plotted metric: each arm's across-seed mean with its 95 % t-band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = study.plot_metrics
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    x = np.arange(1, steps + 1)
    for ax, (metric, title) in zip(axes[0], panels):
        for arm, arm_runs in runs.items():
            mean, low, high = band(curve(arm_runs, metric, steps))
            (line,) = ax.plot(x, mean, lw=1.5, label=arm)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    seeds = max(len(r) for r in runs.values())
    fig.suptitle(f"ablate {study.name}: mean of {seeds} seed(s), 95% t-band", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)

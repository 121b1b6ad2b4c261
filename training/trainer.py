"""The multi-turn GRPO trainer. Read :func:`train` top to bottom: it is the whole algorithm.

Plumbing (output folder, checkpoints, logging, plots) is marked ``# PLUMBING``; the algorithm is
marked ``# ALGO``. One step:

1. sample ``tasks_per_step`` tasks (env from the weighted mix, seed below ``eval.seed_offset``);
2. ``collect`` ``group_size`` rollouts per task — token-in/token-out trajectories with per-turn
   records (``training/rollout.py``);
3. assemble rewards with G-RA gating (``training/rewards.py``) and compute per-turn advantages with
   the configured estimator (``training/advantages.py``); drop zero-information groups;
4. one PPO-clip gradient step over all policy tokens (``training/losses.py``), accumulated over
   micro-batches, log-probs computed without full-vocabulary logits (``training/batching.py``);
5. log, checkpoint (model, optimizer, step, RAE baselines), evaluate.

Every per-step random choice is derived from ``(seed, step)``, so a run resumed from a checkpoint
continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.factory import build_rollout_policy, discard_snapshot, load_policy, save_snapshot, sync_weights
from turngym.console import Progress, format_duration
from turngym.envs.registration import spec as env_spec
from turngym.training import advantages as adv_lib
from turngym.training.batching import make_rows
from turngym.training.config import TrainConfig
from turngym.training.evaluate import EvalSummary, seat_score, summarize_trajectories
from turngym.training.info_gain import information_gain_rewards
from turngym.training.rollout import RolloutConfig, Task, collect
from turngym.training.selfplay import (
    SELF,
    AnchorRater,
    OpponentPool,
    assign_opponents,
    plot_ratings,
)
from turngym.training.signal import dropped_group_share, no_signal_since, no_signal_warning
from turngym.training.trajectory import Trajectory
from turngym.training.update import next_entropy_coef, optimize

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


# ================================================================================================
def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the summary also written to ``summary.json``."""
    # PLUMBING: output folder, seeds, model, optimizer, logging ----------------------------------
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    config.dump(out / "config.yaml")
    torch.manual_seed(config.seed)
    if config.model.threads:
        torch.set_num_threads(config.model.threads)
    policy = load_policy(config.model.name, **config.policy_options())
    model = policy.model
    rollouts = build_rollout_policy(config.model.name, policy, out, **config.rollout_engine_options())  # `policy` itself, or a vLLM engine fed by weight sync
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.optim.lr,
        betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
    )
    reference = copy.deepcopy(model).eval().requires_grad_(False) if config.algo.kl_coef > 0 else None
    state = TrainerState()
    if resume:
        state = load_checkpoint(out, model, optimizer)
    elif (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()  # a fresh run replaces an old run's metrics
    sync_weights(rollouts, model)  # a resumed (or LoRA-wrapped) learner → engine
    log = MetricsLog(out, tensorboard=config.tensorboard)
    pool = build_pool(config, state)
    rater = build_rater(config)
    collector = None  # rollouts on Ray workers (training/distributed.py); weights synced every collect
    if config.rollout.ray_workers:
        from turngym.training.distributed import RayCollector

        collector = RayCollector(config, config.rollout.ray_workers, config.rollout.ray_address, split=config.rollout.ray_split)

    # ALGO: evaluate (and rate against the anchors) before training --------------------------------
    if state.step == 0 and config.eval.episodes and "before" not in state.evals:
        state.evals["before"] = evaluate_policy(rollouts, config, config.eval.episodes, show_progress=show_progress)
    if rater is not None and state.step == 0 and not state.ratings:
        rate_policy(rater, rollouts, config, state, out)

    progress = _Progress(config.steps, state.step, enabled=show_progress)
    for step in range(state.step, config.steps):
        step_start = time.perf_counter()

        # ALGO 1-2: tasks and grouped rollouts ------------------------------------------------------
        progress.phase(step, "rollout")
        tasks = sample_tasks(config, step, pool)
        batch = (collector.collect if collector else collect)(tasks, rollouts, rollout_config(config, step))
        rollout_seconds = time.perf_counter() - step_start
        if pool is not None:
            update_pool(pool, batch.trajectories)

        # ALGO 3: gated rewards (+ IGPO information gain) → per-turn advantages; keep informative groups
        progress.phase(step, "advantages")
        gains = information_gain_rewards(policy, batch.trajectories) if config.algo.info_gain else None
        advantages, keep, state.rae_state = adv_lib.compute(batch.trajectories, config.algo, state.rae_state, information_gains=gains)
        groups = [f"{t.group_id}/seat{t.seat}" for t in batch.trajectories]  # seats of one game are different tasks
        rows = [
            row
            for i, t in enumerate(batch.trajectories)
            if keep[i] and t.num_generated_tokens > 0
            for row in make_rows(t, advantages.per_turn[i], None if advantages.clip_scale is None else advantages.clip_scale[i], groups[i])
        ]
        dropped = dropped_group_share(groups, keep, [t.failed for t in batch.trajectories])
        state.no_signal_since = no_signal_since(state.no_signal_since, step + 1, dropped)

        # ALGO 4: policy-gradient updates over the kept policy tokens (mini-batches × epochs) ------
        progress.phase(step, "update")
        if state.entropy_coef is None:
            state.entropy_coef = config.algo.entropy_coef
        update = optimize(model, optimizer, rows, config.algo, config.optim, policy.pad_token_id, reference,
                          rng=np.random.default_rng([config.seed, step, 31]), entropy_coef=state.entropy_coef)
        state.entropy_coef = next_entropy_coef(state.entropy_coef, update.entropy, config.algo)
        sync_seconds = sync_weights(rollouts, model)

        # PLUMBING: metrics, checkpoint, periodic eval -----------------------------------------------
        state.step = step + 1
        state.train_seconds += time.perf_counter() - step_start
        metrics = {
            "step": state.step,
            **rollout_summary(batch.trajectories),
            **{f"rollout/{k}": v for k, v in batch.metrics.to_dict().items()},
            **update.to_metrics(),
            "kept_trajectories": int(sum(keep)),
            "groups/dropped_share": dropped,
            "train_sequences": len(rows),
            "time/rollout_s": rollout_seconds,
            **({"time/weight_sync_s": sync_seconds} if rollouts is not policy else {}),
            "time/step_s": time.perf_counter() - step_start,
            "time/train_total_s": state.train_seconds,
            "memory/peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
        warning = no_signal_warning(state.no_signal_since, state.step, config.algo.no_signal_warn_steps)
        if warning:
            metrics["warning"] = warning  # shown by the progress display; text, so not a TensorBoard scalar
        if config.eval.every and state.step % config.eval.every == 0 and state.step < config.steps:
            progress.phase(step, "eval")
            periodic = evaluate_policy(rollouts, config, config.eval.every_episodes, show_progress=show_progress)
            metrics.update({f"eval/{mode}/{k}": v for mode, r in periodic.items() for k, v in _flat_eval(r).items()})
        out_of_time = config.time_budget_s is not None and state.train_seconds >= config.time_budget_s
        last_step = state.step == config.steps or out_of_time
        if rater is not None and (state.step % config.ratings.every == 0 or last_step):
            metrics.update(rate_policy(rater, rollouts, config, state, out))
        if pool is not None:
            metrics.update(pool_metrics(pool))
            if config.selfplay.snapshot_every and state.step % config.selfplay.snapshot_every == 0:
                add_snapshot(pool, policy, out, state.step)
            state.pool = pool.to_dict()
        log.write(metrics)
        progress.update(state.step, metrics)
        if state.step % config.checkpoint_every == 0 or last_step:
            save_checkpoint(out, model, optimizer, state)
        if out_of_time:
            break
    progress.close()
    if collector is not None:
        collector.close()

    # ALGO: evaluate after training; PLUMBING: export, plots, summary -----------------------------
    if config.eval.episodes and "after" not in state.evals:
        state.evals["after"] = evaluate_policy(rollouts, config, config.eval.episodes, show_progress=show_progress)
        save_checkpoint(out, model, optimizer, state)
    export_model(out, policy)
    summary = write_summary(out, config, state, log.rows())
    plot_curves(out, log.rows(), state.evals)
    log.close()
    return summary


# ================================================================================================
# ALGO helpers
# ================================================================================================
def sample_tasks(config: TrainConfig, step: int, pool: OpponentPool | None = None) -> list[Task]:
    """``tasks_per_step`` tasks: env by weight, seed uniform below the eval seeds; a function of (seed, step).

    With a self-play ``pool``, each game task also gets its opponent (``"self"`` or a PFSP draw);
    with ``rollout.opponent_mix``, a weighted draw from the mix.
    """
    rng = np.random.default_rng([config.seed, step, 17])
    weights = np.array([e.weight for e in config.envs], dtype=np.float64)
    picks = rng.choice(len(config.envs), size=config.rollout.tasks_per_step, p=weights / weights.sum())
    seeds = rng.integers(0, config.eval.seed_offset, size=config.rollout.tasks_per_step)
    tasks = [Task(config.envs[int(i)].id, int(s)) for i, s in zip(picks, seeds)]
    is_game = lambda env_id: env_spec(env_id).num_seats > 1  # noqa: E731
    if pool is not None:
        tasks = assign_opponents(tasks, pool, np.random.default_rng([config.seed, step, 23]), is_game=is_game)
    elif config.rollout.opponent_mix:
        specs = list(config.rollout.opponent_mix)
        mix = np.array([config.rollout.opponent_mix[s] for s in specs], dtype=np.float64)
        draws = np.random.default_rng([config.seed, step, 29]).choice(len(specs), size=len(tasks), p=mix / mix.sum())
        tasks = [Task(t.env_id, t.seed, opponent=specs[int(d)]) if is_game(t.env_id) else t for t, d in zip(tasks, draws)]
    return tasks


def build_pool(config: TrainConfig, state: TrainerState) -> OpponentPool | None:
    """The self-play opponent pool (restored from the checkpoint when resuming), or ``None``."""
    sp = config.selfplay
    if not config.rollout.self_play or not (sp.opponents or sp.snapshot_every):
        return None
    if state.pool is not None:
        return OpponentPool.from_dict(state.pool)
    return OpponentPool.from_specs(sp.opponents, self_share=sp.self_share, weighting=sp.pfsp,
                                   power=sp.pfsp_power, max_snapshots=sp.max_snapshots)


def update_pool(pool: OpponentPool, trajectories: list[Trajectory]) -> None:
    """Count the learner's results against each pool opponent (PFSP statistics)."""
    for t in trajectories:
        if t.opponent is not None and t.opponent != SELF and not t.failed:
            pool.record(t.opponent, seat_score(t.outcomes, t.seat))


def pool_metrics(pool: OpponentPool) -> dict[str, float]:
    out: dict[str, float] = {"selfplay/pool_size": float(len(pool.entries))}
    for e in pool.entries:
        name = e.spec if e.snapshot_step is None else f"snapshot{e.snapshot_step}"
        out[f"selfplay/vs_{name}/score"] = e.win_rate(prior_games=0.0) if e.games else math.nan
        out[f"selfplay/vs_{name}/games"] = e.games
    return out


def add_snapshot(pool: OpponentPool, policy: Any, out: Path, step: int) -> None:
    """Freeze the current weights into ``out/snapshots/step-N`` and add them to the pool (the
    snapshot it evicts, if any, is forgotten and deleted)."""
    evicted = pool.add_snapshot(save_snapshot(policy, out / "snapshots" / f"step-{step}"), step)
    if evicted is not None:
        discard_snapshot(evicted.spec)


def build_rater(config: TrainConfig) -> AnchorRater | None:
    r = config.ratings
    if not r.every:
        return None
    return AnchorRater([e.id for e in config.envs], r.anchors, games=r.games, anchor_games=r.anchor_games, seed=config.seed)


def rate_policy(rater: AnchorRater, policy: Any, config: TrainConfig, state: TrainerState, out: Path) -> dict[str, float]:
    """Rate the policy against the anchors now; record it in the state, redraw ``ratings.png``."""
    ratings = rater.rate(policy, state.step, rollout_config(config, state.step, temperature=config.ratings.temperature))
    state.ratings.extend(asdict(r) for r in ratings)
    plot_ratings(state.ratings, out / "ratings.png")
    return {k: v for r in ratings for k, v in r.to_metrics().items()}


def rollout_config(config: TrainConfig, step: int, *, temperature: float | None = None, group_size: int | None = None) -> RolloutConfig:
    """The rollout settings of ``step`` (sampling seed derived from ``(seed, step)``); an eval or
    rating may override the temperature and group size."""
    overrides = {k: v for k, v in (("temperature", temperature), ("group_size", group_size)) if v is not None}
    return RolloutConfig.from_section(config.rollout, seed=config.seed * 100_003 + step,
                                      env_kwargs={e.id: dict(e.kwargs) for e in config.envs}, **overrides)


def evaluate_policy(policy: Any, config: TrainConfig, episodes: int, *, show_progress: bool = True) -> dict[str, EvalSummary]:
    """Held-out evaluation for every configured decoding temperature (0 = greedy), one rollout per seed.

    With ``show_progress``, each decoding mode reports episodes done / total and the running success
    rate on stderr as episodes finish (:class:`_EvalProgress`).
    """
    per_env = max(1, episodes // len(config.envs))
    tasks = [Task(e.id, config.eval.seed_offset + i) for e in config.envs for i in range(per_env)]
    results = {}
    for temperature in config.eval.temperatures:
        mode = "greedy" if temperature == 0 else f"T={temperature:g}"
        with _EvalProgress(f"eval {mode}", len(tasks), enabled=show_progress) as progress:
            batch = collect(tasks, policy, rollout_config(config, 0, temperature=temperature, group_size=1),
                            on_progress=progress.round, on_episode_done=progress.episode)
        results[mode] = summarize_trajectories(batch.trajectories)
    return results


def rollout_summary(trajectories: list[Trajectory]) -> dict[str, float]:
    """The step's rollout metrics (definitions: :class:`~turngym.training.evaluate.EvalSummary`)."""
    stats = summarize_trajectories(trajectories)
    return {
        "reward/mean_outcome": stats.mean_outcome.value,
        "reward/success_rate": stats.success.value,
        "reward/invalid_rate": stats.invalid.value,
        "reward/mean_turn_reward": float(np.mean([sum(t.turn_rewards) for t in trajectories if not t.failed] or [0.0])),
        "episode/mean_turns": stats.mean_turns,
    }


# ================================================================================================
# PLUMBING: checkpoints, logging, summary, plots
# ================================================================================================
def save_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainerState) -> None:
    """Write ``out/checkpoint`` atomically (a temp folder renamed over the old one)."""
    tmp = out / f"{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
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


def load_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainerState:
    path = out / CHECKPOINT
    if not (path / "state.pt").exists():
        raise FileNotFoundError(f"no checkpoint to resume from in {path}; run without --resume to start fresh")
    blob = torch.load(path / "state.pt", weights_only=False)
    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["torch_rng"])
    np.random.set_state(blob["numpy_rng"])
    random.setstate(blob["python_rng"])
    state = TrainerState.from_dict(json.loads((path / "trainer_state.json").read_text()))
    # metrics written after the checkpoint belong to steps that will be replayed: drop them
    metrics = out / "metrics.jsonl"
    if metrics.exists():
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


def _flat_eval(result: EvalSummary) -> dict[str, float]:
    return {"success": result.success.value, "invalid": result.invalid.value, "mean_outcome": result.mean_outcome.value}


def write_summary(out: Path, config: TrainConfig, state: TrainerState, rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "name": config.name,
        "steps": state.step,
        "train_seconds": state.train_seconds,
        "evals": state.to_dict()["evals"],
        "peak_rss_gib": max((r.get("memory/peak_rss_gib", 0.0) for r in rows), default=0.0),
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
    before, after = state.evals.get("before"), state.evals.get("after")
    if before and after:
        comparison = {}
        for mode in after:
            rates = {metric: (getattr(before[mode], metric), getattr(after[mode], metric)) for metric in ("success", "invalid", "mean_outcome")}
            comparison[mode] = {
                metric: {"before": b.value, "after": a.value, "intervals_overlap": not (a.low > b.high or b.low > a.high)}
                for metric, (b, a) in rates.items()
            }
        summary["comparison"] = comparison
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


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


def export_model(out: Path, policy: Any) -> None:
    """Save the trained weights and tokenizer as a Hugging Face folder (agent spec ``hf:<out>/model``)."""
    target = out / "model"
    model = policy.model
    if hasattr(model, "merge_and_unload"):  # LoRA: export merged weights, a plain HF model
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(target)
    policy.tokenizer.save_pretrained(target)


class _Progress:
    """The training bar on stderr (:class:`turngym.console.Progress`): steps done / total, the phase of
    the step running now (rollout, advantages, update, eval) and the last step's figures; a metrics
    ``warning`` is printed as its own line when it first appears or changes."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = Progress("train", total, unit="steps", completed=done, enabled=enabled)
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


class _EvalProgress(Progress):
    """Evaluation progress: episodes done / total and the running success rate (outcome > 0, as in
    :func:`episode_stats`); ``round`` and ``episode`` are :func:`collect`'s two callbacks."""

    def __init__(self, label: str, total: int, enabled: bool = True):
        super().__init__(label, total, unit="episodes", enabled=enabled)
        self.rounds = self.episodes = self.scored = self.successes = self.failed = 0

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

    def _info(self) -> str:
        parts = [f"turn {self.rounds}"]
        if self.scored:
            parts.append(f"success {self.successes / self.scored:.2f}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return " · ".join(parts)

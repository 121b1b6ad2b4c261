"""The multi-turn GRPO trainer. Read :func:`train` top to bottom: it is the whole algorithm.

Plumbing (output folder, checkpoints, logging, plots) is marked ``# PLUMBING``; the algorithm is
marked ``# ALGO``. One step:

1. sample ``tasks_per_step`` tasks (env from the weighted mix, seed below ``eval.seed_offset``);
2. ``collect`` ``group_size`` rollouts per task — token-in/token-out trajectories with per-turn
   records (``training/rollout.py``); turn-reward sources add named components (``training/turn_rewards/``);
3. assemble rewards with G-RA gating (``training/rewards.py``) and compute per-turn advantages with
   the configured estimator (``training/advantages.py``); drop zero-information groups;
4. PPO-clip updates over the kept policy tokens (``training/update.py``): ``optim.mini_batches`` ×
   ``optim.epochs`` optimizer steps (1 × 1 by default), each accumulated over micro-batches, with
   the entropy bonus and KL anchor when configured; log-probs and entropies computed without
   full-vocabulary logits for the batch (``training/batching.py``);
5. log (entropy and the share of groups dropped, with a warning when no group has carried a signal
   for several steps), checkpoint, evaluate — the run's files are ``training/run_io.py``.

Every per-step random choice is derived from ``(seed, step)``, so a run resumed from a checkpoint
continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.base import LearnerPolicy, Policy
from turngym.agents.factory import (
    build_rollout_policy,
    load_policy,
    sync_weights,
)
from turngym.console import Progress
from turngym.envs.registration import spec as env_spec
from turngym.training import advantages as adv_lib
from turngym.training.agent_program import program_collector, program_tasks
from turngym.training.async_rollout import RolloutProducer, staleness_metrics
from turngym.training.batching import training_rows
from turngym.training.config import TrainConfig
from turngym.training.data_parallel import (
    Ranks,
    check_layout,
    gather_rollouts,
    launched_ranks,
    shard,
    start_ranks,
    stop_ranks,
)
from turngym.training.evaluate import EvalSummary, summarize_trajectories
from turngym.training.manifest import record_trained_model, write_run_manifest
from turngym.training.off_policy import behaviour_correction
from turngym.training.precision import correction_flags, set_learner_precision
from turngym.training.rollout import (
    RolloutBatch,
    RolloutConfig,
    Task,
    check_failures,
    collect,
    draw_tasks,
)
from turngym.training.run_io import (
    EvalProgress,
    MetricsLog,
    TrainerState,
    TrainProgress,
    export_model,
    flat_eval,
    load_checkpoint,
    plot_curves,
    resident_peak_gib,
    save_checkpoint,
    write_summary,
)
from turngym.training.selfplay import (
    AnchorRater,
    OpponentPool,
    add_snapshot,
    assign_opponents,
    build_pool,
    plot_ratings,
    pool_metrics,
    update_pool,
)
from turngym.training.sharding import copy_full_weights, shard_model
from turngym.training.signal import (
    advantage_metrics,
    dropped_group_share,
    no_signal_since,
    no_signal_warning,
)
from turngym.training.trajectory import Trajectory
from turngym.training.trajectory_log import TrajectoryLog
from turngym.training.turn_rewards import build_turn_rewards
from turngym.training.update import next_entropy_coef, optimize
from turngym.training.warmup import behaviour_clone, record_demonstrations


# ================================================================================================
def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the summary also written to ``summary.json``.

    Under ``torchrun`` every rank runs this function: each plays its share of the step's groups and
    learns on them with the global normalisers; rank 0 alone writes files, evaluates and shows
    progress (``training/data_parallel.py``). Ranks other than 0 return ``{}``.
    """
    # PLUMBING: ranks, output folder, seeds, model, optimizer, logging ----------------------------
    check_layout(launched_ranks()[1], config)  # refused before anything loads, with the reason
    ranks = start_ranks(config.learner.backend, config.learner.timeout_s, config.model.device,
                        sharded=config.learner.strategy == "fsdp")
    main = ranks.is_main
    show_progress = show_progress and main
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    if main:
        config.dump(out / "config.yaml")
    torch.manual_seed(config.seed)
    if config.model.threads:
        torch.set_num_threads(config.model.threads)
    policy = load_policy(config.model.name, **config.policy_options())  # the learner's dtype (learner.precision)
    model, precision = policy.model, config.precision()
    set_learner_precision(model, precision.learner)  # bf16-autocast: fp32 masters, bf16 forwards
    write_run_manifest(out, config, resume, enabled=main)  # manifest.json: versions, data and model hashes, seeds
    full = copy.deepcopy(policy) if ranks.sharded else policy  # whole weights: rollouts, eval, IGPO, export
    reference = copy.deepcopy(model).eval().requires_grad_(False) if config.algo.kl_coef > 0 else None
    if ranks.sharded:  # FSDP2: each rank keeps 1/N of the weights, gradients and optimizer state
        for module in [model] + ([reference] if reference is not None else []):
            shard_model(module, config.model.device)
    rollouts = build_rollout_policy(config.model.name, full, out, **config.rollout_engine_options())  # `full` itself, a cast copy (model.dtype) or a vLLM engine, fed by weight sync
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.optim.lr,
        betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
    )
    state = TrainerState()
    turn_rewards = build_turn_rewards(config, full)  # IGPO, OPRL, SPA, RLVMR, judge: named dense components
    if resume:
        state = load_checkpoint(out, model, optimizer, truncate_metrics=main)
        turn_rewards.load(out, step=state.step)
    elif main and (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()  # a fresh run replaces an old run's metrics
    ranks.broadcast_parameters(model)  # replicas start equal, as DDP makes them
    sync_weights(rollouts, refresh_full(model, full))  # a resumed (or LoRA-wrapped) learner → engine
    log = MetricsLog(out, tensorboard=config.tensorboard) if main else None
    trajectory_log = TrajectoryLog(out, config, state.step, enabled=main)  # trajectories.jsonl: a sample per step
    pool = build_pool(config, state)
    rater = build_rater(config)
    collector = None  # rollouts on Ray workers (training/distributed.py); weights synced every collect
    if config.rollout.ray_workers:
        from turngym.training.distributed import RayCollector

        collector = RayCollector(config, config.rollout.ray_workers, config.rollout.ray_address, split=config.rollout.ray_split)

    # ALGO: optional behaviour-cloning warm-up (evaluated before and after: "base" and "before") ------
    if config.warmup.agent is not None and state.step == 0 and state.warmup is None:
        if main and config.eval.episodes and config.eval.base and "base" not in state.evals:
            state.evals["base"] = evaluate_policy(rollouts, config, config.eval.episodes, show_progress=show_progress)
        with Progress(f"warm-up: {config.warmup.agent} plays", config.warmup.episodes, unit="episodes", enabled=show_progress) as shown:
            demos = record_demonstrations(config, policy.tokenizer, policy.eos_token_id, rollout_config(config, 0),
                                          on_episode_done=lambda _: shown.advance())
        with Progress("warm-up: cloning", unit="optimizer steps", enabled=show_progress) as shown:
            stats = behaviour_clone(model, demos, config, policy.pad_token_id,
                                    on_step=lambda done, total: shown.update(done, total=total))
        state.warmup = stats.to_dict()
        sync_weights(rollouts, refresh_full(model, full))
        save_checkpoint(out, model, optimizer, state, ranks=ranks)  # a resumed run never repeats the warm-up

    # ALGO: evaluate (and rate against the anchors) before training --------------------------------
    if main and state.step == 0 and config.eval.episodes and "before" not in state.evals:
        state.evals["before"] = evaluate_policy(rollouts, config, config.eval.episodes, show_progress=show_progress)
    if main and rater is not None and state.step == 0 and not state.ratings:
        rate_policy(rater, rollouts, config, state, out)
    if state.step == 0 and (config.eval.episodes or rater is not None):  # nor the evaluation before RL (arms can branch here)
        save_checkpoint(out, model, optimizer, state, ranks=ranks)

    producer = None  # asynchronous mode: the next steps' rollouts are played (from here on) while this one trains
    if config.rollout.mode == "async" and state.step < config.steps:
        producer = RolloutProducer(lambda s, played_by: play_step(config, s, pool, ranks, played_by, collector), rollouts,
                                   first_step=state.step, last_step=config.steps, max_staleness=config.rollout.max_staleness)
    entropy_control = config.algo.entropy_coef > 0 or config.algo.target_entropy is not None
    budget_left = None if config.time_budget_s is None else max(config.time_budget_s - state.train_seconds, 0.0)
    progress = TrainProgress(config.steps, state.step, enabled=show_progress, budget_left_s=budget_left)
    for step in range(state.step, config.steps):
        step_start = time.perf_counter()

        # ALGO 1-2: tasks and grouped rollouts ------------------------------------------------------
        progress.phase(step, "rollout")
        # async: played ahead by the producer with weights at most rollout.max_staleness steps old
        batch = play_step(config, step, pool, ranks, rollouts, collector) if producer is None else producer.take(step).batch
        progress.phase(step, "turn rewards")  # IGPO, OPRL, SPA, judge: minutes a step on a CPU
        turn_rewards.apply(batch.trajectories, step, local=True)  # per-rollout sources (IGPO) on this rank's share
        batch, _, local_groups = gather_rollouts(batch, None, ranks)  # every rank's, in one order
        turn_rewards.apply(batch.trajectories, step, local=False)  # learned/judged sources on the whole batch
        rollout_seconds = time.perf_counter() - step_start
        check_failures(batch.trajectories, config.rollout.max_failed_share)  # masked below the limit; a broken env stops the run
        if pool is not None:
            update_pool(pool, batch.trajectories)

        # ALGO 3: gated rewards (+ IGPO information gain) → per-turn advantages; keep informative groups
        progress.phase(step, "advantages")
        advantages, keep, state.rae_state = adv_lib.compute(batch.trajectories, config.algo, state.rae_state)
        trajectory_log.write(step, batch.trajectories, advantages, keep)
        groups = [t.group_key for t in batch.trajectories]  # seats of one game are different tasks
        rows, stale = training_rows(batch.trajectories, advantages.per_turn, advantages.clip_scale, keep, groups,
                                    entropy_control, version=step)
        dropped = dropped_group_share(groups, keep, [t.failed for t in batch.trajectories])
        state.no_signal_since = no_signal_since(state.no_signal_since, step + 1, dropped)

        # ALGO 4: policy-gradient updates over the kept policy tokens (mini-batches × epochs) ------
        progress.phase(step, "update")
        if state.entropy_coef is None:
            state.entropy_coef = config.algo.entropy_coef
        correct = correction_flags(config.algo, stale, precision)  # stale rows; all when rollout/learner precisions differ
        correction = None  # decoupled PPO around the proximal policy for rows other weights played
        if any(correct):
            rows, correction = behaviour_correction(model, rows, correct, config.algo.behaviour_is_cap, config.optim,
                                                    policy.pad_token_id, ranks=ranks, local_groups=local_groups)
        update = optimize(model, optimizer, rows, config.algo, config.optim, policy.pad_token_id, reference,
                          rng=np.random.default_rng([config.seed, step, 31]), entropy_coef=state.entropy_coef,
                          ranks=ranks, local_groups=local_groups)
        state.entropy_coef = next_entropy_coef(state.entropy_coef, update.entropy, config.algo)
        sync_seconds = sync_weights(rollouts, refresh_full(model, full))
        if producer is not None:
            producer.publish(full.model, version=step + 1)

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
            **advantage_metrics(batch.trajectories, advantages.per_turn, keep),
            "train_sequences": len(rows),
            **staleness_metrics(batch.trajectories, step, producer),
            **(correction.to_metrics() if correction is not None else {}),
            **turn_rewards.metrics(),
            "time/rollout_s": rollout_seconds,
            **({"time/weight_sync_s": sync_seconds} if rollouts is not full else {}),
            "time/step_s": time.perf_counter() - step_start,
            "time/train_total_s": state.train_seconds,
            "memory/peak_rss_gib": resident_peak_gib(),
        }
        warning = no_signal_warning(state.no_signal_since, state.step, config.algo.no_signal_warn_steps)
        if warning:
            metrics["warning"] = warning  # shown by the progress display; text, so not a TensorBoard scalar
        if main and config.eval.every and state.step % config.eval.every == 0 and state.step < config.steps:
            progress.phase(step, "eval")
            periodic = evaluate_policy(rollouts, config, config.eval.every_episodes, show_progress=show_progress)
            metrics.update({f"eval/{mode}/{k}": v for mode, r in periodic.items() for k, v in flat_eval(r).items()})
        out_of_time = ranks.broadcast(config.time_budget_s is not None and state.train_seconds >= config.time_budget_s)
        last_step = state.step == config.steps or out_of_time
        if main and rater is not None and (state.step % config.ratings.every == 0 or last_step):
            metrics.update(rate_policy(rater, rollouts, config, state, out))
        if pool is not None:
            metrics.update(pool_metrics(pool))
            if config.selfplay.snapshot_every and state.step % config.selfplay.snapshot_every == 0:
                add_snapshot(pool, full, out, state.step, ranks)
            state.pool = pool.to_dict()
        if main:
            log.write(metrics)
            progress.update(state.step, metrics)
        if state.step % config.checkpoint_every == 0 or last_step:
            save_checkpoint(out, model, optimizer, state, ranks=ranks)
            turn_rewards.save(out) if main else None
        if out_of_time:
            break
    progress.close()
    if producer is not None:
        producer.close()
    if collector is not None:
        collector.close()

    # ALGO: evaluate after training; PLUMBING: export, plots, summary (rank 0) -------------------
    if config.eval.episodes and "after" not in state.evals:
        if main:
            state.evals["after"] = evaluate_policy(rollouts, config, config.eval.episodes, show_progress=show_progress)
        save_checkpoint(out, model, optimizer, state, ranks=ranks)
    if not main:
        stop_ranks(ranks)
        return {}
    export_model(out, full)
    record_trained_model(out)
    summary = write_summary(out, config, state, log.rows())
    plot_curves(out, log.rows(), state.evals)
    log.close()
    stop_ranks(ranks)
    return summary


# ================================================================================================
# ALGO helpers
# ================================================================================================
def play_step(config: TrainConfig, step: int, pool: OpponentPool | None, ranks: Ranks, policy: Policy,
              collector: Any) -> RolloutBatch:
    """Step ``step``'s rollouts of this rank's share of the tasks, played by ``policy`` (or on Ray workers)."""
    tasks = sample_tasks(config, step, pool)
    tasks = [tasks[i] for i in shard(len(tasks), ranks)]  # this rank's whole groups (a group is never split)
    run = program_collector(config.agent_program) if config.agent_program else (collector.collect if collector else collect)
    return run(tasks, policy, rollout_config(config, step))


def refresh_full(model: torch.nn.Module, full: LearnerPolicy) -> torch.nn.Module:
    """The module holding the learner's whole current weights: ``model`` itself, or (FSDP) ``full``'s
    copy after gathering every shard into it (collective). Rollout engines sync from it."""
    if full.model is not model:
        copy_full_weights(model, full.model)
    return full.model


def sample_tasks(config: TrainConfig, step: int, pool: OpponentPool | None = None) -> list[Task]:
    """``tasks_per_step`` tasks: env by weight, seed uniform below the eval seeds; a function of (seed, step).

    With a self-play ``pool``, each game task also gets its opponent (``"self"`` or a PFSP draw);
    with ``rollout.opponent_mix``, a weighted draw from the mix.
    """
    if config.agent_program is not None:  # an agent program's own task set (training/agent_program.py)
        return program_tasks(config, step)
    rng = np.random.default_rng([config.seed, step, 17])
    tasks = draw_tasks(config.envs, config.rollout.tasks_per_step, rng, config.eval.seed_offset)

    def is_game(env_id: str) -> bool:
        return env_spec(env_id).num_seats > 1

    if pool is not None:
        tasks = assign_opponents(tasks, pool, np.random.default_rng([config.seed, step, 23]), is_game=is_game)
    elif config.rollout.opponent_mix:
        specs = list(config.rollout.opponent_mix)
        mix = np.array([config.rollout.opponent_mix[s] for s in specs], dtype=np.float64)
        draws = np.random.default_rng([config.seed, step, 29]).choice(len(specs), size=len(tasks), p=mix / mix.sum())
        tasks = [Task(t.env_id, t.seed, opponent=specs[int(d)]) if is_game(t.env_id) else t for t, d in zip(tasks, draws)]
    return tasks


def build_rater(config: TrainConfig) -> AnchorRater | None:
    r = config.ratings
    if not r.every:
        return None
    return AnchorRater([e.id for e in config.envs], r.anchors, games=r.games, anchor_games=r.anchor_games, seed=config.seed)


def rate_policy(rater: AnchorRater, policy: Policy, config: TrainConfig, state: TrainerState, out: Path) -> dict[str, float]:
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
                                      env_kwargs=config.env_kwargs(), **overrides)


def evaluate_policy(policy: Policy, config: TrainConfig, episodes: int, *, show_progress: bool = True) -> dict[str, EvalSummary]:
    """Held-out evaluation for every configured decoding temperature (0 = greedy), one rollout per seed,
    on ``eval.envs`` (or the training environments), ``episodes`` split evenly among them.

    With ``show_progress``, each decoding mode reports episodes done / total and the running success
    rate on stderr as episodes finish (:class:`EvalProgress`).
    """
    envs = config.eval_envs
    per_env = max(1, episodes // len(envs))
    tasks = [Task(e.id, config.eval.seed_offset + i) for e in envs for i in range(per_env)]
    modes = [("greedy" if t == 0 else f"T={t:g}", t, tasks) for t in config.eval.temperatures]
    for opponent in config.eval.also_against:  # games only, greedy
        games = [Task(t.env_id, t.seed, opponent=opponent) for t in tasks if env_spec(t.env_id).num_seats > 1]
        modes += [(f"greedy vs {opponent}", 0.0, games)] if games else []
    results = {}
    for mode, temperature, mode_tasks in modes:
        with EvalProgress(f"eval {mode}", len(mode_tasks), enabled=show_progress) as progress:
            batch = collect(mode_tasks, policy, rollout_config(config, 0, temperature=temperature, group_size=1),
                            on_progress=progress.round, on_episode_done=progress.episode)
        results[mode] = summarize_trajectories(batch.trajectories)
        if len(envs) > 1:  # each held-out env on its own too (a curriculum's easy and hard splits)
            for e in envs:
                results[f"{mode} @ {e.id.split('/')[-1]}"] = summarize_trajectories([t for t in batch.trajectories if t.env_id == e.id])
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

"""Behaviour-cloning warm-up: teach the reply format from a scripted agent's episodes before RL.

A small model that never emits the tool protocol (SmolLM2-135M writes prose, never
``<search>…</search>``) gives GRPO nothing to compare: every rollout of a group scores the same.
``warmup:`` records ``warmup.episodes`` episodes of one of the environment's scripted agents
(``oracle`` for search QA, ``expert`` for household tasks) through :func:`~turngym.training.rollout.play_scripted`
— prompts built exactly as the rollouts build them — keeps the successful ones, and fits the policy
to their replies by maximum likelihood (token-mean negative log-likelihood over the reply tokens)
for ``warmup.epochs`` passes. The trainer evaluates the model before (``base``) and after the
warm-up (``before``, where RL starts), so the RL gain and the warm-up's are reported apart.

Demonstration seeds are drawn below ``eval.seed_offset`` like training seeds, from their own RNG
stream ``(seed, 41)``; evaluation stays on held-out seeds or splits.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from turngym.agents.specs import resolve_agent
from turngym.training.batching import collate, make_rows, policy_token_logprobs
from turngym.training.config import TrainConfig
from turngym.training.rollout import RolloutConfig, Task, draw_tasks, play_scripted
from turngym.training.trajectory import Trajectory
from turngym.training.update import activation_checkpointing, micro_batches


@dataclass
class WarmupStats:
    """What the warm-up did (``summary.json`` → ``warmup``)."""

    agent: str
    demonstrations: int
    """Episodes the scripted agent played."""
    kept: int
    """Successful ones (outcome > 0) that were trained on (all of them with ``only_successful: false``)."""
    reply_tokens: int
    """Reply tokens per epoch (what the loss averages over)."""
    epochs: int
    optimizer_steps: int
    nll_first_epoch: float
    """Token-mean negative log-likelihood of the replies over the first epoch (nats)."""
    nll_last_epoch: float
    seconds: float

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def demonstration_tasks(config: TrainConfig) -> list[Task]:
    """``warmup.episodes`` tasks from the training mix (env by weight), seeds below the eval seeds."""
    return draw_tasks(config.envs, config.warmup.episodes, np.random.default_rng([config.seed, 41]), config.eval.seed_offset)


def record_demonstrations(config: TrainConfig, tokenizer, eos_token_id: int, rollout: RolloutConfig,
                          on_episode_done: Callable[[list[Trajectory]], None] | None = None) -> list[Trajectory]:
    """The scripted agent's episodes on :func:`demonstration_tasks`, in the policy's token format."""
    agent = config.warmup.agent
    assert agent is not None
    return play_scripted(demonstration_tasks(config), lambda task: resolve_agent(agent, task.env_id, seed=task.seed),
                         tokenizer, eos_token_id, rollout, on_episode_done=on_episode_done)


def behaviour_clone(model: torch.nn.Module, demonstrations: list[Trajectory], config: TrainConfig, pad_id: int,
                    on_step: Callable[[int, float], None] | None = None) -> WarmupStats:
    """Fit ``model`` to the replies of ``demonstrations`` (see the module docstring); returns the stats.

    Each optimizer step averages the NLL over the reply tokens of ``warmup.batch_size`` training
    sequences (episodes, or turns with ``rollout.context: turn``), micro-batched like the RL update
    (``optim.micro_batch_size`` or ``optim.micro_batch_tokens``);
    the order is shuffled per epoch by ``(seed, 43, epoch)``. A separate AdamW at ``warmup.lr`` is
    used, so the RL optimizer starts fresh. ``on_step(steps_done, total_steps)`` follows progress.
    """
    w, start = config.warmup, time.perf_counter()
    kept = [t for t in demonstrations if not t.failed and (not w.only_successful or (t.outcome or 0.0) > 0)]
    if not kept:
        reasons = Counter("failed" if t.failed else t.stop_reason for t in demonstrations)
        raise ValueError(
            f"warm-up: none of the {len(demonstrations)} episodes of agent {w.agent!r} succeeded (they ended: "
            f"{dict(reasons)}); a token_limit ending means rollout.max_episode_tokens is too small for the "
            "agent's episodes; else check the agent, or set warmup.only_successful: false"
        )
    rows = [row for t in kept for row in make_rows(t, np.ones(len(t.turns)), None, t.group_key)]
    total_steps = w.epochs * -(-len(rows) // w.batch_size)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=w.lr, weight_decay=0.0)
    epoch_nll, steps = [], 0
    model.train()
    with activation_checkpointing(model, config.optim.gradient_checkpointing):
        for epoch in range(w.epochs):
            order = np.random.default_rng([config.seed, 43, epoch]).permutation(len(rows))
            total_nll, total_tokens = 0.0, 0
            for first in range(0, len(order), w.batch_size):
                batch_rows = [rows[int(i)] for i in order[first:first + w.batch_size]]
                tokens = sum(r.num_policy_tokens for r in batch_rows)
                optimizer.zero_grad(set_to_none=True)
                for micro in micro_batches(batch_rows, config.optim):
                    batch = collate(micro, pad_id, device=device)
                    logprobs = policy_token_logprobs(model, batch, config.optim.score_chunk_size)
                    nll = -(logprobs * batch.loss_mask).sum()
                    (nll / tokens).backward()
                    total_nll += float(nll.detach())
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                optimizer.step()
                steps += 1
                if on_step is not None:
                    on_step(steps, total_steps)
                total_tokens += tokens
            epoch_nll.append(total_nll / max(total_tokens, 1))
    model.eval()
    return WarmupStats(
        agent=str(w.agent), demonstrations=len(demonstrations), kept=len(kept),
        reply_tokens=sum(r.num_policy_tokens for r in rows), epochs=w.epochs, optimizer_steps=steps,
        nll_first_epoch=epoch_nll[0], nll_last_epoch=epoch_nll[-1], seconds=time.perf_counter() - start,
    )

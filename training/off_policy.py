"""Decoupled PPO for rollouts played by other weights than the learner's: proximal policy + truncated IS.

A rollout played by a behaviour policy ``μ`` that is not the learner's current policy — weights
``k`` steps old in asynchronous mode, or an engine whose numerics differ (a bf16 or vLLM engine) —
breaks PPO's assumption that ``π_old`` is the policy that sampled. Clipping around ``μ`` then clips
(and silences) most tokens of a stale batch, and ignoring the gap biases the gradient. We use
**decoupled PPO** (Hilton et al. 2021, as in AReaL) with a **truncated** behaviour weight:

* the proximal policy ``π_prox`` is the learner's weights *before* this step's update; its log-probs
  of the rollout's tokens are recomputed once, without gradient (:func:`behaviour_correction`);
* the PPO ratio and clip are taken around it: ``r_τ = π_θ(τ)/π_prox(τ)`` (so the trust region is
  around where the learner is, however stale the data);
* each token's loss is weighted by ``w_τ = min(π_prox(τ)/μ(τ), cap)`` (detached): the importance
  correction from the behaviour to the proximal policy, truncated so one token whose behaviour
  probability was tiny cannot dominate (truncated IS, as in TIS / IMPALA's ρ̄; ``cap`` = 2 by default,
  a bias accepted for bounded variance).

Why decoupled PPO rather than plain truncated IS on the behaviour ratio: with staleness ``k`` the
behaviour ratio drifts by ``k`` updates, so a clip around ``μ`` stops the gradient of every token that
moved; the decoupled form keeps the clip's trust region one update wide whatever ``k`` is, and the
truncated weight carries the off-policy correction separately.

With ``algo.behaviour_correction: auto`` stale rows are corrected, and every row when the rollout
policy's precision differs from the learner's (``model.dtype`` vs ``learner.precision``,
``training/precision.py``: bf16 rollouts, fp32 learner); a batch played by the current weights in the
learner's own numerics keeps ``π_prox = μ`` exactly and ``w = 1`` — asynchronous mode with staleness 0
is the synchronous run. The statistics (:class:`CorrectionStats`) are logged as ``offpolicy/*``: the
per-token log-prob gap ``|log π_prox − log μ|`` (mean, max), the mean sequence-level KL estimate
``Σ_τ (log μ − log π_prox)`` per row, and the weights' mean, max and truncated share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from turngym.training.batching import TrainRow, collate, policy_token_logprobs
from turngym.training.config import OptimSection
from turngym.training.data_parallel import SINGLE, Ranks
from turngym.training.sharding import reshard
from turngym.training.update import empty_row


@dataclass
class CorrectionStats:
    """What the correction measured on the rows it corrected (every rank's, when data-parallel)."""

    rows: int = 0
    tokens: int = 0
    gap_mean: float = 0.0
    """Mean over tokens of ``|log π_prox − log μ|``."""
    gap_max: float = 0.0
    seq_kl_mean: float = 0.0
    """Mean over rows of ``Σ_τ (log μ(τ) − log π_prox(τ))`` — a sequence-level KL(μ ‖ π_prox) estimate."""
    weight_mean: float = 1.0
    """Mean truncated weight."""
    weight_max: float = 1.0
    """Largest weight before truncation."""
    truncated_share: float = 0.0
    """Share of tokens whose weight was truncated at the cap."""

    def to_metrics(self) -> dict[str, float]:
        return {f"offpolicy/{k}": float(v) for k, v in self.__dict__.items()}


def behaviour_correction(
    model: torch.nn.Module,
    rows: Sequence[TrainRow],
    correct: Sequence[bool],
    cap: float,
    optim: OptimSection,
    pad_id: int,
    *,
    ranks: Ranks = SINGLE,
    local_groups: frozenset[str] | None = None,
) -> tuple[list[TrainRow], CorrectionStats]:
    """``rows`` with the flagged ones (``correct[i]``) turned into decoupled-PPO rows, and the statistics.

    A corrected row's ``old_logprobs`` become the proximal log-probs (``model`` now, no gradient), its
    ``is_weights`` ``min(exp(log π_prox − log μ), cap)`` on policy tokens (``μ``: the row's stored
    rollout log-probs) and its ``behaviour_logprobs`` ``μ`` (kept for the ``mismatch/*`` metrics). Rows not flagged, and (data-parallel) rows of groups this rank does not train,
    are returned unchanged — their owner corrects them. ``cap`` must be ≥ 1.
    """
    if len(correct) != len(rows):
        raise ValueError(f"correct has {len(correct)} flags for {len(rows)} rows; give one per row")
    if not cap >= 1:
        raise ValueError(f"behaviour_is_cap must be >= 1, got {cap!r}")
    out = list(rows)
    todo = [i for i, (row, flag) in enumerate(zip(rows, correct)) if flag and (local_groups is None or row.group in local_groups)]
    sums = np.zeros(6)  # rows, tokens, Σ|gap|, Σ seq-KL, Σ weight, truncated tokens
    gap_max, weight_max = 0.0, 0.0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        parts = [todo[start : start + optim.micro_batch_size] for start in range(0, len(todo), optim.micro_batch_size)]
        for _ in range(ranks.lockstep(len(parts)) - len(parts)):  # sharded learner: the same forwards on every rank
            with torch.no_grad():
                policy_token_logprobs(model, collate([empty_row(pad_id)], pad_id, device=device), optim.score_chunk_size)
        for part in parts:
            batch = collate([rows[i] for i in part], pad_id, device=device)
            with torch.no_grad():
                proximal = policy_token_logprobs(model, batch, optim.score_chunk_size)
            for b, i in enumerate(part):
                row = rows[i]
                n = len(row.token_ids)
                policy = np.asarray(row.loss_mask, dtype=bool)  # token j; `collate`'s column j-1 predicts it
                prox = np.concatenate([[0.0], proximal[b, : n - 1].double().cpu().numpy()])
                behaviour = np.asarray(row.old_logprobs, dtype=np.float64)
                log_w = np.where(policy, prox - behaviour, 0.0)
                weights = np.minimum(np.exp(log_w), cap)
                sums += [1, policy.sum(), np.abs(log_w[policy]).sum(), -log_w[policy].sum(),
                         weights[policy].sum(), (np.exp(log_w[policy]) > cap).sum()]
                if policy.any():
                    gap_max = max(gap_max, float(np.abs(log_w[policy]).max()))
                    weight_max = max(weight_max, float(np.exp(log_w[policy]).max()))
                out[i] = replace(row, old_logprobs=np.where(policy, prox, behaviour).tolist(),
                                 is_weights=np.where(policy, weights, 1.0).tolist(),
                                 behaviour_logprobs=row.old_logprobs if row.behaviour_logprobs is None
                                 else row.behaviour_logprobs)
    finally:
        reshard(model)
        model.train(was_training)
    if ranks.distributed:
        sums = np.asarray(ranks.sum_values(sums.tolist()))
        gap_max, weight_max = ranks.max_values([gap_max, weight_max])
    n_rows, tokens = int(sums[0]), int(sums[1])
    if not tokens:
        return out, CorrectionStats(rows=n_rows)
    return out, CorrectionStats(
        rows=n_rows, tokens=tokens, gap_mean=sums[2] / tokens, gap_max=gap_max,
        seq_kl_mean=sums[3] / max(n_rows, 1), weight_mean=sums[4] / tokens,
        weight_max=weight_max if math.isfinite(weight_max) else float("inf"), truncated_share=sums[5] / tokens,
    )

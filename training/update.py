"""The learner's update on one rollout batch: mini-batches × epochs of clipped policy-gradient steps.

The rows of a batch (one per training sequence, :class:`~turngym.training.batching.TrainRow`) are
split into ``optim.mini_batches`` mini-batches — whole GRPO groups by default, or single sequences —
in an order drawn from the step's seeded RNG (so a resumed run replays it exactly). Each of the
``optim.epochs`` passes takes one optimizer step per mini-batch, accumulating gradients over
micro-batches (:func:`micro_batches`): ``optim.micro_batch_size`` sequences, or as many as fit
``optim.micro_batch_tokens`` padded positions. The loss is normalised per mini-batch (token-mean
over that mini-batch's policy tokens), exactly as the one-step update normalises over the whole
batch, whatever the micro-batching; with ``1 × 1`` the update is today's single step, bit for bit.
``optim.gradient_checkpointing`` recomputes the decoder layers' activations in the backward pass,
for the duration of :func:`optimize` only (:func:`activation_checkpointing`).

The old policy is always the rollout's: its per-token log-probs are stored in the rows. On the first
update the importance ratio is 1 (up to rollout/learner numerics); from the second on it moves, and
PPO-clip, DAPO's clip-higher and A²TGPO's adaptive turn clip act. ``optim.target_kl`` stops a step's
remaining updates once a mini-batch has drifted past it.

Per-token loss of one mini-batch (``losses.policy_loss`` for the clipped term)::

    loss = policy_loss(...)                     # token-mean over the mini-batch
         + kl_coef · KL(π_θ ‖ π_ref)            # optional anchor to the initial weights (k1/k2/k3)
         − entropy_coef · H(π_θ)                # optional entropy bonus, same token-mean
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from turngym.training.batching import (
    MicroBatch,
    TrainRow,
    collate,
    policy_token_logprobs,
    policy_token_stats,
)
from turngym.training.config import AlgoSection, OptimSection
from turngym.training.data_parallel import SINGLE, Ranks
from turngym.training.losses import aggregate_loss, kl_loss, policy_loss
from turngym.training.precision import Mismatch
from turngym.training.sharding import decoder_hidden_states, reshard


def split_mini_batches(
    rows: Sequence[TrainRow], count: int, by: str, rng: np.random.Generator | None
) -> list[list[TrainRow]]:
    """Split ``rows`` into at most ``count`` non-empty mini-batches of near-equal size.

    ``by="group"`` keeps every GRPO group (``TrainRow.group``) whole; ``by="sequence"`` splits
    freely. Units (groups or rows) are permuted with ``rng`` first (``None``: kept in order); a
    batch with fewer units than ``count`` gets one mini-batch per unit.
    """
    if by not in ("group", "sequence"):
        raise ValueError(f"mini-batch split must be 'group' or 'sequence', got {by!r}")
    if count < 1:
        raise ValueError(f"mini-batch count must be >= 1, got {count!r}")
    if by == "group":
        units: dict[str, list[TrainRow]] = {}
        for row in rows:
            units.setdefault(row.group, []).append(row)
        grouped = list(units.values())
    else:
        grouped = [[row] for row in rows]
    order = rng.permutation(len(grouped)) if rng is not None else np.arange(len(grouped))
    parts = np.array_split(order, min(count, len(grouped))) if grouped else []
    return [[row for i in part for row in grouped[int(i)]] for part in parts]


def pack_by_tokens(rows: Sequence[TrainRow], budget: int) -> list[list[TrainRow]]:
    """Rows sorted by length (stable) and packed greedily: ``len(part) × longest row ≤ budget``.

    A row longer than ``budget`` forms a micro-batch of its own. Deterministic: the same rows in
    the same order give the same parts. ``budget`` counts padded positions (``B × L`` of the
    collated micro-batch), which is what the activations scale with.
    """
    return [[rows[i] for i in part] for part in pack_lengths([len(r.token_ids) for r in rows], budget)]


def pack_lengths(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """:func:`pack_by_tokens` on indices: parts of ``range(len(lengths))``, shortest first."""
    if budget < 1:
        raise ValueError(f"micro-batch token budget must be >= 1, got {budget!r}")
    parts: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):  # ascending: the newcomer is the longest
        if current and (len(current) + 1) * lengths[i] > budget:
            parts.append(current)
            current = []
        current.append(i)
    if current:
        parts.append(current)
    return parts


def micro_batches(rows: Sequence[TrainRow], optim: OptimSection) -> list[list[TrainRow]]:
    """The micro-batches of one mini-batch, rows sorted by length so similar lengths share one.

    ``optim.micro_batch_tokens`` set: :func:`pack_by_tokens`; else consecutive runs of
    ``optim.micro_batch_size`` sorted rows (the historical layout).
    """
    if optim.micro_batch_tokens is not None:
        return pack_by_tokens(rows, optim.micro_batch_tokens)
    ordered = sorted(rows, key=lambda r: len(r.token_ids))
    size = optim.micro_batch_size
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


@contextlib.contextmanager
def activation_checkpointing(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Gradient (activation) checkpointing on ``model`` inside the ``with`` block, off again after.

    Non-reentrant ``torch.utils.checkpoint``, so frozen inputs (LoRA's embeddings) need nothing
    special. ``model`` may be a transformers model or a peft wrapper of one. A model that already has
    checkpointing on is left alone (its owner manages it); ``enabled=False`` does nothing. Layers
    only checkpoint in train mode with gradients enabled, so generation (eval mode, no grad) keeps
    its KV cache even inside the block.
    """
    base = _transformers_model(model) if enabled else None
    if base is None or _checkpointing_on(base):
        yield
        return
    saved_hooks = getattr(base, "_require_grads_hooks", None)  # transformers overwrites, not appends
    if hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # transformers before the rename
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        if hasattr(base, "activation_checkpointing_disable"):
            base.activation_checkpointing_disable()
        else:
            base.gradient_checkpointing_disable()
        base.disable_input_require_grads()  # the embedding hooks enabling added; not needed without it
        if saved_hooks:  # hooks someone else registered stay in place: give transformers its handles back
            base._require_grads_hooks = saved_hooks
            base._require_grads_hook = saved_hooks[0]


def _transformers_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers ``PreTrainedModel`` under ``model`` (unwrapping peft); errors say what is missing."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"optim.gradient_checkpointing is on but the learner model ({type(base).__name__}) does not "
            "support gradient checkpointing; set optim.gradient_checkpointing: false"
        )
    return base


def _checkpointing_on(model: torch.nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def next_entropy_coef(coef: float, entropy: float, algo: AlgoSection) -> float:
    """The target-entropy controller: ``coef + lr·(target − H)`` clipped to ``[0, max]``.

    Returns ``coef`` unchanged without a target or when ``entropy`` is not finite (a step with no
    policy tokens measured nothing).
    """
    if algo.target_entropy is None or not math.isfinite(entropy):
        return coef
    return float(min(max(coef + algo.entropy_coef_lr * (algo.target_entropy - entropy), 0.0), algo.entropy_coef_max))


@dataclass
class MicroBatchLayout:
    """Forward passes the learner ran in one step and how much of them was padding."""

    micro_batches: int = 0
    positions: int = 0
    """``Σ B × L`` over the micro-batches (the shape the decoder ran on)."""
    padded: int = 0
    """Positions that were padding."""

    def add(self, batch: MicroBatch) -> None:
        self.micro_batches += 1
        self.positions += batch.attention_mask.numel()
        self.padded += batch.attention_mask.numel() - int(batch.attention_mask.sum())

    def sum_over(self, ranks: Ranks) -> None:
        """Replace the counts by their sums over the data-parallel ranks (every rank's forwards)."""
        if ranks.distributed:
            self.micro_batches, self.positions, self.padded = (
                int(v) for v in ranks.sum_values([self.micro_batches, self.positions, self.padded]))

    @property
    def padding_share(self) -> float:
        return self.padded / self.positions if self.positions else 0.0


@dataclass
class UpdateStats:
    """What one batch's updates measured; :meth:`to_metrics` gives the logged names.

    ``entropy`` is the learner's token-mean entropy on the batch in the first pass (the policy that
    generated it); the clip/ratio/KL figures are token-weighted within each update and averaged over
    the updates taken (``ratio_max`` / ``turn_ratio_max`` are maxima, ``turn_ratio_min`` a minimum).
    ``layout`` counts every learner forward of the step (``optim/micro_batches``) and its padding
    share (``optim/padding_share``).
    """

    policy_tokens: int = 0
    updates: int = 0
    early_stopped: bool = False
    entropy: float = math.nan
    entropy_coef: float = 0.0
    per_update: list[dict[str, float]] = field(default_factory=list)
    layout: MicroBatchLayout = field(default_factory=MicroBatchLayout)
    mismatch: Mismatch = field(default_factory=Mismatch)
    """Rollout vs learner log-probs on the first update's tokens, before its step (``mismatch/*``)."""

    def to_metrics(self) -> dict[str, float]:
        means = ("loss", "kl", "clip_frac", "clip_frac_low", "clip_frac_high", "approx_kl", "ratio_mean",
                 "grad_norm", "turn_ratio_mean")
        out: dict[str, float] = {name: 0.0 for name in means[:-1]}
        out["ratio_max"] = 0.0
        for name in means:
            values = [u[name] for u in self.per_update if name in u]
            if values:
                out[name] = float(np.mean(values))
        for name, pick in (("ratio_max", max), ("turn_ratio_max", max), ("turn_ratio_min", min)):
            values = [u[name] for u in self.per_update if name in u]
            if values:
                out[name] = float(pick(values))
        out["policy_tokens"] = float(self.policy_tokens)
        out["entropy"] = self.entropy
        out["entropy_coef"] = self.entropy_coef
        out["optim/updates"] = float(self.updates)
        out["optim/early_stopped"] = float(self.early_stopped)
        out["optim/micro_batches"] = float(self.layout.micro_batches)
        out["optim/padding_share"] = self.layout.padding_share
        out.update(self.mismatch.to_metrics())
        return out


def optimize(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rows: list[TrainRow],
    algo: AlgoSection,
    optim: OptimSection,
    pad_id: int,
    reference: torch.nn.Module | None = None,
    *,
    rng: np.random.Generator | None = None,
    entropy_coef: float = 0.0,
    ranks: Ranks = SINGLE,
    local_groups: frozenset[str] | None = None,
) -> UpdateStats:
    """All updates for one rollout batch (see the module docstring); returns their statistics.

    Data-parallel (``ranks.distributed``): ``rows`` is the WHOLE batch, identical on every rank; this
    rank runs forward/backward only on the rows of ``local_groups`` (the groups it played), every
    normaliser (token counts, sequence counts, ``max_len``) is the global one, the gradients are summed
    over the ranks before clipping, and the returned statistics are the global ones — so every rank
    takes the one-process step (up to summation order). ``local_groups=None``: every row is local.

    ``rng`` orders the mini-batches (derive it from ``(seed, step)`` for exact resume); it is only
    drawn from when ``optim.mini_batches > 1``. Rows with ``scored=False`` (groups dropped for zero
    variance) enter only the entropy bonus and the entropy measurement; the policy-gradient term and
    its token-mean are over the scored rows alone. A batch with no scored token takes a step only
    when there is an entropy bonus; without one it is measured (no gradient) and left unchanged.
    """
    stats = UpdateStats(policy_tokens=sum(r.num_scored_tokens for r in rows), entropy_coef=entropy_coef)
    if not any(r.num_policy_tokens for r in rows):
        return stats
    if entropy_coef == 0:  # unscored rows only matter to the entropy bonus
        if stats.policy_tokens == 0:  # for the target-entropy controller
            stats.entropy = measure_entropy(model, rows, optim, pad_id, layout=stats.layout,
                                            ranks=ranks, local_groups=local_groups)
            stats.layout.sum_over(ranks)
            return stats
        rows = [r for r in rows if r.scored]
    max_len = max(r.num_policy_tokens for r in rows)
    entropy_sum, entropy_tokens = 0.0, 0
    model.train()
    try:
        with activation_checkpointing(model, optim.gradient_checkpointing):
            for epoch in range(optim.epochs):
                shuffle = rng if optim.mini_batches > 1 else None
                for index, mini in enumerate(split_mini_batches(rows, optim.mini_batches, optim.mini_batch_split, shuffle)):
                    first = epoch == 0 and index == 0  # the learner is still the proximal policy: measure the mismatch
                    result, entropy_total = _update(model, optimizer, mini, algo, optim, pad_id, reference, max_len,
                                                    entropy_coef, stats.layout, ranks, local_groups,
                                                    mismatch=stats.mismatch if first else None)
                    if epoch == 0:
                        entropy_sum += entropy_total
                        entropy_tokens += sum(r.num_policy_tokens for r in mini)
                    if result is None:  # past target_kl: this mini-batch's step is not taken
                        stats.early_stopped = True
                        break
                    if not result:  # nothing to learn in this mini-batch: no step
                        continue
                    stats.per_update.append(result)
                    stats.updates += 1
                if stats.early_stopped:
                    break
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.eval()
    stats.entropy = entropy_sum / entropy_tokens
    stats.layout.sum_over(ranks)
    if ranks.distributed:
        m = stats.mismatch
        m.rows, m.tokens, m.abs_sum, m.kl_sum = ranks.sum_values([m.rows, m.tokens, m.abs_sum, m.kl_sum])
        m.rows, m.tokens = int(m.rows), int(m.tokens)
        m.gap_max = ranks.max_values([m.gap_max])[0]
    return stats


def measure_entropy(
    model: torch.nn.Module,
    rows: list[TrainRow],
    optim: OptimSection,
    pad_id: int,
    *,
    layout: MicroBatchLayout | None = None,
    ranks: Ranks = SINGLE,
    local_groups: frozenset[str] | None = None,
) -> float:
    """The learner's token-mean entropy over ``rows``' policy tokens, without a gradient.

    Micro-batches: ``optim.micro_batch_tokens`` packing when set, else runs of
    ``optim.micro_batch_size`` rows in the given order. ``layout`` (if given) counts them.
    Data-parallel: this rank measures the rows of ``local_groups``; the mean is over every rank's.
    """
    device = next(model.parameters()).device
    rows = _local(rows, local_groups)
    if optim.micro_batch_tokens is not None:
        parts = pack_by_tokens(rows, optim.micro_batch_tokens)
    else:
        parts = [rows[start : start + optim.micro_batch_size] for start in range(0, len(rows), optim.micro_batch_size)]
    total, tokens = 0.0, 0
    real = len(parts)
    parts += [[empty_row(pad_id)]] * (ranks.lockstep(real) - real)  # sharded: the same forwards on every rank
    with torch.no_grad():
        for index, part in enumerate(parts):
            batch = collate(part, pad_id, device=device)
            if layout is not None:
                layout.add(batch)
            _, entropy = policy_token_stats(model, batch, optim.score_chunk_size)
            if index < real:
                total += float((entropy * batch.loss_mask).sum())
                tokens += int(batch.loss_mask.sum())
    reshard(model)
    total, tokens = ranks.sum_values([total, tokens]) if ranks.distributed else (total, tokens)
    return total / tokens if tokens else math.nan


def empty_row(pad_id: int) -> TrainRow:
    """A two-token row with no policy token: what a sharded rank with no (more) rows of its own runs so
    that every rank makes the same collective forwards."""
    return TrainRow([pad_id, pad_id], [0, 0], [-1, -1], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], scored=False)


def _empty_pass(model: torch.nn.Module, reference: torch.nn.Module | None, pad_id: int) -> None:
    """A forward and a zero backward (and the reference's forward) on :func:`empty_row`."""
    batch = collate([empty_row(pad_id)], pad_id, device=next(model.parameters()).device)
    hidden = decoder_hidden_states(model, batch.input_ids, None)
    if reference is not None:
        with torch.no_grad():
            decoder_hidden_states(reference, batch.input_ids, None)
    (hidden.sum() * 0.0 + model.get_output_embeddings().weight.sum() * 0.0).backward()


def _local(rows: Sequence[TrainRow], local_groups: frozenset[str] | None) -> list[TrainRow]:
    """The rows this rank computes: those of ``local_groups`` (``None``: all)."""
    return list(rows) if local_groups is None else [r for r in rows if r.group in local_groups]


def _update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rows: list[TrainRow],
    algo: AlgoSection,
    optim: OptimSection,
    pad_id: int,
    reference: torch.nn.Module | None,
    max_len: int,
    entropy_coef: float,
    layout: MicroBatchLayout,
    ranks: Ranks = SINGLE,
    local_groups: frozenset[str] | None = None,
    mismatch: Mismatch | None = None,
) -> tuple[dict[str, float] | None, float]:
    """One optimizer step over ``rows`` (a mini-batch); ``(metrics or None if stopped, Σ entropy)``.

    ``mismatch``: add each micro-batch's rollout-vs-learner log-prob gap (this rank's rows) to it.

    A mini-batch with nothing to learn (no scored token and no entropy bonus) takes no step and
    returns empty metrics. Every micro-batch run is counted in ``layout``. Data-parallel: ``rows`` is
    the global mini-batch; this rank runs the rows of ``local_groups`` (see :func:`optimize`).
    """
    optimizer.zero_grad(set_to_none=True)
    total_tokens = sum(r.num_scored_tokens for r in rows)  # the policy-gradient token-mean
    all_tokens = sum(r.num_policy_tokens for r in rows)  # the entropy bonus and KL token-mean
    if total_tokens == 0 and entropy_coef == 0:
        return {}, measure_entropy(model, rows, optim, pad_id, layout=layout, ranks=ranks,
                                   local_groups=local_groups) * all_tokens
    stats = {"loss": 0.0, "kl": 0.0}
    weighted: dict[str, float] = {}
    ratio_max, turn_stats = 0.0, {"turn_ratio_max": -math.inf, "turn_ratio_min": math.inf, "turn_ratio_mean": 0.0}
    turns_seen = 0.0
    entropy_total = 0.0
    device = next(model.parameters()).device
    local = micro_batches(_local(rows, local_groups), optim)
    for micro in local + [None] * (ranks.lockstep(len(local)) - len(local)):
        if micro is None:  # sharded learner: an empty pass, so every rank runs the same collectives
            _empty_pass(model, reference, pad_id)
            continue
        batch = collate(micro, pad_id, device=device)
        layout.add(batch)
        logprobs, entropy = policy_token_stats(model, batch, optim.score_chunk_size, entropy_grad=entropy_coef > 0)
        if mismatch is not None:
            mismatch.add(logprobs, batch.behaviour_logprobs, batch.loss_mask)
        scored_rows = [i for i, r in enumerate(micro) if r.scored]
        loss = logprobs.new_zeros(())
        tokens = 0.0
        if scored_rows and total_tokens:
            keep = torch.tensor(scored_rows, device=device)  # the policy-gradient rows of this micro-batch
            scored_mask = batch.loss_mask[keep]
            share = len(scored_rows) / sum(r.scored for r in rows)  # seq-mean aggregations average per micro-batch
            pg, m = policy_loss(
                logprobs[keep],
                batch.old_logprobs[keep],
                batch.advantages[keep],
                scored_mask,
                clip_low=algo.clip_low,
                clip_high=algo.clip_high,
                agg=algo.agg,
                max_len=max_len,
                turn_ids=batch.turn_ids[keep],
                clip_scale=batch.clip_scale[keep],
                turn_level_ratio=algo.turn_level_ratio,
                denominator=total_tokens if algo.agg == "token-mean" else None,
                token_weights=batch.is_weights[keep] if any(micro[i].is_weights is not None for i in scored_rows) else None,
            )
            loss = pg if algo.agg == "token-mean" else pg * share
            tokens = float(scored_mask.sum())
            for name in ("clip_frac", "clip_frac_low", "clip_frac_high", "approx_kl", "ratio_mean"):
                weighted[name] = weighted.get(name, 0.0) + m[name] * tokens / total_tokens
            ratio_max = max(ratio_max, m["ratio_max"])
        if reference is not None and algo.kl_coef > 0:
            with torch.no_grad():
                ref_logprobs = policy_token_logprobs(reference, batch, optim.score_chunk_size)
            kl = kl_loss(logprobs, ref_logprobs, batch.loss_mask, kind=algo.kl_kind, denominator=all_tokens)
            loss = loss + algo.kl_coef * kl
            stats["kl"] += float(kl.detach())
        if entropy_coef > 0:
            loss = loss - entropy_coef * aggregate_loss(entropy, batch.loss_mask, denominator=all_tokens)
        if ranks.sharded and not loss.requires_grad:  # FSDP's reduce-scatter needs every rank's backward
            loss = loss + 0.0 * logprobs.sum()
        if loss.requires_grad:  # a micro-batch of unscored rows without a bonus has no gradient
            (loss * ranks.loss_scale).backward()
        stats["loss"] += float(loss.detach())
        entropy_total += float((entropy.detach() * batch.loss_mask).sum())
        if tokens and "turn_ratio_mean" in m:
            turn_stats["turn_ratio_max"] = max(turn_stats["turn_ratio_max"], m["turn_ratio_max"])
            turn_stats["turn_ratio_min"] = min(turn_stats["turn_ratio_min"], m["turn_ratio_min"])
            turn_stats["turn_ratio_mean"] += m["turn_ratio_mean"] * tokens
            turns_seen += tokens
    if ranks.distributed:  # every rank's share of the sums, maxima and minima
        names = ("clip_frac", "clip_frac_low", "clip_frac_high", "approx_kl", "ratio_mean")
        summed = ranks.sum_values([stats["loss"], stats["kl"], entropy_total, turn_stats["turn_ratio_mean"], turns_seen,
                                   float(bool(weighted)), *(weighted.get(n, 0.0) for n in names)])
        stats["loss"], stats["kl"], entropy_total, turn_stats["turn_ratio_mean"], turns_seen, any_scored = summed[:6]
        weighted = dict(zip(names, summed[6:])) if any_scored else {}
        ratio_max, turn_stats["turn_ratio_max"], low = ranks.max_values(
            [ratio_max, turn_stats["turn_ratio_max"], -turn_stats["turn_ratio_min"]])
        turn_stats["turn_ratio_min"] = -low
    if optim.target_kl is not None and weighted.get("approx_kl", 0.0) > optim.target_kl:
        return None, entropy_total
    ranks.sum_gradients(model)  # data-parallel: the global gradient on every rank
    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip))
    optimizer.step()
    stats.update(weighted, ratio_max=ratio_max)
    if turns_seen:
        stats.update(turn_stats, turn_ratio_mean=turn_stats["turn_ratio_mean"] / turns_seen)
    return stats, entropy_total

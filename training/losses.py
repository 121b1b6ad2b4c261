"""Policy-gradient losses of the multi-turn GRPO learner (torch), ``algorithms.md`` §1.5, §7, §8.4.

All tensors are ``[B, T]``: ``B`` sequences (rollouts, or rollout chunks) of ``T`` token positions.
``loss_mask`` is 1 on the tokens the policy generated and 0 on everything else — prompt,
environment/observation tokens (§8.6, Search-R1 ``state_masking``), padding. Masked positions
never reach the loss or the gradients, whatever the values stored there (they are replaced by 0
with ``torch.where`` before any arithmetic, so even ``nan``/``inf`` there is harmless).

* :func:`policy_loss` — PPO clip with DAPO clip-higher, three aggregations, optional A²TGPO
  turn-level ratio with adaptive per-turn clip scales.
* :func:`kl_penalty` / :func:`kl_loss` — per-token k1/k2/k3 estimators and their masked mean.
* :func:`aggregate_loss` — the aggregation modes, shared by both.

(Token log-probs and the token broadcast of per-turn advantages live elsewhere; the dynamic
sampling filter is :func:`turngym.training.advantages.dynamic_sampling_mask`.)
"""

from __future__ import annotations

from typing import Literal

import torch

AggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
AGG_MODES: tuple[str, ...] = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_KINDS: tuple[str, ...] = ("k1", "k2", "k3")

#: token log-ratios are clamped to ±20 before ``exp`` (verl ``compute_policy_loss_vanilla``).
LOG_RATIO_CLAMP = 20.0
#: the straight-through turn log-ratio is clamped to ≤ 10 (ATPO/GSPO-turn, §1.5).
TURN_LOG_RATIO_MAX = 10.0


def _check_2d(
    name: str, x: torch.Tensor, shape: torch.Size | None = None, ref: str = "logprobs"
) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be [B, T], got shape {tuple(x.shape)}")
    if shape is not None and x.shape != shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but {ref} has shape {tuple(shape)}")


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def aggregate_loss(
    values: torch.Tensor,
    loss_mask: torch.Tensor,
    agg: AggMode = "token-mean",
    *,
    max_len: int | None = None,
    denominator: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss ``values [B, T]`` over ``loss_mask [B, T]`` to a scalar (§7.5).

    * ``token-mean`` (DAPO, default): ``Σ(v·m) / Σm``.
    * ``seq-mean-token-mean`` (original GRPO): mean over sequences with ≥ 1 token of
      ``Σ_t(v·m) / Σ_t m``.
    * ``seq-mean-token-sum-norm`` (Dr.GRPO): ``Σ(v·m) / (B · max_len)``, i.e. the mean over
      sequences of the token *sum* divided by a constant (TRL ``dr_grpo``; verl omits the ``B``).
      ``max_len`` should be the fixed maximum generation length; it defaults to ``T``.

    ``denominator`` overrides the normaliser (the batch's total token count for ``token-mean``,
    its number of sequences for the two ``seq-mean`` modes) — use the *global* figure when a
    batch is split into micro-batches for gradient accumulation. Empty masks give 0.
    """
    if agg not in AGG_MODES:
        raise ValueError(f"unknown loss aggregation {agg!r}; expected one of {AGG_MODES}")
    if denominator is not None and not float(denominator) > 0:
        raise ValueError(f"denominator must be positive, got {denominator!r}")
    _check_2d("values", values)
    _check_2d("loss_mask", loss_mask, values.shape, ref="values")
    mask = loss_mask.bool()
    v = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    m = mask.to(values.dtype)
    if agg == "token-mean":
        denom = m.sum().clamp_min(1.0) if denominator is None else float(denominator)
        return v.sum() / denom
    if agg == "seq-mean-token-mean":
        tokens = m.sum(-1)
        per_seq = v.sum(-1) / tokens.clamp_min(1.0)
        denom = (tokens > 0).sum().clamp_min(1) if denominator is None else float(denominator)
        return per_seq.sum() / denom
    length = values.shape[-1] if max_len is None else int(max_len)
    if length <= 0:
        raise ValueError(f"max_len must be positive, got {max_len!r}")
    seqs = values.shape[0] if denominator is None else float(denominator)
    return v.sum() / (seqs * length)


def _turn_log_ratio(
    token_log_ratio: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn means ``logρ_{b,k} = mean_{τ ∈ turn k of b} log-ratio_τ``: ``([B, T]`` broadcast to each
    token, ``[K]`` one value per turn that has at least one policy token``)``."""
    tid = torch.where(
        mask, turn_ids.long(), torch.zeros((), dtype=torch.long, device=turn_ids.device)
    )
    if bool((tid < 0).any()):
        bad = tid[tid < 0][0].item()
        raise ValueError(f"turn_ids must be ≥ 0 on loss-masked tokens, found {bad}")
    b, _ = tid.shape
    n_turns = int(tid.max().item()) + 1 if tid.numel() else 1
    seg = (torch.arange(b, device=tid.device)[:, None] * n_turns + tid).reshape(-1)
    m = mask.to(token_log_ratio.dtype)
    sums = torch.zeros(b * n_turns, dtype=token_log_ratio.dtype, device=tid.device)
    counts = torch.zeros_like(sums)
    sums.scatter_add_(0, seg, (token_log_ratio * m).reshape(-1))
    counts.scatter_add_(0, seg, m.reshape(-1))
    means = sums / counts.clamp_min(1.0)
    return means[seg].reshape(tid.shape), means[counts > 0]


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    agg: AggMode = "token-mean",
    max_len: int | None = None,
    turn_ids: torch.Tensor | None = None,
    clip_scale: torch.Tensor | None = None,
    turn_level_ratio: bool = False,
    eps_turn: tuple[float, float] = (3e-3, 4e-3),
    denominator: float | None = None,
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip policy loss with DAPO clip-higher (§7.2, §8.4) and A²TGPO turn ratios (§1.5).

    Args:
        logprobs: ``[B, T]`` log π_θ of each token (carries the gradient).
        old_logprobs: ``[B, T]`` log π_old (rollout policy); detached.
        advantages: ``[B, T]`` per-token advantage (the turn's advantage broadcast to its tokens).
        loss_mask: ``[B, T]`` 1 on policy tokens, 0 elsewhere.
        clip_low, clip_high: ε_low / ε_high of the token ratio (DAPO 0.2 / 0.28).
        agg: see :func:`aggregate_loss`; ``max_len`` and ``denominator`` are passed to it.
        turn_ids: ``[B, T]`` int turn id of each token (needed by ``turn_level_ratio``; values at
            masked positions are ignored).
        clip_scale: ``[B, T]`` A²TGPO clip scale ``c`` per token (``Advantages.clip_scale``
            broadcast); ``None`` = 1.
        turn_level_ratio: use the A²TGPO/ATPO turn-level ratio. Then the clip range is
            ``eps_turn`` (3e-3 / 4e-3, GSPO scale) and ``clip_low``/``clip_high`` are unused.
        token_weights: ``[B, T]`` detached per-token weights ``w_τ`` multiplying ``L_τ`` — the truncated
            behaviour importance weights of decoupled PPO (``training/off_policy.py``); ``None`` = 1.

    Formulas, per policy token τ (turn k of sequence b)::

        token ratio : log r_τ = clamp(log π_θ(τ) − log π_old(τ), ±20)
        turn ratio  : logρ_{b,k} = mean_{τ' ∈ (b,k)} (log π_θ(τ') − log π_old(τ'))
                      log r_τ = min(log π_θ(τ) − sg[log π_θ(τ)] + sg[logρ_{b,k}], 10)
        clip range  : [1 − c·ε_low, 1 + c·ε_high]
        L_τ         = w_τ · max(−A_τ · r_τ, −A_τ · clip(r_τ))
        loss        = aggregate(L, loss_mask, agg)

    Returns:
        ``(loss, metrics)``; metrics (floats, over policy tokens): ``clip_frac`` (tokens whose
        clipped term is active, i.e. with no gradient), ``clip_frac_high`` (A > 0, ratio above
        the range), ``clip_frac_low`` (A < 0, ratio below), ``approx_kl`` (k3 estimate of
        KL(π_old‖π_θ) from the token ratios), ``ratio_mean``, ``ratio_max``, ``num_tokens``; with
        ``turn_level_ratio`` also ``turn_ratio_mean/min/max`` over turns (one value per turn).
    """
    _check_2d("logprobs", logprobs)
    shape = logprobs.shape
    _check_2d("old_logprobs", old_logprobs, shape)
    _check_2d("advantages", advantages, shape)
    _check_2d("loss_mask", loss_mask, shape)
    if clip_scale is not None:
        _check_2d("clip_scale", clip_scale, shape)
    if turn_level_ratio and turn_ids is None:
        raise ValueError("turn_level_ratio=True needs turn_ids [B, T]")
    if turn_ids is not None:
        _check_2d("turn_ids", turn_ids, shape)
        if turn_ids.is_floating_point() or turn_ids.is_complex():
            raise ValueError(f"turn_ids must be an integer tensor, got dtype {turn_ids.dtype}")
    lo, hi = eps_turn if turn_level_ratio else (clip_low, clip_high)
    if not (0.0 <= lo < 1.0 and hi >= 0.0):
        raise ValueError(f"clip range needs 0 ≤ ε_low < 1 and ε_high ≥ 0, got ({lo!r}, {hi!r})")

    dtype = _compute_dtype(logprobs)
    mask = loss_mask.bool()
    zero = torch.zeros((), dtype=dtype, device=logprobs.device)
    logp = torch.where(mask, logprobs.to(dtype), zero)
    old = torch.where(mask, old_logprobs.detach().to(dtype), zero)
    adv = torch.where(mask, advantages.detach().to(dtype), zero)
    raw_log_ratio = logp - old
    token_log_ratio = raw_log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)

    if turn_level_ratio:
        assert turn_ids is not None
        turn_lr, per_turn_lr = _turn_log_ratio(raw_log_ratio.detach(), turn_ids, mask)
        log_ratio = (logp - logp.detach() + turn_lr).clamp(max=TURN_LOG_RATIO_MAX)
    else:
        log_ratio = token_log_ratio
    ratio = torch.exp(log_ratio)

    if clip_scale is None:
        low = torch.full_like(ratio, 1.0 - lo)
        high = torch.full_like(ratio, 1.0 + hi)
    else:
        one = torch.ones((), dtype=dtype, device=logprobs.device)
        scale = torch.where(mask, clip_scale.detach().to(dtype), one)
        low = 1.0 - scale * lo
        high = 1.0 + scale * hi
    clipped = torch.minimum(torch.maximum(ratio, low), high)
    unclipped_loss = -adv * ratio
    clipped_loss = -adv * clipped
    token_loss = torch.maximum(unclipped_loss, clipped_loss)
    if token_weights is not None:
        _check_2d("token_weights", token_weights, shape)
        token_loss = token_loss * torch.where(mask, token_weights.detach().to(dtype), zero)
    loss = aggregate_loss(token_loss, mask, agg, max_len=max_len, denominator=denominator)

    with torch.no_grad():
        m = mask.to(dtype)
        n_tok = m.sum()
        denom = n_tok.clamp_min(1.0)

        def masked_mean(x: torch.Tensor) -> float:
            return float((torch.where(mask, x.to(dtype), zero)).sum() / denom)

        kl3 = torch.exp(token_log_ratio) - 1.0 - token_log_ratio
        metrics = {
            "clip_frac": masked_mean((clipped_loss > unclipped_loss).to(dtype)),
            "clip_frac_high": masked_mean(((ratio > high) & (adv > 0)).to(dtype)),
            "clip_frac_low": masked_mean(((ratio < low) & (adv < 0)).to(dtype)),
            "approx_kl": masked_mean(kl3),
            "ratio_mean": masked_mean(ratio),
            "ratio_max": float(torch.where(mask, ratio, zero).max()) if n_tok > 0 else 0.0,
            "num_tokens": float(n_tok),
        }
        if turn_level_ratio and per_turn_lr.numel():
            turn_ratio = torch.exp(per_turn_lr.clamp(max=TURN_LOG_RATIO_MAX))
            metrics["turn_ratio_mean"] = float(turn_ratio.mean())
            metrics["turn_ratio_min"] = float(turn_ratio.min())
            metrics["turn_ratio_max"] = float(turn_ratio.max())
    return loss, metrics


def kl_penalty(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    kind: Literal["k1", "k2", "k3"] = "k3",
) -> torch.Tensor:
    """Per-token KL(π_θ‖π_ref) estimate ``[B, T]`` (verl ``kl_penalty``, §7.4).

    * ``k1``: ``log π − log π_ref``.
    * ``k2``: ``½ (log π − log π_ref)²``.
    * ``k3`` (``low_var_kl``): ``ρ − log ρ − 1`` with ``log ρ = clamp(log π_ref − log π, ±20)``,
      result clamped to ``[−10, 10]``; ≥ 0, and 0 exactly where the two agree.

    Unmasked: aggregate with :func:`kl_loss` (which also neutralises masked positions).
    """
    _check_2d("logprobs", logprobs)
    _check_2d("ref_logprobs", ref_logprobs, logprobs.shape)
    ref = ref_logprobs.detach()
    if kind == "k1":
        return logprobs - ref
    if kind == "k2":
        return 0.5 * (logprobs - ref).square()
    if kind == "k3":
        log_ratio = (ref - logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        return (torch.exp(log_ratio) - log_ratio - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"unknown KL estimator {kind!r}; expected one of {KL_KINDS}")


def kl_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    kind: Literal["k1", "k2", "k3"] = "k3",
    agg: AggMode = "token-mean",
    max_len: int | None = None,
    denominator: float | None = None,
) -> torch.Tensor:
    """Masked KL loss: ``aggregate(kl_penalty(logprobs, ref_logprobs, kind), loss_mask, agg)``.

    Shapes ``[B, T]``; add ``β · kl_loss(...)`` to the policy loss (GRPO style, §7.4).
    """
    _check_2d("logprobs", logprobs)
    _check_2d("ref_logprobs", ref_logprobs, logprobs.shape)
    _check_2d("loss_mask", loss_mask, logprobs.shape)
    dtype = _compute_dtype(logprobs)
    mask = loss_mask.bool()
    zero = torch.zeros((), dtype=dtype, device=logprobs.device)
    logp = torch.where(mask, logprobs.to(dtype), zero)
    ref = torch.where(mask, ref_logprobs.to(dtype), zero)
    per_token = kl_penalty(logp, ref, kind)
    return aggregate_loss(per_token, mask, agg, max_len=max_len, denominator=denominator)


__all__ = [
    "AGG_MODES",
    "KL_KINDS",
    "aggregate_loss",
    "kl_loss",
    "kl_penalty",
    "policy_loss",
]

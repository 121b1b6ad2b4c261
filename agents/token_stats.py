"""Per-token log-probs (and entropies) from final hidden states, a chunk of positions at a time.

Used for scoring (``HFPolicy.score``) and by the learner (``training/batching.py``). Only the
selected positions are projected to the vocabulary, ``chunk_size`` rows at a time, so logits for a
whole batch are never materialized.
"""

from __future__ import annotations

from typing import Literal

import torch

EntropyMode = Literal["off", "detached", "grad"]


def chunked_token_stats(
    hidden: torch.Tensor,
    lm_head: torch.nn.Module,
    targets: torch.Tensor,
    chunk_size: int = 1024,
    *,
    softcap: float | None = None,
    entropy: EntropyMode = "off",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log p(target_i | hidden_i)`` and, on request, the entropy ``H_i = -Σ_v p_v log p_v``.

    Args:
        hidden: ``[N, H]`` final hidden states (after the model's last norm), one per target.
        lm_head: the output projection (``model.get_output_embeddings()``).
        targets: ``[N]`` token ids.
        chunk_size: positions per projection chunk (at most ``chunk_size × vocab`` logits at once,
            besides what autograd saves for the backward pass).
        softcap: the model's ``final_logit_softcapping`` if it has one (Gemma-2 style).
        entropy: ``off`` — none (``None`` returned); ``detached`` — computed from the same logits
            without a gradient; ``grad`` — in the autograd graph (an entropy bonus needs it; it
            keeps a second ``chunk × vocab`` buffer per chunk for the backward pass).

    Returns ``([N], [N] | None)`` float32: log-probs (differentiable) and entropies in nats.
    """
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"hidden has {hidden.shape[0]} rows but targets has {targets.shape[0]}")
    if entropy not in ("off", "detached", "grad"):
        raise ValueError(f"entropy must be 'off', 'detached' or 'grad', got {entropy!r}")
    logps, entropies = [], []
    for start in range(0, hidden.shape[0], chunk_size):
        logits = lm_head(hidden[start : start + chunk_size]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        lse = torch.logsumexp(logits, dim=-1)
        chosen = logits.gather(1, targets[start : start + chunk_size, None].long()).squeeze(1)
        logps.append(chosen - lse)
        if entropy != "off":
            with torch.set_grad_enabled(entropy == "grad" and torch.is_grad_enabled()):
                entropies.append(lse - (torch.softmax(logits, dim=-1) * logits).sum(-1))  # H = lse − Σ p·z
    empty = hidden.new_zeros(0, dtype=torch.float32)
    logp = torch.cat(logps) if logps else empty
    if entropy == "off":
        return logp, None
    return logp, torch.cat(entropies) if entropies else empty


def chunked_target_logprobs(
    hidden: torch.Tensor,
    lm_head: torch.nn.Module,
    targets: torch.Tensor,
    chunk_size: int = 1024,
    softcap: float | None = None,
) -> torch.Tensor:
    """``[N]`` float32 ``log p(target_i | hidden_i)``; differentiable (see :func:`chunked_token_stats`)."""
    return chunked_token_stats(hidden, lm_head, targets, chunk_size, softcap=softcap)[0]

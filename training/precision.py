"""The learner's numerics (``learner.precision``) and the rollout/learner log-prob mismatch it causes.

* :func:`set_learner_precision` marks the learner module; every learner forward
  (:func:`turngym.training.batching.policy_token_stats` — the update, the entropy measurement, the
  behaviour correction's proximal log-probs) then runs under
  :func:`learner_autocast`: ``torch.autocast(bfloat16)`` for ``bf16-autocast`` (fp32 master weights
  and AdamW state, bf16 matmuls; the backward pass follows the forward's dtypes), nothing otherwise
  (``fp32``, and ``bf16`` whose weights are bf16 already). Scores that are differences of log-prob
  sums stay in the parameters' precision, never autocast: IGPO's (``training/info_gain.py``; under
  autocast, on 16 real search trajectories, its gains moved by 0.28 nats on average against a mean
  |gain| of 2.9, and 3 of 16 changed sign) and OPRL's (docs/turn-rewards.md).
* :class:`Mismatch` is what the learner measures for free on the first update of every step, before
  any optimizer step: the gap between the rollout policy's log-probs ``μ`` (stored with the rollout)
  and the learner's recomputation ``π`` of the same tokens — logged as ``mismatch/*``.
* :func:`correction_flags`: which rows get the decoupled-PPO + truncated-IS correction
  (``training/off_policy.py``) — with ``algo.behaviour_correction: auto``, the stale ones and, when the
  rollout and learner precisions differ, all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from turngym.agents.precision import Precision
from turngym.training.config import AlgoSection

_ATTRIBUTE = "turngym_learner_precision"


def set_learner_precision(model: torch.nn.Module, learner: str) -> None:
    """Record ``learner`` (``fp32``, ``bf16-autocast`` or ``bf16``) on ``model`` for :func:`learner_autocast`."""
    if learner not in ("fp32", "bf16-autocast", "bf16"):
        raise ValueError(f"learner precision must be fp32, bf16-autocast or bf16, got {learner!r}")
    setattr(model, _ATTRIBUTE, learner)


def learner_precision(model: torch.nn.Module) -> str:
    """The precision :func:`set_learner_precision` recorded on ``model`` (``fp32`` if none)."""
    return getattr(model, _ATTRIBUTE, "fp32")


def learner_autocast(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """``torch.autocast(<device>, bfloat16)`` when ``model`` is marked ``bf16-autocast``, else a no-op."""
    if learner_precision(model) != "bf16-autocast":
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def correction_flags(algo: AlgoSection, stale: Sequence[bool], precision: Precision) -> list[bool]:
    """Per row, whether the behaviour correction applies (see ``AlgoSection.behaviour_correction``)."""
    mode = algo.behaviour_correction
    return [mode == "always" or (mode == "auto" and (bool(s) or precision.differ)) for s in stale]


@dataclass
class Mismatch:
    """Sums of the rollout/learner log-prob gap over the policy tokens measured (see module docstring).

    ``Δ_τ = log π(τ) − log μ(τ)``. Metrics: ``mismatch/gap_mean`` (mean ``|Δ|`` per token),
    ``mismatch/gap_max``, ``mismatch/seq_kl`` (mean over rows of ``Σ_τ −Δ_τ``, a sequence-level
    KL(μ‖π) estimate) and ``mismatch/tokens``.
    """

    rows: int = 0
    tokens: int = 0
    abs_sum: float = 0.0
    gap_max: float = 0.0
    kl_sum: float = 0.0

    def add(self, logprobs: torch.Tensor, behaviour: torch.Tensor, mask: torch.Tensor) -> None:
        """Add one micro-batch: ``[B, L-1]`` learner log-probs, rollout log-probs and policy-token mask."""
        with torch.no_grad():
            delta = (logprobs.detach().double() - behaviour.double()) * mask
            counts = mask.sum(-1)
            self.rows += int((counts > 0).sum())
            self.tokens += int(counts.sum())
            self.abs_sum += float(delta.abs().sum())
            self.kl_sum += float(-delta.sum())
            if delta.numel():
                self.gap_max = max(self.gap_max, float(delta.abs().max()))

    def to_metrics(self) -> dict[str, float]:
        return {
            "mismatch/gap_mean": self.abs_sum / self.tokens if self.tokens else 0.0,
            "mismatch/gap_max": self.gap_max,
            "mismatch/seq_kl": self.kl_sum / self.rows if self.rows else 0.0,
            "mismatch/tokens": float(self.tokens),
        }


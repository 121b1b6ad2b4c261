"""A rollout policy on a copy of the learner's module in another dtype (bf16 rollouts, fp32 learner).

When the rollout dtype equals the learner's parameter dtype the rollouts play on the learner's own
module (``HFPolicy`` shares it; no copy, no sync). Otherwise :func:`cast_copy_policy` builds an
``HFPolicy`` over a copy of the module cast to the rollout dtype, and :meth:`CastCopyPolicy.sync_weights`
copies (and casts) the learner's tensors into it after every optimizer step, in place — the copy's
memory is one model in the rollout dtype (half the learner's for bf16 from fp32).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch

from turngym.agents.hf_policy import HFPolicy


@dataclass(frozen=True)
class CastSync:
    """What one :meth:`CastCopyPolicy.sync_weights` moved: tensors, bytes (rollout dtype) and seconds."""

    tensors: int
    bytes: int
    seconds: float


class CastCopyPolicy(HFPolicy):
    """``HFPolicy`` over a cast copy of a learner's module; :meth:`sync_weights` keeps it equal."""

    def sync_weights(self, weights: Any) -> CastSync:
        """Copy the learner module's (or a state dict's) tensors into this copy, casting each.

        Names must match the copy's (the copy was made from the same module); a missing one raises.
        """
        start = time.perf_counter()
        source = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
        target = self.model.state_dict()
        missing = [name for name in target if name not in source]
        if missing:
            raise ValueError(f"sync_weights: the learner's weights lack {missing[:3]} (of {len(missing)}); "
                             "the rollout copy must be made from the same module")
        moved = 0
        with torch.no_grad():
            for name, tensor in target.items():
                tensor.copy_(source[name])
                moved += tensor.numel() * tensor.element_size()
        return CastSync(len(target), moved, time.perf_counter() - start)


def cast_copy_policy(policy: HFPolicy, dtype: torch.dtype) -> CastCopyPolicy:
    """A :class:`CastCopyPolicy` over ``policy.model`` cast to ``dtype``, with ``policy``'s settings.

    The module is copied parameter by parameter into the new dtype (never a second full copy in the
    learner's dtype): its meta-device skeleton is deep-copied, then each tensor is materialised cast.
    """
    source = policy.model
    clone = _cast_clone(source, dtype)
    out = CastCopyPolicy.__new__(CastCopyPolicy)
    out.__dict__.update({k: v for k, v in policy.__dict__.items() if k not in ("model", "_kv_store")})
    out.model, out.dtype, out._kv_store = clone.eval(), dtype, None
    return out


def _cast_clone(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``module`` whose floating tensors are ``dtype`` (others keep theirs), gradients off."""
    memo: dict[int, Any] = {}
    for tensor in [*module.parameters(), *module.buffers()]:  # deepcopy shares these: filled in below
        memo[id(tensor)] = _cast(tensor, dtype)
    clone = copy.deepcopy(module, memo)
    return clone.requires_grad_(False)


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    data = tensor.detach().to(dtype=dtype) if tensor.is_floating_point() else tensor.detach().clone()
    if data.data_ptr() == tensor.data_ptr():
        data = data.clone()
    return torch.nn.Parameter(data, requires_grad=False) if isinstance(tensor, torch.nn.Parameter) else data

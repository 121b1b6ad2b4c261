"""FSDP2 for the learner (``learner.strategy: fsdp``): shard the weights, gather them whole when needed.

:func:`shard_model` applies ``torch.distributed.fsdp.fully_shard`` to every decoder layer and then to
the whole model, so each rank keeps 1/N of the weights, gradients and Adam state; a layer's weights
are all-gathered just before its forward and resharded after it. On CUDA with bf16 support the
layers compute in bf16 with fp32 master weights and fp32 gradient reduction
(``MixedPrecisionPolicy``); on CPU everything stays fp32.

Two consequences shape the rest of the learner:

* **Forwards are collective.** Every rank must run the same number of forward/backward passes per
  phase, so ranks with fewer micro-batches run empty ones (``Ranks.lockstep`` in
  ``training/update.py`` and ``training/off_policy.py``). The learner reads hidden states through
  the decoder and projects only the policy positions (``batching.policy_token_stats``); that path
  bypasses the root module's ``forward``, so :func:`shard_model` registers
  :data:`HIDDEN_STATES_METHOD` as an FSDP forward method (its hooks unshard the embeddings and
  output layer, tied or not) and :func:`decoder_hidden_states` calls it.
* **Generation needs whole weights.** Rollouts, evaluation, IGPO scoring and the exported model
  use a full copy of the policy on every rank, refreshed after each update by
  :func:`copy_full_weights` (an all-gather of every shard) — as a vLLM engine beside an FSDP learner
  would be. Checkpoints hold the full model and optimizer state (:func:`full_state`), so a run
  resumes with any rank count and either strategy.

LoRA adapters are refused with FSDP here (the adapters are small: use ``ddp``).
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import (
    FSDPModule,
    MixedPrecisionPolicy,
    fully_shard,
    register_fsdp_forward_method,
)

HIDDEN_STATES_METHOD = "turngym_hidden_states"


class ShardingUnsupported(ValueError):
    """A model FSDP cannot shard here; the message says why and what to use instead."""


def shard_model(model: torch.nn.Module, device: str = "cpu") -> torch.nn.Module:
    """Shard ``model`` in place (every decoder layer, then the root) and return it."""
    if hasattr(model, "get_base_model"):
        raise ShardingUnsupported("learner.strategy 'fsdp' with LoRA adapters (model.lora) is not supported; "
                                  "train LoRA with learner.strategy: ddp (the adapters are small)")
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise ShardingUnsupported(f"{type(model).__name__}'s decoder has no `layers` list to shard; use learner.strategy: ddp")
    bf16 = device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    for layer in layers:
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    setattr(model, HIDDEN_STATES_METHOD, types.MethodType(_hidden_states, model))
    register_fsdp_forward_method(model, HIDDEN_STATES_METHOD)
    return model


def _hidden_states(self: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    return self.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state


def decoder_hidden_states(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """``[B, L, H]`` last hidden states of ``model``'s decoder (through the FSDP hooks when sharded)."""
    method = getattr(model, HIDDEN_STATES_METHOD, None)
    if method is not None:
        return method(input_ids, attention_mask)
    return _hidden_states(model, input_ids, attention_mask)


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def reshard(model: torch.nn.Module) -> None:
    """Free the gathered weights a forward without backward left behind (no-op when not sharded)."""
    if isinstance(model, FSDPModule):
        model.reshard()


_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole model and optimizer state dicts (collective when sharded: call it on every rank).

    Unsharded: ``model.state_dict()`` and ``optimizer.state_dict()`` as always. Sharded: the gathered
    weights under the same names, and the optimizer state keyed by parameter name
    (``torch.distributed.checkpoint``'s format; :func:`load_full_state` reads both).
    """
    if not is_sharded(model):
        return model.state_dict(), optimizer.state_dict()
    return get_model_state_dict(model, options=_FULL), get_optimizer_state_dict(model, optimizer, options=_FULL)


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict[str, Any],
                    optimizer_state: dict[str, Any]) -> None:
    """Load whole state dicts (from :func:`full_state`, any rank count or strategy) into ``model`` and
    ``optimizer``, sharding them if the model is sharded."""
    keyed_by_name = any(isinstance(k, str) for k in optimizer_state.get("state", {}))
    if is_sharded(model):
        set_model_state_dict(model, model_state, options=StateDictOptions(full_state_dict=True))
    else:
        model.load_state_dict(model_state)
    if is_sharded(model) or keyed_by_name:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(optimizer_state)


def copy_full_weights(model: torch.nn.Module, target: torch.nn.Module) -> None:
    """Copy a sharded ``model``'s gathered weights into the unsharded ``target`` (collective)."""
    target.load_state_dict(get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)))

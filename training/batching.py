"""From trajectories and per-turn advantages to padded tensors, and log-probs of the policy tokens.

Shapes (``B`` sequences, ``L`` = longest sequence in the micro-batch):

* ``input_ids [B, L]`` right-padded with ``pad_id``; ``attention_mask [B, L]``.
* targets are shifted: position ``t`` of every ``[B, L-1]`` tensor describes token ``t + 1``,
  predicted from the hidden state at ``t``. ``loss_mask [B, L-1]`` is 1 exactly on tokens the policy
  generated; ``old_logprobs``, ``advantages``, ``clip_scale`` and ``turn_ids`` are aligned with it.

:func:`policy_token_stats` runs the decoder once and applies the output projection only at the
positions of policy tokens, a chunk at a time (:func:`~turngym.agents.token_stats.chunked_token_stats`): full-vocabulary
logits are never materialized for the whole batch, which is what dominates memory in TRL's trainer.
The same pass yields each policy token's full-distribution entropy (no extra forward).

No dense ``[B, 1, L, L]`` attention mask is ever built for a right-padded batch: in a causal LM a
row's pads come after its real tokens, so they cannot influence them, and the decoder is called
without ``attention_mask`` (:func:`decoder_mask`). Position ids are ``0..L-1`` either way. Under
SDPA (the default attention implementation) transformers then takes ``is_causal=True`` and
materialises no mask; under ``eager`` attention transformers still builds its causal
``[B, 1, L, L]`` float mask internally (the implementation needs one), just not a padding one. The
hidden states at pad positions differ (they now attend to earlier pads) but are never read: only
policy-token positions are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from turngym.agents.token_stats import chunked_token_stats
from turngym.training.precision import learner_autocast
from turngym.training.sharding import decoder_hidden_states
from turngym.training.trajectory import Trajectory


@dataclass
class TrainRow:
    """One trajectory flattened for the learner (python lists, all length ``L``)."""

    token_ids: list[int]
    loss_mask: list[int]
    turn_ids: list[int]
    old_logprobs: list[float]
    advantages: list[float]
    clip_scale: list[float]
    group: str = ""
    """The GRPO group (task and seat) the row belongs to; mini-batches never split a group."""
    scored: bool = True
    """Whether the row's tokens enter the policy-gradient term. ``False``: a row of a group that was
    dropped for zero reward variance, kept only for the entropy bonus (and the entropy measured)."""
    is_weights: list[float] | None = None
    """Per-token behaviour importance weights (``training/off_policy.py``) multiplying the policy-gradient
    term; ``None``: 1 everywhere (the rollout policy is the proximal policy)."""
    behaviour_logprobs: list[float] | None = None
    """The rollout policy's log-probs when ``old_logprobs`` were replaced by the proximal policy's
    (``training/off_policy.py``); ``None``: ``old_logprobs`` are the rollout's. The rollout/learner
    mismatch (``mismatch/*``) is measured against these."""

    @property
    def num_scored_tokens(self) -> int:
        return self.num_policy_tokens if self.scored else 0

    @property
    def num_policy_tokens(self) -> int:
        return int(sum(self.loss_mask))


def make_rows(
    trajectory: Trajectory, turn_advantages: np.ndarray, turn_clip_scale: np.ndarray | None, group: str = ""
) -> list[TrainRow]:
    """Broadcast per-turn advantages (and clip scales) to the tokens of each turn, per training sequence.

    ``group`` tags every row with its GRPO group (see :attr:`TrainRow.group`).
    """
    if len(turn_advantages) != len(trajectory.turns):
        raise ValueError(
            f"trajectory has {len(trajectory.turns)} turns but {len(turn_advantages)} turn advantages"
        )
    rows = []
    for flat in trajectory.sequences():
        adv = [float(turn_advantages[k]) if k >= 0 else 0.0 for k in flat.turn_ids]
        scale = [float(turn_clip_scale[k]) if (k >= 0 and turn_clip_scale is not None) else 1.0 for k in flat.turn_ids]
        rows.append(TrainRow(flat.token_ids, flat.loss_mask, flat.turn_ids, flat.old_logprobs, adv, scale, group))
    return rows


def training_rows(
    trajectories: Sequence[Trajectory], per_turn: Sequence[np.ndarray], clip_scale: Sequence[np.ndarray] | None,
    keep: Sequence[bool], groups: Sequence[str], entropy_control: bool, version: int,
) -> tuple[list[TrainRow], list[bool]]:
    """The learner's rows of a step: kept groups' (scored, with their per-turn advantages and clip
    scales), and with ``entropy_control`` dropped groups' too (``scored=False``: entropy term only);
    trajectories without generated tokens give none. Returns the rows and, per row, whether weights
    older than ``version`` played it (``Trajectory.policy_version``; stale rows get the correction)."""
    rows: list[TrainRow] = []
    stale: list[bool] = []
    for i, t in enumerate(trajectories):
        if t.num_generated_tokens == 0 or not (keep[i] or (entropy_control and not t.failed)):
            continue
        if keep[i]:
            made = make_rows(t, per_turn[i], None if clip_scale is None else clip_scale[i], groups[i])
        else:
            made = [replace(r, scored=False) for r in make_rows(t, np.zeros(len(t.turns)), None, groups[i])]
        rows += made
        stale += [t.policy_version is not None and t.policy_version < version] * len(made)
    return rows, stale


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [B, L] long
    attention_mask: torch.Tensor  # [B, L] long
    loss_mask: torch.Tensor  # [B, L-1] float
    old_logprobs: torch.Tensor  # [B, L-1] float
    advantages: torch.Tensor  # [B, L-1] float
    clip_scale: torch.Tensor  # [B, L-1] float
    turn_ids: torch.Tensor  # [B, L-1] long (-1 off-policy)
    is_weights: torch.Tensor  # [B, L-1] float (1 where a row has none)
    behaviour_logprobs: torch.Tensor  # [B, L-1] float (the rollout's log-probs; old_logprobs where a row has none)


def collate(rows: Sequence[TrainRow], pad_id: int, device: str | torch.device = "cpu") -> MicroBatch:
    """Right-pad ``rows`` into a :class:`MicroBatch` (targets shifted by one; see module docstring)."""
    if not rows:
        raise ValueError("collate needs at least one row")
    width = max(len(r.token_ids) for r in rows)
    b = len(rows)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    attn = torch.zeros((b, width), dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.float32)
    old = torch.zeros((b, width), dtype=torch.float32)
    adv = torch.zeros((b, width), dtype=torch.float32)
    scale = torch.ones((b, width), dtype=torch.float32)
    turns = torch.full((b, width), -1, dtype=torch.long)
    weights = torch.ones((b, width), dtype=torch.float32)
    behaviour = torch.zeros((b, width), dtype=torch.float32)
    for i, r in enumerate(rows):
        n = len(r.token_ids)
        ids[i, :n] = torch.tensor(r.token_ids)
        attn[i, :n] = 1
        mask[i, :n] = torch.tensor(r.loss_mask, dtype=torch.float32)
        old[i, :n] = torch.tensor(r.old_logprobs, dtype=torch.float32)
        adv[i, :n] = torch.tensor(r.advantages, dtype=torch.float32)
        scale[i, :n] = torch.tensor(r.clip_scale, dtype=torch.float32)
        turns[i, :n] = torch.tensor(r.turn_ids)
        if r.is_weights is not None:
            weights[i, :n] = torch.tensor(r.is_weights, dtype=torch.float32)
        behaviour[i, :n] = old[i, :n] if r.behaviour_logprobs is None else torch.tensor(r.behaviour_logprobs)
    if (mask[:, 0] != 0).any():
        raise ValueError("a sequence starts with a policy token; there is no context to predict it from")
    to = dict(device=device)
    return MicroBatch(
        input_ids=ids.to(**to),
        attention_mask=attn.to(**to),
        loss_mask=mask[:, 1:].to(**to),
        old_logprobs=old[:, 1:].to(**to),
        advantages=adv[:, 1:].to(**to),
        clip_scale=scale[:, 1:].to(**to),
        turn_ids=turns[:, 1:].to(**to),
        is_weights=weights[:, 1:].to(**to),
        behaviour_logprobs=behaviour[:, 1:].to(**to),
    )


def is_right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row of ``attention_mask [B, L]`` is ones then zeros (at least one real token each)."""
    mask = attention_mask.bool()
    return bool(mask[:, 0].all() and (mask[:, 1:] <= mask[:, :-1]).all())


def decoder_mask(batch: MicroBatch) -> torch.Tensor | None:
    """The ``attention_mask`` to give a causal decoder for ``batch``: ``None`` when right-padded.

    Right padding (always so from :func:`collate`) needs no mask under causal attention, and without
    one SDPA runs its ``is_causal`` kernel instead of a dense ``[B, 1, L, L]`` mask. Any other
    layout (e.g. a hand-built left-padded batch) keeps its mask.
    """
    return None if is_right_padded(batch.attention_mask) else batch.attention_mask


def policy_token_stats(
    model: torch.nn.Module, batch: MicroBatch, chunk_size: int = 512, *, entropy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B, L-1], [B, L-1])``: log π(token t+1 | ≤ t) and the entropy of π(· | ≤ t) at policy-token
    positions (0 elsewhere). The log-probs are differentiable; the entropy is only when ``entropy_grad``.

    Uses ``model.get_decoder()`` for hidden states (no KV cache; no attention mask when the batch is
    right-padded, see :func:`decoder_mask`) and ``model.get_output_embeddings()`` on the selected
    positions only, ``chunk_size`` rows at a time. A ``model`` marked ``bf16-autocast``
    (:func:`~turngym.training.precision.set_learner_precision`) runs the decoder under bf16 autocast;
    the output projection (policy-token positions only, a small share of the FLOPs) stays in the
    weights' dtype, so the log-probs are not rounded through bf16 logits.
    """
    with learner_autocast(model):  # bf16-autocast learners (training/precision.py): the decoder in bf16
        hidden = decoder_hidden_states(model, batch.input_ids, decoder_mask(batch))
    where = batch.loss_mask.nonzero(as_tuple=True)  # (rows, positions) in the shifted frame
    targets = batch.input_ids[:, 1:][where]
    head = model.get_output_embeddings()
    picked, entropy = chunked_token_stats(  # the output projection at policy tokens only: in the weights' dtype
        hidden[:, :-1][where].to(head.weight.dtype),
        head,
        targets,
        chunk_size,
        softcap=getattr(model.config, "final_logit_softcapping", None),
        entropy="grad" if entropy_grad else "detached",
    )
    zeros = torch.zeros(batch.loss_mask.shape, dtype=torch.float32, device=picked.device)
    return zeros.index_put(where, picked.float()), zeros.index_put(where, entropy.float())


def policy_token_logprobs(model: torch.nn.Module, batch: MicroBatch, chunk_size: int = 512) -> torch.Tensor:
    """``[B, L-1]`` log π(token t+1 | ≤ t) at policy-token positions (0 elsewhere); differentiable."""
    return policy_token_stats(model, batch, chunk_size)[0]

"""Shared token plumbing of the learned sources: per-turn sums of token log-probs, turn-end hidden states."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from turngym.training.batching import TrainRow, collate, decoder_mask, policy_token_logprobs
from turngym.training.sharding import decoder_hidden_states
from turngym.training.trajectory import Trajectory
from turngym.training.update import pack_lengths


def _rows(trajectories: Sequence[Trajectory]) -> tuple[list[TrainRow], list[int]]:
    rows, owners = [], []
    for i, t in enumerate(trajectories):
        for flat in t.sequences():
            n = len(flat.token_ids)
            rows.append(TrainRow(flat.token_ids, flat.loss_mask, flat.turn_ids, flat.old_logprobs, [0.0] * n, [1.0] * n))
            owners.append(i)
    return rows, owners


def row_parts(rows: Sequence[TrainRow], micro_batch_size: int = 8, token_budget: int | None = None) -> list[list[int]]:
    """Indices of ``rows`` in micro-batches, shortest first: ``token_budget`` set, packed by
    :func:`~turngym.training.update.pack_lengths` (``len(part) × longest row ≤ token_budget``), which
    bounds activations by tokens; else runs of ``micro_batch_size``."""
    lengths = [len(r.token_ids) for r in rows]
    if token_budget is not None:
        return pack_lengths(lengths, token_budget)
    order = sorted(range(len(rows)), key=lengths.__getitem__)
    return [order[s:s + micro_batch_size] for s in range(0, len(order), micro_batch_size)]


def _part_sums(model: torch.nn.Module, trajectories: Sequence[Trajectory], rows: Sequence[TrainRow], owners: Sequence[int],
               part: Sequence[int], pad_id: int, device: str, bf16_autocast: bool) -> list[tuple[int, torch.Tensor]]:
    """``(owner, [n_owner])`` per row of ``part``: its turns' summed log-probs (graph kept if grad is on),
    under bf16 autocast if asked (besides any a ``bf16-autocast`` learner mark on ``model`` applies)."""
    batch = collate([rows[i] for i in part], pad_id, device)
    bf16 = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16) if bf16_autocast else contextlib.nullcontext()
    with bf16:
        logp = policy_token_logprobs(model, batch)  # [B, L-1], 0 off policy tokens
    out = []
    for b, i in enumerate(part):
        turns, n = batch.turn_ids[b], len(trajectories[owners[i]].turns)
        where = turns >= 0
        out.append((owners[i], torch.zeros(n, device=device, dtype=torch.float32).index_add(0, turns[where], logp[b][where].float())))
    return out


@torch.no_grad()
def turn_logprob_sums(model: torch.nn.Module, trajectories: Sequence[Trajectory], pad_id: int,
                      micro_batch_size: int = 8, device: str = "cpu", token_budget: int | None = None) -> list[torch.Tensor]:
    """Per trajectory, ``[n_i]`` float32: Σ over turn ``k``'s generated tokens of log π(token | context)
    under ``model`` (in its own dtype unless it carries a ``bf16-autocast`` learner mark: a learned
    reward is a small difference of two such sums, which bf16 round-off would swamp, so OPRL scores
    unmarked fp32 models). No graph: see :func:`backward_turn_logprob_sums` for the gradient.
    Trajectories without turns give empty tensors."""
    rows, owners = _rows(trajectories)
    sums = [torch.zeros(len(t.turns), device=device) for t in trajectories]
    for part in row_parts(rows, micro_batch_size, token_budget):
        for owner, value in _part_sums(model, trajectories, rows, owners, part, pad_id, device, bf16_autocast=False):
            sums[owner] += value
    return sums


def backward_turn_logprob_sums(model: torch.nn.Module, trajectories: Sequence[Trajectory], grads: Sequence[torch.Tensor],
                               pad_id: int, micro_batch_size: int = 8, device: str = "cpu",
                               token_budget: int | None = None, bf16_autocast: bool = False) -> None:
    """Accumulate into ``model``'s ``.grad`` the vector-Jacobian product ``Σ_i grads[i] · ∂S_i/∂θ``, where
    ``S_i`` (``[n_i]``) is :func:`turn_logprob_sums` of trajectory ``i`` and ``grads[i]`` its ``[n_i]``
    upstream gradient. One micro-batch's graph at a time — memory scales with ``token_budget``, not
    with the batch — so a loss of the sums is backpropagated in two passes: sums without a graph,
    ``∂loss/∂S`` from them, then this. ``bf16_autocast``: the forward under bf16 autocast (fp32
    weights and gradients), as a ``bf16-autocast`` learner's update runs."""
    rows, owners = _rows(trajectories)
    for part in row_parts(rows, micro_batch_size, token_budget):
        surrogate = sum((grads[owner].to(value.device) * value).sum()
                        for owner, value in _part_sums(model, trajectories, rows, owners, part, pad_id, device, bf16_autocast))
        if isinstance(surrogate, torch.Tensor) and surrogate.requires_grad:
            surrogate.backward()


@torch.no_grad()
def turn_end_hidden(model: torch.nn.Module, trajectories: Sequence[Trajectory], pad_id: int,
                    micro_batch_size: int = 8, device: str = "cpu", token_budget: int | None = None) -> list[torch.Tensor]:
    """Per trajectory, ``[n_i, H]``: the decoder's last hidden state at each turn's last generated token
    (the state after the action was written). Float32, no grad; micro-batches as in :func:`row_parts`."""
    rows, owners = _rows(trajectories)
    out: list[list[torch.Tensor | None]] = [[None] * len(t.turns) for t in trajectories]
    for part in row_parts(rows, micro_batch_size, token_budget):
        chunk = [rows[i] for i in part]
        batch = collate(chunk, pad_id, device)
        hidden = decoder_hidden_states(model, batch.input_ids, decoder_mask(batch)).float()
        for b, (row, owner) in enumerate(zip(chunk, [owners[i] for i in part])):
            for pos, k in enumerate(row.turn_ids):
                if k >= 0 and (pos + 1 == len(row.turn_ids) or row.turn_ids[pos + 1] != k):
                    out[owner][k] = hidden[b, pos]
    size = int(getattr(model.config, "hidden_size"))
    return [torch.stack([h if h is not None else torch.zeros(size, device=device) for h in hs]) if hs else torch.zeros(0, size)
            for hs in out]

"""Shared token plumbing of the learned sources: per-turn sums of token log-probs, turn-end hidden states."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from turngym.training.batching import TrainRow, collate, decoder_mask, policy_token_logprobs
from turngym.training.sharding import decoder_hidden_states
from turngym.training.trajectory import Trajectory


def _rows(trajectories: Sequence[Trajectory]) -> tuple[list[TrainRow], list[int]]:
    rows, owners = [], []
    for i, t in enumerate(trajectories):
        for flat in t.sequences():
            n = len(flat.token_ids)
            rows.append(TrainRow(flat.token_ids, flat.loss_mask, flat.turn_ids, flat.old_logprobs, [0.0] * n, [1.0] * n))
            owners.append(i)
    return rows, owners


def turn_logprob_sums(model: torch.nn.Module, trajectories: Sequence[Trajectory], pad_id: int,
                      micro_batch_size: int = 8, device: str = "cpu") -> list[torch.Tensor]:
    """Per trajectory, ``[n_i]``: Σ over turn ``k``'s generated tokens of log π(token | context) under
    ``model`` (differentiable when grad is enabled). Trajectories without turns give empty tensors."""
    rows, owners = _rows(trajectories)
    sums = [torch.zeros(len(t.turns), device=device) for t in trajectories]
    parts: list[list[torch.Tensor]] = [[s] for s in sums]
    for start in range(0, len(rows), micro_batch_size):
        chunk = rows[start:start + micro_batch_size]
        batch = collate(chunk, pad_id, device)
        logp = policy_token_logprobs(model, batch)  # [B, L-1], 0 off policy tokens
        for b, owner in enumerate(owners[start:start + micro_batch_size]):
            turns = batch.turn_ids[b]
            n = len(trajectories[owner].turns)
            where = turns >= 0
            parts[owner].append(torch.zeros(n, device=device, dtype=logp.dtype).index_add(0, turns[where], logp[b][where]))
    return [torch.stack(p).sum(0) if len(p) > 1 else p[0] for p in parts]


@torch.no_grad()
def turn_end_hidden(model: torch.nn.Module, trajectories: Sequence[Trajectory], pad_id: int,
                    micro_batch_size: int = 8, device: str = "cpu") -> list[torch.Tensor]:
    """Per trajectory, ``[n_i, H]``: the decoder's last hidden state at each turn's last generated token
    (the state after the action was written). Float32, no grad."""
    rows, owners = _rows(trajectories)
    out: list[list[torch.Tensor | None]] = [[None] * len(t.turns) for t in trajectories]
    for start in range(0, len(rows), micro_batch_size):
        chunk = rows[start:start + micro_batch_size]
        batch = collate(chunk, pad_id, device)
        hidden = decoder_hidden_states(model, batch.input_ids, decoder_mask(batch)).float()
        for b, (row, owner) in enumerate(zip(chunk, owners[start:start + micro_batch_size])):
            for pos, k in enumerate(row.turn_ids):
                if k >= 0 and (pos + 1 == len(row.turn_ids) or row.turn_ids[pos + 1] != k):
                    out[owner][k] = hidden[b, pos]
    size = int(getattr(model.config, "hidden_size"))
    return [torch.stack([h if h is not None else torch.zeros(size, device=device) for h in hs]) if hs else torch.zeros(0, size)
            for hs in out]

"""From trajectories to the loss: per-turn values broadcast to tokens, the one-position target shift,
and observation tokens that never reach the loss (training/batching.py with training/losses.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from turngym.agents.tiny import tiny_char_model
from turngym.envs.types import TurnRecord
from turngym.training.batching import TrainRow, collate, make_rows, policy_token_logprobs
from turngym.training.losses import policy_loss
from turngym.training.trajectory import Trajectory, Turn

PAD = 0


def _turn(k: int, prompt: list[int], completion: list[int]) -> Turn:
    logprobs = [-0.1 * (k + 1) - 0.01 * i for i in range(len(completion))]
    return Turn(prompt, completion, logprobs, "x", "stop", TurnRecord(turn=k, seat=0, reward=0.0))


def _trajectory(context: str = "full") -> Trajectory:
    """Two turns: prompt [10, 11] → completion [20, 21]; prompt [12] → completion [22, 23, 24]."""
    turns = [_turn(0, [10, 11], [20, 21]), _turn(1, [12], [22, 23, 24])]
    return Trajectory("turngym/Vowels-v0", 0, "g", 0, 0, turns=turns, outcome=1.0, context=context)


# ----------------------------------------------------------------------------- make_rows


def test_make_rows_broadcasts_each_turns_advantage_and_clip_scale_to_its_tokens():
    (row,) = make_rows(_trajectory(), np.array([0.5, -2.0]), np.array([1.1, 0.9]), "g/seat0")
    assert row.token_ids == [10, 11, 20, 21, 12, 22, 23, 24]
    assert row.loss_mask == [0, 0, 1, 1, 0, 1, 1, 1]
    assert row.turn_ids == [-1, -1, 0, 0, -1, 1, 1, 1]
    assert row.advantages == [0.0, 0.0, 0.5, 0.5, 0.0, -2.0, -2.0, -2.0]
    assert row.clip_scale == pytest.approx([1.0, 1.0, 1.1, 1.1, 1.0, 0.9, 0.9, 0.9])
    assert row.old_logprobs == pytest.approx([0.0, 0.0, -0.1, -0.11, 0.0, -0.2, -0.21, -0.22])
    assert row.group == "g/seat0" and row.num_policy_tokens == 5


def test_make_rows_without_clip_scales_uses_one_everywhere():
    (row,) = make_rows(_trajectory(), np.array([0.5, -2.0]), None)
    assert row.clip_scale == [1.0] * 8


def test_make_rows_gives_each_turn_its_own_row_in_turn_context():
    first, second = make_rows(_trajectory("turn"), np.array([0.5, -2.0]), np.array([1.1, 0.9]))
    assert (first.token_ids, first.advantages) == ([10, 11, 20, 21], [0.0, 0.0, 0.5, 0.5])
    assert (second.token_ids, second.advantages) == ([12, 22, 23, 24], [0.0, -2.0, -2.0, -2.0])
    assert second.turn_ids == [-1, 1, 1, 1] and second.clip_scale == pytest.approx([1.0, 0.9, 0.9, 0.9])


def test_make_rows_refuses_a_wrong_number_of_turn_advantages():
    with pytest.raises(ValueError, match="2 turns but 3 turn advantages"):
        make_rows(_trajectory(), np.zeros(3), None)


# ----------------------------------------------------------------------------- collate


def _rows() -> list[TrainRow]:
    (long,) = make_rows(_trajectory(), np.array([0.5, -2.0]), np.array([1.1, 0.9]))
    short = TrainRow([13, 25, 26], [0, 1, 1], [-1, 0, 0], [0.0, -0.3, -0.4], [0.0, 3.0, 3.0], [1.0, 1.2, 1.2])
    return [long, short]


def test_collate_pads_and_shifts_every_target_column_by_one_position():
    rows = _rows()
    batch = collate(rows, pad_id=PAD)
    assert batch.input_ids.tolist() == [[10, 11, 20, 21, 12, 22, 23, 24], [13, 25, 26, PAD, PAD, PAD, PAD, PAD]]
    assert batch.attention_mask.tolist() == [[1] * 8, [1, 1, 1, 0, 0, 0, 0, 0]]
    assert batch.loss_mask.shape == (2, 7)
    for b, row in enumerate(rows):
        n = len(row.token_ids)
        # position t of every shifted column describes token t + 1, predicted from position t
        assert batch.loss_mask[b, : n - 1].tolist() == row.loss_mask[1:]
        assert batch.advantages[b, : n - 1].tolist() == pytest.approx(row.advantages[1:])
        assert batch.old_logprobs[b, : n - 1].tolist() == pytest.approx(row.old_logprobs[1:])
        assert batch.clip_scale[b, : n - 1].tolist() == pytest.approx(row.clip_scale[1:])
        assert batch.turn_ids[b, : n - 1].tolist() == row.turn_ids[1:]
    # padding is never a policy token, and carries neutral values
    assert batch.loss_mask[1, 2:].sum() == 0 and (batch.advantages[1, 2:] == 0).all()
    assert (batch.clip_scale[1, 2:] == 1).all() and (batch.turn_ids[1, 2:] == -1).all()


def test_collate_refuses_a_sequence_that_starts_with_a_policy_token():
    with pytest.raises(ValueError, match="starts with a policy token"):
        collate([TrainRow([20, 21], [1, 1], [0, 0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0])], pad_id=PAD)
    with pytest.raises(ValueError, match="at least one row"):
        collate([], pad_id=PAD)


# ----------------------------------------------------------------------------- observation tokens


def _loss_and_grads(model: torch.nn.Module, rows: list[TrainRow]) -> tuple[float, list[torch.Tensor], torch.Tensor]:
    model.zero_grad(set_to_none=True)
    batch = collate(rows, pad_id=PAD)
    logprobs = policy_token_logprobs(model, batch)
    logprobs.retain_grad()
    loss, _ = policy_loss(logprobs, batch.old_logprobs, batch.advantages, batch.loss_mask, clip_scale=batch.clip_scale)
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    return float(loss.detach()), grads, logprobs.grad * (1 - batch.loss_mask)


def test_observation_tokens_never_reach_the_loss_or_its_gradient():
    torch.manual_seed(0)
    model, _ = tiny_char_model(0)
    rows = _rows()
    loss, grads, off_policy_grad = _loss_and_grads(model, rows)
    assert loss != 0.0 and any(g.abs().sum() > 0 for g in grads)
    assert (off_policy_grad == 0).all()  # no gradient reaches a prompt, observation or padding position

    tampered = []
    for row in rows:
        off = [m == 0 for m in row.loss_mask]
        tampered.append(TrainRow(
            row.token_ids, row.loss_mask, row.turn_ids,
            [-50.0 if o else v for o, v in zip(off, row.old_logprobs)],
            [1e3 if o else v for o, v in zip(off, row.advantages)],
            [3.0 if o else v for o, v in zip(off, row.clip_scale)],
        ))
    loss2, grads2, _ = _loss_and_grads(model, tampered)
    assert loss2 == loss
    assert len(grads2) == len(grads) and all(torch.equal(a, b) for a, b in zip(grads, grads2))

    # a policy token's stored advantage does reach the loss
    moved = [TrainRow(r.token_ids, r.loss_mask, r.turn_ids, r.old_logprobs,
                      [a * 2 for a in r.advantages], r.clip_scale) for r in rows]
    assert _loss_and_grads(model, moved)[0] != loss

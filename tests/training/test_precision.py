"""Mixed precision in the trainer: bf16 rollouts on a cast copy, bf16-autocast learning, the
rollout/learner mismatch logged every step (``mismatch/*``) and corrected (truncated IS) when the
precisions differ. Real ``tiny-char`` runs of the ``ci-tiny`` preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from turngym.agents.base import SamplingParams
from turngym.agents.cast_copy import CastCopyPolicy
from turngym.agents.factory import build_rollout_policy, load_policy, sync_weights
from turngym.agents.precision import Precision
from turngym.training.batching import collate, policy_token_logprobs
from turngym.training.config import AlgoSection, load_preset
from turngym.training.precision import correction_flags, set_learner_precision
from turngym.training.trainer import train
from turngym.training.update import empty_row


def _run(tmp_path, *overrides: str) -> list[dict]:
    config = load_preset("ci-tiny", ["steps=1", f"out_dir={tmp_path}", "model.threads=1", *overrides])
    train(config, show_progress=False)
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_fp32_rollouts_and_learner_log_a_round_off_mismatch_and_no_correction(tmp_path):
    (row,) = _run(tmp_path)
    assert row["mismatch/tokens"] == row["policy_tokens"] > 0
    # the same weights and dtype: only summation order differs (KV-cached decoding vs one forward)
    assert row["mismatch/gap_mean"] < 1e-6 and row["mismatch/gap_max"] < 1e-5
    assert not any(k.startswith("offpolicy/") for k in row)  # TIS weights are 1: no row is corrected
    assert "time/weight_sync_s" not in row  # the rollouts play on the learner's own module


def test_matching_precisions_keep_every_tis_weight_at_one(tmp_path):
    (row,) = _run(tmp_path, "algo.behaviour_correction=always")  # forced: weights exp(Δ) with Δ round-off only
    assert row["offpolicy/rows"] > 0
    assert abs(row["offpolicy/weight_max"] - 1) < 1e-5 and abs(row["offpolicy/weight_mean"] - 1) < 1e-6
    assert row["offpolicy/truncated_share"] == 0.0
    assert correction_flags(AlgoSection(), [False] * 3, Precision("fp32", "fp32")) == [False] * 3
    assert correction_flags(AlgoSection(), [False] * 3, Precision("bf16", "bf16")) == [False] * 3


def test_bf16_rollouts_with_an_fp32_learner_log_and_correct_the_mismatch(tmp_path):
    (row,) = _run(tmp_path, "model.dtype=bf16")
    assert row["mismatch/gap_mean"] > 1e-5 and row["mismatch/gap_max"] > row["mismatch/gap_mean"]
    assert row["offpolicy/rows"] == row["train_sequences"]  # auto: every row corrected
    assert row["offpolicy/gap_mean"] == pytest.approx(row["mismatch/gap_mean"], rel=1e-6)
    assert row["offpolicy/weight_mean"] != 1.0
    assert row["time/weight_sync_s"] >= 0  # a cast copy, synced after the step
    assert torch.isfinite(torch.tensor(row["loss"]))


def test_bf16_autocast_learner_trains_a_step(tmp_path):
    (row,) = _run(tmp_path, "learner.precision=bf16-autocast")
    assert row["offpolicy/rows"] == row["train_sequences"]  # fp32 rollouts, autocast learner: they differ
    assert 1e-6 < row["mismatch/gap_mean"] < 0.1
    assert row["optim/updates"] == 1 and torch.isfinite(torch.tensor(row["grad_norm"]))


def test_the_cast_copy_plays_in_bf16_and_follows_the_learner():
    learner = load_policy("tiny-char", dtype="fp32")
    rollouts = build_rollout_policy("tiny-char", learner, "/nonexistent", dtype="bf16")
    assert isinstance(rollouts, CastCopyPolicy) and rollouts.model is not learner.model
    assert {p.dtype for p in rollouts.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in learner.model.parameters()} == {torch.float32}  # the learner is not cast
    assert build_rollout_policy("tiny-char", learner, "/nonexistent", dtype="fp32") is learner
    with torch.no_grad():
        for p in learner.model.parameters():
            p.add_(0.5)
    sync = sync_weights(rollouts, learner.model)
    assert sync >= 0
    for (name, mine), theirs in zip(rollouts.model.state_dict().items(), learner.model.state_dict().values()):
        assert torch.equal(mine, theirs.to(mine.dtype)), name
    (out,) = rollouts.generate([[1, 2, 3]], SamplingParams(max_new_tokens=4, greedy=True))
    assert 1 <= len(out.token_ids) <= 4 and out.logprobs.dtype == np.float32


def test_autocast_marks_change_the_learner_forward_only_by_bf16_round_off():
    policy = load_policy("tiny-char", dtype="fp32")
    model = policy.model
    row = empty_row(policy.pad_token_id)
    row.token_ids, row.loss_mask = [1, 5, 7, 9, 11, 3], [0, 1, 1, 1, 1, 1]
    n = len(row.token_ids)
    row.turn_ids, row.old_logprobs, row.advantages, row.clip_scale = [0] * n, [0.0] * n, [0.0] * n, [1.0] * n
    batch = collate([row], policy.pad_token_id)
    with torch.no_grad():
        exact = policy_token_logprobs(model, batch)
        set_learner_precision(model, "bf16-autocast")
        approx = policy_token_logprobs(model, batch)
    assert not torch.equal(exact, approx)
    assert (exact - approx).abs().max() < 0.05
    assert approx.dtype == torch.float32
    with pytest.raises(ValueError, match="bf16-autocast"):
        set_learner_precision(model, "fp16")


def test_a_pure_bf16_learner_plays_its_own_bf16_rollouts_without_a_copy_or_correction(tmp_path):
    (row,) = _run(tmp_path, "model.dtype=bf16", "learner.precision=bf16")
    assert "time/weight_sync_s" not in row and not any(k.startswith("offpolicy/") for k in row)
    assert row["mismatch/tokens"] > 0 and row["mismatch/gap_mean"] < 0.05  # bf16 round-off, decode vs one forward


def test_behaviour_correction_off_survives_yaml_reading_it_as_a_bool():
    # YAML 1.1 reads a bare `off` as False: `--set algo.behaviour_correction=off` (the documented
    # way to switch TIS off) must mean "off", not fail validation.
    off = load_preset("ci-tiny", ["algo.behaviour_correction=off"])
    assert off.algo.behaviour_correction == "off"
    assert load_preset("ci-tiny", ["algo.behaviour_correction=on"]).algo.behaviour_correction == "always"
    with pytest.raises(ValueError, match="behaviour_correction"):
        load_preset("ci-tiny", ["algo.behaviour_correction=sometimes"])

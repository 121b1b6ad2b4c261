"""The learner update: mini-batches × epochs, clipping that acts, target-KL stop, entropy and its bonus."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from turngym.agents.tiny import tiny_char_model
from turngym.training.batching import TrainRow, collate, policy_token_logprobs, policy_token_stats
from turngym.training.config import AlgoSection, OptimSection, load_preset
from turngym.training.losses import policy_loss
from turngym.training.trainer import train
from turngym.training.update import next_entropy_coef, optimize, split_mini_batches


def _rows(groups: int = 4, per_group: int = 2, seed: int = 0) -> tuple[list[TrainRow], int]:
    """Rollout-like rows: a prompt, then policy tokens with the model's own log-probs as the old policy."""
    model, tokenizer = tiny_char_model(0)
    rng = np.random.default_rng(seed)
    vocab = len(tokenizer)
    rows = []
    for g in range(groups):
        for k in range(per_group):
            prompt = rng.integers(3, vocab, size=int(rng.integers(4, 9))).tolist()
            reply = rng.integers(3, vocab, size=int(rng.integers(2, 6))).tolist()
            ids = prompt + reply
            mask = [0] * len(prompt) + [1] * len(reply)
            turns = [-1] * len(prompt) + [0] * len(reply)
            adv = float(rng.normal()) * 2.0
            rows.append(TrainRow(ids, mask, turns, [0.0] * len(ids), [adv if m else 0.0 for m in mask],
                                 [1.0] * len(ids), group=f"g{g}"))
    # the "rollout" log-probs: the model's own, so the first update is exactly on-policy
    batch = collate(rows, tokenizer.pad_token_id)
    with torch.no_grad():
        lp = policy_token_logprobs(model, batch)
    for i, r in enumerate(rows):
        shifted = lp[i, : len(r.token_ids) - 1].tolist()
        r.old_logprobs = [0.0] + shifted
    return rows, tokenizer.pad_token_id


def _model_and_optimizer(lr: float):
    model, _ = tiny_char_model(0)
    return model, torch.optim.AdamW(model.parameters(), lr=lr)


def _legacy_update(model, optimizer, rows, algo: AlgoSection, optim: OptimSection, pad_id: int) -> None:
    """The learner before mini-batches existed: one step over all rows (kept here as the oracle)."""
    total = sum(r.num_policy_tokens for r in rows)
    max_len = max(r.num_policy_tokens for r in rows)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    ordered = sorted(rows, key=lambda r: len(r.token_ids))
    for start in range(0, len(ordered), optim.micro_batch_size):
        batch = collate(ordered[start : start + optim.micro_batch_size], pad_id)
        logprobs = policy_token_logprobs(model, batch, optim.score_chunk_size)
        loss, _ = policy_loss(logprobs, batch.old_logprobs, batch.advantages, batch.loss_mask,
                              clip_low=algo.clip_low, clip_high=algo.clip_high, agg=algo.agg, max_len=max_len,
                              turn_ids=batch.turn_ids, clip_scale=batch.clip_scale, denominator=total)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.eval()


def test_one_by_one_is_the_single_step_update_bit_for_bit():
    rows, pad = _rows()
    algo, optim = AlgoSection(), OptimSection(lr=1e-2, micro_batch_size=3)
    new_model, new_opt = _model_and_optimizer(1e-2)
    old_model, old_opt = _model_and_optimizer(1e-2)
    stats = optimize(new_model, new_opt, rows, algo, optim, pad, rng=np.random.default_rng(0))
    _legacy_update(old_model, old_opt, rows, algo, optim, pad)
    assert stats.updates == 1
    for (name, a), b in zip(new_model.state_dict().items(), old_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_split_keeps_groups_whole_and_sizes_even():
    rows, _ = _rows(groups=5, per_group=3)
    parts = split_mini_batches(rows, 2, "group", np.random.default_rng(1))
    assert sorted(len(p) for p in parts) == [6, 9]
    for part in parts:
        for g in {r.group for r in part}:
            assert sum(r.group == g for r in part) == 3  # never split
    assert sorted(id(r) for p in parts for r in p) == sorted(id(r) for r in rows)
    assert [len(p) for p in split_mini_batches(rows, 4, "sequence", None)] == [4, 4, 4, 3]
    assert len(split_mini_batches(rows, 9, "group", None)) == 5  # fewer groups than mini-batches
    with pytest.raises(ValueError, match="'group' or 'sequence', got 'turn'"):
        split_mini_batches(rows, 2, "turn", None)


def test_second_mini_batch_is_off_policy_and_its_loss_and_clip_mask_are_the_ppo_ones():
    """Update 1 moves the weights; update 2's reported loss and clip fraction equal the PPO-clip
    formula evaluated by hand on the moved model (ratio from the rollout's log-probs)."""
    rows, pad = _rows(groups=4, per_group=2)
    algo = AlgoSection(clip_low=0.2, clip_high=0.28)
    optim = OptimSection(lr=0.05, mini_batches=2, micro_batch_size=16)
    model, opt = _model_and_optimizer(0.05)
    stats = optimize(model, opt, rows, algo, optim, pad, rng=np.random.default_rng(7))
    assert stats.updates == 2

    # replay update 1 alone on a copy, then evaluate mini-batch 2 by hand
    first, second = split_mini_batches(rows, 2, "group", np.random.default_rng(7))
    replay, replay_opt = _model_and_optimizer(0.05)
    optimize(replay, replay_opt, first, algo, OptimSection(lr=0.05, micro_batch_size=16), pad)
    batch = collate(sorted(second, key=lambda r: len(r.token_ids)), pad)
    with torch.no_grad():
        logp = policy_token_logprobs(replay, batch)
    mask = batch.loss_mask.bool()
    ratio = torch.exp(logp - batch.old_logprobs)[mask]
    adv = batch.advantages[mask]
    assert not torch.allclose(ratio, torch.ones_like(ratio), atol=1e-3)  # off-policy now
    clipped = ratio.clamp(1 - 0.2, 1 + 0.28)
    expected_loss = torch.maximum(-adv * ratio, -adv * clipped).mean()
    expected_clip = ((adv > 0) & (ratio > 1.28) | (adv < 0) & (ratio < 0.8)).float().mean()
    assert expected_clip > 0, "the constructed batch must push some ratio past the clip range"
    # the mean over updates: update 1 had ratio 1 (on-policy) so no clipping there
    assert stats.per_update[0]["clip_frac"] == 0.0
    assert stats.per_update[1]["loss"] == pytest.approx(float(expected_loss), rel=1e-5)
    assert stats.per_update[1]["clip_frac"] == pytest.approx(float(expected_clip), rel=1e-6)
    assert stats.to_metrics()["clip_frac"] == pytest.approx(float(expected_clip) / 2, rel=1e-6)
    assert stats.per_update[1]["approx_kl"] > 0


def test_adaptive_turn_clip_bounds_are_applied_per_token():
    """Token ratio 1.3 with A > 0: clipped under scale 1 (1 + 0.28) but not under scale 1.5 (1 + 0.42)."""
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.3, 1.3, 0.75]])).requires_grad_()
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    mask = torch.ones(1, 3)
    scale = torch.tensor([[1.0, 1.5, 1.5]])  # token 3: A < 0, ratio 0.75 vs 1 - 1.5*0.2 = 0.7 → inside
    loss, m = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, clip_scale=scale)
    loss.backward()
    grad = logp.grad[0]
    assert grad[0] == 0.0  # clipped at 1.28: no gradient
    assert grad[1] == pytest.approx(-1.3 / 3, rel=1e-5)  # inside 1.42: d(-A·r)/dlogp = -A·r / 3 tokens
    assert grad[2] == pytest.approx(0.75 / 3, rel=1e-5)  # inside 0.7: -A·r / 3 with A = -1
    assert m["clip_frac"] == pytest.approx(1 / 3)
    expected = (-1.28 - 1.3 + 0.75) / 3
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)


def test_target_kl_stops_the_remaining_updates():
    rows, pad = _rows(groups=4, per_group=2)
    optim = OptimSection(lr=0.05, mini_batches=4, epochs=2, target_kl=1e-6, micro_batch_size=16)
    model, opt = _model_and_optimizer(0.05)
    stats = optimize(model, opt, rows, AlgoSection(), optim, pad, rng=np.random.default_rng(0))
    assert stats.early_stopped and stats.updates == 1  # update 1 is on-policy; update 2 has drifted
    free = optimize(*_model_and_optimizer(0.05), rows, AlgoSection(),
                    OptimSection(lr=0.05, mini_batches=4, epochs=2, micro_batch_size=16), pad,
                    rng=np.random.default_rng(0))
    assert not free.early_stopped and free.updates == 8


def test_entropy_is_the_full_distribution_entropy_of_each_policy_token():
    rows, pad = _rows(groups=2, per_group=2)
    model, _ = tiny_char_model(0)
    batch = collate(rows, pad)
    with torch.no_grad():
        logp, entropy = policy_token_stats(model, batch, chunk_size=3)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].double()
    probs = torch.softmax(logits, dim=-1)
    by_hand = -(probs * torch.log(probs)).sum(-1)
    mask = batch.loss_mask.bool()
    assert torch.allclose(entropy[mask].double(), by_hand[mask], atol=1e-4)
    assert (entropy[~mask] == 0).all()
    target_lp = torch.log(probs.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1))
    assert torch.allclose(logp[mask].double(), target_lp[mask], atol=1e-4)
    stats = optimize(model, torch.optim.AdamW(model.parameters(), lr=1e-9), rows, AlgoSection(), OptimSection(), pad)
    assert stats.entropy == pytest.approx(float(by_hand[mask].mean()), rel=1e-4)


def test_entropy_bonus_subtracts_coef_times_token_mean_entropy_and_raises_entropy():
    rows, pad = _rows(groups=2, per_group=2)
    plain = optimize(*_model_and_optimizer(0.0), rows, AlgoSection(), OptimSection(), pad)
    bonus = optimize(*_model_and_optimizer(0.0), rows, AlgoSection(), OptimSection(), pad, entropy_coef=0.3)
    assert bonus.per_update[0]["loss"] == pytest.approx(plain.per_update[0]["loss"] - 0.3 * plain.entropy, rel=1e-5)
    # a pure entropy objective (zero advantages) must raise the entropy
    flat = [TrainRow(r.token_ids, r.loss_mask, r.turn_ids, r.old_logprobs, [0.0] * len(r.token_ids),
                     r.clip_scale, r.group) for r in rows]
    model, _ = tiny_char_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # plain gradient steps: the direction is what is tested
    before = optimize(model, opt, flat, AlgoSection(), OptimSection(), pad, entropy_coef=1.0).entropy
    after = optimize(model, opt, flat, AlgoSection(), OptimSection(), pad, entropy_coef=1.0).entropy
    assert after > before


def test_target_entropy_controller_moves_the_coefficient_toward_the_target():
    algo = AlgoSection(target_entropy=1.0, entropy_coef_lr=0.1, entropy_coef_max=0.05)
    assert next_entropy_coef(0.01, 0.5, algo) == pytest.approx(0.05)  # below target: up, capped
    assert next_entropy_coef(0.01, 1.05, algo) == pytest.approx(0.005)  # above target: down
    assert next_entropy_coef(0.01, 3.0, algo) == 0.0  # never negative
    assert next_entropy_coef(0.01, math.nan, algo) == 0.01  # nothing measured
    assert next_entropy_coef(0.02, 0.1, AlgoSection()) == 0.02  # no target: fixed


def test_multi_update_training_logs_moving_ratios_and_resumes_exactly(tmp_path):
    sets = ["steps=4", "checkpoint_every=2", "optim.mini_batches=2", "optim.epochs=2",
            "algo.entropy_coef=0.01", "algo.target_entropy=2.0", "rollout.tasks_per_step=2", "rollout.group_size=4"]
    reference = train(load_preset("ci-tiny", sets + [f"out_dir={tmp_path / 'ref'}"]), show_progress=False)
    assert reference["steps"] == 4
    rows = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["optim/updates"] == 4 for r in rows if r["policy_tokens"] > 0)
    assert any(r["clip_frac"] > 0 or r["ratio_max"] != pytest.approx(1.0, abs=1e-6) for r in rows)
    assert all("entropy" in r and "groups/dropped_share" in r for r in rows)

    half = tmp_path / "half"
    train(load_preset("ci-tiny", sets[1:] + ["steps=2", f"out_dir={half}"]), show_progress=False)
    train(load_preset("ci-tiny", sets + [f"out_dir={half}"]), resume=True, show_progress=False)
    resumed = [json.loads(x) for x in (half / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(rows, resumed):
        for key in ("loss", "grad_norm", "clip_frac", "entropy", "entropy_coef", "reward/mean_outcome"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["step"], key)


def test_a_run_whose_groups_are_all_identical_warns_of_collapse(tmp_path):
    """Greedy rollouts make every member of a group play the same episode: no group has variance."""
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=4", "rollout.temperature=0",
                                     "rollout.tasks_per_step=2", "rollout.group_size=3"])
    summary = train(config, show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["groups/dropped_share"] for r in rows] == [1.0] * 4
    assert [("warning" in r) for r in rows] == [False, False, True, True]
    assert summary["no_learning_signal"]["since_step"] == 1
    assert "no learning signal since step 1" in summary["no_learning_signal"]["message"]


def test_reference_copy_is_unchanged_by_updates():
    """The KL anchor is the initial policy: updates never touch the reference copy."""
    rows, pad = _rows(groups=2, per_group=2)
    model, opt = _model_and_optimizer(0.05)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    before = [p.clone() for p in reference.parameters()]
    stats = optimize(model, opt, rows, AlgoSection(kl_coef=0.1), OptimSection(lr=0.05, epochs=2), pad, reference)
    assert stats.updates == 2 and stats.per_update[1]["kl"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, reference.parameters()))


def _unscored(rows: list[TrainRow]) -> list[TrainRow]:
    """The rows of groups dropped for zero variance: zero advantages, out of the policy-gradient term."""
    return [TrainRow(r.token_ids, r.loss_mask, r.turn_ids, r.old_logprobs, [0.0] * len(r.token_ids),
                     r.clip_scale, r.group + "-dropped", scored=False) for r in rows]


def test_dropped_groups_enter_only_the_entropy_term():
    scored, pad = _rows(groups=2, per_group=2, seed=0)
    dropped = _unscored(_rows(groups=2, per_group=2, seed=1)[0])
    alone, alone_opt = _model_and_optimizer(1e-2)
    mixed, mixed_opt = _model_and_optimizer(1e-2)
    a = optimize(alone, alone_opt, scored, AlgoSection(), OptimSection(micro_batch_size=16), pad)
    b = optimize(mixed, mixed_opt, scored + dropped, AlgoSection(), OptimSection(micro_batch_size=16), pad)
    assert a.policy_tokens == b.policy_tokens == sum(r.num_policy_tokens for r in scored)
    # micro-batches holding only dropped rows, with and without a bonus (no gradient of their own)
    for coef in (0.0, 0.05):
        small = optimize(*_model_and_optimizer(1e-2), scored + dropped, AlgoSection(),
                         OptimSection(micro_batch_size=1), pad, entropy_coef=coef)
        assert small.updates == 1 and math.isfinite(small.entropy)
    assert b.per_update[0]["loss"] == pytest.approx(a.per_update[0]["loss"], rel=1e-5, abs=1e-7)
    for x, y in zip(alone.parameters(), mixed.parameters()):  # same gradient, up to padding round-off
        assert torch.allclose(x, y, atol=1e-6)


def test_a_batch_of_dropped_groups_still_takes_the_entropy_step_and_is_measured():
    dropped, pad = _rows(groups=2, per_group=2)
    dropped = _unscored(dropped)
    model, _ = tiny_char_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = optimize(model, opt, dropped, AlgoSection(), OptimSection(), pad, entropy_coef=1.0)
    assert first.updates == 1 and first.policy_tokens == 0
    second = optimize(model, opt, dropped, AlgoSection(), OptimSection(), pad, entropy_coef=1.0)
    assert second.entropy > first.entropy  # the bonus acts although no group carried a reward signal
    before = [p.clone() for p in model.parameters()]
    idle = optimize(model, opt, dropped, AlgoSection(), OptimSection(), pad)  # no bonus: measured, no step
    assert idle.updates == 0 and idle.entropy == pytest.approx(
        optimize(model, opt, dropped, AlgoSection(), OptimSection(), pad).entropy)
    assert math.isfinite(idle.entropy)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))

"""Policy and KL losses (algorithms.md §1.5, §7.2–§7.5, §8.4, §8.6)."""

from __future__ import annotations

import math

import pytest
import torch

from turngym.training.losses import aggregate_loss, kl_loss, kl_penalty, policy_loss

AGGS = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


def one_token(ratio: float, adv: float, **kw):
    """Loss and d loss / d logp for a single policy token with the given ratio and advantage."""
    old = torch.tensor([[-1.0]])
    logp = (old + math.log(ratio)).clone().requires_grad_(True)
    loss, metrics = policy_loss(logp, old, torch.tensor([[adv]]), torch.ones(1, 1), **kw)
    loss.backward()
    return loss.item(), logp.grad.item(), metrics


def random_batch(b=3, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    logp = old + 0.3 * torch.randn(b, t, generator=g, dtype=torch.float64)
    adv = torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = torch.rand(b, t, generator=g) < 0.6
    mask[0, 0] = True
    turn_ids = torch.randint(0, 3, (b, t), generator=g).sort(dim=1).values
    clip_scale = 0.7 + 0.6 * torch.rand(b, t, generator=g, dtype=torch.float64)
    return logp, old, adv, mask, turn_ids, clip_scale


# ============================================================================ PPO clip-higher


def test_token_loss_matches_the_ppo_formula():
    logp, old, adv, mask, _, _ = random_batch()
    loss, _ = policy_loss(logp, old, adv, mask)
    r = torch.exp(logp - old)
    tok = torch.maximum(-adv * r, -adv * r.clamp(0.8, 1.28))
    torch.testing.assert_close(loss, (tok * mask).sum() / mask.sum())


def test_clip_higher_positive_advantage_above_1_28_gets_no_gradient():
    _, grad, m = one_token(1.30, adv=1.0)
    assert grad == 0.0 and m["clip_frac"] == 1.0 and m["clip_frac_high"] == 1.0
    _, grad, m = one_token(1.25, adv=1.0)  # inside the asymmetric range: still learns
    assert grad == pytest.approx(-1.25) and m["clip_frac"] == 0.0
    _, grad, _ = one_token(1.25, adv=1.0, clip_high=0.2)  # a symmetric 0.2 clip would stop it
    assert grad == 0.0


def test_clip_higher_negative_advantage_below_0_8_gets_no_gradient():
    _, grad, m = one_token(0.75, adv=-1.0)
    assert grad == 0.0 and m["clip_frac_low"] == 1.0
    _, grad, _ = one_token(0.85, adv=-1.0)
    assert grad == pytest.approx(0.85)


def test_clip_is_one_sided_per_advantage_sign():
    # A > 0 with a small ratio and A < 0 with a large ratio are never clipped (pessimistic bound)
    _, grad, m = one_token(0.5, adv=1.0)
    assert grad == pytest.approx(-0.5) and m["clip_frac"] == 0.0
    _, grad, _ = one_token(1.5, adv=-1.0)
    assert grad == pytest.approx(1.5)


def test_clip_scale_widens_or_narrows_the_range():
    _, grad, _ = one_token(1.30, adv=1.0, clip_scale=torch.tensor([[1.3]]))  # 1 + 1.3·0.28 = 1.364
    assert grad == pytest.approx(-1.30)
    _, grad, _ = one_token(1.20, adv=1.0, clip_scale=torch.tensor([[0.7]]))  # 1 + 0.7·0.28 = 1.196
    assert grad == 0.0


# ============================================================================ aggregation


def test_seq_mean_token_mean_is_the_mean_of_sequence_means_skipping_empty_rows():
    values = torch.tensor([[1.0, 3.0, 9.0], [4.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    got = aggregate_loss(values, mask, "seq-mean-token-mean")
    assert got.item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate_loss(values, mask, "token-mean").item() == pytest.approx(8.0 / 3)


def test_dr_grpo_aggregation_divides_by_a_constant():
    values = torch.tensor([[1.0, 3.0, 9.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    got = aggregate_loss(values, mask, "seq-mean-token-sum-norm", max_len=10)
    assert got.item() == pytest.approx((1 + 3 + 4) / (2 * 10))
    assert aggregate_loss(values, mask, "seq-mean-token-sum-norm").item() == pytest.approx(8 / 6)


@pytest.mark.parametrize("agg", AGGS)
def test_dr_grpo_token_weight_does_not_depend_on_lengths(agg):
    """Dr.GRPO: a token's gradient weight is 1/(B·max_len) whatever the sequence lengths."""
    grads = []
    for other_len in (1, 6):
        old = torch.zeros(2, 8)
        logp = old.clone().requires_grad_(True)
        mask = torch.zeros(2, 8, dtype=torch.bool)
        mask[0, :2] = True
        mask[1, :other_len] = True
        loss, _ = policy_loss(logp, old, torch.ones(2, 8), mask, agg=agg, max_len=16)
        loss.backward()
        grads.append(logp.grad[0, 0].item())
    if agg == "seq-mean-token-sum-norm":
        assert grads[0] == grads[1] == pytest.approx(-1 / (2 * 16))
    elif agg == "token-mean":
        assert grads[0] != grads[1]  # 1/3 vs 1/8: depends on the other sequence's length
    else:
        assert grads[0] == grads[1] == pytest.approx(-1 / (2 * 2))  # depends on its own length


def test_token_mean_denominator_makes_micro_batches_add_up():
    logp, old, adv, mask, _, _ = random_batch(b=4, t=6, seed=3)
    full, _ = policy_loss(logp, old, adv, mask)
    total = float(mask.sum())
    parts = [
        policy_loss(logp[s], old[s], adv[s], mask[s], denominator=total)[0]
        for s in (slice(0, 1), slice(1, 4))
    ]
    torch.testing.assert_close(sum(parts), full)


def test_aggregate_rejects_unknown_mode_and_bad_denominator():
    with pytest.raises(ValueError, match="'seq-sum'"):
        aggregate_loss(torch.zeros(1, 2), torch.ones(1, 2), "seq-sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="denominator must be positive, got 0"):
        aggregate_loss(torch.zeros(1, 2), torch.ones(1, 2), denominator=0)


def test_empty_mask_gives_zero_loss_and_zero_gradient():
    logp = torch.zeros(2, 3, requires_grad=True)
    for agg in AGGS:
        loss, m = policy_loss(logp, torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3), agg=agg)
        assert loss.item() == 0.0 and m["num_tokens"] == 0.0
        loss.backward()
        assert (logp.grad == 0).all()


# ============================================================================ masked tokens


@pytest.mark.parametrize("turn_level", [False, True])
@pytest.mark.parametrize("agg", AGGS)
def test_masked_tokens_do_not_affect_loss_or_gradients(agg, turn_level):
    logp, old, adv, mask, turn_ids, clip_scale = random_batch(seed=1)
    kw = {"agg": agg, "turn_level_ratio": turn_level}
    if turn_level:
        kw["eps_turn"] = (0.2, 0.28)

    def loss_and_grad(lp, o, a, ti, cs):
        lp = lp.clone().requires_grad_(True)
        loss, metrics = policy_loss(lp, o, a, mask, **{**kw, "turn_ids": ti, "clip_scale": cs})
        loss.backward()
        return loss.detach(), lp.grad, metrics

    base = loss_and_grad(logp, old, adv, turn_ids, clip_scale)
    g = torch.Generator().manual_seed(9)
    noise = lambda x: torch.where(mask, x, 100 * torch.randn(x.shape, generator=g, dtype=x.dtype))
    garbage_ids = torch.where(mask, turn_ids, torch.randint(-5, 50, turn_ids.shape, generator=g))
    lp2 = noise(logp)
    lp2[~mask] = torch.where(
        torch.rand(int((~mask).sum()), generator=g) < 0.3, math.nan, lp2[~mask]
    )
    other = loss_and_grad(lp2, noise(old), noise(adv), garbage_ids, noise(clip_scale))
    torch.testing.assert_close(other[0], base[0])
    torch.testing.assert_close(other[1], base[1])
    assert (base[1][~mask] == 0).all()
    assert other[2] == pytest.approx(base[2])


def test_edge_observation_tokens_always_loss_masked():
    """§8.6 'Observation tokens': env/observation tokens between turns never reach the loss."""
    # layout: [turn 0 (3 tok)] [observation (2 tok)] [turn 1 (2 tok)] [padding]
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 0]], dtype=torch.bool)
    turn_ids = torch.tensor([[0, 0, 0, -1, -1, 1, 1, -1]])
    old = torch.full((1, 8), -1.0)
    adv = torch.tensor([[0.5, 0.5, 0.5, 0.0, 0.0, -0.2, -0.2, 0.0]])
    results = []
    for obs_value in (-1.0, 123.0, math.inf):
        logp = old.clone()
        logp[0, 3:5] = obs_value  # whatever the model assigns to observation text
        logp[0, 1] = -0.9
        logp.requires_grad_(True)
        loss, _ = policy_loss(logp, old, adv, mask, turn_ids=turn_ids, turn_level_ratio=True)
        loss.backward()
        assert torch.isfinite(loss) and (logp.grad[0, 3:5] == 0).all()
        results.append((loss.item(), logp.grad.clone()))
    assert results[0][0] == results[1][0] == results[2][0]
    torch.testing.assert_close(results[0][1], results[2][1])


# ============================================================================ A²TGPO turn-level ratio


def test_turn_level_ratio_value_is_the_turn_mean_and_gradient_is_per_token():
    old = torch.zeros(1, 5)
    logp = torch.tensor([[0.1, 0.3, -0.2, 0.0, 0.4]], requires_grad=True)
    turn_ids = torch.tensor([[0, 0, 1, 1, 1]])
    adv = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]])  # equal advantages: turns must NOT merge
    mask = torch.ones(1, 5)
    loss, m = policy_loss(
        logp, old, adv, mask, turn_ids=turn_ids, turn_level_ratio=True, eps_turn=(0.9, 0.9)
    )
    rho = torch.tensor([math.exp(0.2)] * 2 + [math.exp(0.2 / 3)] * 3)
    assert loss.item() == pytest.approx(-(rho.sum() / 5).item())
    assert m["ratio_mean"] == pytest.approx(rho.mean().item())
    loss.backward()
    torch.testing.assert_close(logp.grad[0], -rho / 5)


def test_turn_level_ratio_uses_gspo_scale_clip_by_default():
    old = torch.zeros(1, 2)
    logp = torch.tensor([[0.01, 0.01]], requires_grad=True)  # turn ratio e^0.01 ≈ 1.01 > 1.004
    loss, m = policy_loss(
        logp,
        old,
        torch.ones(1, 2),
        torch.ones(1, 2),
        turn_ids=torch.zeros(1, 2, dtype=torch.long),
        turn_level_ratio=True,
    )
    loss.backward()
    assert (logp.grad == 0).all() and m["clip_frac"] == 1.0
    # with the adaptive scale c = 1.3 the high edge is 1 + 1.3·4e-3 = 1.0052: still clipped;
    # a ratio of 1.005 passes with c = 1.3 but not with c = 1
    logp2 = torch.tensor([[0.00499, 0.00499]], requires_grad=True)
    for c, clipped in ((1.0, True), (1.3, False)):
        lp = logp2.detach().clone().requires_grad_(True)
        loss, _ = policy_loss(
            lp,
            old,
            torch.ones(1, 2),
            torch.ones(1, 2),
            turn_ids=torch.zeros(1, 2, dtype=torch.long),
            turn_level_ratio=True,
            clip_scale=torch.full((1, 2), c),
        )
        loss.backward()
        assert bool((lp.grad == 0).all()) is clipped


def test_turn_level_log_ratio_is_clamped_at_10():
    old = torch.zeros(1, 1)
    logp = torch.tensor([[12.0]], requires_grad=True)
    _, m = policy_loss(
        logp,
        old,
        torch.tensor([[-1.0]]),
        torch.ones(1, 1),
        turn_ids=torch.zeros(1, 1, dtype=torch.long),
        turn_level_ratio=True,
    )
    assert m["ratio_max"] == pytest.approx(math.exp(10.0), rel=1e-6)


# ============================================================================ metrics and errors


def test_metrics_at_ratio_one():
    logp, _, adv, mask, _, _ = random_batch()
    _, m = policy_loss(logp, logp.detach(), adv, mask)
    assert m["approx_kl"] == 0.0 and m["clip_frac"] == 0.0
    assert m["ratio_mean"] == pytest.approx(1.0) and m["num_tokens"] == float(mask.sum())


def test_policy_loss_errors_quote_bad_inputs():
    x = torch.zeros(2, 4)
    with pytest.raises(
        ValueError, match=r"old_logprobs has shape \(2, 3\) but logprobs has shape \(2, 4\)"
    ):
        policy_loss(x, torch.zeros(2, 3), x, x)
    with pytest.raises(ValueError, match=r"must be \[B, T\], got shape \(4,\)"):
        policy_loss(torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="needs turn_ids"):
        policy_loss(x, x, x, x, turn_level_ratio=True)
    with pytest.raises(ValueError, match="integer tensor"):
        policy_loss(x, x, x, x, turn_ids=torch.zeros(2, 4), turn_level_ratio=True)
    with pytest.raises(ValueError, match="found -1"):
        policy_loss(
            x,
            x,
            x,
            torch.ones(2, 4),
            turn_ids=-torch.ones(2, 4, dtype=torch.long),
            turn_level_ratio=True,
        )
    with pytest.raises(ValueError, match="'tok-mean'"):
        policy_loss(x, x, x, x, agg="tok-mean")  # type: ignore[arg-type]


def test_bfloat16_inputs_are_computed_in_float32():
    logp, old, adv, mask, _, _ = random_batch()
    loss16, _ = policy_loss(logp.bfloat16(), old.bfloat16(), adv.bfloat16(), mask)
    assert loss16.dtype == torch.float32


# ============================================================================ KL


def test_k3_is_nonnegative_and_zero_when_equal():
    g = torch.Generator().manual_seed(0)
    a = -torch.rand(64, 32, generator=g) * 5
    b = -torch.rand(64, 32, generator=g) * 5
    assert (kl_penalty(a, b, "k3") >= 0).all()
    assert (kl_penalty(a, a, "k3") == 0).all()
    assert (kl_penalty(a, a, "k1") == 0).all()


def test_kl_estimators_values_and_clamps():
    logp, ref = torch.tensor([[-1.0, -30.0]]), torch.tensor([[-2.0, 0.0]])
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), torch.tensor([[1.0, -30.0]]))
    torch.testing.assert_close(kl_penalty(logp, ref, "k2"), torch.tensor([[0.5, 450.0]]))
    k3 = kl_penalty(logp, ref, "k3")
    assert k3[0, 0].item() == pytest.approx(math.exp(-1) + 1 - 1)
    assert k3[0, 1].item() == 10.0  # log-ratio clamped to 20, result clamped to 10
    with pytest.raises(ValueError, match="'k4'"):
        kl_penalty(logp, ref, "k4")  # type: ignore[arg-type]


def test_kl_loss_is_masked_and_its_gradient_ignores_masked_tokens():
    logp, _, _, mask, _, _ = random_batch(seed=4)
    ref = logp.detach() - 0.1
    lp = logp.clone().requires_grad_(True)
    loss = kl_loss(lp, ref, mask, kind="k3")
    loss.backward()
    want = (kl_penalty(logp, ref, "k3") * mask).sum() / mask.sum()
    torch.testing.assert_close(loss.detach(), want)
    assert (lp.grad[~mask] == 0).all()
    garbage = torch.where(mask, logp, torch.full_like(logp, math.nan))
    torch.testing.assert_close(kl_loss(garbage, ref, mask), loss.detach())

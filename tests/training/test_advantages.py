"""Advantage estimators (algorithms.md §1, §3, §4.3, §5.1, §7, §8.3, §8.6).

Every vectorised estimator has a plain-Python LOOP twin below, written straight from the
formulas, and the two are compared on random ragged batches.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest

import turngym
from turngym.envs.types import TurnRecord
from turngym.training import advantages as adv_mod
from turngym.training.advantages import (
    ESTIMATORS,
    AdvantageConfig,
    Advantages,
    RAEState,
    SingletonGroupWarning,
    compute,
    dynamic_sampling_mask,
    gate_deltas,
    get_estimator,
    information_gain,
    register_estimator,
)
from turngym.training.config import AlgoSection
from turngym.training.rewards import RewardBatch
from turngym.training.trajectory import Trajectory, Turn

QUIET = AdvantageConfig(warn_singleton_groups=False)
EPS = 1e-6


def run(name: str, inp: RewardBatch, cfg: AdvantageConfig = QUIET, state: RAEState | None = None) -> Advantages:
    return get_estimator(name)(inp, cfg, state)


def make_input(outcomes, dense, groups=None, **kw) -> RewardBatch:
    groups = ["g"] * len(outcomes) if groups is None else groups
    return RewardBatch(
        group_ids=groups,
        outcomes=np.asarray(outcomes, float),
        turn_rewards=[np.asarray(d, float) for d in dense],
        **kw,
    )


def assert_ragged_close(a, b, rtol=1e-9, atol=1e-9):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"rollout {i}")


# ============================================================================ LOOP twins


def _finite(x: float) -> bool:
    return math.isfinite(x)


def loop_outcome_adv(values, group_ids, failed, norm_by_std, eps=EPS):
    members = defaultdict(list)
    for i, g in enumerate(group_ids):
        if not failed[i]:
            members[g].append(i)
    out = [0.0] * len(values)
    for idx in members.values():
        vals = [values[i] for i in idx]
        if len(idx) == 1:
            out[idx[0]] = vals[0]
            continue
        if max(vals) == min(vals):
            continue
        mu = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
        for i in idx:
            out[i] = (values[i] - mu) / (sd + eps) if norm_by_std else values[i] - mu
    return out


def loop_return(inp, i, dense_in_return=True):
    r = inp.outcomes[i]
    if dense_in_return:
        r += sum(v for v in inp.turn_rewards[i] if _finite(v))
    return r


def loop_grpo(inp, norm_by_std):
    n = inp.n
    rets = [loop_return(inp, i) if not inp.failed[i] else 0.0 for i in range(n)]
    a = loop_outcome_adv(rets, inp.group_ids, inp.failed, norm_by_std)
    return [[0.0 if inp.failed[i] else a[i]] * len(inp.turn_rewards[i]) for i in range(n)]


def loop_zscore_cells(cells, norm_by_std, eps=EPS, floor=1e-8):
    """cells: key -> list of (position, value); singleton / all-equal -> 0."""
    z = {}
    for members in cells.values():
        vals = [v for _, v in members]
        if len(vals) <= 1 or max(vals) == min(vals):
            for pos, _ in members:
                z[pos] = 0.0
            continue
        mu = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals) + floor)
        for pos, v in members:
            z[pos] = (v - mu) / (sd + eps) if norm_by_std else v - mu
    return z


def loop_turn_group(inp, cfg):
    n = inp.n
    a_out = loop_outcome_adv(list(inp.outcomes), inp.group_ids, inp.failed, cfg.norm_by_std)
    cells = defaultdict(list)
    for i in range(n):
        if inp.failed[i]:
            continue
        for k, v in enumerate(inp.turn_rewards[i]):
            if _finite(v):
                cells[(inp.group_ids[i], k)].append(((i, k), float(v)))
    z = loop_zscore_cells(cells, cfg.norm_by_std)
    per_turn, clip = [], []
    for i in range(n):
        m = len(inp.turn_rewards[i])
        if inp.failed[i]:
            per_turn.append([0.0] * m)
            clip.append([1.0] * m)
            continue
        row, crow = [], []
        for k in range(m):
            acc, cnt = 0.0, 0
            for j in range(k, m):
                if (i, j) in z:
                    acc += cfg.gamma ** (j - k) * z[(i, j)]
                    cnt += 1
            d = acc / math.sqrt(cnt) if cnt else 0.0
            row.append(a_out[i] + cfg.alpha * d)
            if (i, k) in z:
                crow.append(1 + cfg.clip_beta * (2 / (1 + math.exp(-z[(i, k)])) - 1))
            else:
                crow.append(1.0)
        per_turn.append(row)
        clip.append(crow)
    return per_turn, clip


def loop_rae(inp, cfg, state: dict):
    state = dict(state)
    per_turn = []
    for i in range(inp.n):
        m = len(inp.turn_rewards[i])
        if inp.failed[i]:
            per_turn.append([0.0] * m)
            continue
        role = inp.roles[i]
        ret = loop_return(inp, i, cfg.dense_in_return)
        b = state.get(role, 0.0)
        state[role] = cfg.ema_decay * b + (1 - cfg.ema_decay) * ret
        per_turn.append([(ret - b) * cfg.gamma ** (m - 1 - k) for k in range(m)])
    return per_turn, state


def loop_gigpo(inp, cfg):
    n = inp.n
    step_r, returns = {}, [0.0] * n
    for i in range(n):
        if inp.failed[i]:
            continue
        m = len(inp.turn_rewards[i])
        rs = [float(v) if _finite(v) else 0.0 for v in inp.turn_rewards[i]]
        if m:
            rs[-1] += inp.outcomes[i]
        returns[i] = inp.outcomes[i] + sum(v for v in inp.turn_rewards[i] if _finite(v))
        for t in range(m):
            step_r[(i, t)] = sum(cfg.gigpo_gamma ** (k - t) * rs[k] for k in range(t, m))
    a_ep = loop_outcome_adv(returns, inp.group_ids, inp.failed, cfg.norm_by_std)
    cells = defaultdict(list)
    for (i, t), ret in step_r.items():
        key = inp.anchors[i][t]
        cell = (inp.group_ids[i], key) if key is not None else ("solo", i, t)
        cells[cell].append(((i, t), ret))
    a_step = loop_zscore_cells(cells, cfg.norm_by_std)
    out = []
    for i in range(n):
        m = len(inp.turn_rewards[i])
        if inp.failed[i]:
            out.append([0.0] * m)
        else:
            out.append([a_ep[i] + cfg.step_weight * a_step[(i, t)] for t in range(m)])
    return out


def loop_information_gain(gold, mode):
    out = []
    for ell in gold:
        ig = [math.nan] * max(len(ell) - 1, 0)
        base = None
        for t, v in enumerate(ell):
            if not _finite(v):
                continue
            s = math.exp(v) if mode == "prob" else v
            if base is not None:
                ig[t - 1] = s - base
            base = s
        out.append(ig)
    return out


# ============================================================================ random batches


def random_input(n, groups, max_turns, seed, *, failed=True) -> RewardBatch:
    rng = np.random.default_rng(seed)
    group_ids = [f"q{int(g)}" for g in rng.integers(0, groups, size=n)]
    outcomes = rng.choice([0.0, 0.5, 1.0, -1.0], size=n)  # ties -> all-equal groups happen
    dense, anchors = [], []
    for _ in range(n):
        m = int(rng.integers(0, max_turns + 1))
        d = np.round(rng.normal(size=m), 1)  # rounding -> ties inside turn groups
        d[rng.random(m) < 0.15] = np.nan
        d[rng.random(m) < 0.05] = np.inf
        dense.append(d)
        anchors.append(
            [None if rng.random() < 0.1 else f"s{int(a)}" for a in rng.integers(0, 3, m)]
        )
    roles = [(str(rng.choice(["kuhn", "ttt"])), int(rng.integers(0, 2))) for _ in range(n)]
    fail = rng.random(n) < 0.1 if failed else np.zeros(n, bool)
    outcomes = np.where(fail, np.nan, outcomes)
    return RewardBatch(group_ids, outcomes, dense, anchors, roles, fail)


TWIN_CASES = [(1, 1, 1, 0), (5, 1, 3, 1), (12, 3, 4, 2), (40, 6, 8, 3), (64, 8, 12, 4)]


@pytest.mark.parametrize(("n", "groups", "max_turns", "seed"), TWIN_CASES)
@pytest.mark.parametrize("name", ["grpo", "dr_grpo"])
def test_twin_grpo_family(name, n, groups, max_turns, seed):
    inp = random_input(n, groups, max_turns, seed)
    got = run(name, inp)
    assert_ragged_close(got.per_turn, loop_grpo(inp, norm_by_std=name == "grpo"))
    assert got.clip_scale is None
    np.testing.assert_array_equal(got.valid, ~inp.failed)


@pytest.mark.parametrize(("n", "groups", "max_turns", "seed"), TWIN_CASES)
@pytest.mark.parametrize(
    "cfg",
    [QUIET, AdvantageConfig(gamma=0.9, alpha=1.0, norm_by_std=False, warn_singleton_groups=False)],
    ids=["defaults", "gamma0.9-nostd"],
)
def test_twin_turn_group(cfg, n, groups, max_turns, seed):
    inp = random_input(n, groups, max_turns, seed)
    got = run("turn_group", inp, cfg)
    per_turn, clip = loop_turn_group(inp, cfg)
    assert_ragged_close(got.per_turn, per_turn)
    assert_ragged_close(got.clip_scale, clip)


@pytest.mark.parametrize(("n", "groups", "max_turns", "seed"), TWIN_CASES)
@pytest.mark.parametrize(
    "cfg", [QUIET, AdvantageConfig(gamma=0.8, ema_decay=0.5, dense_in_return=False)]
)
def test_twin_rae(cfg, n, groups, max_turns, seed):
    inp = random_input(n, groups, max_turns, seed)
    start = {("kuhn", 0): 0.25, ("ttt", 1): -0.5}
    got = run("rae", inp, cfg, RAEState(baselines=dict(start)))
    per_turn, state = loop_rae(inp, cfg, start)
    assert_ragged_close(got.per_turn, per_turn)
    assert got.rae_state is not None
    assert got.rae_state.baselines == pytest.approx(state)


@pytest.mark.parametrize(("n", "groups", "max_turns", "seed"), TWIN_CASES)
@pytest.mark.parametrize(
    "cfg",
    [
        QUIET,
        AdvantageConfig(
            gigpo_gamma=1.0, step_weight=0.5, norm_by_std=False, warn_singleton_groups=False
        ),
    ],
    ids=["defaults", "gamma1-nostd"],
)
def test_twin_gigpo(cfg, n, groups, max_turns, seed):
    inp = random_input(n, groups, max_turns, seed)
    got = run("gigpo", inp, cfg)
    assert_ragged_close(got.per_turn, loop_gigpo(inp, cfg))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["logprob", "prob"])
def test_twin_information_gain(mode, seed):
    rng = np.random.default_rng(seed)
    gold = []
    for _ in range(20):
        ell = -rng.exponential(size=int(rng.integers(0, 8)))
        ell[rng.random(ell.size) < 0.25] = rng.choice([np.nan, np.inf, -np.inf])
        gold.append(ell)
    got = information_gain(gold, mode=mode)
    want = loop_information_gain(gold, mode)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w, float), rtol=1e-12, equal_nan=True)


# ============================================================================ registry


def test_registry_holds_every_estimator():
    assert {"grpo", "dr_grpo", "turn_group", "rae", "gigpo"} <= set(ESTIMATORS)
    assert get_estimator("turn_group") is ESTIMATORS["turn_group"]


def test_unknown_estimator_quotes_name_lists_registered_and_suggests():
    with pytest.raises(ValueError, match="'grpoo'") as err:
        get_estimator("grpoo")
    assert "Did you mean 'grpo'" in str(err.value)
    assert "turn_group" in str(err.value) and "gigpo" in str(err.value)


def test_duplicate_registration_shows_both_functions():
    def my_grpo(inp, cfg):  # pragma: no cover - never registered
        raise AssertionError

    with pytest.raises(ValueError) as err:
        register_estimator("grpo")(my_grpo)
    assert "turngym.training.advantages.grpo" in str(err.value)
    assert "my_grpo" in str(err.value)


def test_registered_third_party_estimator_gets_failed_masking_and_checks():
    calls = []

    @register_estimator("test_constant")
    def constant(inp, cfg, state):
        calls.append(inp.n)
        return Advantages(per_turn=[np.ones(len(r)) for r in inp.turn_rewards])

    @register_estimator("test_broken")
    def broken(inp, cfg, state):
        return Advantages(per_turn=[np.ones(1) for _ in inp.turn_rewards])

    try:
        inp = make_input([1.0, math.nan, 0.0], [[0.1, 0.2], [0.3], []], failed=[False, True, False])
        out = ESTIMATORS["test_constant"](inp, QUIET)
        assert calls == [2]  # the failed rollout never reached the estimator
        assert_ragged_close(out.per_turn, [[1, 1], [0], []])
        assert out.valid.tolist() == [True, False, True]
        with pytest.raises(ValueError, match=r"per_turn\[0\] has shape \(1,\), expected \(2,\)"):
            ESTIMATORS["test_broken"](make_input([1.0], [[0.1, 0.2]]), QUIET)
    finally:
        ESTIMATORS.pop("test_constant", None)
        ESTIMATORS.pop("test_broken", None)


def test_estimator_default_config_and_type_errors():
    inp = make_input([1.0, 0.0], [[0.0], [0.0]])
    assert ESTIMATORS["grpo"](inp).per_turn[0][0] == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(TypeError, match="RewardBatch"):
        ESTIMATORS["grpo"]({"outcomes": [1.0]}, QUIET)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AdvantageConfig"):
        ESTIMATORS["grpo"](inp, {"gamma": 1.0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RAEState"):
        ESTIMATORS["rae"](inp, QUIET, {"version": 1})  # type: ignore[arg-type]


# ============================================================================ input / config validation


def test_input_length_mismatch_quotes_both_sizes():
    with pytest.raises(ValueError, match="group_ids has 5 entries but outcomes has shape \\(4,\\)"):
        RewardBatch(["g"] * 5, np.zeros(4), [np.zeros(1)] * 5)
    with pytest.raises(ValueError, match="group_ids has 2 entries but turn_rewards has 3"):
        RewardBatch(["g"] * 2, np.zeros(2), [np.zeros(1)] * 3)
    with pytest.raises(ValueError, match="rollout 1 has 2 turn rewards but 1 anchors"):
        make_input([0, 0], [[0], [0, 0]], anchors=[["a"], ["a"]])
    with pytest.raises(ValueError, match="roles has 1"):
        make_input([0, 0], [[0], [0]], roles=[("kuhn", 0)])
    with pytest.raises(ValueError, match=r"turn_rewards\[0\] must be 1-D"):
        make_input([0], [[[0.0]]])


def test_input_nan_outcome_must_be_marked_failed():
    with pytest.raises(ValueError, match=r"outcomes\[1\] = nan"):
        make_input([0.0, math.nan], [[0.0], [0.0]])
    make_input([0.0, math.nan], [[0.0], [0.0]], failed=[False, True])  # fine


@pytest.mark.parametrize(
    ("field", "value"),
    [("gamma", 1.5), ("ema_decay", -0.1), ("eps", 0.0), ("clip_beta", 1.0), ("alpha", math.nan)],
)
def test_config_rejects_bad_values_and_quotes_them(field, value):
    with pytest.raises(ValueError, match=field):
        AdvantageConfig(**{field: value})


def test_config_defaults_follow_section_8():
    cfg = AdvantageConfig()
    assert (cfg.gamma, cfg.alpha, cfg.eps, cfg.clip_beta, cfg.ema_decay) == (
        1.0,
        0.3,
        1e-6,
        0.3,
        0.95,
    )
    assert (cfg.gigpo_gamma, cfg.step_weight, cfg.norm_by_std) == (0.95, 1.0, True)


def test_rae_and_gigpo_need_their_extra_inputs():
    inp = make_input([1.0, 0.0], [[0.0], [0.0]])
    with pytest.raises(ValueError, match="roles"):
        run("rae", inp)
    with pytest.raises(ValueError, match="anchors"):
        run("gigpo", inp)


# ============================================================================ GRPO


def test_grpo_hand_computed():
    inp = make_input([1.0, 0.0, 0.0, 1.0], [[0.0], [0.0, 0.0], [], [0.0]], groups=list("aabb"))
    out = run("grpo", inp)
    # group a: mean 0.5, population std 0.5 -> ±1 (up to eps)
    assert_ragged_close(
        out.per_turn,
        [[1 / (1 + 2 * EPS)], [-1 / (1 + 2 * EPS)] * 2, [], [1 / (1 + 2 * EPS)]],
        rtol=1e-9,
    )


def test_dr_grpo_does_not_divide_by_std():
    inp = make_input([2.0, 0.0, 1.0], [[0.0]] * 3)
    np.testing.assert_allclose(np.concatenate(run("dr_grpo", inp).per_turn), [1.0, -1.0, 0.0])
    same = run("grpo", inp, AdvantageConfig(norm_by_std=False, warn_singleton_groups=False))
    np.testing.assert_allclose(np.concatenate(same.per_turn), [1.0, -1.0, 0.0])


def test_grpo_scores_the_g_ra_return_unless_told_not_to():
    inp = make_input([0.0, 0.0], [[0.5, np.nan], [0.0]])
    a = np.concatenate(run("grpo", inp).per_turn)
    assert a[0] > 0 and a[2] < 0  # dense rewards entered the return
    b = run("grpo", inp, AdvantageConfig(dense_in_return=False, warn_singleton_groups=False))
    assert all((x == 0).all() for x in b.per_turn)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "turn_group"])
def test_invariance_shift_outcomes_per_group(name, seed):
    inp = random_input(30, 4, 5, seed, failed=False)
    rng = np.random.default_rng(100 + seed)
    shift = {g: float(rng.normal() * 10) for g in set(inp.group_ids)}
    shifted = make_input(
        inp.outcomes + np.array([shift[g] for g in inp.group_ids]),
        inp.turn_rewards,
        groups=inp.group_ids,
    )
    base, moved = run(name, inp), run(name, shifted)
    # singleton groups have Â = R by convention: not shift-invariant, compare the rest
    sizes = defaultdict(int)
    for g in inp.group_ids:
        sizes[g] += 1
    for i, g in enumerate(inp.group_ids):
        if sizes[g] > 1:
            np.testing.assert_allclose(moved.per_turn[i], base.per_turn[i], atol=1e-8)


@pytest.mark.parametrize("scale", [0.1, 3.0, 250.0])
def test_invariance_grpo_scale(scale):
    rng = np.random.default_rng(7)
    groups = [f"q{i // 4}" for i in range(24)]
    outcomes = rng.normal(size=24)
    dense = [rng.normal(size=int(rng.integers(0, 4))) for _ in range(24)]
    base = run("grpo", make_input(outcomes, dense, groups=groups))
    scaled = run("grpo", make_input(outcomes * scale, [d * scale for d in dense], groups=groups))
    assert_ragged_close(scaled.per_turn, base.per_turn, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "turn_group", "gigpo"])
def test_identical_rewards_give_exact_zeros(name):
    inp = make_input([0.1] * 3, [[0.3, 0.7, np.nan]] * 3, anchors=[["a", "b", "c"]] * 3)
    out = run(name, inp)
    for a in out.per_turn:
        assert (a == 0.0).all()
    if out.clip_scale is not None:
        assert all((c == 1.0).all() for c in out.clip_scale)


def test_turn_group_outcome_only_with_gamma_one_reduces_to_grpo():
    rng = np.random.default_rng(3)
    groups = [f"q{i % 5}" for i in range(20)]
    outcomes = rng.choice([0.0, 1.0, 0.3], size=20)
    dense = [np.zeros(int(rng.integers(1, 6))) for _ in range(20)]
    inp = make_input(outcomes, dense, groups=groups)
    tg = run("turn_group", inp, AdvantageConfig(gamma=1.0, warn_singleton_groups=False))
    assert_ragged_close(tg.per_turn, run("grpo", inp).per_turn)
    assert all((c == 1.0).all() for c in tg.clip_scale)


def test_turn_group_dense_shift_at_one_turn_is_invariant():
    inp = random_input(30, 3, 4, 11, failed=False)
    shifted = [r.copy() for r in inp.turn_rewards]
    for r in shifted:
        if r.size > 1:
            r[1] += 5.0  # same constant for every rollout that reached turn 1
    base = run("turn_group", inp)
    moved = run("turn_group", make_input(inp.outcomes, shifted, groups=inp.group_ids))
    assert_ragged_close(moved.per_turn, base.per_turn, atol=1e-8)


# ============================================================================ turn_group hand example


def test_turn_group_hand_computed_example():
    # group g: r0 reached 3 turns, r1 two, r2 one.
    inp = make_input([1.0, 0.0, 0.0], [[1.0, 2.0, 5.0], [3.0, 4.0], [2.0]])
    out = run("turn_group", inp)
    sd_o = math.sqrt(2 / 9)
    a_o = np.array([2 / 3, -1 / 3, -1 / 3]) / (sd_o + EPS)
    sd0 = math.sqrt(2 / 3 + 1e-8)
    z0 = np.array([-1.0, 1.0, 0.0]) / (sd0 + EPS)  # turn 0: {1, 3, 2}, mean 2
    sd1 = math.sqrt(1 + 1e-8)
    z1 = np.array([-1.0, 1.0]) / (sd1 + EPS)  # turn 1: {2, 4}, mean 3; turn 2: {5} -> 0
    alpha = 0.3
    want = [
        [
            a_o[0] + alpha * (z0[0] + z1[0]) / math.sqrt(3),
            a_o[0] + alpha * z1[0] / math.sqrt(2),
            a_o[0],
        ],
        [a_o[1] + alpha * (z0[1] + z1[1]) / math.sqrt(2), a_o[1] + alpha * z1[1]],
        [a_o[2]],
    ]
    assert_ragged_close(out.per_turn, want)
    c = lambda z: 1 + 0.3 * (2 / (1 + math.exp(-z)) - 1)
    assert_ragged_close(out.clip_scale, [[c(z0[0]), c(z1[0]), 1.0], [c(z0[1]), c(z1[1])], [1.0]])
    for cs in out.clip_scale:
        assert ((cs > 0.7) & (cs < 1.3)).all()


def test_turn_group_discount_weights_later_turns():
    inp = make_input([0.0, 0.0], [[0.0, 1.0], [0.0, -1.0]])
    gamma = 0.5
    out = run("turn_group", inp, AdvantageConfig(gamma=gamma, warn_singleton_groups=False))
    z = 1 / (math.sqrt(1 + 1e-8) + EPS)
    np.testing.assert_allclose(out.per_turn[0], [0.3 * gamma * z / math.sqrt(2), 0.3 * z])


# ============================================================================ §8.6 edge-case table


def test_edge_g_equals_1_outcome_is_raw_reward_turn_terms_zero_and_warns():
    """§8.6 'G = 1': mean 0, std 1 ⇒ Â^O = R; one-member turn groups ⇒ turn terms 0; warn."""
    inp = make_input([0.7, -0.2], [[0.5, 0.1], [0.3]], groups=["a", "b"])
    with pytest.warns(SingletonGroupWarning, match="2 of 2 groups"):
        tg = ESTIMATORS["turn_group"](inp, AdvantageConfig())
    assert_ragged_close(tg.per_turn, [[0.7, 0.7], [-0.2]])
    assert_ragged_close(tg.clip_scale, [[1.0, 1.0], [1.0]])
    with pytest.warns(SingletonGroupWarning):
        g = ESTIMATORS["grpo"](inp, AdvantageConfig(dense_in_return=False))
    assert_ragged_close(g.per_turn, [[0.7, 0.7], [-0.2]])


def test_edge_all_outcomes_equal_in_a_group():
    """§8.6 'All outcomes equal': Â^O = 0; varying turn terms still give signal, else filtered."""
    varying = make_input([1.0, 1.0, 1.0], [[0.1, 0.2], [0.4, 0.2], [0.1]])
    assert all((a == 0).all() for a in run("grpo", make_input([1.0] * 3, [[0.0]] * 3)).per_turn)
    out = run("turn_group", varying)
    assert out.per_turn[0][0] < 0 < out.per_turn[1][0]
    # the turn-1 values {0.2, 0.2} are equal -> that turn adds nothing on its own
    assert out.per_turn[0][1] == 0.0 and out.per_turn[1][1] == 0.0
    flat = make_input([1.0, 1.0], [[0.3, 0.1], [0.3, 0.1]])
    assert all((a == 0).all() for a in run("turn_group", flat).per_turn)
    keep = dynamic_sampling_mask(flat)
    assert not keep.any()
    assert dynamic_sampling_mask(varying).all()


def test_edge_all_dense_rewards_equal_at_turn_k():
    """§8.6 'All dense rewards equal at turn k': ĨR = 0 at k and c = 1."""
    inp = make_input([1.0, 0.0, 0.5], [[0.2, 0.9], [0.2, 0.1], [0.2]])
    out = run("turn_group", inp)
    assert [c[0] for c in out.clip_scale] == [1.0, 1.0, 1.0]
    assert out.clip_scale[0][1] != 1.0
    a_o = run("grpo", make_input(inp.outcomes, [[0.0, 0.0], [0.0, 0.0], [0.0]])).per_turn
    z1 = 0.4 / (math.sqrt(0.16 + 1e-8) + EPS)  # turn 1: {0.9, 0.1}
    # turn 0 adds 0 to the sum but still counts as a term in √(n − k) (it is present)
    want = [
        [a_o[0][0] + 0.3 * z1 / math.sqrt(2), a_o[0][0] + 0.3 * z1],
        [a_o[1][0] - 0.3 * z1 / math.sqrt(2), a_o[1][0] - 0.3 * z1],
        [a_o[2][0]],
    ]
    assert_ragged_close(out.per_turn, want)


def test_edge_variable_turn_counts():
    """§8.6 'Variable turn counts': (g,k) holds only rollouts that reached k; √(n−k) rescale."""
    short = make_input([0.0, 0.0], [[1.0], [3.0]])
    long = make_input([0.0, 0.0, 0.0], [[1.0], [3.0], [5.0, 7.0, 9.0]])
    a_short = run("turn_group", short).per_turn
    a_long = run("turn_group", long).per_turn
    z_long0 = run("turn_group", make_input([0.0] * 3, [[1.0], [3.0], [5.0]])).per_turn
    # turns 1 and 2 of the long rollout form one-member groups: they add 0, but count in √(n−k)
    np.testing.assert_allclose(a_long[2][0], z_long0[2][0] / math.sqrt(3))
    np.testing.assert_allclose(a_long[2][1:], [0.0, 0.0])
    np.testing.assert_allclose(a_long[0], z_long0[0])  # one-turn rollouts: √1
    assert a_short[0][0] < 0 < a_short[1][0]


def test_edge_missing_turns_early_answer():
    """§8.6 'Missing turns / early answer': no dense terms ⇒ A = Â^O, c = 1."""
    inp = make_input([1.0, 0.0, 0.0], [[0.4, 0.8, 0.1], [0.2, 0.3], [np.nan]])
    out = run("turn_group", inp)
    a_o = run("grpo", make_input(inp.outcomes, [[0.0]] * 3))
    np.testing.assert_allclose(out.per_turn[2], a_o.per_turn[2])
    np.testing.assert_allclose(out.clip_scale[2], [1.0])
    # the early answerer joins no turn group: the others' turn terms are those of a 2-member group
    alone = run("turn_group", make_input([0.0, 0.0], inp.turn_rewards[:2])).per_turn
    np.testing.assert_allclose(out.per_turn[0] - a_o.per_turn[0][0], alone[0])


def test_edge_nan_inf_in_ig_skips_the_turn_and_keeps_the_baseline():
    """§8.6 'NaN/inf in IG': skip that turn, keep the previous baseline (A²TGPO)."""
    ig = information_gain([[-2.0, -1.5, np.nan, -1.0, np.inf, -0.5]])[0]
    np.testing.assert_allclose(ig, [0.5, np.nan, 0.5, np.nan, 0.5], equal_nan=True)
    rollouts = information_gain([[-2.0, -1.5, np.nan, -1.0], [-2.0, -1.9, -1.8, -1.7]])
    out = run("turn_group", make_input([0.0, 0.0], rollouts))
    assert all(np.isfinite(a).all() for a in out.per_turn)
    assert out.clip_scale[0][1] == 1.0  # the skipped turn has no clip adjustment
    # the skipped turn's accumulated term counts only the present later turn
    assert out.per_turn[0][1] == pytest.approx(out.per_turn[0][2])


# ============================================================================ information gain


def test_information_gain_logprob_and_prob_arithmetic():
    ell = [math.log(0.1), math.log(0.2), math.log(0.5)]
    np.testing.assert_allclose(information_gain([ell])[0], [math.log(2), math.log(2.5)])
    np.testing.assert_allclose(information_gain([ell], mode="prob")[0], [0.1, 0.3])


def test_information_gain_first_finite_value_only_sets_the_baseline():
    ig = information_gain([[np.nan, -1.0, -0.5], [-1.0], []])
    np.testing.assert_allclose(ig[0], [np.nan, 0.5], equal_nan=True)
    assert ig[1].shape == (0,) and ig[2].shape == (0,)
    with pytest.raises(ValueError, match="'bits'"):
        information_gain([[0.0]], mode="bits")  # type: ignore[arg-type]


# ============================================================================ RAE


def test_rae_reads_the_baseline_before_updating_it():
    inp = make_input(
        [1.0, 1.0, -1.0, 0.0],
        [[0.0, 0.0], [0.0], [0.0], [0.0]],
        roles=[("kuhn", 0), ("kuhn", 0), ("kuhn", 1), ("ttt", 0)],
    )
    out = run("rae", inp)
    # kuhn/0: b=0 -> A=1, b=0.05 -> A=0.95, b=0.0975; kuhn/1: A=-1, b=-0.05; ttt/0: A=0
    assert_ragged_close(out.per_turn, [[1.0, 1.0], [0.95], [-1.0], [0.0]])
    st = out.rae_state
    assert st.baseline("kuhn", 0) == pytest.approx(0.0975)
    assert st.baseline("kuhn", 1) == pytest.approx(-0.05)
    assert st.counts[("kuhn", 0)] == 2 and st.baseline("never", 0) == 0.0


def test_rae_is_stateful_across_batches_without_mutating_its_input():
    inp = make_input([1.0], [[0.0]], roles=[("kuhn", 0)])
    first = run("rae", inp)
    second = run("rae", inp, state=first.rae_state)
    assert second.per_turn[0][0] == pytest.approx(1.0 - 0.05)
    assert first.rae_state.baseline("kuhn", 0) == pytest.approx(0.05)  # untouched
    assert second.rae_state.baseline("kuhn", 0) == pytest.approx(0.0975)


def test_rae_state_round_trips_through_json():
    inp = make_input([1.0, -0.5], [[0.0], [0.0]], roles=[("kuhn", 0), ("ttt", 1)])
    state = run("rae", inp).rae_state
    again = RAEState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    np.testing.assert_allclose(run("rae", inp, state=again).per_turn[0], [1.0 - 0.05])
    with pytest.raises(ValueError, match="version 7"):
        RAEState.from_dict({"version": 7})


def test_rae_gamma_discounts_earlier_turns():
    inp = make_input([1.0], [[0.0, 0.0, 0.0]], roles=[("kuhn", 0)])
    out = run("rae", inp, AdvantageConfig(gamma=0.5))
    np.testing.assert_allclose(out.per_turn[0], [0.25, 0.5, 1.0])


def test_rae_failed_rollouts_do_not_move_the_baseline():
    inp = make_input([math.nan, 1.0], [[0.0], [0.0]], roles=[("kuhn", 0)] * 2, failed=[True, False])
    out = run("rae", inp)
    assert_ragged_close(out.per_turn, [[0.0], [1.0]])
    assert out.rae_state.counts[("kuhn", 0)] == 1


# ============================================================================ GiGPO


def _gigpo_example():
    # A: anchors s0 -> s1, dense 0, outcome 1 ; B: s0 -> s2 -> s1, dense 0.2 at s2, outcome 0
    return make_input(
        [1.0, 0.0],
        [[0.0, 0.0], [0.0, 0.2, 0.0]],
        anchors=[["s0", "s1"], ["s0", "s2", "s1"]],
    )


def test_gigpo_hand_computed_mean_norm():
    cfg = AdvantageConfig(gigpo_gamma=0.5, norm_by_std=False)
    out = run("gigpo", _gigpo_example(), cfg)
    # returns: A 1.0, B 0.2 -> A^E = ±0.4. Step returns (γ=0.5): A [0.5, 1], B [0.1, 0.2, 0]
    # anchors: s0 {0.5, 0.1} -> ±0.2 ; s1 {1, 0} -> ±0.5 ; s2 {0.2} alone -> 0
    assert_ragged_close(out.per_turn, [[0.6, 0.9], [-0.6, -0.4, -0.9]])


def test_gigpo_hand_computed_std_norm_and_weight():
    cfg = AdvantageConfig(gigpo_gamma=0.5, step_weight=0.5)
    out = run("gigpo", _gigpo_example(), cfg)
    e = 0.4 / (0.4 + EPS)
    s0 = 0.2 / (math.sqrt(0.04 + 1e-8) + EPS)
    s1 = 0.5 / (math.sqrt(0.25 + 1e-8) + EPS)
    assert_ragged_close(
        out.per_turn, [[e + 0.5 * s0, e + 0.5 * s1], [-e - 0.5 * s0, -e, -e - 0.5 * s1]]
    )


def test_gigpo_anchor_groups_stay_inside_their_task_group():
    inp = make_input(
        [1.0, 0.0, 5.0, 5.0],
        [[0.0]] * 4,
        groups=["g", "g", "h", "h"],
        anchors=[["s"], ["t"], ["s"], ["s"]],
    )
    out = run("gigpo", inp, AdvantageConfig(norm_by_std=False))
    # s in g is alone (only rollout 0) -> step term 0 even though h also has anchor s
    assert_ragged_close(out.per_turn, [[0.5], [-0.5], [0.0], [0.0]])


def test_gigpo_none_anchor_never_groups():
    inp = make_input([1.0, 0.0], [[0.0], [0.0]], anchors=[[None], [None]])
    out = run("gigpo", inp, AdvantageConfig(norm_by_std=False))
    assert_ragged_close(out.per_turn, [[0.5], [-0.5]])


# ============================================================================ failed rollouts


@pytest.mark.parametrize("name", ["grpo", "turn_group", "gigpo", "rae"])
def test_failed_rollouts_are_masked_not_scored(name):
    inp = random_input(20, 3, 4, 5, failed=False)
    failed = np.zeros(20, bool)
    failed[[2, 7]] = True
    with_failed = RewardBatch(
        inp.group_ids,
        np.where(failed, np.nan, inp.outcomes),
        inp.turn_rewards,
        inp.anchors,
        inp.roles,
        failed,
    )
    out = run(name, with_failed)
    keep = np.flatnonzero(~failed)
    sub = run(name, inp.select(keep))
    for j, i in enumerate(keep):
        np.testing.assert_allclose(out.per_turn[i], sub.per_turn[j])
    for i in (2, 7):
        assert (out.per_turn[i] == 0).all()
    assert out.valid.tolist() == (~failed).tolist()


# ============================================================================ dynamic sampling


def test_dynamic_sampling_mask_cases():
    groups = ["flat", "flat", "out", "out", "dense", "dense", "len", "len", "solo", "dead", "dead"]
    outcomes = [1, 1, 1, 0, 0, 0, 0, 0, 1, np.nan, np.nan]
    dense = [
        *([0.1, np.nan], [0.1, np.inf]),  # flat: identical (absent == absent) -> dropped
        *([0.1], [0.1]),  # out: outcomes differ
        *([0.1, 0.2], [0.1, 0.3]),  # dense: differs at turn 1
        *([0.0], [0.0, 0.0]),  # len: different lengths
        [0.5],  # solo: a single rollout is kept
        *([0.0], [0.0]),  # dead: all failed -> dropped
    ]
    failed = [False] * 9 + [True, True]
    keep = dynamic_sampling_mask(RewardBatch(groups, outcomes, dense, failed=failed))
    assert keep.tolist() == [False, False, True, True, True, True, True, True, True, False, False]


# ============================================================================ glue


def _traj(outcome, dense, *, seat=0, anchors=None, failed=False, env_id="turngym/KuhnPoker-v0", group="g"):
    anchors = anchors or [None] * len(dense)
    turns = [
        Turn([7], [1], [0.0], "a", "stop", TurnRecord(turn=k, seat=seat, reward=r, components={"r": r}), anchor=a)
        for k, (r, a) in enumerate(zip(dense, anchors))
    ]
    return Trajectory(env_id, 0, group, 0, seat, turns=turns, outcome=None if failed else outcome, failed=failed)


def _kuhn_batch():
    return [
        _traj(1.0, [0.1, 0.2], anchors=["a", "b"]),
        _traj(-1.5, [0.1], anchors=["a"]),
        _traj(0.0, [0.3], anchors=["a"], failed=True),
        _traj(0.5, [0.0], seat=1, anchors=["c"]),  # the other seat: a group of its own
    ]


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "turn_group", "rae", "gigpo"])
def test_compute_runs_every_estimator_from_trajectories(name):
    algo = AlgoSection(estimator=name, gate_threshold=-1.0, adaptive_clip=name == "turn_group")
    out, keep, state = compute(_kuhn_batch(), algo, None)
    assert out.valid.tolist() == [True, True, False, True]
    assert keep.tolist() == [True, True, False, True]  # failed rollouts never reach the loss
    assert [a.shape for a in out.per_turn] == [(2,), (1,), (1,), (1,)]
    assert (out.clip_scale is not None) == (name == "turn_group")
    assert (state is not None) == (name == "rae")
    if name == "grpo":  # G-RA returns 1.3 vs -1.5 (the loser's gate is closed)
        assert out.per_turn[0][0] > 0 > out.per_turn[1][0]


def test_compute_carries_the_rae_state_and_reads_gates_from_the_spec():
    start = RAEState(baselines={("turngym/KuhnPoker-v0", 0): 0.5})
    _, _, kept = compute(_kuhn_batch(), AlgoSection(estimator="grpo"), start)
    assert kept is start  # estimators that keep no state hand it back untouched
    out, _, after = compute(_kuhn_batch(), AlgoSection(estimator="rae"), start)
    assert out.per_turn[0][0] == pytest.approx(1.3 - 0.5)  # R − b, b read before the update
    assert after.counts[("turngym/KuhnPoker-v0", 0)] == 2 and start.counts == {}
    assert gate_deltas("spec", ["turngym/KuhnPoker-v0"] * 2) == {
        "turngym/KuhnPoker-v0": turngym.spec("turngym/KuhnPoker-v0").gate_threshold
    }
    assert gate_deltas(0.25, ["x"]) == 0.25 and gate_deltas(None, ["x"]) is None
    with pytest.raises(ValueError, match="'always'"):
        gate_deltas("always", ["x"])


def test_compute_drops_groups_without_signal_unless_told_not_to():
    same = [_traj(1.0, [0.1]), _traj(1.0, [0.1]), _traj(0.0, [0.1], group="h"), _traj(1.0, [0.1], group="h")]
    _, keep, _ = compute(same, AlgoSection(), None)
    assert keep.tolist() == [False, False, True, True]
    _, keep, _ = compute(same, AlgoSection(dynamic_sampling=False), None)
    assert keep.all()


def test_compute_adds_information_gain_to_the_dense_rewards():
    batch = [_traj(1.0, [0.0, 0.0]), _traj(1.0, [0.0, 0.0])]
    gains = [np.array([0.5, np.nan]), np.array([-0.5, np.nan])]
    algo = AlgoSection(estimator="turn_group", info_gain_weight=2.0, gate_threshold=None)
    with_ig, keep, _ = compute(batch, algo, None, information_gains=gains)
    without, _, _ = compute(batch, algo, None)
    assert keep.all() and with_ig.per_turn[0][0] > 0 > with_ig.per_turn[1][0]
    assert all((a == 0).all() for a in without.per_turn)


def test_compute_gigpo_refuses_trajectories_without_anchor_states():
    blind = [_traj(1.0, [0.0], env_id="turngym/Vowels-v0"), _traj(0.0, [0.0], env_id="turngym/Vowels-v0")]
    with pytest.raises(ValueError, match=r"gigpo.*\['turngym/Vowels-v0'\] reported none"):
        compute(blind, AlgoSection(estimator="gigpo"), None)


def test_module_exports():
    for name in adv_mod.__all__:
        assert hasattr(adv_mod, name), name


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "turn_group", "rae", "gigpo"])
def test_degenerate_batches_empty_all_failed_and_turnless(name):
    empty = RewardBatch([], np.zeros(0), [], anchors=[], roles=[])
    assert run(name, empty).per_turn == []
    dead = make_input(
        [math.nan, math.nan],
        [[0.1, 0.2], []],
        failed=[True, True],
        anchors=[["a", "b"], []],
        roles=[("kuhn", 0)] * 2,
    )
    out = run(name, dead)
    assert_ragged_close(out.per_turn, [[0.0, 0.0], []])
    assert out.valid.tolist() == [False, False]
    turnless = make_input([1.0, 0.0], [[], []], anchors=[[], []], roles=[("kuhn", 0)] * 2)
    assert [a.shape for a in run(name, turnless).per_turn] == [(0,), (0,)]

"""The config switches the ablation studies added: the ``turn_naive`` and ``rae_shared`` estimators,
``algo.failed_rollouts: score_zero`` and the per-step ``adv/*`` metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from turngym.envs.types import TurnRecord
from turngym.training.advantages import (
    AdvantageConfig,
    RAEState,
    compute,
    rae,
    rae_shared,
    turn_group,
    turn_naive,
)
from turngym.training.config import AlgoSection
from turngym.training.rewards import RewardBatch, assemble
from turngym.training.signal import advantage_metrics
from turngym.training.trajectory import Trajectory, Turn

QUIET = AdvantageConfig(warn_singleton_groups=False)


def _traj(outcome, dense, *, seat=0, failed=False, env_id="turngym/KeyTurn-v0"):
    turns = [Turn([7], [1], [0.0], "a", "stop", TurnRecord(turn=k, seat=seat, reward=r, components={"r": r}))
             for k, r in enumerate(dense)]
    return Trajectory(env_id, 0, "g", 0, seat, turns=turns, outcome=None if failed else outcome, failed=failed)


def test_turn_naive_centres_per_turn_index_and_sums_without_rescaling():
    batch = RewardBatch(["g", "g", "g"], [1.0, 0.0, 0.0], [[0.1, 0.1, 0.1], [0.1], [0.0, 0.1]])
    cfg = AdvantageConfig(alpha=1.0, gamma=1.0, warn_singleton_groups=False)
    out = turn_naive(batch, cfg)
    a_out = (np.array([1.0, 0.0, 0.0]) - 1 / 3) / (np.std([1.0, 0.0, 0.0]) + cfg.eps)
    # turn 0: mean 0.2/3; turn 1: rollouts 0 and 2 both 0.1 (equal ⇒ 0); turn 2: one rollout ⇒ 0
    c0 = np.array([0.1, 0.1, 0.0]) - 0.2 / 3
    assert out.per_turn[0] == pytest.approx([a_out[0] + c0[0], a_out[0], a_out[0]])
    assert out.per_turn[1] == pytest.approx([a_out[1] + c0[1]])
    assert out.per_turn[2] == pytest.approx([a_out[2] + c0[2], a_out[2]])
    assert out.clip_scale is None


def test_turn_naive_lets_long_episodes_sum_more_terms_than_turn_group():
    rng = np.random.default_rng(0)
    dense = [rng.normal(size=n) for n in [1, 1, 1, 1, 8, 8, 8, 8]]
    batch = RewardBatch(["g"] * 8, np.zeros(8), dense)
    naive = turn_naive(batch, QUIET)
    grouped = turn_group(batch, QUIET)
    spread = lambda out, idx: np.std([out.per_turn[i][0] for i in idx])  # noqa: E731
    # without √n the first-turn advantages of 8-turn episodes spread far more than with it
    assert spread(naive, range(4, 8)) > 1.5 * spread(grouped, range(4, 8))


def test_rae_shared_uses_one_baseline_for_all_seats():
    batch = RewardBatch(["a", "b", "c", "d"], [1.0, -1.0, 1.0, -1.0], [[0.0]] * 4,
                        roles=[("duel", 0), ("duel", 1), ("duel", 0), ("duel", 1)])
    cfg = AdvantageConfig(ema_decay=0.5, warn_singleton_groups=False)
    shared = rae_shared(batch, cfg)
    # one baseline: 0 → 0.5 → -0.25 → 0.375; advantages R − b(before)
    assert [float(a[0]) for a in shared.per_turn] == pytest.approx([1.0, -1.5, 1.25, -1.375])
    assert set(shared.rae_state.baselines) == {("duel", -1)}
    per_role = rae(batch, cfg)
    assert [float(a[0]) for a in per_role.per_turn] == pytest.approx([1.0, -1.0, 0.5, -0.5])
    assert isinstance(per_role.rae_state, RAEState)


def test_score_zero_turns_failed_rollouts_into_group_members_with_outcome_zero():
    batch = [_traj(1.0, [0.1]), _traj(0.5, [0.1]), _traj(None, [0.1], failed=True)]
    masked = assemble(batch, None)
    assert masked.failed.tolist() == [False, False, True]
    scored = assemble(batch, None, failed_outcome=0.0)
    assert scored.failed.tolist() == [False, False, False]
    assert scored.outcomes.tolist() == [1.0, 0.5, 0.0]
    assert scored.turn_rewards[2].tolist() == [0.0]  # no dense credit for the failed rollout
    out, keep, _ = compute(batch, AlgoSection(estimator="grpo", failed_rollouts="score_zero"))
    assert keep.tolist() == [True, True, True] and out.per_turn[2][0] < 0
    out, keep, _ = compute(batch, AlgoSection(estimator="grpo"))
    assert keep.tolist() == [True, True, False] and out.per_turn[2][0] == 0.0


def test_failed_rollouts_option_is_validated():
    with pytest.raises(ValueError, match="failed_rollouts"):
        AlgoSection(failed_rollouts="zero")


def test_advantage_metrics_per_seat_and_length_correlation():
    trajs = [_traj(1.0, [0.0], seat=0), _traj(1.0, [0.0, 0.0], seat=0), _traj(-1.0, [0.0], seat=1), _traj(0.0, [0.0], seat=1)]
    per_turn = [np.array([1.0]), np.array([2.0, 2.0]), np.array([-1.0]), np.array([5.0])]
    m = advantage_metrics(trajs, per_turn, np.array([True, True, True, False]))
    assert m["adv/seat0/mean"] == pytest.approx(1.5) and m["adv/seat1/mean"] == pytest.approx(-1.0)
    assert m["adv/mean"] == pytest.approx(2 / 3)
    assert m["adv/len_corr"] > 0.5
    assert advantage_metrics(trajs, per_turn, np.zeros(4, bool)) == {}
    single = advantage_metrics(trajs[:1], per_turn[:1], np.array([True]))
    assert math.isnan(single["adv/len_corr"])

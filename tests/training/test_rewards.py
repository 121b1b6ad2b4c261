"""G-RA gated reward assembly (algorithms.md §2.3, §8.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import turngym
from turngym.training.rewards import (
    RolloutRewards,
    assemble,
    gate_open,
    gate_turn_rewards,
    prioritized_reward,
)

# ----------------------------------------------------------------------------- two-level gate


def test_gate_open_passes_dense_rewards_through():
    assert gate_turn_rewards(1.0, [0.1, -0.2, 0.3], delta=0.5) == [0.1, -0.2, 0.3]


def test_gate_open_at_exact_threshold():
    assert gate_open(0.5, 0.5)
    assert gate_turn_rewards(0.5, [0.25], delta=0.5) == [0.25]


def test_gate_closed_zeroes_dense_rewards():
    assert gate_turn_rewards(0.0, [0.1, -0.2, 0.3], delta=0.5) == [0.0, 0.0, 0.0]


def test_ungated_mode_is_d_ra_and_ignores_the_gate():
    assert gate_turn_rewards(-1.0, [0.1, 0.2], delta=0.5, mode="ungated") == [0.1, 0.2]


def test_delta_none_means_always_open():
    assert gate_open(-100.0, None)
    assert gate_turn_rewards(-100.0, [0.5], delta=None) == [0.5]


def test_absent_dense_values_stay_absent_whatever_the_gate():
    open_ = gate_turn_rewards(1.0, [0.1, math.nan, math.inf], delta=0.5)
    closed = gate_turn_rewards(0.0, [0.1, math.nan, math.inf], delta=0.5)
    assert open_[0] == 0.1 and math.isnan(open_[1]) and math.isnan(open_[2])
    assert closed[0] == 0.0 and math.isnan(closed[1]) and math.isnan(closed[2])


def test_gate_errors_quote_bad_values():
    with pytest.raises(ValueError, match="'half'"):
        gate_turn_rewards(1.0, [0.1], delta=0.5, mode="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nan"):
        gate_open(math.nan, 0.0)
    with pytest.raises(ValueError, match="inf"):
        gate_open(1.0, math.inf)


# ----------------------------------------------------------------------------- prioritized form


def test_prioritized_reward_hand_computed_all_gates_open():
    # outcome (p=2, δ=0.5), tests (p=1, δ=0.3), format (p=0, never gates)
    channels = [(1.0, 2, 0.5), (0.4, 1, 0.3), (0.1, 0, None)]
    assert prioritized_reward(channels) == pytest.approx(1.0 + 0.4 + 0.1)


def test_prioritized_reward_hand_computed_top_gate_closed():
    channels = [(0.2, 2, 0.5), (0.4, 1, 0.3), (0.1, 0, None)]
    assert prioritized_reward(channels) == pytest.approx(0.2)


def test_prioritized_reward_hand_computed_middle_gate_closed():
    # outcome passes, tests fail their threshold: tests still count (only higher priorities gate
    # a channel), format does not (tests is above it and failed).
    channels = [(1.0, 2, 0.5), (0.2, 1, 0.3), (0.1, 0, None)]
    assert prioritized_reward(channels) == pytest.approx(1.0 + 0.2)


def test_prioritized_reward_equal_priorities_do_not_gate_each_other():
    assert prioritized_reward([(-1.0, 1, 0.0), (0.5, 1, 0.0)]) == pytest.approx(-0.5)


def test_prioritized_reward_reduces_to_two_level_g_ra():
    for outcome in (-1.0, 0.0, 0.2, 1.0):
        low = [0.1, 0.3, -0.05]
        two_level = outcome + sum(gate_turn_rewards(outcome, low, delta=0.2))
        channels = [(outcome, 1, 0.2)] + [(r, 0, None) for r in low]
        assert prioritized_reward(channels) == pytest.approx(two_level)


def test_prioritized_reward_rejects_bad_channels():
    with pytest.raises(ValueError, match="channel 1"):
        prioritized_reward([(1.0, 1, 0.0), (1.0, 0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="nan"):
        prioritized_reward([(math.nan, 1, 0.0)])


# ----------------------------------------------------------------------------- assemble


def _batch():
    return [
        RolloutRewards("g0", 1.0, [0.1, 0.2], env_id="e"),
        RolloutRewards("g0", -1.0, [0.1, 0.2, 0.3], env_id="e"),
        RolloutRewards("g1", 0.0, [math.nan, 0.5], env_id="e", seat=1),
    ]


def test_assemble_gated_returns_and_gates():
    out = assemble(_batch(), delta=0.0)
    np.testing.assert_array_equal(out.gates, [True, False, True])
    np.testing.assert_allclose(out.returns, [1.3, -1.0, 0.5])
    np.testing.assert_allclose(out.turn_rewards[1], [0.0, 0.0, 0.0])
    assert math.isnan(out.turn_rewards[2][0]) and out.turn_rewards[2][1] == 0.5
    np.testing.assert_array_equal(out.outcomes, [1.0, -1.0, 0.0])
    assert out.seats == [0, 0, 1] and out.group_ids == ["g0", "g0", "g1"] and len(out) == 3


def test_assemble_ungated_is_direct_accumulation():
    out = assemble(_batch(), delta=0.0, mode="ungated")
    np.testing.assert_allclose(out.returns, [1.3, -0.4, 0.5])
    assert out.gates.all()


def test_assemble_per_env_delta_mapping():
    rollouts = [
        RolloutRewards("a", 0.3, [1.0], env_id="search"),
        RolloutRewards("b", 0.3, [1.0], env_id="swe"),
    ]
    out = assemble(rollouts, delta={"search": 0.0, "swe": 0.5})
    np.testing.assert_array_equal(out.gates, [True, False])
    with pytest.raises(ValueError, match="'household'"):
        assemble([RolloutRewards("c", 0.0, [], env_id="household")], delta={"search": 0.0})


def test_assemble_failed_rollouts_are_unscored_not_zero():
    rollouts = [RolloutRewards("g", math.nan, [0.1], failed=True), RolloutRewards("g", 1.0, [0.1])]
    out = assemble(rollouts, delta=0.0)
    assert out.failed.tolist() == [True, False]
    assert math.isnan(out.returns[0]) and math.isnan(out.outcomes[0])
    assert np.isnan(out.turn_rewards[0]).all() and not out.gates[0]
    assert out.returns[1] == pytest.approx(1.1)


def test_rollout_rewards_rejects_nan_outcome_unless_failed():
    with pytest.raises(ValueError, match="nan"):
        RolloutRewards("g", math.nan, [0.1])


def test_default_delta_comes_from_the_env_spec():
    game_id = next(i for i, s in turngym.registry().items() if s.family == "game")
    delta = turngym.spec(game_id).gate_threshold
    rollouts = [RolloutRewards("g", -1.5, [0.2], env_id=game_id), RolloutRewards("g", 1.0, [0.2])]
    out = assemble(rollouts, delta=delta)
    expected_open = delta is None or -1.5 >= delta
    assert out.gates[0] == expected_open and out.gates[1]


# ----------------------------------------------------------------------------- §8.6 rows


def test_edge_truncated_at_max_turns_closes_the_gate():
    """§8.6 'Truncated at max turns': lowest outcome-ladder level, gate closed under G-RA."""
    ladder = {"no_submit": -1.0, "empty_patch": -0.5, "fails_tests": 0.0, "passes": 1.0}
    delta = ladder["fails_tests"]  # gate opens once a non-empty patch is submitted
    truncated = RolloutRewards("g", ladder["no_submit"], [0.1] * 20)  # tool-spamming until timeout
    submitted = RolloutRewards("g", ladder["fails_tests"], [0.1, 0.1])
    out = assemble([truncated, submitted], delta=delta)
    assert not out.gates[0]
    assert out.returns[0] == ladder["no_submit"]  # earns nothing from its dense rewards
    assert out.returns[1] == pytest.approx(0.2)
    ungated = assemble([truncated, submitted], delta=delta, mode="ungated")
    assert ungated.returns[0] > ungated.returns[1]  # the D-RA reward-hacking failure mode


def test_edge_invalid_action_penalty_closes_the_offenders_gate():
    """§8.6 'Invalid action': SPIRAL −1.5 offender / +0.5 other; game gate δ = −1 (forfeit)."""
    offender = RolloutRewards("g", -1.5, [0.05, 0.05], seat=0)
    other = RolloutRewards("g", 0.5, [0.05], seat=1)
    out = assemble([offender, other], delta=-1.0)
    assert out.gates.tolist() == [False, True]
    np.testing.assert_allclose(out.returns, [-1.5, 0.55])

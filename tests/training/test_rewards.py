"""G-RA gated reward assembly (algorithms.md §2.3, §8.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import turngym
from turngym.envs.types import TurnRecord
from turngym.training.rewards import (
    RewardBatch,
    assemble,
    gate_open,
    gate_turn_rewards,
    prioritized_reward,
)
from turngym.training.trajectory import Trajectory, Turn

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


def traj(group, outcome, dense, *, env_id="e", seat=0, failed=False, anchors=None) -> Trajectory:
    """A trajectory whose turn ``k`` earned the dense reward ``dense[k]`` (one component)."""
    anchors = anchors or [None] * len(dense)
    turns = [
        Turn([7], [1], [0.0], "a", "stop", TurnRecord(turn=k, seat=seat, reward=r, components={"r": r}), anchor=a)
        for k, (r, a) in enumerate(zip(dense, anchors))
    ]
    return Trajectory(env_id, 0, group, 0, seat, turns=turns, outcome=None if failed else outcome, failed=failed)


def _batch():
    return [
        traj("g0", 1.0, [0.1, 0.2]),
        traj("g0", -1.0, [0.1, 0.2, 0.3]),
        traj("g1", 0.0, [math.nan, 0.5], seat=1),
    ]


def test_assemble_gated_returns_and_gates():
    out = assemble(_batch(), delta=0.0)
    assert isinstance(out, RewardBatch)
    np.testing.assert_array_equal(out.gates, [True, False, True])
    np.testing.assert_allclose(out.returns, [1.3, -1.0, 0.5])
    np.testing.assert_allclose(out.turn_rewards[1], [0.0, 0.0, 0.0])
    assert math.isnan(out.turn_rewards[2][0]) and out.turn_rewards[2][1] == 0.5
    np.testing.assert_array_equal(out.outcomes, [1.0, -1.0, 0.0])
    assert out.seats == [0, 0, 1] and len(out) == 3
    assert out.group_ids == ["g0/seat0", "g0/seat0", "g1/seat1"]  # Trajectory.group_key
    assert out.roles == [("e", 0), ("e", 0), ("e", 1)]


def test_assemble_puts_the_seats_of_one_game_in_different_groups():
    out = assemble([traj("g", 1.0, [0.0], seat=0), traj("g", -1.0, [0.0], seat=1)], delta=None)
    assert out.group_ids[0] != out.group_ids[1]


def test_assemble_carries_each_turns_anchor_state():
    out = assemble([traj("g", 1.0, [0.0, 0.0], anchors=["board-a", "board-b"]), traj("g", 0.0, [0.0])], delta=None)
    assert out.anchors == [["board-a", "board-b"], [None]]


def test_assemble_ungated_is_direct_accumulation():
    out = assemble(_batch(), delta=0.0, mode="ungated")
    np.testing.assert_allclose(out.returns, [1.3, -0.4, 0.5])
    assert out.gates.all()


def test_assemble_adds_weighted_information_gain_before_the_gate():
    rollouts = [traj("g", 1.0, [0.1, 0.0]), traj("g", -1.0, [0.1])]
    gains = [np.array([0.5, np.nan]), np.array([0.5])]  # nan: no gain for that turn
    out = assemble(rollouts, delta=0.0, information_gains=gains, info_gain_weight=2.0)
    np.testing.assert_allclose(out.turn_rewards[0], [1.1, 0.0])
    np.testing.assert_allclose(out.turn_rewards[1], [0.0])  # gate closed: the gain is gated too
    with pytest.raises(ValueError, match="1 turns but information gains of shape"):
        assemble(rollouts, delta=0.0, information_gains=[np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="2 trajectories but 1 information-gain"):
        assemble(rollouts, delta=0.0, information_gains=[np.zeros(2)])


def test_assemble_ungated_components_bypass_a_closed_gate_and_the_rest_stays_gated():
    def turn(k, components):
        return Turn([7], [1], [0.0], "a", "stop", TurnRecord(turn=k, seat=0, reward=sum(components.values()), components=components))

    closed = Trajectory("e", 0, "g", 0, 0, turns=[turn(0, {"format": -0.2, "hit": 0.1}), turn(1, {"hit": 0.1})], outcome=0.0)
    opened = Trajectory("e", 0, "g", 1, 0, turns=[turn(0, {"format": -0.2, "hit": 0.1})], outcome=1.0)
    out = assemble([closed, opened], delta=1.0, ungated_components={"format"})
    np.testing.assert_allclose(out.turn_rewards[0], [-0.2, 0.0])  # the hit is gated off, the format term is not
    np.testing.assert_allclose(out.turn_rewards[1], [-0.1])  # open gate: everything counts
    np.testing.assert_allclose(out.returns, [-0.2, 0.9])
    plain = assemble([closed, opened], delta=1.0)  # default: the paper's G-RA gates every term
    np.testing.assert_allclose(plain.turn_rewards[0], [0.0, 0.0])


def test_assemble_per_env_delta_mapping():
    rollouts = [traj("a", 0.3, [1.0], env_id="search"), traj("b", 0.3, [1.0], env_id="swe")]
    out = assemble(rollouts, delta={"search": 0.0, "swe": 0.5})
    np.testing.assert_array_equal(out.gates, [True, False])
    with pytest.raises(ValueError, match="'household'"):
        assemble([traj("c", 0.0, [], env_id="household")], delta={"search": 0.0})


def test_assemble_failed_rollouts_are_unscored_not_zero():
    rollouts = [traj("g", math.nan, [0.1], failed=True), traj("g", 1.0, [0.1])]
    out = assemble(rollouts, delta=0.0)
    assert out.failed.tolist() == [True, False]
    assert math.isnan(out.returns[0]) and math.isnan(out.outcomes[0])
    assert np.isnan(out.turn_rewards[0]).all() and not out.gates[0]
    assert out.returns[1] == pytest.approx(1.1)
    no_outcome = Trajectory("e", 0, "g", 0, 0, turns=traj("g", 0.0, [0.1]).turns)  # outcome None
    assert assemble([no_outcome], delta=0.0).failed.tolist() == [True]


def test_a_nan_outcome_is_refused_unless_failed():
    with pytest.raises(ValueError, match="nan"):
        assemble([traj("g", math.nan, [0.1])], delta=0.0)
    with pytest.raises(ValueError, match="nan"):
        RewardBatch(["g"], [math.nan], [[0.1]])
    assert RewardBatch(["g"], [math.nan], [[0.1]], failed=[True]).gates.tolist() == [False]


def test_default_delta_comes_from_the_env_spec():
    game_id = next(i for i, s in turngym.registry().items() if s.family == "game")
    delta = turngym.spec(game_id).gate_threshold
    rollouts = [traj("g", -1.5, [0.2], env_id=game_id), traj("g", 1.0, [0.2])]
    out = assemble(rollouts, delta=delta)
    expected_open = delta is None or -1.5 >= delta
    assert out.gates[0] == expected_open and out.gates[1]


# ----------------------------------------------------------------------------- §8.6 rows


def test_edge_truncated_at_max_turns_closes_the_gate():
    """§8.6 'Truncated at max turns': lowest outcome-ladder level, gate closed under G-RA."""
    ladder = {"no_submit": -1.0, "empty_patch": -0.5, "fails_tests": 0.0, "passes": 1.0}
    delta = ladder["fails_tests"]  # gate opens once a non-empty patch is submitted
    truncated = traj("g", ladder["no_submit"], [0.1] * 20)  # tool-spamming until timeout
    submitted = traj("g", ladder["fails_tests"], [0.1, 0.1])
    out = assemble([truncated, submitted], delta=delta)
    assert not out.gates[0]
    assert out.returns[0] == ladder["no_submit"]  # earns nothing from its dense rewards
    assert out.returns[1] == pytest.approx(0.2)
    ungated = assemble([truncated, submitted], delta=delta, mode="ungated")
    assert ungated.returns[0] > ungated.returns[1]  # the D-RA reward-hacking failure mode


def test_edge_invalid_action_penalty_closes_the_offenders_gate():
    """§8.6 'Invalid action': SPIRAL −1.5 offender / +0.5 other; game gate δ = −1 (forfeit)."""
    offender = traj("g", -1.5, [0.05, 0.05], seat=0)
    other = traj("g", 0.5, [0.05], seat=1)
    out = assemble([offender, other], delta=-1.0)
    assert out.gates.tolist() == [False, True]
    np.testing.assert_allclose(out.returns, [-1.5, 0.55])

import json

import numpy as np
import pytest

from turngym.envs.types import StopReason, TextSpace, TurnRecord


def test_turn_record_round_trips_through_json():
    record = TurnRecord(
        turn=3, seat=1, reward=0.75, components={"format": -0.25}, outcome=1.0,
        terminated=True, stop_reason=StopReason.GAME_OVER, valid_action=True,
    )
    again = TurnRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert again.stop_reason is StopReason.GAME_OVER


def test_reward_invariant_detects_inconsistent_records():
    assert TurnRecord(turn=0, seat=0, reward=0.5, components={"a": 0.25, "b": 0.25}).reward_consistent()
    assert TurnRecord(turn=0, seat=0, reward=1.5, components={"a": 0.5}, outcome=1.0).reward_consistent()
    assert not TurnRecord(turn=0, seat=0, reward=1.0, components={"a": 0.5}).reward_consistent()


def test_text_space_contains_any_unicode_up_to_max_length():
    space = TextSpace(max_length=5)
    assert space.contains("中文✓é ")
    assert not space.contains("123456")
    assert not space.contains(b"abc")
    assert not space.contains(3)


def test_text_space_sample_uses_mask_of_candidates_and_is_seeded():
    space = TextSpace(seed=0)
    picks = {space.sample(["a", "b"]) for _ in range(50)}
    assert picks == {"a", "b"}
    a, b = TextSpace(seed=4), TextSpace(seed=4)
    assert [a.sample() for _ in range(5)] == [b.sample() for _ in range(5)]


def test_text_space_rejects_bad_length():
    with pytest.raises(ValueError, match="max_length must be positive, got 0"):
        TextSpace(max_length=0)


def test_stop_reason_str_and_turn_reward():
    assert str(StopReason.TURN_LIMIT) == "turn_limit"
    assert np.isfinite(TurnRecord(turn=0, seat=0, reward=0.0).turn_reward)

"""Hypothesis fuzzing: no action text or bytes makes any registered environment raise."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import turngym
from turngym.envs.types import TurnRecord

ALL_IDS = sorted(i for i in turngym.registry() if not i.startswith("test/"))

actions = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=64),
    st.text(alphabet="0123456789[]{}\\boxed ,-xX", max_size=30),  # near-misses of real move syntax
    # Unicode digits: "²".isdigit() is True but int("²") raises; "３" and "٣" are decimals int() accepts.
    st.text(alphabet="0123456789²³¹①３٣۴߂०[] ", max_size=12),
    st.sampled_from(["", " ", "[", "]", "[]", "[[1]]", "\\boxed{}", "1-1 2-2", "liar liar", "accept accept"]),
)


def _check_env(env_id: str, sequence: list) -> None:
    env = turngym.make(env_id)
    obs, _ = env.reset(seed=0)
    for action in sequence:
        obs, reward, terminated, truncated, info = env.step(action)
        record = info["turn"]
        assert isinstance(obs, str) and isinstance(record, TurnRecord)
        assert record.reward_consistent()
        if not record.valid_action:
            assert env.unwrapped.action_format in obs
        if terminated or truncated:
            break


# Examples per env: a reset costs microseconds in games but ~0.4 s in the ALFWorld engine and a
# sandbox in code envs, where fewer examples keep the suite's time bounded (their own tests go deeper).
EXAMPLES = {"household": 8, "code": 6}
SCALE = float(os.environ.get("TURNGYM_FUZZ_SCALE", "1"))  # e.g. 50 for a deep local run


def _make_test(env_id: str):
    @settings(max_examples=max(1, round(SCALE * EXAMPLES.get(turngym.spec(env_id).family, 60))), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(actions, min_size=1, max_size=4))
    def test(sequence):
        _check_env(env_id, sequence)

    return test


for _env_id in ALL_IDS:
    globals()[f"test_fuzz_{_env_id.replace('/', '_').replace('-', '_')}"] = _make_test(_env_id)

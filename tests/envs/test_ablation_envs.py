"""The ablation studies' environments (envs/ablation.py): each rule their docstrings state."""

from __future__ import annotations

import pytest

import turngym
from turngym.envs.ablation import (
    FlakyVowelsEnv,
    InjectedEnvError,
    KeyTurnEnv,
    LookupEnv,
    PingFarmEnv,
    VowelDuelEnv,
)
from turngym.envs.checker import check

IDS = ["turngym/PingFarm-v0", "turngym/KeyTurn-v0", "turngym/Lookup-v0", "turngym/FlakyVowels-v0", "turngym/VowelDuel-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_registered_and_conformant(env_id):
    assert turngym.spec(env_id).family == "toy"
    report = check(env_id)
    assert report.ok, report


def test_ping_farm_pays_pings_capped_and_scores_vowels():
    env = PingFarmEnv()
    env.reset(seed=0)
    _, reward, _, _, info = env.step("pppaaa")
    assert info["turn"].components == {"ping": pytest.approx(0.3)} and reward == pytest.approx(0.3)
    _, _, _, _, info = env.step("p" * 20)
    assert info["turn"].components["ping"] == pytest.approx(0.5)
    _, reward, done, _, info = env.step("aaaa")
    assert done and info["turn"].outcome == pytest.approx((0.5 + 0 + 1) / 3)
    assert turngym.spec("turngym/PingFarm-v0").gate_threshold == 0.8


def test_key_turn_scores_the_first_reply_and_ends_without_a_vowel():
    env = KeyTurnEnv()
    env.reset(seed=1)
    _, r, done, _, info = env.step("12ab")
    assert not done and info["turn"].components["progress"] == pytest.approx(0.1)
    _, r, done, _, info = env.step("zz")
    assert done and info["turn"].outcome == pytest.approx(0.5) and info["turn"].components["progress"] == 0.0
    env.reset(seed=1)
    for _ in range(4):
        _, _, done, _, _ = env.step("a")
        assert not done
    _, _, done, _, info = env.step("a")
    assert done and info["turn"].outcome == 0.0  # turn limit


def test_lookup_reveals_the_answer_only_to_a_good_query():
    env = LookupEnv()
    _, info = env.reset(seed=3)
    answer = info["answer"]
    assert answer in LookupEnv.LETTERS
    obs, *_ = env.step("xyz")
    assert "Nothing found" in obs and answer not in obs.split("\n")[0].replace("Nothing found.", "")
    _, _, done, _, info = env.step(answer * 3 + "q")
    assert done and info["turn"].outcome == pytest.approx(0.75)
    env.reset(seed=3)
    obs, *_ = env.step("a")
    assert f"the answer is {answer}" in obs


def test_flaky_vowels_fails_only_after_an_e_and_deterministically():
    assert all(_play(FlakyVowelsEnv(fail_rate=1.0), seed, ["aaa", "ooo", "iii"]) for seed in range(5))
    assert all(_play(FlakyVowelsEnv(fail_rate=0.0), seed, ["eee", "eee", "eee"]) for seed in range(5))
    with pytest.raises(InjectedEnvError):
        _play(FlakyVowelsEnv(fail_rate=1.0), 0, ["e", "a", "a"])
    outcomes = [_survives(FlakyVowelsEnv(fail_rate=0.5), seed) for seed in range(40)]
    assert 5 < sum(outcomes) < 35
    assert outcomes == [_survives(FlakyVowelsEnv(fail_rate=0.5), seed) for seed in range(40)]


def _play(env, seed, replies):
    env.reset(seed=seed)
    for text in replies:
        _, _, done, _, info = env.step(text)
    return done and info["turn"].outcome is not None


def _survives(env, seed):
    try:
        return _play(env, seed, ["ae", "io", "u"])
    except InjectedEnvError:
        return False


def test_vowel_duel_first_mover_wins_ties_and_has_a_head_start():
    env = VowelDuelEnv()
    env.reset(seed=0)
    assert env.current_seat == 0
    env.step("abcd")  # 0.25 + 0.25
    _, _, done, _, info = env.step("aaaa")  # 1.0 beats 0.5
    assert done and info["outcomes"] == {0: -1.0, 1: 1.0}
    env.reset(seed=0)
    env.step("xxxx")  # 0 + 0.25
    _, _, done, _, info = env.step("ax")  # 0.5 beats 0.25
    assert info["outcomes"] == {0: -1.0, 1: 1.0}
    env.reset(seed=0)
    env.step("xxxx")
    _, _, _, _, info = env.step("xxxa")  # 0.25 ties the head start: Player 0 wins
    assert info["outcomes"] == {0: 1.0, 1: -1.0}

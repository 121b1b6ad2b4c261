"""The LLM judge source: a real tiny-model judge (scored and generated), a real `turngym serve`
endpoint for the openai path, caching, batching, timeouts, failures (absent, never 0) and the
relative (group) mode."""

from __future__ import annotations

import math

import numpy as np
import pytest

from turngym.agents.factory import load_policy
from turngym.agents.hf_policy import HFPolicy
from turngym.agents.serve import ServeConfig, ServerThread
from turngym.agents.tiny import tiny_char_model
from turngym.envs.types import TurnRecord
from turngym.training.trajectory import Trajectory, Turn
from turngym.training.turn_rewards.judge import Judge, JudgeOptions, JudgeSource, parse_rating


@pytest.fixture(scope="module")
def tiny():
    return HFPolicy(*tiny_char_model(0))


def _traj(tiny, group, index, replies, outcome=1.0):
    enc = lambda s: list(tiny.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    turns = [Turn(enc(f"obs {k}:"), enc(r), [0.0] * len(enc(r)), r, "stop", TurnRecord(turn=k, seat=0, reward=0.0))
             for k, r in enumerate(replies)]
    return Trajectory("turngym/Vowels-v0", 0, group, index, 0, turns=turns, outcome=outcome, failed=outcome is None)


def _source(tiny, **options):
    judge = Judge(tiny, JudgeOptions(model="policy", **options))
    return JudgeSource(judge, lambda ids: tiny.tokenizer.decode(list(ids), skip_special_tokens=True))


def test_parse_rating():
    assert parse_rating("Score: 7/9") == pytest.approx(7 / 9)
    assert math.isnan(parse_rating("no idea")) and math.isnan(parse_rating(""))


def test_a_tiny_model_judge_scores_every_turn_batched_and_cached(tiny):
    source = _source(tiny, batch_size=2)
    batch = [_traj(tiny, "g", 0, ["aeiou", "bcd"]), _traj(tiny, "g", 1, ["xyz"]), _traj(tiny, "g", 2, ["aa"], outcome=None)]
    values = source.rewards(batch)
    assert source.judge.scoring == "logprob"
    assert all(0.0 <= v <= 1.0 for v in np.concatenate(values[:2]))  # the expected digit, always defined
    assert np.isnan(values[2]).all()  # a failed rollout is not judged
    assert source.judge.calls == 2  # 3 turns, batches of 2
    again = source.rewards(batch)
    assert source.judge.calls == 2 and source.judge.hits == 3  # cached by (rubric, context hash)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(values, again))
    other_rubric = Judge(tiny, JudgeOptions(model="policy", rubric="Is it polite?"))
    other_rubric.cache = source.judge.cache
    other_rubric.rate("Is it polite?", ["ASSISTANT: aeiou"])
    assert other_rubric.calls == 1  # another rubric is another key


def test_a_judge_that_times_out_or_fails_gives_absent_values_and_is_asked_again(tiny):
    slow = _source(tiny, timeout_s=1e-4, retries=1)
    batch = [_traj(tiny, "g", 0, ["aeiou" * 20, "bcd" * 20])]
    values = slow.rewards(batch)
    assert np.isnan(values[0]).all()  # absent, never 0
    assert slow.judge.failures == 2 and slow.judge.calls == 2 and not slow.judge.cache  # tried twice, nothing cached
    down = load_policy("openai:judge@http://127.0.0.1:9/v1", chat_only=True)  # nothing listens on port 9
    down.retries, down.timeout_s = 0, 2.0
    judge = Judge(down, JudgeOptions(model="openai:judge@http://127.0.0.1:9/v1", retries=1))
    assert judge.scoring == "generate"
    assert all(math.isnan(r) for r in judge.rate("r", ["a", "b"])) and judge.failures == 2


def test_generated_ratings_through_a_real_turngym_serve_endpoint(tiny):
    with ServerThread(tiny, ServeConfig(model_name="tiny")) as server:
        remote = load_policy(f"openai:tiny@{server.base_url}", chat_only=True)
        judge = Judge(remote, JudgeOptions(model=f"openai:tiny@{server.base_url}", batch_size=8, max_new_tokens=6))
        ratings = judge.rate("Rate it.", ["ASSISTANT: aeiou", "ASSISTANT: 123", "ASSISTANT: zz"])
        local = Judge(tiny, JudgeOptions(model="policy", scoring="generate", max_new_tokens=6)).rate(
            "Rate it.", ["ASSISTANT: aeiou", "ASSISTANT: 123", "ASSISTANT: zz"])
    assert judge.calls == 1 and judge.failures == 0  # one batch over HTTP
    assert all(math.isnan(r) or 0.0 <= r <= 1.0 for r in ratings)  # a reply without a digit is absent
    assert np.array_equal(ratings, local, equal_nan=True)  # the served greedy judge is the local one


def test_relative_mode_scores_a_whole_group_on_the_last_turns(tiny):
    source = _source(tiny, mode="group")
    batch = [_traj(tiny, "g", 0, ["aeiou", "ee"]), _traj(tiny, "g", 1, ["zzz"]), _traj(tiny, "h", 0, ["aa"])]
    values = source.rewards(batch)
    assert np.isnan(values[0][0]) and 0.0 <= values[0][1] <= 1.0 and 0.0 <= values[1][0] <= 1.0
    assert source.judge.calls == 1 and len(source.judge.cache) == 3  # one batched call for both groups' 3 members


def test_one_forward_rating_equals_the_teacher_forced_digit_scores(tiny):
    judge = Judge(tiny, JudgeOptions(model="policy"))
    prompts = ["rubric\n\nASSISTANT: aeiou", "rubric\n\nobs 1: x\nASSISTANT: 123, a longer reply"]
    fast = judge._logprob(prompts)
    digits = [list(tiny.tokenizer(str(d), add_special_tokens=False)["input_ids"])[-1] for d in range(10)]
    encoded = [judge._encode(p) for p in prompts]
    scores = tiny.score([e for e in encoded for _ in digits], [[d] for _ in encoded for d in digits])
    logp = np.array([float(s[0]) for s in scores]).reshape(2, 10)
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    assert np.allclose(fast, (p / p.sum(axis=1, keepdims=True)) @ np.arange(10) / 9.0, atol=1e-5)


def test_the_runner_reports_the_judges_calls_after_scoring(tiny):
    from turngym.training.turn_rewards.base import ActiveSource, TurnRewards

    runner = TurnRewards([ActiveSource(_source(tiny, batch_size=4), 1.0, "judge")])
    runner.apply([_traj(tiny, "g", 0, ["aeiou", "bcd"])], 0, local=False)
    metrics = runner.metrics()
    assert metrics["turn_rewards/judge/calls"] == 1 and metrics["turn_rewards/judge/failures"] == 0
    assert 0.0 <= metrics["turn_rewards/judge/mean"] <= 1.0 and metrics["turn_rewards/judge/coverage"] == 1.0

import math

import numpy as np
import pytest

import turngym
from turngym.envs.checker import check
from turngym.envs.search_qa.agents import NoSearchAgent, OracleAgent
from turngym.envs.search_qa.env import ACTION_FORMAT, SearchQAEnv
from turngym.envs.search_qa.scoring import contains_answer
from turngym.envs.types import StopReason

FICTIONAL = "turngym/SearchQA-Fictional-v0"


def _env(**kwargs) -> SearchQAEnv:
    return SearchQAEnv(source="fictional", split=None, **kwargs)


def _play(env, agent, seed):
    obs, info = env.reset(seed=seed)
    observations, records, infos = [obs], [], [info]
    while True:
        obs, _, terminated, truncated, step_info = env.step(agent(env))
        observations.append(obs)
        records.append(step_info["turn"])
        infos.append(step_info)
        if terminated or truncated:
            return observations, records, infos


def test_checker_passes_on_fictional_id():
    report = check(FICTIONAL)
    assert report.ok, [r for r in report.results if not r.ok]


def test_gold_answer_is_in_info_and_never_in_the_envs_own_text():
    env = _env()
    rng = np.random.default_rng(0)
    for seed in range(len(env.pool)):
        obs, info = env.reset(seed=seed)
        golds = env.question.answers
        assert info["answer"] == golds[0] and info["answers"] == list(golds)
        assert not contains_answer(obs, golds), (seed, obs)
        # every kind of reply: the env's own messages (everything outside <information>) never state it
        for reply in ("<answer>wrong guess</answer>", "garbage", "<search></search>", env.sample_valid_action(rng)):
            env.reset(seed=seed)
            step_obs = env.step(reply)[0]
            own = step_obs.split("</information>")[-1]
            assert not contains_answer(own, golds), (seed, reply, step_obs)


@pytest.mark.parametrize(
    "reply, expect",
    [
        ("", "neither a <search> nor an <answer>"),
        ("<search>unclosed", "never closed"),
        ("<search>a <search>b</search></search>", "cannot be nested"),
        ("<search> </search>", "search query was empty"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_malformed_replies_get_a_corrective_observation_and_a_format_penalty(reply, expect):
    env = _env()
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(reply)
    record = info["turn"]
    assert expect in obs and ACTION_FORMAT in obs
    assert not record.valid_action and not (terminated or truncated)
    assert record.components == {"format": -0.2, "retrieval_hit": 0.0} and reward == -0.2
    assert env.searches == []


def test_fifty_searches_in_one_turn_run_only_the_first():
    env = _env()
    env.reset(seed=0)
    reply = "".join(f"<search>{h.query}</search>" for h in env.question.hops * 25)
    obs, *_, info = env.step(reply)
    assert env.searches == [env.question.hops[0].query]
    assert obs.count("<information>") == 1 and "other <search>/<answer> tag(s)" in obs
    assert info["turn"].components["format"] == -0.1 and info["turn"].valid_action


def test_retrieval_hit_rewards_each_supporting_passage_once():
    env = _env()
    env.reset(seed=1)
    q = env.question
    first = env.step(f"<search>{q.hops[0].query}</search>")[4]["turn"]
    assert first.components["retrieval_hit"] == pytest.approx(0.1 * sum(p in env.seen for p in q.supporting_ids))
    assert q.hops[0].passage_id in env.seen
    again = env.step(f"<search>{q.hops[0].query}</search>")[4]["turn"]
    assert again.components["retrieval_hit"] == 0.0


def test_answer_scores_em_with_aliases_and_f1_variant():
    env = _env()
    q = next(q for q in env.pool if q.shape == "intersection")  # answers carry an alias
    env.reset(options={"question_id": q.id})
    *_, info = env.step(f"<answer>{q.answers[1].upper()}</answer>")
    assert info["turn"].outcome == 1.0 and info["em"] == 1.0 and info["turn"].stop_reason == StopReason.SOLVED
    f1_env = _env(reward="f1")
    f1_env.reset(options={"question_id": q.id})
    *_, info = f1_env.step("<answer>Republic of Nowhere</answer>")
    assert info["em"] == 0.0 and 0.0 < info["f1"] < 1.0 and info["turn"].outcome == info["f1"]


def test_turn_budget_ends_without_answer_and_warns_before():
    env = _env(turns=2)
    env.reset(seed=0)
    obs, *_ = env.step("<search>anything</search>")
    assert "last turn" in obs
    _, _, terminated, truncated, info = env.step("<search>more</search>")
    record = info["turn"]
    assert truncated and not terminated and record.stop_reason == StopReason.TURN_LIMIT and record.outcome == 0.0
    assert len(env.searches) == 1  # the last turn's search is not run


def test_oracle_solves_and_no_search_fails_on_dev():
    env = SearchQAEnv(source="fictional", split="dev")
    oracle = [_play(env, OracleAgent(), s)[1][-1].outcome for s in range(len(env.pool))]
    blind = [_play(env, NoSearchAgent(), s)[1][-1].outcome for s in range(len(env.pool))]
    assert np.mean(oracle) >= 0.9
    assert np.mean(blind) <= 0.35


def test_rewards_are_consistent_and_bounded_in_oracle_episodes():
    env = turngym.make(FICTIONAL)
    for seed in range(20):
        _, records, _ = _play(env.unwrapped, OracleAgent(), seed)
        for r in records:
            assert r.reward_consistent() and -0.2 <= r.reward <= 1.0 and math.isfinite(r.reward)
        assert records[-1].outcome is not None and all(r.outcome is None for r in records[:-1])


def test_envs_share_the_loaded_retriever():
    a, b = _env(), SearchQAEnv(source="fictional", split="dev", shape="chain")
    assert a.retriever is b.retriever and a.data is b.data


def test_fork_continues_identically():
    env = _env()
    env.reset(seed=5)
    env.step(f"<search>{env.question.hops[0].query}</search>")
    clone = env.fork()
    a = env.step(f"<search>{env.question.hops[1].query}</search>")
    b = clone.step(f"<search>{clone.question.hops[1].query}</search>")
    assert a[0] == b[0] and a[1] == b[1] and env.seen == clone.seen
    clone.step("<answer>x</answer>")
    assert not env._over


def test_bad_constructor_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="reward must be 'em' or 'f1'"):
        _env(reward="bleu")
    with pytest.raises(ValueError, match="split must be one of"):
        SearchQAEnv(source="fictional", split="validation")
    with pytest.raises(ValueError, match="source must be one of"):
        SearchQAEnv(source="wikipedia")


def test_every_variant_id_is_registered_with_the_agents():
    ids = [i for i in turngym.registry() if i.startswith("turngym/SearchQA")]
    assert {"turngym/SearchQA-v0", "turngym/SearchQA-dev-v0", "turngym/SearchQA-Chain-v0"} <= set(ids)
    for i in ids:
        assert set(turngym.spec(i).agents) == {"oracle", "no-search"}

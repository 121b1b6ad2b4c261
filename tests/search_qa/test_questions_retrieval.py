import dataclasses

import pytest

from turngym.envs.search_qa import dataset
from turngym.envs.search_qa.evaluation import hop_recall
from turngym.envs.search_qa.fictional import build_fictional_kb
from turngym.envs.search_qa.questions import generate_questions, verify
from turngym.envs.search_qa.records import ALL_SHAPES, Corpus, Hop
from turngym.envs.search_qa.retrieval import FieldedBM25, tokenize
from turngym.envs.search_qa.scoring import contains_answer


@pytest.fixture(scope="module")
def kb():
    return build_fictional_kb(n_countries=36, seed=0)


def test_fictional_kb_is_deterministic_and_keys_are_unique(kb):
    again = build_fictional_kb(n_countries=36, seed=0)
    assert [p.to_dict() for p in again.corpus.passages] == [p.to_dict() for p in kb.corpus.passages]
    assert build_fictional_kb(n_countries=36, seed=1).corpus.passages[0] != kb.corpus.passages[0]
    capitals = [e.facts["capital"].value for e in kb.entities.values()]
    assert len(set(capitals)) == len(capitals)
    for e in kb.entities.values():  # borders are symmetric
        for n, km in e.borders.items():
            assert kb.entities[n].borders[e.key] == km


def test_questions_cover_every_shape_and_pass_verification(kb):
    qs = generate_questions(kb, per_shape=40, seed=0)
    assert {q.shape for q in qs} == set(ALL_SHAPES)
    assert len({q.id for q in qs}) == len(qs)
    for q in qs:
        assert verify(q, kb) is None
        assert not contains_answer(q.text, q.answers)
        assert len(q.hops) == {"chain": 3, "lookup": 1}.get(q.shape, 2)
    comparisons = [q.answer for q in qs if q.shape == "comparison"]
    assert comparisons.count("yes") == comparisons.count("no")


def test_splits_are_fixed_by_seed_and_disjoint(kb):
    a = generate_questions(kb, per_shape=40, seed=0)
    b = generate_questions(kb, per_shape=40, seed=0)
    assert [q.to_dict() for q in a] == [q.to_dict() for q in b]
    by_split = {s: {q.id for q in a if q.split == s} for s in ("train", "dev", "test")}
    assert all(by_split.values())
    assert not (by_split["train"] & by_split["dev"]) and not (by_split["dev"] & by_split["test"])


def test_verify_rejects_questions_one_passage_answers(kb):
    q = next(q for q in generate_questions(kb, per_shape=10) if q.shape == "bridge")
    # make the first hop's passage the one stating the answer: no longer multi-hop
    collapsed = dataclasses.replace(q, hops=(Hop(q.hops[0].query, q.hops[1].passage_id), Hop("x", q.hops[0].passage_id)))
    assert verify(collapsed, kb) is not None
    assert "own answer" in verify(dataclasses.replace(q, text=q.text + " " + q.answer), kb)


def test_tokenizer_keeps_dotted_codes():
    assert tokenize("code .do; The Capital") == ["code", ".do", "do", "capital"]
    assert tokenize("D.C., e.g. .fr") == ["d", "c", "e", "g", ".fr", "fr"]


def test_batched_search_equals_single_queries_and_save_load_round_trips(kb, tmp_path):
    r = FieldedBM25.build(kb.corpus)
    queries = ["capital " + e.facts["capital"].value for e in kb.entities.values()][:20] + ["", "zzzz unknownword"]
    batched = r.search(queries, 3)
    assert batched == [r.search([q], 3)[0] for q in queries]
    assert batched[-2] == [] and batched[-1] == []  # nothing matches: no passages, not random ones
    r.save(tmp_path / "idx")
    loaded = FieldedBM25.load(tmp_path / "idx", kb.corpus)
    assert loaded.search(queries, 3) == batched
    with pytest.raises(ValueError, match="rebuild"):
        FieldedBM25.load(tmp_path / "idx", Corpus(kb.corpus.passages[:-1]))


def test_key_hop_finds_its_passage_first(kb):
    r = FieldedBM25.build(kb.corpus)
    e = kb.entities["f007"]
    top = r.search([f"capital {e.facts['capital'].value}", f"{e.name} population total"], 1)
    assert top[0][0].passage.id == e.facts["capital"].passage_id
    assert top[1][0].passage.id == e.numbers["population"].passage_id


def test_title_field_boost_is_what_finds_the_field_passage(kb):
    """The entity name is in many texts; without the title field the field passage loses."""
    qs = generate_questions(kb, per_shape=40)
    boosted = FieldedBM25.build(kb.corpus)
    plain = FieldedBM25.build(kb.corpus, title_weight=0.0)
    assert hop_recall(boosted, qs, k=3)["all_hops"]["recall"] >= 0.9
    assert hop_recall(plain, qs, k=3)["all_hops"]["recall"] < hop_recall(boosted, qs, k=3)["all_hops"]["recall"]


def test_dataset_cache_is_reused_and_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    first = dataset.build_generated("fictional", seed=3, per_shape=10, n_countries=9)
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert dataset.build_generated("fictional", seed=3, per_shape=10, n_countries=9) == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    assert dataset.build_generated("fictional", seed=4, per_shape=10, n_countries=9) != first
    assert first.parent == tmp_path / "search_qa"
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no half-built temp dirs


def test_process_cache_shares_one_retriever(fictional):
    assert dataset.load("fictional") is fictional
    assert fictional.retriever is fictional.retriever


def test_select_rejects_unknown_split(fictional):
    with pytest.raises(ValueError, match="split must be one of"):
        fictional.select("validation")

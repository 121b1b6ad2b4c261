import json

import pytest

from turngym.envs.search_qa.agents import OracleAgent
from turngym.envs.search_qa.env import SearchQAEnv
from turngym.envs.search_qa.loaders import DataFormatError, load_corpus, load_questions

CORPUS = [
    {"id": "1", "title": "Zorblat", "text": "Zorblat is a river whose source is Lake Quimby."},
    {"id": "2", "title": "Lake Quimby", "text": "Lake Quimby lies in the province of Ardent."},
    {"id": "3", "title": "Ardent", "text": "Ardent is a province; its governor is Mira Felk."},
]
QUESTIONS = [
    {"question": "Which province holds the source of the Zorblat?", "golden_answers": ["Ardent", "Ardent province"]},
    {"question": "Who governs Ardent?", "golden_answers": "Mira Felk", "split": "dev"},
]


def _write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_and_parquet_questions_load_alike(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    jsonl = load_questions(_write(tmp_path, "q.jsonl", QUESTIONS))
    rows = [{**QUESTIONS[0], "split": None}, {**QUESTIONS[1], "golden_answers": ["Mira Felk"]}]  # one schema
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "q.parquet")
    parquet = load_questions(tmp_path / "q.parquet")
    assert [(q.text, q.answers, q.split) for q in jsonl] == [(q.text, q.answers, q.split) for q in parquet]
    assert jsonl[0].answers == ("Ardent", "Ardent province") and jsonl[1].split == "dev"


def test_search_r1_processed_rows_use_the_reward_model_target(tmp_path):
    row = {"question": "Who governs Ardent?", "reward_model": {"ground_truth": {"target": ["Mira Felk"]}}, "extra_info": {"split": "test"}}
    (q,) = load_questions(_write(tmp_path, "q.jsonl", [row]))
    assert q.answers == ("Mira Felk",) and q.split == "test"


def test_corpus_accepts_wiki18_contents_layout(tmp_path):
    corpus = load_corpus(_write(tmp_path, "c.jsonl", [{"id": "7", "contents": '"Ardent"\nArdent is a province.'}]))
    assert corpus["7"].title == "Ardent" and corpus["7"].text == "Ardent is a province."


def test_bad_files_name_the_file_row_and_fields(tmp_path):
    with pytest.raises(DataFormatError, match=r"q.jsonl row 0: needs a non-empty 'question'.*\['query'\]"):
        load_questions(_write(tmp_path, "q.jsonl", [{"query": "x"}]))
    with pytest.raises(DataFormatError, match="unsupported file type '.csv'"):
        load_questions(_write(tmp_path, "q.csv", [{}]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(tmp_path / "missing.jsonl")


def test_env_runs_on_user_data_with_answer_containing_hits(tmp_path):
    q, c = _write(tmp_path, "q.jsonl", QUESTIONS), _write(tmp_path, "c.jsonl", CORPUS)
    env = SearchQAEnv(questions_path=str(q), corpus_path=str(c), split=None)
    obs, info = env.reset(seed=1)
    assert "Who governs Ardent?" in obs and info["answer"] == "Mira Felk"
    *_, step_info = env.step("<search>Ardent governor</search>")
    assert step_info["turn"].components["retrieval_hit"] == pytest.approx(0.1)  # passage 3 states the answer
    *_, final = env.step(OracleAgent()(env))
    assert final["em"] == 1.0
    with pytest.raises(ValueError, match="give both questions_path and corpus_path"):
        SearchQAEnv(questions_path=str(q))

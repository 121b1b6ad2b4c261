"""Loaders for data a user brings: Search-R1-style question files and ``{id, title, text}`` corpora.

Questions (``.jsonl`` or ``.parquet``), one record per question:

* ``question`` (str) and ``golden_answers`` (list of str, or one str) — the Search-R1 / FlashRAG
  fields; if ``golden_answers`` is missing, ``reward_model.ground_truth.target`` (Search-R1's
  processed parquet) or ``answers`` / ``answer`` are used;
* optional ``id`` (default: the row number) and ``split`` (default ``train``).

Corpus (``.jsonl``): ``{"id", "title", "text"}`` per line, or Search-R1's wiki-18 layout
``{"id", "contents"}`` where ``contents`` is ``'"Title"\\ntext'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turngym.envs.search_qa.records import Corpus, Passage, Question, read_jsonl


class DataFormatError(ValueError):
    """A user data file does not have the expected fields; the message names the file and row."""


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass the path of a .jsonl or .parquet file")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError(f"reading {path} needs pyarrow: pip install pyarrow (or convert the file to .jsonl)") from exc
        return pq.read_table(path).to_pylist()
    if path.suffix in (".jsonl", ".json"):
        return list(read_jsonl(path))
    raise DataFormatError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl or .parquet")


def _answers(row: dict[str, Any]) -> list[str] | None:
    value = row.get("golden_answers")
    if value is None:
        value = ((row.get("reward_model") or {}).get("ground_truth") or {}).get("target")
    if value is None:
        value = row.get("answers", row.get("answer"))
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in list(value) if str(v).strip()]


def load_questions(path: str | Path) -> list[Question]:
    """Read a Search-R1-style question file (see the module docstring)."""
    path = Path(path)
    out = []
    for i, row in enumerate(_rows(path)):
        question = row.get("question")
        answers = _answers(row)
        if not isinstance(question, str) or not question.strip() or not answers:
            raise DataFormatError(
                f"{path} row {i}: needs a non-empty 'question' and 'golden_answers' (list of strings); "
                f"found fields {sorted(row)!r}"
            )
        split = str(row.get("split") or (row.get("extra_info") or {}).get("split") or "train")
        split = "dev" if split in ("validation", "val", "dev") else split
        out.append(Question(str(row.get("id", i)), question.strip(), tuple(answers), "user", (), split))
    if not out:
        raise DataFormatError(f"{path} holds no questions")
    return out


def load_corpus(path: str | Path) -> Corpus:
    """Read a corpus jsonl (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a .jsonl corpus with id/title/text fields")
    passages = []
    for i, row in enumerate(read_jsonl(path)):
        if "text" in row:
            title, text = str(row.get("title", "")), str(row["text"])
        elif "contents" in row:
            head, _, body = str(row["contents"]).partition("\n")
            title, text = head.strip().strip('"'), body
        else:
            raise DataFormatError(f"{path} line {i + 1}: needs 'text' (with 'title') or 'contents'; found fields {sorted(row)!r}")
        passages.append(Passage(str(row.get("id", i)), title, text))
    if not passages:
        raise DataFormatError(f"{path} holds no passages")
    return Corpus(passages)

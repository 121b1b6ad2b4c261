"""Answer scoring: the standard SQuAD / Search-R1 normalization, exact match and token F1.

``normalize_answer``: lowercase → drop punctuation → drop articles (a, an, the) → collapse
whitespace. Accents are folded too (``São Tomé`` == ``Sao Tome``). EM and F1 take the maximum over
all gold answers (aliases count). Pure functions.

Token F1 follows HotpotQA's official rule for yes/no answers: when the prediction or the gold is
``yes``/``no`` (normalized), F1 is exact match. Otherwise hedging pays: ``yes no`` scored 0.67
on every yes/no question, more than an honest guess's expected 0.5 (found by
``turngym check --exploits``, probe ``yes_no_hedge_f1``).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”–—"})


def fold_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize_answer(text: str) -> str:
    text = fold_accents(text.lower()).translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


_YES_NO = frozenset({"yes", "no", "noanswer"})


def token_f1(prediction: str, gold: str) -> float:
    norm_pred, norm_gold = normalize_answer(prediction), normalize_answer(gold)
    if (norm_pred in _YES_NO or norm_gold in _YES_NO) and norm_pred != norm_gold:
        return 0.0
    pred, ref = norm_pred.split(), norm_gold.split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Iterable[str]) -> float:
    return max((token_f1(prediction, g) for g in golds), default=0.0)


def contains_answer(text: str, golds: Iterable[str]) -> bool:
    """Whether any gold answer occurs in ``text`` as a whole-token span (after normalization)."""
    hay = f" {normalize_answer(text)} "
    return any((n := normalize_answer(g)) and f" {n} " in hay for g in golds)

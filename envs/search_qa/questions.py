"""Multi-hop question generation from a :class:`~.kb.KnowledgeBase`, with verification and splits.

Shapes (each question carries its gold sub-queries and supporting passages as :class:`Hop`s):

* ``bridge`` (2 hops) — "What is the {T} of the country whose {K} is {v}?": find the country by a
  unique key fact, then read its target fact.
* ``comparison`` (2 hops) — "Does A have a larger population than B?" → ``yes``/``no`` (balanced);
  the two numbers differ by at least 20%.
* ``chain`` (3 hops) — "What is the {T} of the country that shares the longest land border with the
  country whose {K} is {v}?": key → country → its land boundaries → the neighbour's fact.
* ``intersection`` (2 hops) — "Which country borders both A and B?": exactly one common neighbour,
  and each of A and B has at least two neighbours (so neither passage alone answers it).
* ``lookup`` (1 hop, curriculum) — "What is the {T} of {country}?" for a short-valued attribute
  (:data:`LOOKUP_ATTRIBUTES`): the entity's fact passage states the answer. Generated after the
  multi-hop shapes from its own random stream, so adding it changed none of their questions or
  splits; :meth:`~.dataset.SearchData.select` leaves it out of the default pool.

:func:`verify` checks each question against its passages (the answer is stated by the supporting
passages, absent from the question, and — for multi-hop shapes — not stated by the first passage
alone; a lookup question has exactly one hop, whose passage states the answer and belongs to the
asked country); generation keeps only questions that pass. Splits are stratified per shape with a seeded
shuffle: 10% dev, 10% test, the rest train.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np

from turngym.envs.search_qa.kb import ATTRIBUTES, NUMBERS, Entity, KnowledgeBase
from turngym.envs.search_qa.records import SHAPES, Hop, Question
from turngym.envs.search_qa.scoring import contains_answer, normalize_answer

DEV_FRACTION = 0.1
TEST_FRACTION = 0.1
MIN_RATIO = 1.2
"""Comparison questions need the larger number to be at least this multiple of the smaller."""
LOOKUP_ATTRIBUTES = ("capital", "internet_code", "highest_point")
"""Attributes asked by lookup questions: short, unambiguous values a small model can copy."""
LOOKUP_MAX_WORDS = 4
"""Lookup answers longer than this many words are skipped (e.g. "unnamed location on Cato Island")."""


def _quoted(attr: str, value: str) -> str:
    return f'"{value}"' if attr == "anthem" else value


def key_query(attr: str, value: str) -> str:
    return f"{ATTRIBUTES[attr].query_words} {value}"


def fact_query(entity: Entity, attr: str) -> str:
    return f"{entity.name} {ATTRIBUTES[attr].query_words}"


def borders_query(entity: Entity) -> str:
    return f"{entity.name} land boundaries border countries"


def _qid(shape: str, text: str) -> str:
    return f"{shape}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _unique_keys(kb: KnowledgeBase) -> dict[str, dict[str, str]]:
    """attr → normalized value → entity key, only for key attributes whose value is unique."""
    out: dict[str, dict[str, str]] = {}
    for attr, spec in ATTRIBUTES.items():
        if not spec.key:
            continue
        seen: dict[str, list[str]] = {}
        for e in kb.entities.values():
            if attr in e.facts:
                seen.setdefault(normalize_answer(e.facts[attr].value), []).append(e.key)
        out[attr] = {v: keys[0] for v, keys in seen.items() if len(keys) == 1 and v}
    return out


def _longest_neighbour(entity: Entity) -> str | None:
    ranked = sorted(entity.borders.items(), key=lambda kv: -kv[1])
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


# ------------------------------------------------------------------------------------ builders
def _bridge(kb, rng, keys) -> Question | None:
    ents = list(kb.entities.values())
    e = ents[int(rng.integers(len(ents)))]
    key_attrs = [a for a in keys if a in e.facts and normalize_answer(e.facts[a].value) in keys[a]]
    targets = [a for a, s in ATTRIBUTES.items() if s.target and a in e.facts]
    if not key_attrs:
        return None
    k = key_attrs[int(rng.integers(len(key_attrs)))]
    targets = [t for t in targets if t != k]
    if not targets:
        return None
    t = targets[int(rng.integers(len(targets)))]
    kf, tf = e.facts[k], e.facts[t]
    text = f"What is the {ATTRIBUTES[t].phrase} of the country whose {ATTRIBUTES[k].phrase} is {_quoted(k, kf.value)}?"
    hops = (Hop(key_query(k, kf.value), kf.passage_id), Hop(fact_query(e, t), tf.passage_id))
    return Question(_qid("bridge", text), text, tf.answers, "bridge", hops)


def _comparison(kb, rng, keys) -> Question | None:
    attr = list(NUMBERS)[int(rng.integers(len(NUMBERS)))]
    ents = [e for e in kb.entities.values() if attr in e.numbers]
    if len(ents) < 2:
        return None
    i, j = rng.choice(len(ents), size=2, replace=False)
    a, b = ents[int(i)], ents[int(j)]
    va, vb = a.numbers[attr].value, b.numbers[attr].value
    if max(va, vb) < MIN_RATIO * min(va, vb):
        return None
    phrase, words = NUMBERS[attr]
    text = f"Does {a.name} have a larger {phrase} than {b.name}?"
    hops = (Hop(f"{a.name} {words}", a.numbers[attr].passage_id), Hop(f"{b.name} {words}", b.numbers[attr].passage_id))
    return Question(_qid("comparison", text), text, ("yes",) if va > vb else ("no",), "comparison", hops)


def _chain(kb, rng, keys) -> Question | None:
    ents = [e for e in kb.entities.values() if e.borders_passage]
    if not ents:
        return None
    a = ents[int(rng.integers(len(ents)))]
    b_key = _longest_neighbour(a)
    key_attrs = [k for k in keys if k in a.facts and normalize_answer(a.facts[k].value) in keys[k]]
    if b_key is None or not key_attrs:
        return None
    b = kb.entities[b_key]
    targets = [t for t, s in ATTRIBUTES.items() if s.target and t in b.facts]
    if not targets:
        return None
    k = key_attrs[int(rng.integers(len(key_attrs)))]
    t = targets[int(rng.integers(len(targets)))]
    kf, tf = a.facts[k], b.facts[t]
    text = (
        f"What is the {ATTRIBUTES[t].phrase} of the country that shares the longest land border with "
        f"the country whose {ATTRIBUTES[k].phrase} is {_quoted(k, kf.value)}?"
    )
    hops = (Hop(key_query(k, kf.value), kf.passage_id), Hop(borders_query(a), a.borders_passage), Hop(fact_query(b, t), tf.passage_id))
    return Question(_qid("chain", text), text, tf.answers, "chain", hops)


def _intersection(kb, rng, keys) -> Question | None:
    ents = [e for e in kb.entities.values() if e.borders_passage and len(e.borders) >= 2]
    if len(ents) < 2:
        return None
    a = ents[int(rng.integers(len(ents)))]
    # candidates: countries two borders away from a
    second = sorted({k for n in a.borders if n in kb.entities for k in kb.entities[n].borders} - {a.key})
    second = [kb.entities[k] for k in second if k in kb.entities and kb.entities[k] in ents]
    if not second:
        return None
    c = second[int(rng.integers(len(second)))]
    common = set(a.borders) & set(c.borders)
    if len(common) != 1 or c.key in a.borders:
        return None
    b = kb.entities[common.pop()]
    first, other = (a, c) if rng.random() < 0.5 else (c, a)
    text = f"Which country borders both {first.name} and {other.name}?"
    hops = (Hop(borders_query(first), first.borders_passage), Hop(borders_query(other), other.borders_passage))
    return Question(_qid("intersection", text), text, b.answers, "intersection", hops)


_BUILDERS = {"bridge": _bridge, "comparison": _comparison, "chain": _chain, "intersection": _intersection}


def _lookup(entity: Entity, attr: str) -> Question:
    """The single-hop question "What is the {attr} of {entity}?", answered by the entity's fact passage."""
    fact = entity.facts[attr]
    text = f"What is the {ATTRIBUTES[attr].phrase} of {entity.name}?"
    return Question(_qid("lookup", text), text, fact.answers, "lookup", (Hop(fact_query(entity, attr), fact.passage_id),))


def _short_value(value: str) -> bool:
    """A copyable answer: at most :data:`LOOKUP_MAX_WORDS` words, starting with a capital or a dot
    (drops descriptions such as "administered from London")."""
    return 0 < len(value.split()) <= LOOKUP_MAX_WORDS and (value[0].isupper() or value[0] == ".")


# ---------------------------------------------------------------------------------- verification
def _mentions(text: str, value: str) -> bool:
    return contains_answer(text, [value])


def verify(q: Question, kb: KnowledgeBase) -> str | None:
    """``None`` if ``q`` is sound, else the reason it is not (see the module docstring)."""
    corpus = kb.corpus
    if any(h.passage_id not in corpus for h in q.hops):
        return "a supporting passage is missing from the corpus"
    if len({h.passage_id for h in q.hops}) != len(q.hops):
        return "two hops share a passage"
    if contains_answer(q.text, q.answers):
        return "the question states its own answer"
    passages = [corpus[h.passage_id] for h in q.hops]
    full = [f"{p.title}. {p.text}" for p in passages]
    if q.shape in ("bridge", "chain"):
        if not contains_answer(full[-1], q.answers):
            return "the last supporting passage does not state the answer"
        if any(contains_answer(t, q.answers) for t in full[:-1]):
            return "an earlier passage already states the answer (not multi-hop)"
        key = re.search(r'whose .+? is "?(.+?)"?\?$', q.text)
        if key and _mentions(full[-1], key.group(1)):
            return "the last passage also states the key (answerable from one passage)"
    elif q.shape == "intersection":
        if not all(contains_answer(t, q.answers) for t in full):
            return "a land-boundary passage does not list the answer"
    elif q.shape == "comparison":
        names = re.match(r"Does (.+) have a larger .+ than (.+)\?$", q.text)
        if not names or not all(_mentions(p.title, n) for p, n in zip(passages, names.groups())):
            return "the number passages do not belong to the compared countries"
    elif q.shape == "lookup":
        return _verify_lookup(q, passages, full)
    return None


def _verify_lookup(q: Question, passages: list, full: list[str]) -> str | None:
    if len(q.hops) != 1:
        return f"a lookup question has exactly one hop, got {len(q.hops)}"
    if not contains_answer(full[0], q.answers):
        return "the fact passage does not state the answer"
    name = re.match(r"What is the .+? of (.+)\?$", q.text)
    if not name or not _mentions(passages[0].title, name.group(1)):
        return "the fact passage does not belong to the asked country"
    return None


# ------------------------------------------------------------------------------------ generation
def generate_questions(
    kb: KnowledgeBase, per_shape: int = 750, seed: int = 0, max_tries_factor: int = 40, curriculum: bool = True
) -> list[Question]:
    """Up to ``per_shape`` verified, distinct questions of each shape, with train/dev/test splits.

    The multi-hop shapes (:data:`~.records.SHAPES`, interleaved) come first and depend only on
    ``kb``, ``per_shape``, ``seed`` and ``max_tries_factor``; with ``curriculum`` the lookup
    questions (:func:`generate_lookup_questions`) follow, from a random stream of their own.
    """
    questions = _generate_multihop(kb, per_shape, seed, max_tries_factor)
    if curriculum:
        questions += generate_lookup_questions(kb, per_shape, seed)
    return questions


def generate_lookup_questions(kb: KnowledgeBase, per_shape: int = 750, seed: int = 0) -> list[Question]:
    """Up to ``per_shape`` verified lookup questions in a seeded random order, with splits (the
    first 10% dev, the next 10% test, the rest train). Countries whose name another country shares
    are skipped (the question would be ambiguous)."""
    rng = np.random.default_rng([seed, 0x100C])  # not the multi-hop stream: adding lookup changed no old question
    names = Counter(normalize_answer(e.name) for e in kb.entities.values())
    candidates = [
        (e, attr)
        for e in kb.entities.values()
        if names[normalize_answer(e.name)] == 1
        for attr in LOOKUP_ATTRIBUTES
        if attr in e.facts and _short_value(e.facts[attr].value)
    ]
    items: dict[str, Question] = {}
    for idx in rng.permutation(len(candidates)):
        if len(items) >= per_shape:
            break
        q = _lookup(*candidates[int(idx)])
        if q.text not in items and verify(q, kb) is None:
            items[q.text] = q
    n_dev, n_test = round(len(items) * DEV_FRACTION), round(len(items) * TEST_FRACTION)
    return [
        Question(q.id, q.text, q.answers, q.shape, q.hops, "dev" if rank < n_dev else "test" if rank < n_dev + n_test else "train")
        for rank, q in enumerate(items.values())
    ]


def _generate_multihop(kb: KnowledgeBase, per_shape: int, seed: int, max_tries_factor: int) -> list[Question]:
    """The multi-hop questions, interleaved; unchanged since builder version 3 (pinned by a test)."""
    rng = np.random.default_rng([seed, 0x9A])
    keys = _unique_keys(kb)
    out: list[Question] = []
    for shape in SHAPES:
        seen: dict[str, Question] = {}
        for _ in range(per_shape * max_tries_factor):
            if len(seen) >= per_shape:
                break
            q = _BUILDERS[shape](kb, rng, keys)
            if q is not None and q.text not in seen and verify(q, kb) is None:
                seen[q.text] = q
        items = list(seen.values())
        if shape == "comparison":  # balance yes/no
            yes = [q for q in items if q.answer == "yes"]
            no = [q for q in items if q.answer == "no"]
            n = min(len(yes), len(no))
            items = [q for pair in zip(yes[:n], no[:n]) for q in pair]
        order = rng.permutation(len(items))
        n_dev, n_test = round(len(items) * DEV_FRACTION), round(len(items) * TEST_FRACTION)
        for rank, idx in enumerate(order):
            split = "dev" if rank < n_dev else "test" if rank < n_dev + n_test else "train"
            q = items[int(idx)]
            out.append(Question(q.id, q.text, q.answers, q.shape, q.hops, split))
    return [out[int(i)] for i in rng.permutation(len(out))]  # shapes interleaved: seed % n mixes them

"""Scripted agents for ``turngym eval turngym/SearchQA-v0 --agent NAME`` (direct agents: ``agent(env) -> str``).

* ``oracle`` — searches the question's gold sub-queries in order, then answers. It answers the gold
  answer only if the evidence reached its context: for ``bridge``/``chain``/``lookup`` the last hop's passage,
  for ``comparison``/``intersection`` both hops' passages, for user questions any passage containing
  a gold answer; otherwise it answers ``unknown``. Its EM therefore measures the environment plus
  retrieval at the env's ``k``, not a lookup of the gold. User questions (no hops) are searched with
  the question text.
* ``no-search`` — answers at once from a guess: ``yes`` to comparison questions, otherwise the
  first capitalised phrase of the question (what a model that does not search might echo).
"""

from __future__ import annotations

import re

from turngym.envs.search_qa.scoring import contains_answer


class OracleAgent:
    name = "oracle"

    def reset(self, seed: int | None) -> None:
        pass

    def __call__(self, env) -> str:
        q = env.question
        queries = [h.query for h in q.hops] or [q.text]
        done = len(env.searches)
        if done < len(queries) and env._t < env.turns - 1:
            return f"<think>I need: {queries[done]}</think><search>{queries[done]}</search>"
        return f"<answer>{q.answer if self._evidence_seen(env) else 'unknown'}</answer>"

    @staticmethod
    def _evidence_seen(env) -> bool:
        q = env.question
        if not q.hops:
            return any(contains_answer(env.data.corpus[pid].text, q.answers) for pid in env.seen)
        needed = q.supporting_ids[-1:] if q.shape in ("bridge", "chain", "lookup") else q.supporting_ids
        return all(pid in env.seen for pid in needed)


class NoSearchAgent:
    name = "no-search"

    def reset(self, seed: int | None) -> None:
        pass

    def __call__(self, env) -> str:
        text = env.question.text
        if env.question.shape == "comparison":
            return "<answer>yes</answer>"
        names = re.findall(r"(?:[A-Z][\w'’-]+)(?:\s+(?:of|and|the|de|da)?\s*[A-Z][\w'’-]+)*", text[1:])
        return f"<answer>{names[0] if names else text.split()[-1]}</answer>"


def oracle(seed: int | None = None) -> OracleAgent:
    return OracleAgent()


def no_search(seed: int | None = None) -> NoSearchAgent:
    return NoSearchAgent()

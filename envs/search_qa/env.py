"""``turngym/SearchQA-v0``: multi-hop question answering with a search tool (Search-R1 protocol).

Reset shows the question in Search-R1's prompt. Each turn the agent replies with
``<search>query</search>`` — the environment answers with the top-``k`` passages inside
``<information>…</information>`` — or ``<answer>…</answer>``, which ends the episode. ``turns``
(default 4) counts every reply; the observation before the last turn says it is the last; a last
turn without an answer ends the episode (``turn_limit``, outcome 0).

Rewards (``reward == sum(components) + outcome``):

* ``format`` — 0 for a well-formed reply; ``-format_penalty`` (0.2) for a malformed one (no tag,
  unclosed or nested tags, empty query or answer), which also gets a corrective observation and
  ``valid_action=False``; ``-format_penalty/2`` when tags after the first action were ignored.
* ``retrieval_hit`` — ``hit_bonus`` (0.1) per supporting passage entering the context for the first
  time (for user questions without hop annotations: per new passage that contains a gold answer).
* outcome — exact match after normalization (aliases count), or token F1 with ``reward="f1"``;
  0 when the episode ends without an answer. Both EM and F1 are in the final step's ``info``.

The gold answer reaches the learner through ``info["answer"]`` (canonical, for IGPO) and
``info["answers"]`` (all aliases) at reset; no observation ever states it (the env's own text never
does; retrieved passages may, which is the point of searching).

Data: ``source="factbook"`` (default) or ``"fictional"``, or ``questions_path`` + ``corpus_path``
(user files, see :mod:`.loaders`); ``split`` (``train``/``dev``/``test``) and ``shape`` select the
question pool (``shape=None``: the multi-hop shapes; ``shape="lookup"``: the single-hop curriculum); ``reset(seed=s)`` takes question ``s mod len(pool)``, or ``options={"question_id": id}``.
Retrieval is in-process (one index per process, shared by all envs) unless ``retriever_url`` (or
``$TURNGYM_SEARCH_URL``) names a ``turngym search serve`` instance; a failing service ends the
episode with ``stop_reason="env_error"`` (masked by the learner), never an exception.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import numpy as np

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.search_qa import dataset as datasets
from turngym.envs.search_qa.client import SearchServiceError
from turngym.envs.search_qa.protocol import ParsedAction, parse_action, render_information
from turngym.envs.search_qa.records import Hit, Question
from turngym.envs.search_qa.scoring import contains_answer, exact_match, f1_score
from turngym.hashing import file_sha256, text_sha256

PROMPT = (
    "Answer the given question. Think inside <think> and </think> every time you get new information. "
    "If you lack some knowledge, call a search engine with <search> query </search> and it will return "
    "the top {k} passages between <information> and </information>. You have {turns} turns; each turn is one "
    "search or the final answer. When you have enough information, give the final answer inside <answer> and "
    "</answer>, without detailed illustrations. For example, <answer> Atlantis </answer>. Question: {question}\n"
)
ACTION_FORMAT = "Reply with <search>query</search> to search, or <answer>final answer</answer> to answer."
LAST_TURN = "This is your last turn: give your final answer inside <answer> and </answer>."


class SearchQAEnv(TurnEnv):
    system_prompt = "You answer questions, searching a corpus when you need facts."
    action_format = ACTION_FORMAT

    def __init__(
        self,
        split: str = "train",
        shape: str | None = None,
        source: str = "factbook",
        data_seed: int = 0,
        k: int = 3,
        turns: int = 4,
        reward: str = "em",
        questions_path: str | None = None,
        corpus_path: str | None = None,
        retriever_url: str | None = None,
        retriever_token: str | None = None,
        format_penalty: float = 0.2,
        hit_bonus: float = 0.1,
        max_passage_chars: int = 1000,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if k < 1:
            raise ValueError(f"k must be >= 1 (passages per search), got {k!r}")
        if turns < 1:
            raise ValueError(f"turns must be >= 1, got {turns!r}")
        if reward not in ("em", "f1"):
            raise ValueError(f"reward must be 'em' or 'f1', got {reward!r}")
        self.k, self.turns, self.reward_kind = int(k), int(turns), reward
        self.format_penalty, self.hit_bonus, self.max_passage_chars = float(format_penalty), float(hit_bonus), int(max_passage_chars)
        self.data = datasets.load(source, seed=data_seed, questions_path=questions_path, corpus_path=corpus_path)
        self.pool: list[Question] = self.data.select(split, shape)
        if not self.pool:
            raise ValueError(f"no questions for split={split!r} shape={shape!r} in {self.data.source}; try split=None or another shape")
        url = retriever_url or os.environ.get("TURNGYM_SEARCH_URL")
        if url:
            from turngym.envs.search_qa.client import SearchClient

            self.retriever = SearchClient(url, token=retriever_token or os.environ.get("TURNGYM_SEARCH_TOKEN"), expect_key=self.data.key)
        else:
            self.retriever = self.data.retriever
        self.question: Question | None = None
        self._t = 0
        self._over = True
        self.seen: list[str] = []  # passage ids shown so far, in order
        self.searches: list[str] = []  # queries run so far

    @classmethod
    def data_fingerprint(cls, **kwargs: Any) -> dict[str, str]:
        """The dataset (its cache key and the sha256 of its question and corpus files) and the
        question pool that ``split`` and ``shape`` select from it (:meth:`TurnEnv.data_fingerprint`)."""
        data = datasets.load(kwargs.get("source", "factbook"), seed=kwargs.get("data_seed", 0),
                             questions_path=kwargs.get("questions_path"), corpus_path=kwargs.get("corpus_path"))
        pool = data.select(kwargs.get("split", "train"), kwargs.get("shape"))
        questions = kwargs.get("questions_path") or data.directory / "questions.jsonl"
        corpus = kwargs.get("corpus_path") or data.directory / "corpus.jsonl"
        return {
            "dataset": data.key,
            "questions": file_sha256(questions),
            "corpus": file_sha256(corpus),
            "pool": text_sha256(json.dumps([q.to_dict() for q in pool], sort_keys=True)),
        }

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "question_id" in options:
            match = [q for q in self.pool if q.id == options["question_id"]]
            if not match:
                raise ValueError(f"no question with id {options['question_id']!r} in this env's pool ({len(self.pool)} questions)")
            self.question = match[0]
        elif seed is not None:
            self.question = self.pool[seed % len(self.pool)]
        else:
            self.question = self.pool[int(self.np_random.integers(len(self.pool)))]
        self._t, self._over, self.seen, self.searches = 0, False, [], []
        obs = PROMPT.format(k=self.k, turns=self.turns, question=self.question.text)
        info = {
            "system_prompt": self.system_prompt,
            "seat": 0,
            "answer": self.question.answer,
            "answers": list(self.question.answers),
            "task_id": self.question.id,
            "shape": self.question.shape,
        }
        return obs, info

    # ------------------------------------------------------------------- step
    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        parsed = self._parse(action)
        hits: list[Hit] | None = None
        error = None
        if parsed.kind == "search" and not self._last_turn():
            try:
                hits = self.retriever.search([parsed.content], self.k)[0]
            except SearchServiceError as exc:  # a remote service failure ends the episode as env_error
                error = exc
        return self._finish(parsed, hits, error)

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        parsed = self._parse(action)
        hits, error = None, None
        if parsed.kind == "search" and not self._last_turn():
            try:
                asearch = getattr(self.retriever, "asearch", None)
                hits = (await asearch([parsed.content], self.k) if asearch else self.retriever.search([parsed.content], self.k))[0]
            except SearchServiceError as exc:
                error = exc
        return self._finish(parsed, hits, error)

    def _parse(self, action: Any) -> ParsedAction:
        if self._over:
            raise EpisodeOver("the episode is over; call reset()")
        text, problem = action_text(action)
        return ParsedAction("invalid", problem=problem) if problem else parse_action(text)

    def _last_turn(self) -> bool:
        return self._t >= self.turns - 1

    def _finish(self, parsed: ParsedAction, hits: list[Hit] | None, error: Exception | None):
        from turngym.envs.types import StopReason, TurnRecord

        q = self.question
        fmt = -self.format_penalty if parsed.kind == "invalid" else (-self.format_penalty / 2 if parsed.ignored_actions else 0.0)
        record = TurnRecord(turn=self._t, seat=0, reward=0.0, components={"format": fmt, "retrieval_hit": 0.0}, valid_action=parsed.kind != "invalid")
        info: dict[str, Any] = {"seat": 0}
        self._t += 1
        obs = f"\nNote: {parsed.note}.\n" if parsed.note else ""
        if parsed.kind == "answer":
            em, f1 = exact_match(parsed.content, q.answers), f1_score(parsed.content, q.answers)
            record.outcome = em if self.reward_kind == "em" else f1
            record.terminated = True
            record.stop_reason = StopReason.SOLVED if em == 1.0 else StopReason.FAILED
            info.update(em=em, f1=f1, prediction=parsed.content)
            obs += "Answer received. The episode is over."
        elif error is not None:
            record.outcome, record.truncated, record.stop_reason = 0.0, True, StopReason.ENV_ERROR
            info["error"] = f"{type(error).__name__}: {error}"
            obs += f"The search service failed ({type(error).__name__}); the episode ends without a score."
        elif self._t >= self.turns:
            record.outcome, record.truncated, record.stop_reason = 0.0, True, StopReason.TURN_LIMIT
            info.update(em=0.0, f1=0.0, prediction=None)
            if parsed.kind == "invalid":
                obs += f"Your reply was invalid: {parsed.problem}. {ACTION_FORMAT}\n"
            obs += "Out of turns without an answer. The episode is over."
        else:
            if parsed.kind == "invalid":
                obs += f"\nYour reply was invalid: {parsed.problem}. {ACTION_FORMAT}\n"
            else:
                assert hits is not None
                new = [h.passage.id for h in hits if h.passage.id not in self.seen]
                record.components["retrieval_hit"] = self.hit_bonus * sum(self._supports(pid) for pid in new)
                self.seen += new
                self.searches.append(parsed.content)
                info["retrieved_ids"] = [h.passage.id for h in hits]
                obs = render_information(hits, self.max_passage_chars) + obs
            if self._last_turn():
                obs += LAST_TURN
        self._over = record.done
        record.reward = record.turn_reward + (record.outcome or 0.0)
        if self._over:
            info["seat"] = -1
        info["turn"] = record
        return obs, record.reward, record.terminated, record.truncated, info

    def _supports(self, passage_id: str) -> bool:
        q = self.question
        if q.hops:
            return passage_id in q.supporting_ids
        return contains_answer(self.data.corpus[passage_id].text if passage_id in self.data.corpus else "", q.answers)

    # ------------------------------------------------------------ contract
    def stop(self, reason) -> dict[int, float]:
        if self._over:
            raise EpisodeOver("the episode is already over")
        self._over = True
        return {0: 0.0}  # stopped from outside before any answer: nothing to score

    def fork(self) -> SearchQAEnv:
        clone = copy.copy(self)  # shares the dataset and the retriever (read-only)
        clone.seen, clone.searches = list(self.seen), list(self.searches)
        clone.observation_space, clone.action_space = copy.deepcopy(self.observation_space), copy.deepcopy(self.action_space)
        clone._np_random = copy.deepcopy(self._np_random)
        return clone

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        if self._over or self.question is None:
            return None
        words = [w.strip("?,.\"'") for w in self.question.text.split()]
        words = [w for w in words if w]
        if rng.random() < 0.25 or self._last_turn():
            return f"<answer>{words[int(rng.integers(len(words)))]}</answer>"
        picks = rng.choice(len(words), size=min(3, len(words)), replace=False)
        return "<search>" + " ".join(words[int(i)] for i in sorted(picks)) + "</search>"

    def render(self) -> str | None:
        if self.question is None:
            return None
        return f"Q: {self.question.text}\nturn {self._t}/{self.turns}; searches: {self.searches}"

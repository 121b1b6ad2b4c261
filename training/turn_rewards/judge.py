"""An LLM judge as a turn-reward source (component ``judge``): any policy spec scores turns against a rubric.

**Per turn** (``mode: turn``): turn ``k`` of a trajectory is shown as its transcript up to and
including reply ``k`` (decoded with the rollout tokenizer, the last ``context_chars`` characters),
after the rubric, and the judge rates the last reply 0–9; the value is ``rating / 9`` in [0, 1].
**Relative** (``mode: group``, RULER style): the judge sees every trajectory of a GRPO group at
once and rates each against the others; the value lands on the trajectory's last turn (other turns
absent).

Two ways to read a rating (``scoring``):

* ``logprob`` (policies with ``score``: ``tiny-char``, ``smollm2-135m``, ``hf:``): the expected
  digit under the judge's next-token distribution restricted to ``0``–``9`` — always defined, smooth;
* ``generate`` (any policy, the only way for ``openai:`` endpoints such as ``turngym serve`` or
  ``vllm serve``): greedy text, the first digit 0–9 in it; a reply without one is absent.

``auto`` picks ``logprob`` when the judge can score, else ``generate``.

**Robustness.** Ratings are cached by ``(rubric, sha256(context))`` (a re-scored turn never costs a
call); uncached prompts go to the judge ``batch_size`` at a time, each call bounded by
``timeout_s`` and tried ``1 + retries`` times; a call that still fails (error, timeout) gives its
turns ``nan`` — *absent*, never 0 — and is not cached, so the next step asks again. ``calls`` and
``failures`` count what happened (and show in metrics).
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from turngym.agents.base import Message, SamplingParams
from turngym.training.sharding import decoder_hidden_states
from turngym.training.trajectory import Trajectory
from turngym.training.turn_rewards.base import SourceContext, TurnRewardSource, options_of

DEFAULT_RUBRIC = "Rate how much the assistant's last reply moves the task towards success (0 = not at all, 9 = decisively)."
_DIGIT = re.compile(r"[0-9]")


@dataclass(frozen=True)
class JudgeOptions:
    model: str = "smollm2-135m"
    """Judge policy spec (``tiny-char``, ``smollm2-135m``, ``hf:<dir>``, ``openai:<model>@<url>``), or
    ``policy`` for the rollout policy itself."""
    rubric: str = DEFAULT_RUBRIC
    mode: Literal["turn", "group"] = "turn"
    scoring: Literal["auto", "logprob", "generate"] = "auto"
    batch_size: int = 16
    timeout_s: float = 60.0
    retries: int = 1
    context_chars: int = 1500
    max_new_tokens: int = 8
    cache_size: int = 100_000


def context_key(rubric: str, context: str) -> tuple[str, str]:
    """The cache key of one rating: the rubric and the sha256 of the context it rates."""
    return rubric, hashlib.sha256(context.encode("utf-8", "surrogatepass")).hexdigest()


def parse_rating(text: str) -> float:
    """``digit / 9`` for the first digit in ``text``; ``nan`` when there is none."""
    m = _DIGIT.search(text or "")
    return int(m.group()) / 9.0 if m else math.nan


class Judge:
    """Rates prompts 0–9 with a policy, batched, cached, with timeouts and retries (module docstring)."""

    def __init__(self, policy: Any, options: JudgeOptions = JudgeOptions()):
        if options.batch_size < 1 or options.retries < 0 or options.timeout_s <= 0:
            raise ValueError(f"judge needs batch_size >= 1, retries >= 0, timeout_s > 0; got {options.batch_size!r}, "
                             f"{options.retries!r}, {options.timeout_s!r}")
        self.policy, self.options = policy, options
        can_score = callable(getattr(policy, "score", None)) and getattr(policy, "tokenizer", None) is not None
        self.scoring = ("logprob" if can_score else "generate") if options.scoring == "auto" else options.scoring
        if self.scoring == "logprob" and not can_score:
            raise ValueError(f"judge scoring 'logprob' needs a policy with score() and a tokenizer; {type(policy).__name__} "
                             "has none — use scoring 'generate' (or 'auto')")
        self.cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.calls = self.failures = self.hits = 0
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="turngym-judge")

    def rate(self, rubric: str, contexts: Sequence[str], questions: Sequence[str] | None = None) -> list[float]:
        """One rating in [0, 1] (or ``nan``) per context; ``questions[i]`` ends prompt ``i`` (default: rate the last reply)."""
        questions = list(questions) if questions is not None else ["Rating of the last reply (0-9):"] * len(contexts)
        out = [math.nan] * len(contexts)
        todo: dict[tuple[str, str], list[int]] = {}
        prompts: dict[tuple[str, str], str] = {}
        for i, (context, question) in enumerate(zip(contexts, questions)):
            key = context_key(rubric, context + "\0" + question)
            if key in self.cache:
                out[i] = self.cache[key]
                self.cache.move_to_end(key)
                self.hits += 1
                continue
            todo.setdefault(key, []).append(i)
            prompts[key] = f"{rubric}\n\n{context}\n\n{question}"
        keys = list(todo)
        for start in range(0, len(keys), self.options.batch_size):
            chunk = keys[start:start + self.options.batch_size]
            ratings = self._call([prompts[k] for k in chunk])
            for key, rating in zip(chunk, ratings):
                for i in todo[key]:
                    out[i] = rating
                if math.isfinite(rating):
                    self.cache[key] = rating
                    if len(self.cache) > self.options.cache_size:
                        self.cache.popitem(last=False)
        return out

    def _call(self, prompts: list[str]) -> list[float]:
        """One batched judge call with timeout and retries; every rating ``nan`` when it keeps failing."""
        run: Callable[[list[str]], list[float]] = self._logprob if self.scoring == "logprob" else self._generate
        for _ in range(1 + self.options.retries):
            self.calls += 1
            job = self._pool.submit(run, prompts)
            try:
                return job.result(timeout=self.options.timeout_s)
            except futures.TimeoutError:
                self._pool.shutdown(wait=False, cancel_futures=True)  # the hung call keeps its thread; start a new pool
                self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="turngym-judge")
            except Exception:  # noqa: BLE001 — a failing judge is infrastructure: its turns are absent, never 0
                pass
            self.failures += 1
        return [math.nan] * len(prompts)

    def _logprob(self, prompts: list[str]) -> list[float]:
        tok = self.policy.tokenizer
        digits = [list(tok(str(d), add_special_tokens=False)["input_ids"])[-1] for d in range(10)]
        encoded = [self._encode(p) for p in prompts]
        model = getattr(self.policy, "model", None)
        if isinstance(model, torch.nn.Module) and callable(getattr(model, "get_output_embeddings", None)):
            logp = _next_token_logprobs(model, encoded, digits)  # one forward per prompt
        else:  # any other scorer: one teacher-forced row per digit
            scores = self.policy.score([e for e in encoded for _ in digits], [[d] for _ in encoded for d in digits])
            logp = np.array([float(s[0]) for s in scores]).reshape(len(prompts), 10)
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        return list(((p / p.sum(axis=1, keepdims=True)) @ np.arange(10)) / 9.0)

    def _encode(self, prompt: str) -> list[int]:
        tok = self.policy.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
            return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)
        return list(tok(prompt, add_special_tokens=False)["input_ids"])

    def _generate(self, prompts: list[str]) -> list[float]:
        params = SamplingParams(max_new_tokens=self.options.max_new_tokens, temperature=0.0)
        conversations = [[Message("user", p)] for p in prompts]
        if callable(getattr(self.policy, "chat", None)):  # openai: text in, text out
            texts = self.policy.chat(conversations, params)
        else:
            texts = [g.text for g in self.policy.generate_chat(conversations, params)]
        return [parse_rating(t) for t in texts]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@torch.no_grad()
def _next_token_logprobs(model: torch.nn.Module, prompts: list[list[int]], candidates: list[int]) -> np.ndarray:
    """``[P, C]`` log p(candidate | prompt) from one right-padded forward of a causal LM (its last real position)."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, :len(p)] = torch.tensor(p)
    was_training = model.training
    model.eval()
    try:
        hidden = decoder_hidden_states(model, ids.to(device), None)  # causal: right padding needs no mask
    finally:
        model.train(was_training)
    last = hidden[torch.arange(len(prompts)), torch.tensor([len(p) - 1 for p in prompts])]
    logits = model.get_output_embeddings()(last).float()
    return torch.log_softmax(logits, dim=-1)[:, candidates].double().cpu().numpy()


def transcript(t: Trajectory, upto: int, decode: Callable[[Sequence[int]], str], chars: int) -> str:
    """The text of ``t`` through reply ``upto``: each turn's new prompt tokens decoded, then the reply."""
    parts = []
    for turn in t.turns[:upto + 1]:
        parts.append(decode(turn.prompt_ids).strip())
        parts.append(f"ASSISTANT: {turn.text.strip()}")
    text = "\n".join(p for p in parts if p)
    return text[-chars:]


class JudgeSource(TurnRewardSource):
    name = "judge"

    def __init__(self, judge: Judge, decode: Callable[[Sequence[int]], str]):
        self.judge, self.decode = judge, decode

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        o = self.judge.options
        out = [np.full(len(t.turns), np.nan) for t in trajectories]
        if o.mode == "turn":
            where = [(i, k) for i, t in enumerate(trajectories) if not t.failed for k in range(len(t.turns))]
            ratings = self.judge.rate(o.rubric, [transcript(trajectories[i], k, self.decode, o.context_chars) for i, k in where])
            for (i, k), r in zip(where, ratings):
                out[i][k] = r
            return out
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(trajectories):
            if not t.failed and t.turns:
                groups.setdefault(t.group_key, []).append(i)
        contexts, questions, owners = [], [], []
        for members in groups.values():
            share = max(o.context_chars // len(members), 200)
            body = "\n\n".join(f"### Trajectory {j + 1}\n" + transcript(trajectories[i], len(trajectories[i].turns) - 1, self.decode, share)
                               for j, i in enumerate(members))
            for j, i in enumerate(members):
                contexts.append(body)
                questions.append(f"Compared with the others, rating of trajectory {j + 1} (0-9):")
                owners.append(i)
        for i, r in zip(owners, self.judge.rate(o.rubric, contexts, questions)):
            out[i][-1] = r
        return out

    def metrics(self) -> dict[str, float]:
        """Running totals: judge calls (batches, retries included), failed calls, cache hits."""
        return {"calls": float(self.judge.calls), "failures": float(self.judge.failures), "cache_hits": float(self.judge.hits)}


def build(options: Mapping[str, Any], context: SourceContext) -> JudgeSource:
    from turngym.agents.factory import load_policy, parse_spec

    opts = options_of(JudgeOptions, options, "judge")
    if opts.model == "policy":
        policy = context.policy
    else:
        kind = parse_spec(opts.model).kind
        policy = load_policy(opts.model, chat_only=True) if kind == "openai" else load_policy(opts.model, device=context.device)
    tok = context.policy.tokenizer
    return JudgeSource(Judge(policy, opts), lambda ids: tok.decode(list(ids), skip_special_tokens=True))

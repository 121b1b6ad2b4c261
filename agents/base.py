"""The policy contract: token ids in, token ids (plus log-probs) out.

A :class:`Policy` turns a batch of prompts, given as **token ids**, into one :class:`Generation` per
prompt. Token-in/token-out is the contract that multi-turn RL rests on: the rollout keeps every
trajectory as one growing list of ids, appends the ids a policy returned *as they are*, appends the
tokenized environment reply after them, and never re-tokenizes model output (``decode`` then
``encode`` is not the identity, and a trajectory whose ids differ from what was sampled has wrong
log-probs). :meth:`Policy.generate_chat` is the convenience for the first turn: it applies the chat
template and calls :meth:`Policy.generate`.

What a :class:`Generation` holds, exactly:

``token_ids``
    every token the model sampled, in order, **including** the token that ended it (the EOS, a
    stop id, or the token that completed a stop string). These are the ids to append and to train on.
``logprobs``
    for each of those tokens, its log-probability under the model's **raw** next-token
    distribution: ``log_softmax(logits)`` at temperature 1, with no top-k/top-p truncation — the
    same number :meth:`score` returns for the same ids under teacher forcing (up to float
    round-off), which is what PPO needs as ``old_logprobs``. It is *not* the log-probability under
    the (tempered, truncated) distribution the token was drawn from; with ``temperature=1`` and no
    truncation the two coincide.
``text``
    ``tokenizer.decode(token_ids, skip_special_tokens=True)``: the reply as the environment should
    see it. Nothing is cut off at a stop string — text and ids always describe the same tokens — so
    the text contains the stop string (and whatever else the last token carried).
``finish_reason``
    ``"stop"`` when an EOS id, a stop id or a stop string ended it (``stop`` says which),
    ``"length"`` when ``max_new_tokens`` ran out first.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

FinishReason = Literal["stop", "length"]
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    """One chat message. ``role`` is one of ``system``, ``user``, ``assistant``, ``tool``."""

    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class SamplingParams:
    """How to decode. Validated on construction; errors quote the offending value.

    Attributes:
        max_new_tokens: upper bound on generated tokens per prompt (the stop token included).
        temperature: softmax temperature for sampling; ``0`` means greedy.
        top_p: nucleus sampling mass in ``(0, 1]``; ``1`` disables it.
        top_k: keep only the ``k`` most likely tokens; ``0`` disables it.
        stop: strings that end a generation as soon as its decoded text (special tokens skipped,
            as in :attr:`Generation.text`) contains one; the token completing it is kept.
        stop_token_ids: token ids that end a generation, kept as its last token (in addition to
            the EOS ids).
        seed: seeds the sampler's own ``torch.Generator`` (the global torch RNG is not used); the
            same seed, prompts and batch give the same samples. ``None`` draws a fresh seed.
        row_seeds: one seed per prompt (overrides ``seed``): prompt ``i`` is sampled from its own
            generator seeded ``row_seeds[i]``, so its sample does not depend on which other prompts
            share the call (up to float round-off in the batched forward). Rollouts seeded per
            episode use it, so a batch split over data-parallel ranks samples what one rank would.
        greedy: always take the arg-max token (``temperature``, ``top_p``, ``top_k`` are ignored).
        ignore_eos: do not stop at the EOS ids (stop ids and strings still apply); for benchmarks.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    row_seeds: tuple[int, ...] | None = None
    greedy: bool = False
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        # Accept lists / single values for convenience, store tuples (hashable, immutable).
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if isinstance(self.stop_token_ids, int):
            object.__setattr__(self, "stop_token_ids", (self.stop_token_ids,))
        else:
            object.__setattr__(self, "stop_token_ids", tuple(int(i) for i in self.stop_token_ids))
        if self.row_seeds is not None:
            object.__setattr__(self, "row_seeds", tuple(int(x) for x in self.row_seeds))
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k!r}")
        if any(not s for s in self.stop):
            raise ValueError(f"stop strings must be non-empty, got {self.stop!r}")

    def seed_of_row(self, index: int, fallback: int) -> int:
        """The seed of prompt ``index``: ``row_seeds[index]`` when given, else ``fallback + index``."""
        return self.row_seeds[index] if self.row_seeds is not None else fallback + index

    def check_rows(self, count: int) -> None:
        """Raise if ``row_seeds`` is given but does not have one seed per prompt."""
        if self.row_seeds is not None and len(self.row_seeds) != count:
            raise ValueError(f"row_seeds has {len(self.row_seeds)} seeds for {count} prompts; give one seed per prompt")

    @property
    def is_greedy(self) -> bool:
        """Whether decoding takes the arg-max (``greedy=True`` or ``temperature == 0``)."""
        return self.greedy or self.temperature == 0


@dataclass
class Generation:
    """One prompt's continuation; see the module docstring for the exact meaning of each field.

    Attributes:
        text: ``decode(token_ids, skip_special_tokens=True)``.
        token_ids: the generated ids, the stopping token included.
        logprobs: ``float32`` array, ``len(token_ids)`` entries: raw (temperature-1) log-probs.
        finish_reason: ``"stop"`` or ``"length"``.
        stop: what stopped it: the stop string or the stop/EOS token id; ``None`` for ``"length"``.
    """

    text: str
    token_ids: list[int]
    logprobs: np.ndarray
    finish_reason: FinishReason
    stop: str | int | None = None

    def __post_init__(self) -> None:
        if len(self.logprobs) != len(self.token_ids):
            raise ValueError(
                f"Generation has {len(self.token_ids)} token ids but {len(self.logprobs)} logprobs"
            )

    def __len__(self) -> int:
        return len(self.token_ids)


@runtime_checkable
class Policy(Protocol):
    """What the rollout engine needs from a model. Implementations: :class:`~turngym.agents.hf_policy.HFPolicy`.

    ``tokenizer`` is a Hugging Face tokenizer (``encode``/``decode``/``apply_chat_template``), which
    callers use to tokenize environment messages with the same vocabulary. ``eos_token_id`` is the
    id that ends an assistant turn (``<|im_end|>`` for ChatML models); ``eos_token_ids`` all ids that
    do.
    """

    tokenizer: Any

    @property
    def eos_token_id(self) -> int: ...

    @property
    def eos_token_ids(self) -> tuple[int, ...]: ...

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        """One :class:`Generation` per prompt (same order). Prompts are token-id lists, non-empty."""
        ...

    def generate_chat(
        self, conversations: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[Generation]:
        """Apply the chat template (with the assistant generation prompt), then :meth:`generate`."""
        ...

    def score(
        self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> list[np.ndarray]:
        """Teacher-forced log-probs of each continuation after its prompt (IGPO's information gain,
        judges); one float32 array per pair, ``len(continuation)`` long."""
        ...


@runtime_checkable
class CachingPolicy(Policy, Protocol):
    """A policy that can keep state across calls while its weights are fixed (the rollout opens one
    session per collection): cross-turn KV reuse in ``HFPolicy``, prefix-cache accounting in
    ``VLLMPolicy``. Policies without it are used without a session."""

    def kv_session(self) -> AbstractContextManager[Any]: ...


@runtime_checkable
class LearnerPolicy(Policy, Protocol):
    """A policy whose weights the trainer optimizes in place (``HFPolicy``): the module, and the id
    that pads its training batches."""

    model: Any
    pad_token_id: int


@runtime_checkable
class RolloutEngine(Policy, Protocol):
    """A separate generation engine fed the learner's weights after each update (``VLLMPolicy``)."""

    def sync_weights(self, weights: Any) -> Any:
        """Load the learner module's (or a state dict's) weights; returns what the sync measured."""
        ...


def check_prompt_ids(index: int, prompt: Sequence[int], vocab_size: int) -> list[int]:
    """``prompt`` as a list of ints, or a ``ValueError`` naming prompt ``index`` when it is empty or
    holds ids outside ``[0, vocab_size)``."""
    ids = [int(t) for t in prompt]
    if not ids:
        raise ValueError(f"prompt {index} is empty; a prompt needs at least one token id")
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"prompt {index} has token ids outside [0, {vocab_size}): {bad[:5]}")
    return ids


class TokenizerPolicy(abc.ABC):
    """Base class for policies backed by a Hugging Face tokenizer.

    Gives ``eos_token_id(s)``, chat encoding and :meth:`generate_chat`; subclasses implement
    :meth:`generate`. EOS ids are the union of ``tokenizer.eos_token_id`` and the ``eos_token_id``
    (an int or a list) of an optional ``generation_config``, de-duplicated, tokenizer's first.
    """

    tokenizer: Any

    def __init__(self, tokenizer: Any, generation_config: Any = None):
        self.tokenizer = tokenizer
        ids: list[int] = []
        for source in (
            getattr(tokenizer, "eos_token_id", None),
            getattr(generation_config, "eos_token_id", None),
        ):
            for i in [source] if isinstance(source, int) else list(source or []):
                if i is not None and int(i) not in ids:
                    ids.append(int(i))
        if not ids:
            raise ValueError(
                f"{type(tokenizer).__name__} defines no eos_token_id; set tokenizer.eos_token "
                "(e.g. '<|im_end|>' for ChatML models) so generations can end"
            )
        self._eos_token_ids = tuple(ids)

    @property
    def eos_token_id(self) -> int:
        """The id that ends an assistant turn (the tokenizer's EOS)."""
        return self._eos_token_ids[0]

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Every id treated as end-of-sequence."""
        return self._eos_token_ids

    def encode_chat(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> list[int]:
        """Token ids of ``messages`` under the tokenizer's chat template."""
        dicts = [m.to_dict() if isinstance(m, Message) else dict(m) for m in messages]
        ids = self.tokenizer.apply_chat_template(
            dicts, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=False
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # older/newer tokenizer return types
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)

    @abc.abstractmethod
    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]: ...

    def generate_chat(
        self, conversations: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[Generation]:
        return self.generate([self.encode_chat(c) for c in conversations], params)


__all__ = ["FinishReason", "Generation", "Message", "Policy", "Role", "SamplingParams", "TokenizerPolicy", "check_prompt_ids"]

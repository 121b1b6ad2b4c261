"""A :class:`Policy` driven by a Python function of the conversation text — scripted agents as policies.

``TextFunctionPolicy(tokenizer, reply)`` answers each prompt with ``reply(prompt_text)``; its token ids
are the tokenization of that reply plus EOS (this *is* the policy's output, so token-in/token-out holds),
log-probs are 0. Used to test the rollout engine without a model and to plug rule-based agents into
model-facing code paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from turngym.agents.base import Generation, SamplingParams, TokenizerPolicy


class TextFunctionPolicy(TokenizerPolicy):
    def __init__(self, tokenizer: Any, reply: Callable[[str], str]):
        super().__init__(tokenizer)
        self.reply = reply
        self.calls: list[int] = []  # batch size of every generate call (for tests and metrics)

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        self.calls.append(len(prompts))
        out = []
        for prompt in prompts:
            text = self.reply(self.tokenizer.decode(prompt))
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            finish = "stop"
            if len(ids) >= params.max_new_tokens:
                ids, finish = ids[: params.max_new_tokens], "length"
                text = self.tokenizer.decode(ids)
            else:
                ids.append(self.eos_token_id)
            out.append(Generation(text=text, token_ids=ids, logprobs=np.zeros(len(ids), np.float32), finish_reason=finish))
        return out

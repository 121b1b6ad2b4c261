"""Fixtures shared by the model-facing agent tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """These models are tiny (or the test is about correctness): one intra-op thread is faster than
    two on a shared CI machine, where OpenMP barriers wait on other processes' time slices."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ScriptedReplies:
    """A policy over the real character tokenizer whose replies are given texts (in turn), each
    ended by ``<|im_end|>``: for testing what the *server* does with a reply (tool-call parsing,
    streaming, recording) independently of what a random model happens to write. ``gate``, when
    set, is a ``threading.Event`` every ``generate`` waits on (to hold requests in flight)."""

    def __init__(self, replies, gate=None):
        import numpy as np

        from turngym.agents.base import Generation
        from turngym.agents.tiny import char_tokenizer

        self.tokenizer = char_tokenizer()
        self.replies, self.gate, self.calls = list(replies), gate, 0
        self._np, self._generation = np, Generation

    @property
    def eos_token_id(self):
        return self.tokenizer.eos_token_id

    @property
    def eos_token_ids(self):
        return (self.tokenizer.eos_token_id,)

    def generate(self, prompts, params):
        if self.gate is not None:
            self.gate.wait(30)
        out = []
        for _ in prompts:
            text = self.replies[self.calls % len(self.replies)]
            self.calls += 1
            ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.eos_token_id]
            logprobs = -self._np.linspace(0.1, 1.0, len(ids), dtype=self._np.float32)
            out.append(self._generation(text, ids, logprobs, "stop", self.eos_token_id))
        return out


@pytest.fixture
def scripted():
    """``scripted(replies, gate=None)`` → a :class:`ScriptedReplies` policy."""
    return ScriptedReplies

"""Token-in/token-out chat bookkeeping: append environment turns as tokens, never re-tokenize output.

For a chat template that renders each message as ``<open role>content<close>``, the sequence of one
seat is built incrementally::

    first_prompt(system, obs_0)       = template([system, user obs_0], add_generation_prompt)
    ...model generates completion_0 (ids kept as generated)...
    next_prompt(obs_1, ended_with_eos) = rest of the assistant closing after what the model already
                                         emitted (e.g. "\\n" after "<|im_end|>") + the rendered user
                                         turn + the generation prompt

This is only correct for *append-only* templates: rendering a conversation must extend the rendering
of any of its prefixes. :meth:`ChatTokens.check_prefix_stability` verifies that on a probe conversation
and raises :class:`TemplateNotPrefixStable` (naming the first differing character) otherwise — e.g.
for templates that strip ``<think>`` blocks from earlier turns.
"""

from __future__ import annotations

from typing import Any

_A = "\u2063ASSISTANT-SENTINEL\u2063"


class TemplateNotPrefixStable(ValueError):
    """The tokenizer's chat template rewrites earlier turns; token-in/token-out would corrupt training data."""


class ChatTokens:
    """Incremental chat-template token builder for one tokenizer (see module docstring)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        eos_id = tokenizer.eos_token_id
        self.eos_text = tokenizer.decode([eos_id]) if eos_id is not None else ""
        self.check_prefix_stability()
        probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": _A}]
        rendered = self._render(probe, generation_prompt=False)
        self.assistant_closing = rendered[rendered.index(_A) + len(_A) :]

    def _render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def first_prompt(self, system: str, user: str) -> list[int]:
        """Token ids of ``[system, user]`` plus the generation prompt."""
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return self._encode(self._render(messages, generation_prompt=True))

    def next_prompt(self, user: str, completion_ended_with_eos: bool) -> list[int]:
        """Token ids to append after a completion: the rest of its closing, the user turn, the generation prompt."""
        closing = self.assistant_closing
        if completion_ended_with_eos and self.eos_text and closing.startswith(self.eos_text):
            closing = closing[len(self.eos_text) :]
        base = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": _A}]
        before = self._render(base, generation_prompt=False)
        after = self._render(base + [{"role": "user", "content": user}], generation_prompt=True)
        if not after.startswith(before):
            raise TemplateNotPrefixStable(_difference(before, after))
        return self._encode(closing + after[len(before) :])

    def check_prefix_stability(self, turns: int = 3) -> None:
        """Raise :class:`TemplateNotPrefixStable` unless every rendering extends the previous one."""
        messages: list[dict[str, str]] = [{"role": "system", "content": "You are a player."}]
        previous = ""
        for k in range(turns):
            messages.append({"role": "user", "content": f"Observation {k}: <b>board</b>"})
            prompt = self._render(messages, generation_prompt=True)
            if not prompt.startswith(previous):
                raise TemplateNotPrefixStable(_difference(previous, prompt))
            messages.append({"role": "assistant", "content": f"<think>plan {k}</think> move {k}"})
            previous = self._render(messages, generation_prompt=False)
            if not previous.startswith(prompt):
                raise TemplateNotPrefixStable(_difference(prompt, previous))


def _difference(before: str, after: str) -> str:
    i = next((j for j, (x, y) in enumerate(zip(before, after)) if x != y), min(len(before), len(after)))
    return (
        "the chat template is not append-only: rendering a longer conversation changed earlier text "
        f"at character {i} ({before[max(0, i - 30) : i + 30]!r} became {after[max(0, i - 30) : i + 30]!r}); "
        "token-in/token-out rollouts need an append-only template (pass a simpler chat_template)"
    )

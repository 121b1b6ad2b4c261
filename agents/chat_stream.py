"""``stream: true`` for ``turngym serve``: a finished chat completion as server-sent-event chunks.

Generation is batched and not incremental, so a streamed reply is sent once its generation is done:
the stream is the OpenAI ``chat.completion.chunk`` sequence the ``openai`` SDK (and every OpenAI
client) assembles — per choice a role chunk, a content chunk (with its log-probs when asked), one
chunk per tool call, and a final chunk with ``finish_reason``; then, with
``stream_options.include_usage``, a usage chunk with no choices; then ``data: [DONE]``. The
token-id extensions travel too: ``prompt_token_ids`` on the first chunk, each choice's
``token_ids`` on its final chunk. Pure functions over the non-streamed response.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def chat_chunks(response: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects equivalent to the ``chat.completion`` ``response``."""
    head = {"id": response["id"], "object": "chat.completion.chunk", "created": response["created"],
            "model": response["model"]}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": extra.pop("logprobs", None), "finish_reason": finish, **extra}
        return {**head, "choices": [choice]}

    for n, choice in enumerate(response["choices"]):
        i, message = choice["index"], choice["message"]
        first = chunk(i, {"role": "assistant", "content": ""})
        if n == 0:
            first["prompt_token_ids"] = response.get("prompt_token_ids")
        yield first
        if message.get("content"):
            yield chunk(i, {"content": message["content"]}, logprobs=choice.get("logprobs"))
        for k, call in enumerate(message.get("tool_calls") or []):
            yield chunk(i, {"tool_calls": [{"index": k, **call}]})
        yield chunk(i, {}, choice["finish_reason"], token_ids=choice.get("token_ids"))
    if include_usage:
        yield {**head, "choices": [], "usage": response["usage"]}


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` (or a literal such as ``[DONE]``) and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()

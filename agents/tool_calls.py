"""Tool calls on the chat API: render ``tools`` and tool messages into a prompt, parse calls out of a reply.

Pure functions, no model. ``turngym serve`` uses them so that an ``openai``-SDK agent with tools
works against any chat model we serve.

**Format.** Calls are parsed from ``<tool_call>…</tool_call>`` blocks whose body is JSON: one object
``{"name": …, "arguments": {…}}`` per block (the Qwen / Hermes format, what Qwen2.5 and Qwen3 emit)
or a list of such objects (the SmolLM2 function-calling format, ``<tool_call>[{…}, {…}]</tool_call>``).
``arguments`` may be an object or a JSON string. A reply whose blocks are not all valid calls is
returned as plain content with no calls — never an error (:func:`parse_reply`).

**Rendering.** When the tokenizer's chat template renders the ``tools=`` argument (Qwen's does),
:func:`render_chat` hands it the tools and the messages, with each assistant call's ``arguments``
decoded to an object as Hugging Face templates expect. When the template ignores tools (SmolLM2-135M's
and the tiny ChatML template do), the tools are described in the system message
(:func:`tools_instruction`), an assistant message's calls are written into its content as
``<tool_call>`` blocks, and a ``tool`` message becomes a ``user`` message holding
``<tool_response>…</tool_response>`` — the Qwen conventions, so a model parses its own history.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)


class ToolFormatError(ValueError):
    """A request's ``tools`` or tool messages are malformed (the server answers 400 with this text)."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the function name and its arguments as a JSON string (the OpenAI wire form)."""

    name: str
    arguments: str
    id: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The ``tool_calls[i]`` object of an OpenAI chat message."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text ``content`` (``None`` when only calls were made) and its calls."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()


def parse_reply(text: str, tool_names: Sequence[str] | None = None) -> ParsedReply:
    """Split ``text`` into content and tool calls (module docstring for the format).

    Every ``<tool_call>`` block must hold a valid call — a JSON object (or list of objects) with a
    string ``name`` (one of ``tool_names`` when given) and object-or-JSON-string ``arguments`` —
    otherwise the whole text comes back as content with no calls. The content is the text outside
    the blocks, stripped (``None`` if empty and there are calls).
    """
    if OPEN not in text:
        return ParsedReply(text)
    calls: list[ToolCall] = []
    for body in _BLOCK.findall(text):
        parsed = _calls_of(body, tool_names)
        if parsed is None:
            return ParsedReply(text)
        calls.extend(parsed)
    rest = _BLOCK.sub("", text)
    if not calls or OPEN in rest:  # an unterminated block: not a call
        return ParsedReply(text)
    content = rest.strip()
    ids = [f"call_{uuid.uuid4().hex[:24]}" for _ in calls]
    return ParsedReply(content or None, tuple(ToolCall(c.name, c.arguments, i) for c, i in zip(calls, ids)))


def _calls_of(body: str, tool_names: Sequence[str] | None) -> list[ToolCall] | None:
    try:
        data = json.loads(body.strip())
    except json.JSONDecodeError:
        return None
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        if tool_names is not None and item["name"] not in tool_names:
            return None
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict):
            return None
        out.append(ToolCall(item["name"], json.dumps(args, ensure_ascii=False)))
    return out or None


def tool_names(tools: Any) -> list[str]:
    """The function names of a request's ``tools``; :class:`ToolFormatError` if it is malformed."""
    if not isinstance(tools, list) or not tools:
        raise ToolFormatError(f"tools must be a non-empty list of {{'type': 'function', 'function': {{...}}}}, "
                              f"got {tools!r:.80}", "tools")
    names = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ToolFormatError(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., "
                                  f"'parameters': {{...}}}}}}, got {tool!r:.80}", f"tools[{i}]")
        names.append(fn["name"])
    return names


def tools_instruction(tools: Sequence[dict[str, Any]]) -> str:
    """The system-prompt text that describes ``tools`` and the call format (for templates without tools)."""
    listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{listing}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
            "</tool_call>")


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """The OpenAI ``messages`` as plain dicts the chat templates accept: text parts joined, ``developer``
    read as ``system``, assistant ``tool_calls`` kept (arguments decoded to objects), ``tool`` messages
    kept with their ``tool_call_id``. :class:`ToolFormatError` names the first malformed message."""
    if not isinstance(messages, list) or not messages:
        raise ToolFormatError(f"messages must be a non-empty list, got {messages!r:.80}", "messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "user", "assistant", "developer", "tool"):
            raise ToolFormatError(f"messages[{i}] must be an object with role system/user/assistant/tool, got {m!r:.80}",
                                  f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if content is None and role == "assistant":
            content = ""
        if not isinstance(content, str):
            raise ToolFormatError(f"messages[{i}].content must be a string or text parts, got {content!r:.80}",
                                  f"messages[{i}].content")
        clean: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": content}
        if role == "assistant" and m.get("tool_calls"):
            clean["tool_calls"] = [_call_for_template(c, i) for c in m["tool_calls"]]
        if role == "tool" and m.get("tool_call_id") is not None:
            clean["tool_call_id"] = str(m["tool_call_id"])
        out.append(clean)
    return out


def _call_for_template(call: Any, i: int) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ToolFormatError(f"messages[{i}].tool_calls entries must be {{'type': 'function', 'function': "
                              f"{{'name', 'arguments'}}}}, got {call!r:.80}", f"messages[{i}].tool_calls")
    args = fn.get("arguments", "{}")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise ToolFormatError(f"messages[{i}].tool_calls: arguments must be a JSON object string, got {args!r:.80}",
                                  f"messages[{i}].tool_calls") from None
    return {"id": call.get("id", ""), "type": "function", "function": {"name": fn["name"], "arguments": args}}


def inline_tools(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """``messages`` rewritten for a template without tool support (module docstring): the tool
    instruction joined to the system message (one is added first if there is none), assistant calls
    as ``<tool_call>`` blocks in the content, ``tool`` messages as ``user`` ``<tool_response>`` messages."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            blocks = "\n".join(f"{OPEN}\n" + json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                                         ensure_ascii=False) + f"\n{CLOSE}" for c in m["tool_calls"])
            text = f"{m['content']}\n{blocks}" if m["content"] else blocks
            out.append({"role": "assistant", "content": text})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if tools:
        instruction = tools_instruction(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instruction}" if out[0]["content"] else instruction}
        else:
            out.insert(0, {"role": "system", "content": instruction})
    return out


def template_renders_tools(tokenizer: Any) -> bool:
    """Whether ``tokenizer``'s chat template reads the ``tools`` argument (and tool-call messages)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("tool_use") or template.get("default")
    return isinstance(template, str) and "tools" in template and "tool_calls" in template


def render_chat(messages: Any, tools: Sequence[dict[str, Any]] | None, tokenizer: Any) -> list[int]:
    """Prompt token ids of an OpenAI chat request (generation prompt added); see the module docstring."""
    clean = normalize_messages(messages)
    if template_renders_tools(tokenizer):
        ids = tokenizer.apply_chat_template(clean, tools=list(tools) if tools else None, add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
    else:
        ids = tokenizer.apply_chat_template(inline_tools(clean, tools), add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]

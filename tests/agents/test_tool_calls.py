"""Tool-call parsing and rendering (pure): the Qwen/Hermes and SmolLM2 formats, and templates with and without tools."""

from __future__ import annotations

import json

import pytest

from turngym.agents.tiny import char_tokenizer
from turngym.agents.tool_calls import (
    ToolFormatError,
    inline_tools,
    normalize_messages,
    parse_reply,
    render_chat,
    template_renders_tools,
    tool_names,
)

TOOLS = [{"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}},
         {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]

# A Qwen2.5-style template that renders tools and tool calls itself (shortened).
QWEN_LIKE = (
    "{%- if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools><|im_end|>\n{%- endif %}"
    "{%- for m in messages %}{%- if m.role == 'tool' %}<|im_start|>user\n<tool_response>{{ m.content }}</tool_response><|im_end|>\n"
    "{%- elif m.tool_calls %}<|im_start|>assistant\n{% for c in m.tool_calls %}<tool_call>{{ {'name': c.function.name, "
    "'arguments': c.function.arguments} | tojson }}</tool_call>{% endfor %}<|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def test_qwen_blocks_parse_into_calls_and_content():
    text = 'Let me compute.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>' \
           '<tool_call>{"name": "search", "arguments": "{\\"q\\": \\"x\\"}"}</tool_call>'
    reply = parse_reply(text, ["calculator", "search"])
    assert reply.content == "Let me compute."
    assert [c.name for c in reply.tool_calls] == ["calculator", "search"]
    assert json.loads(reply.tool_calls[0].arguments) == {"expression": "2+3"}
    assert json.loads(reply.tool_calls[1].arguments) == {"q": "x"}  # a JSON-string argument is decoded
    assert len({c.id for c in reply.tool_calls}) == 2 and all(c.id.startswith("call_") for c in reply.tool_calls)


def test_smollm2_list_format_parses_and_only_calls_leave_content_none():
    reply = parse_reply('<tool_call>[{"name": "calculator", "arguments": {"expression": "1"}}, '
                        '{"name": "calculator", "arguments": {"expression": "2"}}]</tool_call>')
    assert reply.content is None
    assert [json.loads(c.arguments)["expression"] for c in reply.tool_calls] == ["1", "2"]


@pytest.mark.parametrize("text", [
    "<tool_call>{not json}</tool_call>",
    '<tool_call>{"name": "calculator", "arguments": {"a": 1}}',            # unterminated
    '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',           # not a declared tool
    '<tool_call>{"arguments": {}}</tool_call>',                            # no name
    '<tool_call>{"name": "calculator", "arguments": [1]}</tool_call>',     # arguments not an object
    '<tool_call>{"name": "calculator"}</tool_call> and <tool_call>oops</tool_call>',  # one bad block spoils all
    "plain words",
])
def test_unparseable_calls_come_back_as_plain_content(text):
    reply = parse_reply(text, ["calculator"])
    assert reply.tool_calls == () and reply.content == text


def test_malformed_tools_and_messages_are_typed_errors():
    with pytest.raises(ToolFormatError, match=r"tools\[0\]"):
        tool_names([{"type": "function", "function": {}}])
    with pytest.raises(ToolFormatError, match="non-empty list"):
        tool_names({"name": "x"})
    with pytest.raises(ToolFormatError, match=r"messages\[1\]"):
        normalize_messages([{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}])
    with pytest.raises(ToolFormatError, match="arguments must be a JSON object string"):
        normalize_messages([{"role": "assistant", "content": None,
                             "tool_calls": [{"type": "function", "function": {"name": "calculator", "arguments": "{oops"}}]}])


def test_a_template_without_tools_gets_them_in_the_system_message_and_history_inlined():
    tokenizer = char_tokenizer()
    assert not template_renders_tools(tokenizer)
    messages = [{"role": "user", "content": "2+3?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+3"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "5"}]
    text = tokenizer.decode(render_chat(messages, TOOLS, tokenizer))
    assert text.startswith("<|im_start|>system\n# Tools") and '"name": "calculator"' in text
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call><|im_end|>' in text
    assert "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    # an existing system message keeps its text, the instruction follows it
    inlined = inline_tools(normalize_messages([{"role": "developer", "content": "Be brief."}]), TOOLS)
    assert inlined[0]["role"] == "system" and inlined[0]["content"].startswith("Be brief.\n\n# Tools")


def test_a_template_with_tools_renders_them_itself_with_decoded_arguments():
    tokenizer = char_tokenizer()
    tokenizer.chat_template = QWEN_LIKE
    assert template_renders_tools(tokenizer)
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "found"}]
    text = tokenizer.decode(render_chat(messages, TOOLS, tokenizer))
    assert "<tools>" in text and "# Tools" not in text
    assert '<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>' in text  # arguments an object, not a string
    assert "<tool_response>found</tool_response>" in text

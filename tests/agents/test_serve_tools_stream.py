"""`turngym serve` with the official `openai` client: streaming, tools / tool calls, n, stop, seed."""

from __future__ import annotations

import json

import openai
import pytest

from turngym.agents.hf_policy import HFPolicy
from turngym.agents.serve import ServeConfig, ServerThread
from turngym.agents.tiny import tiny_char_model

CALC = {"type": "function", "function": {"name": "calculator", "description": "evaluate",
                                         "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}}
ASK = [{"role": "user", "content": "What is 2+3?"}]


@pytest.fixture(scope="module")
def tiny_server():
    model, tokenizer = tiny_char_model(0)
    with ServerThread(HFPolicy(model, tokenizer, max_batch_size=16), ServeConfig(model_name="tiny")) as server:
        yield server


@pytest.fixture
def tiny(tiny_server):
    return openai.OpenAI(base_url=tiny_server.base_url, api_key="unused", max_retries=0)


def _serve(policy):
    return ServerThread(policy, ServeConfig(model_name="m"))


def test_a_streamed_reply_equals_the_unstreamed_one_with_usage_and_token_ids(tiny):
    plain = tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=12, temperature=0, n=2)
    chunks = list(tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=12, temperature=0, n=2, stream=True,
                                               stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert mine[0].delta.role == "assistant"
        assert "".join(c.delta.content or "" for c in mine) == plain.choices[index].message.content
        assert mine[-1].finish_reason == plain.choices[index].finish_reason
        assert mine[-1].model_extra["token_ids"] == plain.choices[index].model_extra["token_ids"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[0].model_extra["prompt_token_ids"] == plain.model_extra["prompt_token_ids"]
    no_usage = list(tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=4, temperature=0, stream=True))
    assert all(c.usage is None for c in no_usage) and no_usage[-1].choices[0].finish_reason is not None


def test_seed_n_and_stop(tiny):
    one = tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=1.0, seed=5, n=3)
    two = tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=1.0, seed=5, n=3)
    texts = [c.message.content for c in one.choices]
    assert texts == [c.message.content for c in two.choices]  # same seed, same samples
    assert len(set(texts)) > 1  # n samples differ from each other
    greedy = tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=0).choices[0]
    stop = greedy.message.content[3]
    cut = tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=0, stop=[stop]).choices[0]
    assert cut.message.content == greedy.message.content[: greedy.message.content.index(stop)]  # stop string excluded
    assert cut.finish_reason == "stop"
    assert cut.model_extra["token_ids"] == greedy.model_extra["token_ids"][: len(cut.message.content) + 1]  # ids keep it


def test_tools_are_rendered_into_the_prompt_and_tool_history_is_accepted(tiny):
    reply = tiny.chat.completions.create(model="tiny", messages=ASK, tools=[CALC], max_tokens=4, temperature=0)
    prompt = reply.model_extra["prompt_token_ids"]
    without = tiny.chat.completions.create(model="tiny", messages=ASK, max_tokens=4, temperature=0, tools=[CALC], tool_choice="none")
    assert len(prompt) > len(without.model_extra["prompt_token_ids"]) + 100  # the tool instruction is in the prompt
    history = ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+3"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5"}]
    follow = tiny.chat.completions.create(model="tiny", messages=history, tools=[CALC], max_tokens=4, temperature=0)
    assert follow.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError, match=r"tools\[0\]"):
        tiny.chat.completions.create(model="tiny", messages=ASK, tools=[{"type": "function", "function": {}}])
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        tiny.chat.completions.create(model="tiny", messages=ASK, tools=[CALC], tool_choice="sometimes")


def test_a_model_tool_call_comes_back_as_tool_calls_streamed_or_not(scripted):
    text = 'I will compute.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>'
    with _serve(scripted([text])) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        message = client.chat.completions.create(model="m", messages=ASK, tools=[CALC]).choices[0]
        assert message.finish_reason == "tool_calls"
        assert message.message.content == "I will compute."
        (call,) = message.message.tool_calls
        assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "2+3"}
        chunks = list(client.chat.completions.create(model="m", messages=ASK, tools=[CALC], stream=True))
        deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
        assert [d.function.name for d in deltas] == ["calculator"] and chunks[-1].choices[0].finish_reason == "tool_calls"
        # without tools in the request the same reply is plain content
        plain = client.chat.completions.create(model="m", messages=ASK).choices[0]
        assert plain.message.tool_calls is None and plain.message.content == text


def test_an_unparseable_tool_call_is_plain_content_never_a_500(scripted):
    bad = '<tool_call>{"name": "calculator", "arguments": {"expression": </tool_call>'
    with _serve(scripted([bad])) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        choice = client.chat.completions.create(model="m", messages=ASK, tools=[CALC]).choices[0]
        assert choice.message.tool_calls is None and choice.message.content == bad and choice.finish_reason == "stop"

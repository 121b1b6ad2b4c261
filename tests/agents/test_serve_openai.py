"""`turngym serve` against the official `openai` client, and `OpenAIPolicy` against our server and llama.cpp's."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest

from turngym.agents.base import SamplingParams
from turngym.agents.factory import parse_spec
from turngym.agents.hf_policy import HFPolicy
from turngym.agents.openai_policy import (
    OpenAIPolicy,
    PolicyRequestError,
    PolicyServerError,
)
from turngym.agents.serve import ServeConfig, ServerThread, check_binding
from turngym.agents.tiny import tiny_char_model

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def policy():
    model, tokenizer = tiny_char_model(0)
    return HFPolicy(model, tokenizer, max_batch_size=16)


@pytest.fixture(scope="module")
def server(policy):
    with ServerThread(policy, ServeConfig(model_name="tiny", token=TOKEN, max_request_bytes=64_000, batch_wait_s=0.05)) as s:
        yield s


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=TOKEN, max_retries=0)


def _chat_ids(policy, messages):
    return policy.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)


def test_chat_completion_matches_the_policy_and_reports_logprobs(client, policy):
    messages = [{"role": "system", "content": "Answer in brackets."}, {"role": "user", "content": "Pick a cell."}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0, logprobs=True)
    direct = policy.generate([_chat_ids(policy, messages)], SamplingParams(max_new_tokens=12, temperature=0))[0]
    choice = reply.choices[0]
    assert choice.message.content == direct.text
    assert choice.finish_reason == direct.finish_reason
    assert reply.usage.completion_tokens == len(direct.token_ids)
    assert reply.usage.prompt_tokens == len(_chat_ids(policy, messages))
    np.testing.assert_allclose([t.logprob for t in choice.logprobs.content], direct.logprobs, atol=1e-4)
    assert choice.model_extra["token_ids"] == direct.token_ids


def test_completions_take_token_ids_and_n_samples(client, policy):
    ids = policy.tokenizer.encode("abc", add_special_tokens=False)
    reply = client.completions.create(model="tiny", prompt=ids, max_tokens=5, temperature=1.0, n=3, seed=7, logprobs=1)
    assert len(reply.choices) == 3
    for choice in reply.choices:
        assert len(choice.model_extra["token_ids"]) == len(choice.logprobs.token_logprobs) <= 5
        assert choice.model_extra["prompt_token_ids"] == ids
    assert reply.usage.prompt_tokens == 3 * len(ids)
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_auth_size_and_unsupported_options_get_typed_errors(server):
    with pytest.raises(openai.AuthenticationError) as bad:
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    assert bad.value.status_code == 401
    client = openai.OpenAI(base_url=server.base_url, api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.APIStatusError) as huge:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x" * 100_000}], max_tokens=2)
    assert huge.value.status_code == 413 and "64000" in str(huge.value)
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.completions.create(model="tiny", prompt="hi", stream=True)
    with pytest.raises(openai.NotFoundError, match="'gpt-4o'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="tiny", messages=[])
    request = urllib.request.Request(f"{server.base_url}/completions", data=b"{not json", method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as malformed:
        urllib.request.urlopen(request, timeout=30)
    assert malformed.value.code == 400
    assert "not valid JSON" in json.loads(malformed.value.read())["error"]["message"]


def test_concurrent_requests_share_generate_calls(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=TOKEN, max_retries=0)
    batcher_before = _health(server)["batches"]
    results: list[str] = []

    def ask(i: int) -> None:
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=4, temperature=0)
        results.append(r.choices[0].message.content)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert _health(server)["batches"] - batcher_before < 8  # at least two requests were batched together


def _health(server) -> dict:
    request = urllib.request.Request(server.base_url.replace("/v1", "/health"), headers={"Authorization": f"Bearer {TOKEN}"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def test_openai_policy_is_token_exact_against_turngym_serve(server, policy):
    remote = OpenAIPolicy("tiny", server.base_url, policy.tokenizer, api_key=TOKEN)
    prompts = [policy.tokenizer.encode(t, add_special_tokens=False) for t in ("hello", "tic tac", "[5]")]
    params = SamplingParams(max_new_tokens=6, temperature=0)
    got, want = remote.generate(prompts, params), policy.generate(prompts, params)
    for g, w in zip(got, want):
        assert g.token_ids == w.token_ids and g.text == w.text and g.finish_reason == w.finish_reason
        np.testing.assert_allclose(g.logprobs, w.logprobs, atol=1e-4)


def test_rollouts_through_the_server_equal_local_rollouts(server, policy):
    """The rollout engine is backend-agnostic: greedy TicTacToe episodes via HTTP equal the local ones."""
    from turngym.training.evaluate import evaluate_model

    remote = OpenAIPolicy("tiny", server.base_url, policy.tokenizer, api_key=TOKEN)
    kwargs = dict(episodes=4, opponent="random", seed=3, temperature=0.0, max_new_tokens=6, context="turn")
    local_summary, local = evaluate_model("turngym/TicTacToe-v0", policy, **kwargs)
    remote_summary, via_http = evaluate_model("turngym/TicTacToe-v0", remote, **kwargs)
    assert [[turn.completion_ids for turn in t.turns] for t in local] == [[turn.completion_ids for turn in t.turns] for t in via_http]
    assert [t.outcome for t in local] == [t.outcome for t in via_http]
    assert local_summary.to_dict()["mean_outcome"] == remote_summary.to_dict()["mean_outcome"]


def test_openai_agent_spec_plays_a_game_through_the_chat_endpoint(server, monkeypatch):
    from turngym.agents.specs import resolve_agent
    from turngym.training.evaluate import evaluate

    monkeypatch.setenv("OPENAI_API_KEY", TOKEN)
    spec = f"openai:tiny@{server.base_url}"
    summary, played = evaluate("turngym/TicTacToe-v0", lambda: resolve_agent(spec, "turngym/TicTacToe-v0", seed=0),
                               lambda: resolve_agent("random", "turngym/TicTacToe-v0", seed=1), episodes=2)
    assert summary.episodes == 2 and len(played) == 2
    with pytest.raises(ValueError, match="openai:<model>@http"):
        parse_spec("openai:tiny")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_retries_then_a_typed_error_when_the_server_is_gone():
    from turngym.agents.tiny import char_tokenizer

    dead = OpenAIPolicy("x", f"http://127.0.0.1:{_free_port()}/v1", char_tokenizer(), retries=2, backoff_s=0.01, timeout_s=5)
    with pytest.raises(PolicyServerError, match="after 3 attempts"):
        dead.generate([[5, 6]], SamplingParams(max_new_tokens=2))
    assert dead.retried == 2


def test_flaky_server_is_retried_and_client_errors_are_not():
    from aiohttp import web

    from turngym.agents.tiny import char_tokenizer

    calls = {"n": 0}

    async def flaky(request):
        calls["n"] += 1
        if calls["n"] <= 2:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        body = await request.json()
        if body.get("max_tokens") == 99:
            return web.json_response({"error": {"message": "max_tokens too large"}}, status=400)
        return web.json_response({"choices": [{"text": "ok", "finish_reason": "length", "token_ids": [10, 11]}]})

    import asyncio

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_post("/v1/completions", flaky)
    runner = web.AppRunner(app)
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result()
    port = _free_port()
    asyncio.run_coroutine_threadsafe(web.TCPSite(runner, "127.0.0.1", port).start(), loop).result()
    try:
        remote = OpenAIPolicy("x", f"http://127.0.0.1:{port}/v1", char_tokenizer(), retries=3, backoff_s=0.01)
        (g,) = remote.generate([[5, 6]], SamplingParams(max_new_tokens=2))
        assert g.token_ids == [10, 11] and g.finish_reason == "length" and remote.retried == 2
        assert np.isnan(g.logprobs).all()  # the server gave no log-probs: unknown, not zero
        sent = remote.requests_sent
        with pytest.raises(PolicyRequestError, match="max_tokens too large"):
            OpenAIPolicy("x", f"http://127.0.0.1:{port}/v1", char_tokenizer(), prompt_format="ids").generate(
                [[5]], SamplingParams(max_new_tokens=99))
        assert remote.requests_sent == sent
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)


def test_serve_refuses_an_in_process_vllm_engine_at_start(capsys):
    from turngym.agents.serve import serve_main

    assert serve_main(["--model", "vllm:smollm2-135m"]) == 2
    assert "vllm serve" in capsys.readouterr().out


def test_serving_off_loopback_needs_a_token():
    with pytest.raises(ValueError, match="--token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "t")
    check_binding("127.0.0.1", None)


def _log_tail(log: Path) -> str:
    return "server log tail:\n" + log.read_text()[-2000:]


def _llama_died(proc: subprocess.Popen, log: Path) -> str:
    return (f"llama.cpp's server exited with code {proc.returncode}. A -11 (segfault) on a CPU that "
            "advertises AMX is a native llama-cpp-python build meeting a VM that faults on AMX tiles; "
            "install the portable build with `.ci/llama-cpp-wheel`. " + _log_tail(log))


def _wait_for_llama_server(proc: subprocess.Popen, models_url: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            urllib.request.urlopen(models_url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(_llama_died(proc, log))
            time.sleep(0.5)
    pytest.fail(f"llama.cpp's server did not answer {models_url} within {timeout_s:.0f} s; " + _log_tail(log))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python[server] is not installed")
def test_openai_policy_against_llama_cpp_server_on_the_embedded_gguf(tmp_path):
    """A server nobody here wrote: llama.cpp's OpenAI-compatible server on SmolLM2's GGUF (text prompts only)."""
    from turngym.agents.models import find_smollm2_gguf, load_smollm2_tokenizer
    from turngym.training.evaluate import evaluate_model

    port = _free_port()
    log = open(tmp_path / "llama.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(find_smollm2_gguf()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_for_llama_server(proc, f"{url}/models", tmp_path / "llama.log")
        remote = OpenAIPolicy("smollm2", url, load_smollm2_tokenizer(), timeout_s=120)
        try:
            replies = remote.chat([[{"role": "user", "content": "Say hello."}]],
                                  SamplingParams(max_new_tokens=8, temperature=0))
        except PolicyServerError:
            if proc.poll() is not None:  # the server died under the request, not our client
                pytest.fail(_llama_died(proc, tmp_path / "llama.log"))
            raise
        assert isinstance(replies[0], str) and replies[0].strip()
        summary, trajectories = evaluate_model("turngym/TicTacToe-v0", remote, episodes=2, opponent="random", seed=0,
                                               temperature=0.0, max_new_tokens=8, context="turn")
        assert summary.episodes == 2
        assert remote.prompt_format == "text"  # llama.cpp refused token-id prompts; the policy fell back to text
        assert all(turn.completion_ids for t in trajectories for turn in t.turns)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_a_continued_conversation_resumes_from_the_servers_kv_cache(client, server, policy):
    """Prefix caching: the second request repeats the first conversation and adds to it; only the
    new part is prefilled, and the reply equals a from-scratch generation."""
    messages = [{"role": "system", "content": "You play a word game. Reply with one word."},
                {"role": "user", "content": "Start with a word about the sea, please."}]
    first = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0)
    before = _health(server)["kv_reuse"]["reused_tokens"]
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "Now one about the sky."}]
    second = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0)
    reused = _health(server)["kv_reuse"]["reused_tokens"] - before
    # at least the system prompt and the first user turn came from the cache
    assert reused >= len(_chat_ids(policy, messages[:2])) - 3
    fresh = HFPolicy(policy.model, policy.tokenizer, kv_reuse=False)
    direct = fresh.generate([_chat_ids(policy, messages)], SamplingParams(max_new_tokens=10, temperature=0))[0]
    assert second.choices[0].message.content == direct.text

"""The training gateway: sessions named three ways, token-exact recording, rewards, and every cap's typed 4xx."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import openai
import pytest

from turngym.agents.gateway import (
    SESSION_HEADER,
    GatewayConfig,
    SessionRecord,
    SessionRecorder,
    gateway_main,
)
from turngym.agents.hf_policy import HFPolicy
from turngym.agents.serve import RequestError, ServeConfig, ServerThread
from turngym.agents.tiny import tiny_char_model


@pytest.fixture(scope="module")
def policy():
    model, tokenizer = tiny_char_model(0)
    return HFPolicy(model, tokenizer, max_batch_size=16)


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_recorded_ids_are_exactly_the_generated_ones_and_a_reward_closes_the_session(policy, tmp_path):
    recorder = SessionRecorder(GatewayConfig(record_dir=tmp_path))
    with ServerThread(policy, ServeConfig(model_name="tiny"), recorder=recorder) as server:
        client = openai.OpenAI(base_url=f"{server.root_url}/s/ep-1/v1", api_key="x", max_retries=0)
        messages = [{"role": "user", "content": "Say something."}]
        replies = []
        for _ in range(2):  # an append-only conversation: the reply goes back as the model wrote it
            reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=10, logprobs=True, stream=len(replies) == 1)
            if len(replies) == 1:  # the second call streamed: assemble it
                chunks = list(reply)
                ids = next(c.choices[0].model_extra["token_ids"] for c in chunks if c.choices and c.choices[0].finish_reason)
                content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                replies.append((chunks[0].model_extra["prompt_token_ids"], ids, None))
            else:
                ids, content = reply.choices[0].model_extra["token_ids"], reply.choices[0].message.content
                replies.append((reply.model_extra["prompt_token_ids"], ids, [t.logprob for t in reply.choices[0].logprobs.content]))
            messages += [{"role": "assistant", "content": content}, {"role": "user", "content": "More."}]
        record = recorder.get("ep-1")
        assert [c.prompt_ids for c in record.calls] == [p for p, _, _ in replies]
        assert [c.completion_ids for c in record.calls] == [i for _, i, _ in replies]
        np.testing.assert_allclose(record.calls[0].logprobs, replies[0][2], atol=1e-6)
        # the recorded log-probs are the model's own: teacher forcing the recorded ids gives them back
        scored = policy.score([record.calls[1].prompt_ids], [record.calls[1].completion_ids])[0]
        np.testing.assert_allclose(record.calls[1].logprobs, scored, atol=1e-3)

        status, body = _post(f"{server.root_url}/sessions/ep-1/reward", {"reward": 0.75, "call_rewards": [0.1, 0.2]})
        assert status == 200 and body == {"session": "ep-1", "reward": 0.75, "calls": 2}
        with pytest.raises(openai.APIStatusError, match="is closed") as closed:
            client.chat.completions.create(model="tiny", messages=messages, max_tokens=2)
        assert closed.value.status_code == 410 and closed.value.code == "session_closed"
        assert _post(f"{server.root_url}/sessions/ep-1/reward", {"reward": 1})[0] == 410
        assert _post(f"{server.root_url}/sessions/nope/reward", {"reward": 1})[0] == 404
    saved = [SessionRecord.from_dict(json.loads(line)) for line in (tmp_path / "sessions.jsonl").read_text().splitlines()]
    assert len(saved) == 1 and saved[0].reward == 0.75 and saved[0].call_rewards == [0.1, 0.2]
    assert saved[0].calls == record.calls


def test_a_session_is_named_by_url_header_or_user_field_and_required(policy):
    recorder = SessionRecorder()
    with ServerThread(policy, ServeConfig(model_name="tiny"), recorder=recorder) as server:
        plain = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        ask = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        plain.chat.completions.create(**ask, extra_headers={SESSION_HEADER: "by-header"})
        plain.chat.completions.create(**ask, user="by-user")
        plain.completions.create(model="tiny", prompt=[5, 6, 7], max_tokens=2, n=2, user="by-user")
        with pytest.raises(openai.BadRequestError, match="no session"):
            plain.chat.completions.create(**ask)
        assert len(recorder.get("by-header").calls) == 1
        assert [c.prompt_ids for c in recorder.get("by-user").calls][1:] == [[5, 6, 7], [5, 6, 7]]  # n=2: two calls
        with pytest.raises(openai.BadRequestError, match="session id"):
            openai.OpenAI(base_url=f"{server.root_url}/s/bad%20id/v1", api_key="x", max_retries=0).chat.completions.create(**ask)


def _charged(recorder: SessionRecorder, session: str) -> bool:
    try:
        return recorder.get(session).tokens > 0
    except RequestError:
        return False


def test_caps_on_sessions_tokens_body_and_concurrency_are_typed_4xx(scripted):
    gate = threading.Event()
    recorder = SessionRecorder(GatewayConfig(max_sessions=2, max_tokens_per_session=100, auto_open=True))
    config = ServeConfig(model_name="m", max_request_bytes=4_000, max_concurrent_requests=1)
    with ServerThread(scripted(["ok"], gate=gate), config, recorder=recorder) as server:
        def client(session):
            return openai.OpenAI(base_url=f"{server.root_url}/s/{session}/v1", api_key="x", max_retries=0)

        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        held = threading.Thread(target=lambda: client("a").chat.completions.create(**ask))
        held.start()  # one request in flight, held by the gate
        while not _charged(recorder, "a"):  # admitted: it is in flight, waiting at the gate
            gate.wait(0.01)
        with pytest.raises(openai.RateLimitError, match="max_concurrent_requests=1"):
            client("b").chat.completions.create(**ask)
        gate.set()
        held.join(30)
        client("b").chat.completions.create(**ask)
        with pytest.raises(openai.RateLimitError, match="max_sessions=2") as many:
            client("c").chat.completions.create(**ask)
        assert many.value.code == "too_many_sessions"
        with pytest.raises(openai.BadRequestError, match="max_tokens_per_session=100") as tokens:
            client("a").chat.completions.create(**{**ask, "max_tokens": 150})
        assert tokens.value.code == "session_token_limit"
        with pytest.raises(openai.APIStatusError) as huge:
            client("a").chat.completions.create(**{**ask, "messages": [{"role": "user", "content": "x" * 5000}]})
        assert huge.value.status_code == 413
        recorder.take("b")  # a taken session frees its slot
        client("c").chat.completions.create(**ask)


def test_sessions_opened_by_the_trainer_only_and_a_closed_one_refuses(scripted):
    recorder = SessionRecorder(GatewayConfig(auto_open=False, temperature=1.0, max_new_tokens=3))
    with ServerThread(scripted(["abcdef"]), ServeConfig(model_name="m", accept_any_model=True), recorder=recorder) as server:
        ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50, "seed": 1}
        with pytest.raises(openai.NotFoundError, match="opened by the trainer"):
            openai.OpenAI(base_url=f"{server.root_url}/s/x/v1", api_key="k", max_retries=0).chat.completions.create(**ask)
        recorder.open("x")
        openai.OpenAI(base_url=f"{server.root_url}/s/x/v1", api_key="k", max_retries=0).chat.completions.create(**ask)
        assert recorder.get("x").tokens == len(recorder.get("x").calls[0].prompt_ids) + 3  # budget capped at max_new_tokens
        recorder.close("x", "timed out")
        with pytest.raises(openai.APIStatusError, match="timed out"):
            openai.OpenAI(base_url=f"{server.root_url}/s/x/v1", api_key="k", max_retries=0).chat.completions.create(**ask)
        assert recorder.wait("x", 0) and recorder.take("x").reward is None


def test_the_gateway_binds_loopback_unless_given_a_token(capsys):
    assert gateway_main(["--host", "0.0.0.0", "--model", "tiny-char"]) == 2
    assert "--token" in capsys.readouterr().out


def test_the_standalone_gateway_times_out_idle_sessions_and_forgets_what_it_wrote(scripted, tmp_path):
    recorder = SessionRecorder(GatewayConfig(max_sessions=2, session_timeout_s=0.3, drop_closed=True, record_dir=tmp_path))
    with ServerThread(scripted(["ok"]), ServeConfig(model_name="m"), recorder=recorder) as server:
        def ask(session):
            openai.OpenAI(base_url=f"{server.root_url}/s/{session}/v1", api_key="x", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)

        ask("idle")
        ask("done")
        assert _post(f"{server.root_url}/sessions/done/reward", {"reward": 1.0})[0] == 200
        threading.Event().wait(0.5)
        ask("next")  # "done" was written and forgotten on its reward; this request finds "idle" timed out
        with pytest.raises(RequestError, match="no session 'idle'"):
            recorder.get("idle")
    lines = [SessionRecord.from_dict(json.loads(line)) for line in (tmp_path / "sessions.jsonl").read_text().splitlines()]
    assert [(r.session_id, r.reward) for r in lines] == [("done", 1.0), ("idle", None)]
    assert "timed out" in lines[1].error and len(lines[1].calls) == 1

"""``turngym serve``: an OpenAI-compatible HTTP server over any token-level :class:`Policy`.

So that external tools (an OpenAI SDK, an eval harness, another rollout worker) can play our agents,
and so that :class:`~turngym.agents.openai_policy.OpenAIPolicy` has a server to talk to.

Endpoints (JSON in, JSON out; the OpenAI wire format):

``GET /v1/models``
    the one served model.
``POST /v1/chat/completions``
    ``messages`` → the tokenizer's chat template (with the assistant generation prompt) → generate.
``POST /v1/completions``
    ``prompt``: a string, **a list of token ids** (token-in, as vLLM accepts it), or a list of
    either (a batch).

Accepted request fields: ``model``, ``max_tokens`` / ``max_completion_tokens`` (default 256),
``temperature`` (default 1; 0 = greedy), ``top_p``, ``top_k`` (extension), ``n``, ``stop``,
``seed``, ``logprobs`` (chat: bool; completions: int — only the sampled token's log-prob is given,
``top_logprobs`` are empty). Every choice also carries ``token_ids`` (the generated ids, stop token
included) and the response ``prompt_token_ids`` — the same extension vLLM uses — so a client can
build token-in/token-out trajectories. A chat reply's ``content`` ends before the stop string that
ended it (OpenAI semantics; ``token_ids`` keep every generated id). Non-zero presence/frequency
penalties are refused with a 400 that says so.

Chat extras: ``stream: true`` (server-sent events, sent once the generation is done —
:mod:`turngym.agents.chat_stream`; ``stream_options.include_usage`` adds the usage chunk), and
``tools`` / ``tool_choice`` (:mod:`turngym.agents.tool_calls`: tools rendered through the chat
template, ``<tool_call>`` blocks parsed into ``tool_calls`` with ``finish_reason="tool_calls"``; an
unparseable block stays plain content). ``tool_choice`` ``"none"`` leaves the tools out; ``"required"``
and a named function are accepted but not enforced (no constrained decoding).

Batching: concurrent requests with equal sampling parameters are merged into one ``generate`` call
(up to ``max_batch_size`` rows, after waiting at most ``batch_wait_s`` for company); the policy runs
on one worker thread, so a model never sees two calls at once.

Safety: binds 127.0.0.1 by default; binding any other address needs a bearer token (``--token`` or
``TURNGYM_SERVE_TOKEN``); a missing/wrong token gets 401, a body over ``max_request_bytes`` 413,
more than ``max_concurrent_requests`` requests in flight 429, malformed JSON or fields 400 — always as
``{"error": {"message", "type", "param", "code"}}``.

A ``recorder`` (the training gateway, :mod:`turngym.agents.gateway`) may be given to
:func:`build_app`: it admits each chat/completions request to a session, records its prompt and
generated ids, and adds its own routes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from turngym.agents.base import Generation, SamplingParams
from turngym.agents.chat_stream import chat_chunks, sse
from turngym.agents.factory import load_policy, parse_spec
from turngym.agents.tool_calls import ToolFormatError, parse_reply, render_chat, tool_names

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_TOKENS = 256


class RequestError(ValueError):
    """A request the server refuses (HTTP 400 unless ``status`` says otherwise)."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# ================================================================================================
# Request parsing (pure)
# ================================================================================================
def sampling_from_request(body: dict[str, Any]) -> SamplingParams:
    """The :class:`SamplingParams` an OpenAI request asks for; unsupported options raise :class:`RequestError`."""
    if body.get("functions"):
        raise RequestError("the deprecated 'functions' field is not supported; send the same definitions as "
                           "tools=[{'type': 'function', 'function': {...}}]", "functions")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name):
            raise RequestError(f"{name}={body[name]!r} is not supported; leave it at 0", name)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    try:
        return SamplingParams(
            max_new_tokens=_int(max_tokens, "max_tokens", low=1),
            temperature=float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
            top_p=float(body.get("top_p", 1.0) if body.get("top_p") is not None else 1.0),
            top_k=_int(body.get("top_k", 0) or 0, "top_k", low=0),
            stop=tuple(str(s) for s in stop),
            seed=None if body.get("seed") is None else _int(body["seed"], "seed"),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(str(exc)) from None


def _int(value: Any, name: str, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}", name)
    if low is not None and value < low:
        raise RequestError(f"{name} must be >= {low}, got {value!r}", name)
    return value


def completion_prompts(prompt: Any, tokenizer: Any) -> list[list[int]]:
    """``prompt`` of ``/v1/completions`` (string, id list, or a list of either) → token-id prompts."""
    if isinstance(prompt, str):
        return [tokenizer.encode(prompt, add_special_tokens=False)]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return [list(prompt)]
    if isinstance(prompt, list) and prompt:
        out: list[list[int]] = []
        for item in prompt:
            out.extend(completion_prompts(item, tokenizer))
        return out
    raise RequestError(f"prompt must be a non-empty string, a list of token ids, or a list of those; got {prompt!r:.80}", "prompt")


def chat_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The request's ``tools`` to render and parse (``None``: none, or ``tool_choice="none"``)."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if choice is not None and choice not in ("none", "auto", "required") and not (
            isinstance(choice, dict) and isinstance(choice.get("function"), dict)):
        raise RequestError(f"tool_choice must be 'none', 'auto', 'required' or {{'type': 'function', 'function': "
                           f"{{'name': ...}}}}, got {choice!r:.80}", "tool_choice")
    if not tools or choice == "none":
        return None
    try:
        tool_names(tools)
    except ToolFormatError as exc:
        raise RequestError(str(exc), exc.param) from None
    return list(tools)


def chat_prompt(messages: Any, tokenizer: Any, tools: list[dict[str, Any]] | None = None) -> list[int]:
    """``messages`` (and ``tools``) of ``/v1/chat/completions`` → token ids through the tokenizer's
    chat template (:func:`turngym.agents.tool_calls.render_chat`)."""
    try:
        return render_chat(messages, tools, tokenizer)
    except ToolFormatError as exc:
        raise RequestError(str(exc), exc.param) from None


# ================================================================================================
# Batching: concurrent requests with equal sampling parameters share one generate call
# ================================================================================================
@dataclass
class _Pending:
    prompts: list[list[int]]
    params: SamplingParams
    future: asyncio.Future = field(repr=False)


class GenerationBatcher:
    """Merges concurrent ``submit`` calls into batched ``policy.generate`` calls on one worker thread."""

    def __init__(self, policy: Any, max_batch_size: int = 32, batch_wait_s: float = 0.005):
        self.policy, self.max_batch_size, self.batch_wait_s = policy, max_batch_size, batch_wait_s
        self.queue: asyncio.Queue[_Pending] | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turngym-serve-generate")
        self.worker: asyncio.Task | None = None
        self.batches = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        assert self.queue is not None, "GenerationBatcher.start() was not awaited"
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(prompts, params, future))
        return await future

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        held: list[_Pending] = []
        while True:
            first = held.pop(0) if held else await self.queue.get()
            batch, rows = [first], len(first.prompts)
            deadline = loop.time() + self.batch_wait_s
            while rows < self.max_batch_size:
                timeout = deadline - loop.time()
                try:
                    item = self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if item.params == first.params and rows + len(item.prompts) <= self.max_batch_size:
                    batch.append(item)
                    rows += len(item.prompts)
                else:
                    held.append(item)
            prompts = [p for item in batch for p in item.prompts]
            try:
                generations = await loop.run_in_executor(self.executor, self.policy.generate, prompts, first.params)
            except Exception as exc:  # the model failed: every waiting request gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(generations[start : start + len(item.prompts)])
                start += len(item.prompts)


# ================================================================================================
# Responses (pure)
# ================================================================================================
def _usage(prompts: Sequence[Sequence[int]], generations: Sequence[Generation]) -> dict[str, int]:
    prompt_tokens = sum(len(p) for p in prompts)
    completion_tokens = sum(len(g.token_ids) for g in generations)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def _token_strings(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]


def chat_response(model: str, prompt: list[int], generations: Sequence[Generation], tokenizer: Any, logprobs: bool,
                  tools: list[dict[str, Any]] | None = None) -> dict:
    """The ``chat.completion`` object: content cut before the stop string that ended it, tool calls
    parsed when ``tools`` were given (``finish_reason="tool_calls"``), token ids as the extension."""
    names = tool_names(tools) if tools else None
    choices = []
    for i, g in enumerate(generations):
        lp = None
        if logprobs:
            lp = {"content": [{"token": t, "logprob": float(v), "bytes": list(t.encode()), "top_logprobs": []}
                              for t, v in zip(_token_strings(tokenizer, g.token_ids), g.logprobs)]}
        text = g.text
        if isinstance(g.stop, str) and g.stop in text:
            text = text[: text.index(g.stop)]
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = g.finish_reason
        if names:
            reply = parse_reply(text, names)
            if reply.tool_calls:
                message = {"role": "assistant", "content": reply.content, "tool_calls": [c.to_wire() for c in reply.tool_calls]}
                finish = "tool_calls"
        choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": lp,
                        "token_ids": [int(t) for t in g.token_ids]})
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": _usage([prompt] * len(generations), generations), "prompt_token_ids": prompt}


def completion_response(model: str, prompts: list[list[int]], n: int, generations: Sequence[Generation], tokenizer: Any,
                        logprobs: bool) -> dict:
    choices = []
    for i, g in enumerate(generations):
        lp = None
        if logprobs:
            tokens = _token_strings(tokenizer, g.token_ids)
            offsets, pos = [], 0
            for t in tokens:
                offsets.append(pos)
                pos += len(t)
            lp = {"tokens": tokens, "token_logprobs": [float(v) for v in g.logprobs], "top_logprobs": None, "text_offset": offsets}
        choices.append({"index": i, "text": g.text, "finish_reason": g.finish_reason, "logprobs": lp,
                        "token_ids": [int(t) for t in g.token_ids], "prompt_token_ids": prompts[i // n]})
    expanded = [p for p in prompts for _ in range(n)]
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": _usage(expanded, generations)}


# ================================================================================================
# The aiohttp application
# ================================================================================================
@dataclass
class ServeConfig:
    """How :func:`build_app` serves. ``token=None`` means no auth (loopback only)."""

    model_name: str = "turngym"
    token: str | None = None
    max_batch_size: int = 32
    batch_wait_s: float = 0.005
    max_request_bytes: int = 4 * 2**20
    max_n: int = 16
    max_concurrent_requests: int = 256
    """Generation requests in flight at once; one more gets 429 ``too_many_requests``."""
    accept_any_model: bool = False
    """Serve whatever ``model`` a request names (the training gateway: unmodified agents name theirs)."""
    kv_reuse: bool = True
    """Prefix caching for the server's lifetime (a policy with ``kv_session``, e.g. HFPolicy): a
    request that repeats an earlier conversation and adds to it prefills only what is new. The
    served weights must not change while the server runs."""


def build_app(policy: Any, config: ServeConfig, recorder: Any = None) -> Any:
    """The aiohttp ``web.Application`` serving ``policy`` (see the module docstring).

    ``recorder`` (optional, e.g. :class:`turngym.agents.gateway.SessionRecorder`) has
    ``admit(request, body, prompts, params) -> (key, params)`` (raises :class:`RequestError` to
    refuse; may replace the sampling parameters),
    ``record(key, prompts, generations)`` and ``add_routes(app, handlers)``.
    """
    from aiohttp import web

    batcher = GenerationBatcher(policy, config.max_batch_size, config.batch_wait_s)
    in_flight = [0]

    def json_error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None):
        return web.json_response(error_body(message, kind, param, code), status=status)

    @web.middleware
    async def errors_and_auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if config.token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
                return json_error(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                                  "authentication_error", code="invalid_api_key")
        limited = request.method == "POST"
        if limited and in_flight[0] >= config.max_concurrent_requests:
            return json_error(429, f"{in_flight[0]} requests are in flight, this server's limit "
                                   f"(max_concurrent_requests={config.max_concurrent_requests}); retry later",
                              "rate_limit_error", code="too_many_requests")
        in_flight[0] += limited
        try:
            return await handler(request)
        except RequestError as exc:
            return json_error(exc.status, str(exc), param=exc.param, code=exc.code)
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"request body over the server's limit of {config.max_request_bytes} bytes",
                              code="request_too_large")
        except web.HTTPException as exc:
            return json_error(exc.status, exc.reason or "HTTP error")
        except Exception as exc:  # a model failure: report it, keep serving
            return json_error(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error")
        finally:
            in_flight[0] -= limited

    async def read_body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError(f"the body must be a JSON object, got {type(body).__name__}")
        model = body.get("model")
        if model not in (None, config.model_name) and not config.accept_any_model:
            raise RequestError(f"model {model!r} is not served here; this server serves {config.model_name!r}",
                               "model", status=404, code="model_not_found")
        return body

    def n_of(body: dict[str, Any]) -> int:
        n = _int(body.get("n", 1) if body.get("n") is not None else 1, "n", low=1)
        if n > config.max_n:
            raise RequestError(f"n={n} is over this server's limit of {config.max_n}", "n")
        return n

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": config.model_name, "object": "model", "created": 0, "owned_by": "turngym"}]})

    async def generate(request: web.Request, body: dict[str, Any], prompts: list[list[int]],
                       params: SamplingParams) -> list[Generation]:
        key = None
        if recorder is not None:
            key, params = recorder.admit(request, body, prompts, params)
        generations = await batcher.submit(prompts, params)
        if recorder is not None:
            recorder.record(key, prompts, generations)
        return generations

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        params, n = sampling_from_request(body), n_of(body)
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise RequestError(f"stream_options must be an object, got {options!r:.80}", "stream_options")
        tools = chat_tools(body)
        prompt = chat_prompt(body.get("messages"), policy.tokenizer, tools)
        generations = await generate(request, body, [prompt] * n, params)
        response = chat_response(config.model_name, prompt, generations, policy.tokenizer, bool(body.get("logprobs")), tools)
        if not body.get("stream"):
            return web.json_response(response)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await stream.prepare(request)
        for chunk in chat_chunks(response, bool(options.get("include_usage"))):
            await stream.write(sse(chunk))
        await stream.write(sse("[DONE]"))
        await stream.write_eof()
        return stream

    async def completions(request: web.Request) -> web.Response:
        body = await read_body(request)
        params, n = sampling_from_request(body), n_of(body)
        prompts = completion_prompts(body.get("prompt"), policy.tokenizer)
        if len(prompts) * n > config.max_batch_size * 8:
            raise RequestError(f"{len(prompts)} prompts x n={n} is too many for one request; split it", "prompt")
        if body.get("stream"):
            raise RequestError("stream=true is supported on /v1/chat/completions only; send stream=false here", "stream")
        generations = await generate(request, body, [p for p in prompts for _ in range(n)], params)
        logprobs = body.get("logprobs") is not None and body.get("logprobs") is not False
        return web.json_response(completion_response(config.model_name, prompts, n, generations, policy.tokenizer, logprobs))

    kv_sessions = contextlib.ExitStack()
    kv_store: list[Any] = [None]

    async def health(_: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok", "model": config.model_name, "batches": batcher.batches}
        if kv_store[0] is not None:
            stats = kv_store[0].stats
            body["kv_reuse"] = {"reused_tokens": stats.reused_tokens, "prefilled_tokens": stats.prefilled_tokens}
        return web.json_response(body)

    async def on_startup(_: web.Application) -> None:
        session = getattr(policy, "kv_session", None)
        if config.kv_reuse and callable(session):
            kv_store[0] = kv_sessions.enter_context(session())
        await batcher.start()

    async def on_cleanup(_: web.Application) -> None:
        await batcher.stop()
        kv_sessions.close()

    app = web.Application(middlewares=[errors_and_auth], client_max_size=config.max_request_bytes)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    if recorder is not None:
        recorder.add_routes(app, {"chat": chat, "completions": completions, "models": models})
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app["batcher"] = batcher
    return app


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve off-loopback without a token."""
    if host not in LOOPBACK and not token:
        raise ValueError(f"binding {host!r} exposes the model beyond this machine: give --token (or TURNGYM_SERVE_TOKEN)")


class ServerThread:
    """Serve a policy from a background thread (for tests, notebooks and in-process evaluation).

    ``with ServerThread(policy, ServeConfig(...)) as server: OpenAI(base_url=server.base_url, ...)``.
    """

    def __init__(self, policy: Any, config: ServeConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 recorder: Any = None):
        check_binding(host, (config or ServeConfig()).token)
        self.policy, self.config, self.host, self.port = policy, config or ServeConfig(), host, port
        self.recorder = recorder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="turngym-serve", daemon=True)
        self.runner: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        from aiohttp import web

        self.thread.start()

        async def boot() -> int:
            self.runner = web.AppRunner(build_app(self.policy, self.config, self.recorder))
            await self.runner.setup()
            site = web.TCPSite(self.runner, self.host, self.port)
            await site.start()
            return int(self.runner.addresses[0][1])  # the bound port when port=0

        self.port = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
            self.runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ================================================================================================
# CLI
# ================================================================================================
def build_parser(prog: str = "turngym serve") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Serve a policy over an OpenAI-compatible API (/v1/chat/completions, /v1/completions).")
    p.add_argument("--model", default="smollm2-135m", help="model spec: smollm2-135m, hf:<path>, tiny-char, tiny-random (default: %(default)s)")
    p.add_argument("--served-name", help="the model name clients send (default: the --model spec)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s; others need --token)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=os.environ.get("TURNGYM_SERVE_TOKEN"), help="bearer token clients must send (env TURNGYM_SERVE_TOKEN)")
    p.add_argument("--max-batch-size", type=int, default=32, help="rows per batched generate call")
    p.add_argument("--max-request-bytes", type=int, default=4 * 2**20)
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--no-kv-reuse", action="store_true",
                   help="do not keep KV caches between requests (prefix caching is on by default)")
    return p


def serve_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_binding(args.host, args.token)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    try:
        spec = parse_spec(args.model)
    except ValueError as exc:
        print(f"error: --model: {exc}")
        return 2
    if spec.kind == "vllm":
        # VLLMPolicy serves only the thread that built it, and this server generates on a worker thread
        print(f"error: --model {args.model!r}: an in-process vLLM engine cannot be served from the server's "
              f"worker thread; run vLLM's own server instead (`vllm serve <path>`) and point clients, or "
              f"`--agent openai:<model>@http://host:8000/v1`, at it")
        return 2
    if spec.kind == "openai":
        print(f"error: --model {args.model!r} is already an OpenAI-compatible endpoint; point clients at "
              f"{spec.base_url} directly")
        return 2
    import torch
    from aiohttp import web

    if args.threads:
        torch.set_num_threads(args.threads)
    policy = load_policy(spec, max_batch_size=args.max_batch_size)
    config = ServeConfig(model_name=args.served_name or args.model, token=args.token, max_batch_size=args.max_batch_size,
                         max_request_bytes=args.max_request_bytes, kv_reuse=not args.no_kv_reuse)
    print(f"serving {config.model_name!r} on http://{args.host}:{args.port}/v1 (auth: {'bearer token' if args.token else 'none'})", flush=True)
    web.run_app(build_app(policy, config), host=args.host, port=args.port, print=None)
    return 0

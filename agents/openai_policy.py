"""A :class:`~turngym.agents.base.Policy` backed by any OpenAI-compatible HTTP server (aiohttp).

Two ways in:

``generate(prompts, params)`` — the token-level Policy contract, for the rollout engine
    Each prompt (token ids) goes to ``POST {base_url}/completions``. The prompt is sent **as token
    ids** (vLLM, ``turngym serve`` and OpenAI's own completions API accept that), or — for servers
    that only take text (llama.cpp's Python server) — as the prompt decoded with special tokens
    kept (``prompt_format="auto"`` switches to text after the first refusal). The generated ids
    come from the response's ``token_ids`` when the server returns them (``turngym serve`` always;
    vLLM with ``return_token_ids``, which is sent with token-id prompts: exact token-out); otherwise the reply text is re-tokenized locally and the EOS id appended
    when the server stopped on it (approximate — fine for evaluation, not for training).
    Log-probs come from ``logprobs.token_logprobs`` when their count matches the ids, else ``nan``.
    Needs the served model's ``tokenizer``.

``chat(conversations, params)`` — text in, text out
    ``POST {base_url}/chat/completions``; works with any chat server (hosted APIs included). Used
    by :class:`ChatAgent`, which lets an endpoint play games in ``turngym eval`` / tournaments.

Robustness: at most ``concurrency`` requests in flight; each has a ``timeout_s``; connection errors,
timeouts and HTTP 408/409/429/5xx are retried ``retries`` times with exponential backoff and jitter,
then raise :class:`PolicyServerError` (the rollout records ``env_error`` for that trajectory). Other
4xx answers raise :class:`PolicyRequestError` at once, quoting the server's message.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from turngym.agents.base import Generation, Message, SamplingParams, TokenizerPolicy

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class PolicyServerError(RuntimeError):
    """The server could not be reached or kept failing after every retry."""


class PolicyRequestError(ValueError):
    """The server refused the request (a 4xx that retrying cannot fix)."""


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="turngym-openai-policy")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


class OpenAIPolicy(TokenizerPolicy):
    """A policy served over HTTP. See the module docstring.

    Args:
        model: the model name the server expects.
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        tokenizer: the served model's Hugging Face tokenizer (needed by :meth:`generate`, not :meth:`chat`).
        api_key: bearer token (default: ``OPENAI_API_KEY`` or ``TURNGYM_SERVE_TOKEN`` from the environment).
        concurrency: requests in flight at once.
        timeout_s: per-request timeout.
        retries: retries after the first attempt for retryable failures.
        backoff_s: first backoff; doubles every retry (with ±50% jitter).
        prompt_format: ``"ids"``, ``"text"`` or ``"auto"`` (the first call probes with ids and keeps
            them if the server answers 200, else switches to text for good).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        tokenizer: Any = None,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        prompt_format: str = "auto",
    ):
        if tokenizer is not None:
            super().__init__(tokenizer)
        else:
            self.tokenizer = None
            self._eos_token_ids = ()
        if prompt_format not in ("ids", "text", "auto"):
            raise ValueError(f"prompt_format must be 'ids', 'text' or 'auto', got {prompt_format!r}")
        if concurrency < 1 or retries < 0 or timeout_s <= 0:
            raise ValueError(f"need concurrency >= 1, retries >= 0, timeout_s > 0; got {concurrency!r}, {retries!r}, {timeout_s!r}")
        self.model, self.base_url = model, base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else (os.environ.get("OPENAI_API_KEY") or os.environ.get("TURNGYM_SERVE_TOKEN"))
        self.concurrency, self.timeout_s, self.retries, self.backoff_s = concurrency, timeout_s, retries, backoff_s
        self.prompt_format = prompt_format
        self.requests_sent = 0
        self.retried = 0

    # ------------------------------------------------------------------ HTTP with retries
    async def _post(self, session: Any, path: str, body: dict[str, Any], gate: asyncio.Semaphore,
                    probe: bool = False) -> dict[str, Any]:
        """POST with retries. ``probe``: a 500 is a refusal too (llama.cpp answers 500 to a prompt type it rejects)."""
        import aiohttp

        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            try:
                async with gate:
                    self.requests_sent += 1
                    async with session.post(url, json=body, headers=headers) as response:
                        text = await response.text()
                        if response.status == 200:
                            return _json(text, url)
                        message = _error_message(text)
                        if response.status not in RETRY_STATUSES or (probe and response.status == 500):
                            raise PolicyRequestError(f"{url} answered {response.status}: {message}")
                        last = f"HTTP {response.status}: {message}"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise PolicyServerError(f"{url} failed after {self.retries + 1} attempts; last error: {last}")

    async def _run_all(self, path: str, bodies: Sequence[dict[str, Any]], probe: bool = False) -> list[dict[str, Any]]:
        import aiohttp

        gate = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.concurrency + 2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            return list(await asyncio.gather(*(self._post(session, path, b, gate, probe) for b in bodies)))

    # ------------------------------------------------------------------ token level (Policy)
    def _sampling_body(self, params: SamplingParams, index: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": 0.0 if params.is_greedy else params.temperature,
            "top_p": params.top_p,
        }
        if params.top_k:
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = list(params.stop)
        if params.row_seeds is not None or params.seed is not None:
            body["seed"] = params.seed_of_row(index, params.seed or 0)
        return body

    async def agenerate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        if self.tokenizer is None:
            raise ValueError(f"OpenAIPolicy({self.model!r}).generate needs the served model's tokenizer (tokenizer=...)")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("prompts must be non-empty token-id lists")
        if self.prompt_format == "auto":  # one probe decides whether the server takes token-id prompts
            probe = dict(self._sampling_body(params, 0), prompt=[int(i) for i in prompts[0]], logprobs=1, return_token_ids=True)
            try:
                await self._run_all("/completions", [probe], probe=True)
                self.prompt_format = "ids"
            except PolicyRequestError:
                self.prompt_format = "text"  # e.g. llama.cpp's Python server: text prompts only
        bodies = [dict(self._sampling_body(params, i), prompt=self._prompt(p), logprobs=1) for i, p in enumerate(prompts)]
        if self.prompt_format == "ids":  # vLLM returns the generated ids only when asked
            bodies = [dict(b, return_token_ids=True) for b in bodies]
        responses = await self._run_all("/completions", bodies)
        return [self._generation(r) for r in responses]

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        prompts = [list(p) for p in prompts]
        return run_sync(lambda: self.agenerate(prompts, params))

    def _prompt(self, ids: Sequence[int]) -> list[int] | str:
        if self.prompt_format == "text":
            return self.tokenizer.decode(list(ids), skip_special_tokens=False)
        return [int(i) for i in ids]

    def _generation(self, response: dict[str, Any]) -> Generation:
        try:
            choice = response["choices"][0]
            text = choice.get("text") or ""
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
        except (KeyError, IndexError, TypeError) as exc:
            raise PolicyServerError(f"malformed completion response (no choices[0].text): {str(response)[:200]}") from exc
        ids = choice.get("token_ids")
        if ids is None:  # the server gives text only: re-tokenize (approximate token-out)
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if finish == "stop" and self.eos_token_id is not None and not (choice.get("stop_reason") or "").strip():
                ids = ids + [self.eos_token_id]
        ids = [int(i) for i in ids]
        logprobs = np.full(len(ids), np.nan, dtype=np.float32)
        given = (choice.get("logprobs") or {}).get("token_logprobs")
        if given is not None and len(given) == len(ids):
            logprobs = np.asarray([math.nan if v is None else float(v) for v in given], dtype=np.float32)
        return Generation(text=text, token_ids=ids, logprobs=logprobs, finish_reason=finish)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ text level (chat)
    async def achat(self, conversations: Sequence[Sequence[Message | dict]], params: SamplingParams) -> list[str]:
        bodies = []
        for i, conversation in enumerate(conversations):
            messages = [m.to_dict() if isinstance(m, Message) else dict(m) for m in conversation]
            bodies.append(dict(self._sampling_body(params, i), messages=messages))
        responses = await self._run_all("/chat/completions", bodies)
        replies = []
        for r in responses:
            try:
                replies.append(r["choices"][0]["message"].get("content") or "")
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                raise PolicyServerError(f"malformed chat response (no choices[0].message): {str(r)[:200]}") from exc
        return replies

    def chat(self, conversations: Sequence[Sequence[Message | dict]], params: SamplingParams) -> list[str]:
        return run_sync(lambda: self.achat(conversations, params))


def _json(text: str, url: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyServerError(f"{url} answered 200 with a body that is not JSON: {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise PolicyServerError(f"{url} answered 200 with JSON that is not an object: {text[:200]!r}")
    return data


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        return str(error)
    except (json.JSONDecodeError, AttributeError):
        return text[:300]


# ================================================================================================
# Agent specs: openai:<model>@<url>
# ================================================================================================
class ChatAgent:
    """A direct game agent backed by a chat endpoint: replies to the acting seat's observation."""

    def __init__(self, policy: OpenAIPolicy, name: str, temperature: float = 0.0, max_new_tokens: int = 32, seed: int | None = None):
        self.policy, self.name = policy, name
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, env: Any) -> str:
        observation = env.observe(env.current_seat)
        messages = ([{"role": "system", "content": env.system_prompt}] if env.system_prompt else []) + [
            {"role": "user", "content": observation}
        ]
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                seed=int(self.rng.integers(2**31)))
        return self.policy.chat([messages], params)[0]

"""The training gateway: ``turngym serve`` that records token-exact episodes ("sessions") of any agent program.

An agent written against the OpenAI chat API points its ``base_url`` at the gateway. Every
generation request belongs to a **session** (one episode), named by, first match wins:

1. the per-session base URL ``http://host:port/s/<session>/v1`` (nothing in the agent changes);
2. the ``X-Turngym-Session`` header;
3. the request's ``user`` field.

For each call the gateway records the prompt ids, the generated ids and their log-probs exactly as
the policy produced them (:class:`CallRecord`) — no decode/encode round trip. When the episode ends,
the program (or its harness) reports the reward: ``POST /sessions/<session>/reward`` with
``{"reward": 1.0}`` (optionally ``"call_rewards": [..]``, one per call), or
:meth:`SessionRecorder.report` in-process. That closes the session; later requests to it get 410
``session_closed`` (not 409, which the ``openai`` SDK retries). The learner turns a closed
:class:`SessionRecord` into a ``Trajectory`` (:mod:`turngym.training.sessions` — this package never
imports ``training``).

Other routes: ``GET /sessions/<session>`` (the record as JSON), ``POST /sessions/<session>`` (open one
explicitly). With ``record_dir``, every reported session is appended to ``record_dir/sessions.jsonl``.

Caps, each a typed 4xx (``{"error": {"message", "type", "param", "code"}}``): open sessions
(``max_sessions``, 429 ``too_many_sessions``), tokens per session (prompt plus generation budget of
every call, ``max_tokens_per_session``, 400 ``session_token_limit``), a request without a session
(400 ``session_required``), a closed session (410 ``session_closed``), an unknown one when sessions
must be opened first (404 ``session_not_found``); body size and concurrent requests as ``serve``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from turngym.agents.base import Generation, SamplingParams
from turngym.agents.serve import RequestError, ServeConfig, build_parser, check_binding

SESSION_HEADER = "X-Turngym-Session"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class CallRecord:
    """One generation of a session: what the model saw and produced, ids exactly as generated.

    ``prompt_ids`` is the whole prompt of the call (chat template applied); ``completion_ids`` the
    generated ids (stop token included); ``logprobs`` their raw log-probs (``len == len(completion_ids)``).
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str


@dataclass
class SessionRecord:
    """One episode's calls and, once reported, its reward (``call_rewards``: one per call, optional)."""

    session_id: str
    calls: list[CallRecord] = field(default_factory=list)
    reward: float | None = None
    call_rewards: list[float] | None = None
    closed: bool = False
    error: str | None = None
    tokens: int = 0
    """Tokens charged to the session: each call's prompt plus its generation budget."""
    last_active: float = field(default=0.0, compare=False)
    """``time.monotonic()`` of the session's last opening or call (idle timeouts; not serialized)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["last_active"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionRecord:
        calls = [CallRecord(**c) for c in data.get("calls", [])]
        return cls(**{**data, "calls": calls})


@dataclass
class GatewayConfig:
    """Session rules of a :class:`SessionRecorder`.

    Attributes:
        max_sessions: sessions held at once (open or reported but not yet taken).
        max_tokens_per_session: see :attr:`SessionRecord.tokens`.
        auto_open: a request naming an unknown session opens it; ``False``: sessions must be opened
            first (:meth:`SessionRecorder.open` or ``POST /sessions/<id>``) — the trainer's mode.
        record_dir: append each reported (or timed-out) session to ``record_dir/sessions.jsonl``.
        session_timeout_s: an open session idle (no call) this long is closed as timed out, with no
            reward, when the next request or opening comes; ``None``: never (the trainer's runs
            time out per step instead).
        drop_closed: forget a session once it is reported or timed out (and written to
            ``record_dir``) — the standalone gateway, where nobody takes records; ``False``: it
            stays until :meth:`SessionRecorder.take` (the trainer's mode).
        temperature, top_p, top_k, max_new_tokens: when set, replace what requests ask for (a
            training run samples every call the way its rollouts are configured, at most
            ``max_new_tokens`` per call, with fresh seeds); ``None`` keeps the request's.
    """

    max_sessions: int = 1024
    max_tokens_per_session: int = 65_536
    auto_open: bool = True
    record_dir: Path | None = None
    session_timeout_s: float | None = None
    drop_closed: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None


class SessionRecorder:
    """Thread-safe session store; plugs into :func:`turngym.agents.serve.build_app` as its ``recorder``."""

    def __init__(self, config: GatewayConfig | None = None):
        self.config = config or GatewayConfig()
        self._sessions: dict[str, SessionRecord] = {}
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- the harness's API
    def open(self, session_id: str) -> None:
        """Open ``session_id`` (``ValueError`` if malformed, already held, or the store is full)."""
        expired: list[SessionRecord] = []
        try:
            with self._lock:
                expired = self._sweep()
                self._open(session_id)
        finally:
            self._write(expired)

    def _open(self, session_id: str) -> SessionRecord:
        if not _SESSION_ID.match(session_id):
            raise RequestError(f"session id {session_id!r:.140} must be 1-128 characters of A-Z a-z 0-9 _ . : -",
                               "session", code="bad_session_id")
        if session_id in self._sessions:
            raise RequestError(f"session {session_id!r} already exists", "session", status=409, code="session_exists")
        if len(self._sessions) >= self.config.max_sessions:
            raise RequestError(f"{len(self._sessions)} sessions are held, this gateway's limit (max_sessions="
                               f"{self.config.max_sessions}); report or drop finished sessions first",
                               "session", status=429, code="too_many_sessions")
        record = self._sessions[session_id] = SessionRecord(session_id, last_active=time.monotonic())
        self._done[session_id] = threading.Event()
        return record

    def _sweep(self) -> list[SessionRecord]:
        """Close the sessions idle past ``session_timeout_s`` (under the lock); those closed."""
        timeout = self.config.session_timeout_s
        if timeout is None:
            return []
        now, expired = time.monotonic(), []
        for record in list(self._sessions.values()):
            if not record.closed and now - record.last_active > timeout:
                record.closed, record.error = True, f"timed out: no call and no reward for {timeout:g} s"
                self._done[record.session_id].set()
                expired.append(record)
                self._forget(record)
        return expired

    def _forget(self, record: SessionRecord) -> None:
        if self.config.drop_closed:
            del self._sessions[record.session_id], self._done[record.session_id]

    def _write(self, records: Sequence[SessionRecord]) -> None:
        if self.config.record_dir is None or not records:
            return
        self.config.record_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.record_dir / "sessions.jsonl", "a") as f:
            f.writelines(json.dumps(r.to_dict()) + "\n" for r in records)

    def report(self, session_id: str, reward: float, call_rewards: Sequence[float] | None = None) -> SessionRecord:
        """Record the episode's reward and close the session."""
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or reward != reward:
            raise RequestError(f"reward must be a number, got {reward!r:.80}", "reward")
        with self._lock:
            record = self._get(session_id)
            if record.closed:
                raise RequestError(f"session {session_id!r} is closed already"
                                   f"{' (' + record.error + ')' if record.error else ''}", "session",
                                   status=410, code="session_closed")
            if call_rewards is not None:
                values = list(call_rewards)
                if len(values) != len(record.calls) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
                    raise RequestError(f"call_rewards must be {len(record.calls)} numbers (one per call of the session), "
                                       f"got {values!r:.80}", "call_rewards")
                record.call_rewards = [float(v) for v in values]
            record.reward, record.closed = float(reward), True
            self._done[session_id].set()
            self._forget(record)
        self._write([record])
        return record

    def close(self, session_id: str, error: str) -> None:
        """Close a session without a reward (its program failed or timed out); later calls get 410."""
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None or record.closed:
                return
            record.closed, record.error = True, error
            self._done[session_id].set()
            self._forget(record)
        self._write([record])

    def wait(self, session_id: str, timeout: float | None) -> bool:
        """Block until the session is closed (reported or failed); whether it is."""
        event = self._done.get(session_id)
        return event is not None and event.wait(timeout)

    def take(self, session_id: str) -> SessionRecord:
        """Remove the session from the store (freeing its slot) and return its record."""
        with self._lock:
            record = self._get(session_id)
            del self._sessions[session_id], self._done[session_id]
            return record

    def get(self, session_id: str) -> SessionRecord:
        with self._lock:
            return self._get(session_id)

    def _get(self, session_id: str) -> SessionRecord:
        if session_id not in self._sessions:
            raise RequestError(f"no session {session_id!r} on this gateway", "session", status=404, code="session_not_found")
        return self._sessions[session_id]

    # ----------------------------------------------------------------------------- the server's hooks
    def session_of(self, request: Any, body: dict[str, Any]) -> str:
        """The session a request names (module docstring), or a 400 ``session_required``."""
        session = request.match_info.get("session") or request.headers.get(SESSION_HEADER) or body.get("user")
        if not isinstance(session, str) or not session:
            raise RequestError(f"no session: use the base URL /s/<session>/v1, the {SESSION_HEADER} header or the "
                               "'user' field to name the episode this call belongs to", "user", code="session_required")
        return session

    def admit(self, request: Any, body: dict[str, Any], prompts: list[list[int]],
              params: SamplingParams) -> tuple[str, SamplingParams]:
        """Charge the call to its session (opening it if allowed); the sampling parameters to use."""
        session = self.session_of(request, body)
        params = self.sampling(params)
        cost = sum(len(p) + params.max_new_tokens for p in prompts)
        expired: list[SessionRecord] = []
        try:
            with self._lock:
                expired = self._sweep()
                record = self._sessions.get(session)
                if record is None:
                    if not self.config.auto_open:
                        raise RequestError(f"no session {session!r} on this gateway (sessions are opened by the trainer)",
                                           "session", status=404, code="session_not_found")
                    record = self._open(session)
                if record.closed:
                    raise RequestError(f"session {session!r} is closed{' (' + record.error + ')' if record.error else ''}; "
                                       "start a new session for a new episode", "session", status=410, code="session_closed")
                if record.tokens + cost > self.config.max_tokens_per_session:
                    raise RequestError(f"session {session!r} would use {record.tokens + cost} tokens, over this gateway's "
                                       f"limit (max_tokens_per_session={self.config.max_tokens_per_session})",
                                       "messages", code="session_token_limit")
                record.tokens += cost
                record.last_active = time.monotonic()
        finally:
            self._write(expired)
        return session, params

    def sampling(self, params: SamplingParams) -> SamplingParams:
        """``params`` with the configured overrides applied (seed dropped when any is set)."""
        c = self.config
        if c.temperature is None and c.top_p is None and c.top_k is None and c.max_new_tokens is None:
            return params
        return SamplingParams(
            max_new_tokens=min(params.max_new_tokens, c.max_new_tokens or params.max_new_tokens),
            temperature=params.temperature if c.temperature is None else c.temperature,
            top_p=params.top_p if c.top_p is None else c.top_p,
            top_k=params.top_k if c.top_k is None else c.top_k,
            stop=params.stop, stop_token_ids=params.stop_token_ids,
        )

    def record(self, session: str, prompts: list[list[int]], generations: Sequence[Generation]) -> None:
        """Append each (prompt, generation) of one request to its session, ids as generated."""
        calls = [CallRecord([int(i) for i in p], [int(i) for i in g.token_ids], [float(x) for x in g.logprobs],
                            g.text, g.finish_reason) for p, g in zip(prompts, generations, strict=True)]
        with self._lock:
            record = self._sessions.get(session)
            if record is not None and not record.closed:  # a session closed mid-call keeps what it had
                record.calls.extend(calls)
                record.last_active = time.monotonic()

    def add_routes(self, app: Any, handlers: dict[str, Any]) -> None:
        """The per-session API (``/s/<session>/v1/...``) and the session routes."""
        from aiohttp import web

        app.router.add_post("/s/{session}/v1/chat/completions", handlers["chat"])
        app.router.add_post("/s/{session}/v1/completions", handlers["completions"])
        app.router.add_get("/s/{session}/v1/models", handlers["models"])

        async def reward(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.read())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RequestError(f"the body is not valid JSON: {exc}") from None
            if not isinstance(body, dict) or "reward" not in body:
                raise RequestError(f"send {{\"reward\": <number>}} (optionally \"call_rewards\"), got {body!r:.80}", "reward")
            record = self.report(request.match_info["session"], body["reward"], body.get("call_rewards"))
            return web.json_response({"session": record.session_id, "reward": record.reward, "calls": len(record.calls)})

        async def show(request: web.Request) -> web.Response:
            return web.json_response(self.get(request.match_info["session"]).to_dict())

        async def create(request: web.Request) -> web.Response:
            self.open(request.match_info["session"])
            return web.json_response({"session": request.match_info["session"]}, status=201)

        app.router.add_post("/sessions/{session}/reward", reward)
        app.router.add_get("/sessions/{session}", show)
        app.router.add_post("/sessions/{session}", create)


# ================================================================================================
# CLI: turngym gateway
# ================================================================================================
def gateway_main(argv: Sequence[str] | None = None) -> int:
    """``turngym gateway``: ``turngym serve`` plus session recording (module docstring)."""
    from aiohttp import web

    from turngym.agents.factory import load_policy, parse_spec
    from turngym.agents.serve import build_app

    p = build_parser("turngym gateway")
    p.description = "Serve a policy over an OpenAI-compatible API and record each session's token-exact calls."
    p.add_argument("--record", type=Path, help="append every reported session to DIR/sessions.jsonl")
    p.add_argument("--max-sessions", type=int, default=1024)
    p.add_argument("--max-tokens-per-session", type=int, default=65_536)
    p.add_argument("--max-concurrent-requests", type=int, default=256)
    p.add_argument("--session-timeout-s", type=float, default=3600.0,
                   help="close a session idle this long without a reward (recorded as failed)")
    args = p.parse_args(argv)
    try:
        check_binding(args.host, args.token)
        spec = parse_spec(args.model)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    if spec.kind in ("vllm", "openai"):
        print(f"error: --model {args.model!r}: the gateway serves an in-process policy (hf:, smollm2-135m, tiny-*)")
        return 2
    policy = load_policy(spec, max_batch_size=args.max_batch_size)
    config = ServeConfig(model_name=args.served_name or args.model, token=args.token, max_batch_size=args.max_batch_size,
                         max_request_bytes=args.max_request_bytes, kv_reuse=not args.no_kv_reuse,
                         max_concurrent_requests=args.max_concurrent_requests)
    recorder = SessionRecorder(GatewayConfig(max_sessions=args.max_sessions, max_tokens_per_session=args.max_tokens_per_session,
                                             record_dir=args.record, session_timeout_s=args.session_timeout_s,
                                             drop_closed=True))
    print(f"gateway for {config.model_name!r} on http://{args.host}:{args.port}/s/<session>/v1 "
          f"(recording to {args.record or 'memory only'}; {time.strftime('%H:%M:%S')})", flush=True)
    web.run_app(build_app(policy, config, recorder), host=args.host, port=args.port, print=None)
    return 0


__all__ = ["CallRecord", "GatewayConfig", "SESSION_HEADER", "SessionRecord", "SessionRecorder", "gateway_main"]

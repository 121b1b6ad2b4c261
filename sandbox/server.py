"""Remote sandbox service (aiohttp); its client is :class:`turngym.sandbox.remote.RemoteSandbox`.

Rollout workers on other machines share one sandbox host: ``turngym sandbox serve`` exposes

====================================  =========================================================
``POST   /v1/sandboxes``              create ``{"limits": {...}, "request_id": str}`` -> ``{"id"}``
``POST   /v1/sandboxes/{id}/exec``    ``{"command", "timeout", "env", "workdir"}`` -> ExecResult
``POST   /v1/sandboxes/{id}/files``   put ``{"files": {path: base64}}``
``POST   /v1/sandboxes/{id}/files/get``  ``{"paths": [...]}`` -> ``{"files": {path: base64}}``
``POST   /v1/sandboxes/{id}/fork``    ``{"n"}`` -> ``{"ids": [...]}``
``POST   /v1/sandboxes/{id}/reset``   wipe for reuse
``GET    /v1/sandboxes/{id}``         ``{"alive": bool}``
``DELETE /v1/sandboxes/{id}``         close (idempotent)
``GET    /v1/health``                 backend + counts (no token needed)
====================================  =========================================================

Contract: binds 127.0.0.1 by default and refuses to bind elsewhere without a token; when tokens
are configured every ``/v1/sandboxes`` request needs ``Authorization: Bearer <token>`` (else
401). Bodies over ``max_request_bytes`` get 413. Each token is a client with quotas: at most
``max_sandboxes`` open sandboxes and ``max_concurrent_execs`` execs in flight (else 429 with
``Retry-After``); a client only sees its own sandboxes (others' ids answer 404). Requested
limits above the server's ceiling are refused (400). Sandboxes idle longer than ``idle_ttl_s``
are closed. Errors are JSON ``{"error": {"type", "message"}}``; the client maps ``type`` back to
the same exception classes (``SandboxClosed``, ``SandboxUnavailable``, ``EpisodeTimeExceeded``,
``SandboxError``, ``ValueError``), retries connection failures and 429/503 with backoff
(never re-sending an exec that may have run), then raises :class:`SandboxError`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from turngym.sandbox.base import (
    EpisodeTimeExceeded,
    SandboxClosed,
    SandboxConfig,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
    WorkdirFull,
)
from turngym.sandbox.factory import open_sandbox

_LIMIT_FIELDS = {f.name for f in dataclasses.fields(SandboxLimits)}


@dataclass
class ServerConfig:
    """Settings of the sandbox service."""

    host: str = "127.0.0.1"
    port: int = 8766
    tokens: Sequence[str] = ()
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    max_limits: SandboxLimits = field(default_factory=lambda: SandboxLimits(
        cpus=2.0, memory_mb=4096, pids=1024, disk_mb=4096, inodes=1_000_000, exec_timeout_s=1800,
        episode_timeout_s=7200, output_bytes=1 << 20, network=False))
    max_request_bytes: int = 64 << 20
    max_sandboxes: int = 32
    max_concurrent_execs: int = 8
    idle_ttl_s: float = 1800.0
    workers: int = 32

    def __post_init__(self) -> None:
        if self.host not in ("127.0.0.1", "localhost", "::1") and not self.tokens:
            raise ValueError(f"refusing to serve sandboxes on {self.host!r} without a token; pass --token "
                             "(or bind 127.0.0.1)")


@dataclass
class _Entry:
    sandbox: Any
    client: str
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class _Client:
    sandboxes: set[str] = field(default_factory=set)
    execs: int = 0
    created: dict[str, str] = field(default_factory=dict)  # request_id -> sandbox id


class _HTTPError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, dict(headers or {})


class SandboxService:
    """The aiohttp application state; ``make_app()`` builds the ``web.Application``."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.entries: dict[str, _Entry] = {}
        self.clients: dict[str, _Client] = {}
        self.executor = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="sandbox-svc")
        self._token_ids = {hashlib.sha256(t.encode()).hexdigest()[:12]: t for t in self.config.tokens}
        self._reaper: asyncio.Task | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _client_id(self, request) -> str:
        if not self._token_ids:
            return "anonymous"
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):].strip()
            for cid, token in self._token_ids.items():
                if hmac.compare_digest(given.encode(), token.encode()):
                    return cid
        raise _HTTPError(401, "Unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)",
                         {"WWW-Authenticate": "Bearer"})

    async def _call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    def _entry(self, request, cid: str) -> _Entry:
        sid = request.match_info["sid"]
        entry = self.entries.get(sid)
        if entry is None or entry.client != cid:
            raise _HTTPError(404, "SandboxClosed", f"no sandbox {sid!r} (closed, expired, or never created)")
        entry.last_used = time.monotonic()
        return entry

    def _limits(self, raw: Any) -> SandboxLimits:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict) or set(raw) - _LIMIT_FIELDS:
            raise _HTTPError(400, "ValueError", f"limits must be an object with keys from {sorted(_LIMIT_FIELDS)}, "
                                                f"got {raw!r}")
        try:
            limits = SandboxLimits(**{**dataclasses.asdict(self.config.sandbox.limits), **raw})
        except (TypeError, ValueError) as exc:
            raise _HTTPError(400, "ValueError", str(exc)) from exc
        ceiling = self.config.max_limits
        for name in ("cpus", "memory_mb", "pids", "disk_mb", "inodes", "exec_timeout_s", "episode_timeout_s",
                     "output_bytes"):
            if getattr(limits, name) > getattr(ceiling, name):
                raise _HTTPError(400, "ValueError", f"limits.{name}={getattr(limits, name)!r} exceeds this server's "
                                                    f"maximum {getattr(ceiling, name)!r}")
        if limits.network and not ceiling.network:
            raise _HTTPError(400, "ValueError", "limits.network=true is not allowed by this server")
        return limits

    def _open(self, limits: SandboxLimits):
        return open_sandbox(self.config.sandbox, limits=limits)

    def _register(self, sb, cid: str) -> str:
        sid = uuid.uuid4().hex
        self.entries[sid] = _Entry(sb, cid)
        self.clients[cid].sandboxes.add(sid)
        return sid

    def _quota_sandboxes(self, client: _Client, n: int) -> None:
        if len(client.sandboxes) + n > self.config.max_sandboxes:
            raise _HTTPError(429, "QuotaExceeded", f"this client has {len(client.sandboxes)} open sandboxes; the quota "
                                                   f"is {self.config.max_sandboxes} — close some first", {"Retry-After": "1"})

    # -- handlers ------------------------------------------------------------------------------
    async def create(self, request, cid: str, body: dict) -> dict:
        client = self.clients[cid]
        rid = body.get("request_id")
        if rid and rid in client.created and client.created[rid] in self.entries:
            return {"id": client.created[rid]}
        self._quota_sandboxes(client, 1)
        limits = self._limits(body.get("limits"))
        placeholder = f"pending-{uuid.uuid4().hex}"
        client.sandboxes.add(placeholder)  # reserve the quota slot while the sandbox starts
        try:
            sb = await self._call(self._open, limits)
        finally:
            client.sandboxes.discard(placeholder)
        sid = self._register(sb, cid)
        if rid:
            client.created[str(rid)] = sid
        return {"id": sid, "limits": dataclasses.asdict(limits)}

    async def exec(self, request, cid: str, body: dict) -> dict:
        entry = self._entry(request, cid)
        client = self.clients[cid]
        if client.execs >= self.config.max_concurrent_execs:
            raise _HTTPError(429, "QuotaExceeded", f"{client.execs} execs already running for this client (quota "
                                                   f"{self.config.max_concurrent_execs})", {"Retry-After": "1"})
        command = body.get("command")
        if not (isinstance(command, str) or (isinstance(command, list) and all(isinstance(a, str) for a in command))):
            raise _HTTPError(400, "ValueError", f"command must be a string or a list of strings, got {command!r}")
        timeout, env, workdir = body.get("timeout"), body.get("env") or {}, body.get("workdir")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise _HTTPError(400, "ValueError", f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise _HTTPError(400, "ValueError", f"env must be an object of strings, got {env!r}")
        if workdir is not None and not (isinstance(workdir, str) and workdir.startswith("/")):
            raise _HTTPError(400, "ValueError", f"workdir must be an absolute path, got {workdir!r}")
        client.execs += 1
        try:
            res = await self._call(entry.sandbox.exec, command, timeout=timeout, env=env, workdir=workdir)
        finally:
            client.execs -= 1
        return dataclasses.asdict(res)

    async def put_files(self, request, cid: str, body: dict) -> dict:
        entry = self._entry(request, cid)
        files = body.get("files")
        if not isinstance(files, dict):
            raise _HTTPError(400, "ValueError", "files must be an object {path: base64}")
        try:
            decoded = {str(k): base64.b64decode(v, validate=True) for k, v in files.items()}
        except (ValueError, TypeError) as exc:
            raise _HTTPError(400, "ValueError", f"files values must be base64 strings: {exc}") from exc
        await self._call(entry.sandbox.put_files, decoded)
        return {}

    async def get_files(self, request, cid: str, body: dict) -> dict:
        entry = self._entry(request, cid)
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise _HTTPError(400, "ValueError", f"paths must be a list of strings, got {paths!r}")
        files = await self._call(entry.sandbox.get_files, paths)
        return {"files": {k: base64.b64encode(v).decode() for k, v in files.items()}}

    async def fork(self, request, cid: str, body: dict) -> dict:
        entry = self._entry(request, cid)
        n = body.get("n", 1)
        if not isinstance(n, int) or n < 1:
            raise _HTTPError(400, "ValueError", f"n must be an integer >= 1, got {n!r}")
        self._quota_sandboxes(self.clients[cid], n)
        children = await self._call(entry.sandbox.fork, n)
        return {"ids": [self._register(c, cid) for c in children]}

    async def reset(self, request, cid: str, body: dict) -> dict:
        entry = self._entry(request, cid)
        await self._call(entry.sandbox.reset)
        return {}

    async def status(self, request, cid: str, body: dict) -> dict:
        entry = self._entry(request, cid)
        return {"alive": bool(await self._call(entry.sandbox.alive))}

    async def close(self, request, cid: str, body: dict) -> dict:
        sid = request.match_info["sid"]
        entry = self.entries.get(sid)
        if entry is None or entry.client != cid:
            return {"closed": False}
        self.entries.pop(sid, None)
        self.clients[cid].sandboxes.discard(sid)
        await self._call(entry.sandbox.close)
        return {"closed": True}

    async def health(self, request) -> Any:
        from aiohttp import web

        return web.json_response({"ok": True, "sandboxes": len(self.entries), "clients": len(self.clients),
                                  "backend": self.config.sandbox.backend})

    # -- plumbing ------------------------------------------------------------------------------
    def _wrap(self, handler):
        from aiohttp import web

        async def wrapped(request):
            try:
                cid = self._client_id(request)
                self.clients.setdefault(cid, _Client())
                body: dict = {}
                if request.can_read_body:
                    try:
                        body = await request.json()
                    except ValueError as exc:
                        raise _HTTPError(400, "ValueError", f"request body is not JSON: {exc}") from exc
                    if not isinstance(body, dict):
                        raise _HTTPError(400, "ValueError", "request body must be a JSON object")
                return web.json_response(await handler(request, cid, body))
            except _HTTPError as exc:
                return _error(exc.status, exc.kind, exc.message, exc.headers)
            except web.HTTPRequestEntityTooLarge:
                return _error(413, "RequestTooLarge", f"request body exceeds {self.config.max_request_bytes} bytes")
            except EpisodeTimeExceeded as exc:
                return _error(409, "EpisodeTimeExceeded", str(exc))
            except SandboxClosed as exc:
                return _error(410, "SandboxClosed", str(exc))
            except SandboxUnavailable as exc:
                return _error(503, "SandboxUnavailable", str(exc))
            except WorkdirFull as exc:  # the code filled the work dir: the client maps it back (policy's outcome)
                return _error(507, "WorkdirFull", str(exc))
            except SandboxError as exc:
                return _error(500, "SandboxError", str(exc))
            except (ValueError, TypeError) as exc:
                return _error(400, "ValueError", str(exc))
        return wrapped

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.config.idle_ttl_s / 2))
            now = time.monotonic()
            for sid, entry in list(self.entries.items()):
                if now - entry.last_used > self.config.idle_ttl_s:
                    self.entries.pop(sid, None)
                    self.clients.get(entry.client, _Client()).sandboxes.discard(sid)
                    await self._call(entry.sandbox.close)

    async def _on_startup(self, app) -> None:
        self._reaper = asyncio.create_task(self._reap_idle())

    async def _on_cleanup(self, app) -> None:
        if self._reaper:
            self._reaper.cancel()
        for sid, entry in list(self.entries.items()):
            self.entries.pop(sid, None)
            await self._call(entry.sandbox.close)
        self.executor.shutdown(wait=False)

    def make_app(self):
        from aiohttp import web

        @web.middleware
        async def too_large(request, handler):
            try:
                return await handler(request)
            except web.HTTPRequestEntityTooLarge:
                return _error(413, "RequestTooLarge", f"request body exceeds {self.config.max_request_bytes} bytes")

        app = web.Application(client_max_size=self.config.max_request_bytes, middlewares=[too_large])
        w = self._wrap
        app.router.add_get("/v1/health", self.health)
        app.router.add_post("/v1/sandboxes", w(self.create))
        app.router.add_post("/v1/sandboxes/{sid}/exec", w(self.exec))
        app.router.add_post("/v1/sandboxes/{sid}/files", w(self.put_files))
        app.router.add_post("/v1/sandboxes/{sid}/files/get", w(self.get_files))
        app.router.add_post("/v1/sandboxes/{sid}/fork", w(self.fork))
        app.router.add_post("/v1/sandboxes/{sid}/reset", w(self.reset))
        app.router.add_get("/v1/sandboxes/{sid}", w(self.status))
        app.router.add_delete("/v1/sandboxes/{sid}", w(self.close))
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None):
    from aiohttp import web

    return web.json_response({"error": {"type": kind, "message": message}}, status=status, headers=headers)


def serve(config: ServerConfig) -> None:
    """Run the service until interrupted."""
    from aiohttp import web

    web.run_app(SandboxService(config).make_app(), host=config.host, port=config.port, print=None)


class ServiceThread:
    """Run the service on a background thread (tests, benchmarks, notebooks)::

        with ServiceThread(ServerConfig(port=0, tokens=["t"])) as svc:
            sb = RemoteSandbox(svc.url, token="t")   # turngym.sandbox.remote
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig(port=0)
        self.service = SandboxService(self.config)
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sandbox-service", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def _main(self) -> None:
        from aiohttp import web

        async def run() -> None:
            self._stop = asyncio.Event()
            runner = web.AppRunner(self.service.make_app())
            await runner.setup()
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://{self.config.host}:{port}"
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(run())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> ServiceThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error or not self.url:
            raise SandboxError(f"sandbox service failed to start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

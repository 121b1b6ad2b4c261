"""``turngym search serve``: one BM25 index shared by many rollout workers over HTTP (aiohttp).

Endpoints (JSON):

* ``GET /health`` → ``{"status": "ok", "key": <dataset key>, "passages": N}`` (no token needed);
* ``POST /search`` ``{"queries": [str, …], "k": int}`` → ``{"results": [[{id, title, text, score}, …], …]}``.

Errors are typed JSON ``{"error": {"type": …, "message": …}}``: ``bad_request`` (400),
``unauthorized`` (401), ``too_large`` (413), ``internal`` (500). Limits: request body
:data:`MAX_BODY_BYTES`, :data:`MAX_QUERIES` queries per request, ``k <= MAX_K``, queries longer than
:data:`~.retrieval.MAX_QUERY_CHARS` are cut. Binds 127.0.0.1 by default; binding any other address
requires a bearer token (``--token`` or ``$TURNGYM_SEARCH_TOKEN``), checked in constant time.

Concurrent requests are micro-batched: a single worker takes every request waiting in the queue,
scores all their queries in one batched call (in a thread, so the event loop stays responsive) and
answers each request with its slice.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from dataclasses import dataclass

from aiohttp import web

from turngym.envs.search_qa.retrieval import Retriever

MAX_BODY_BYTES = 1 << 20
MAX_QUERIES = 256
MAX_K = 50
MAX_BATCH_QUERIES = 512


class InsecureBind(ValueError):
    """Binding a non-loopback address without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


@dataclass
class _Pending:
    queries: list[str]
    k: int
    future: asyncio.Future


class _Batcher:
    def __init__(self, retriever: Retriever):
        self.retriever = retriever
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def search(self, queries: list[str], k: int):
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(queries, k, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and sum(len(p.queries) for p in batch) < MAX_BATCH_QUERIES:
                batch.append(self.queue.get_nowait())
            k = max(p.k for p in batch)
            queries = [q for p in batch for q in p.queries]
            try:
                results = await loop.run_in_executor(None, self.retriever.search, queries, k)
            except Exception as exc:  # noqa: BLE001 — answer every waiting request with the failure
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            start = 0
            for p in batch:
                part = results[start : start + len(p.queries)]
                start += len(p.queries)
                if not p.future.done():
                    p.future.set_result([hits[: p.k] for hits in part])


def create_app(retriever: Retriever, key: str, passages: int, token: str | None = None) -> web.Application:
    """The aiohttp application serving ``retriever`` (see the module docstring)."""
    batcher = _Batcher(retriever)

    @web.middleware
    async def errors(request: web.Request, handler):
        if token is not None and request.path != "/health":
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "unauthorized", "missing or wrong bearer token (send 'Authorization: Bearer <token>')")
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes; send fewer queries per request")
        except web.HTTPException as exc:
            return _error(exc.status, "bad_request" if exc.status < 500 else "internal", exc.reason)
        except Exception as exc:  # noqa: BLE001 — any handler failure becomes a typed 500
            return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "key": key, "passages": passages})

    async def search(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, "bad_request", f"body is not valid JSON ({exc}); send {{\"queries\": [...], \"k\": 3}}")
        if not isinstance(body, dict):
            return _error(400, "bad_request", f"body must be a JSON object, got {type(body).__name__}")
        queries, k = body.get("queries"), body.get("k", 3)
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            return _error(400, "bad_request", f"'queries' must be a list of strings, got {str(queries)[:80]!r}")
        if len(queries) > MAX_QUERIES:
            return _error(413, "too_large", f"{len(queries)} queries in one request; the limit is {MAX_QUERIES}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            return _error(400, "bad_request", f"'k' must be an integer in [1, {MAX_K}], got {k!r}")
        if not queries:
            return web.json_response({"results": []})
        results = await batcher.search(queries, k)
        return web.json_response({"results": [[h.to_dict() for h in hits] for hits in results]})

    async def on_startup(app: web.Application) -> None:
        batcher.start()

    async def on_cleanup(app: web.Application) -> None:
        await batcher.stop()

    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/health", health)
    app.router.add_post("/search", search)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"refusing to bind {host!r} without a token: pass --token SECRET (or set TURNGYM_SEARCH_TOKEN), "
            "or bind 127.0.0.1"
        )


def serve(retriever: Retriever, key: str, passages: int, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Run the service until interrupted."""
    check_bind(host, token)
    web.run_app(create_app(retriever, key, passages, token), host=host, port=port, print=None)

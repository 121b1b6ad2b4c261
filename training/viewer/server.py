"""The ``turngym view`` web app: a JSON API over run folders and the static page that draws it.

Routes (every ``/api`` answer is JSON; lists are paginated with ``offset`` / ``limit``)::

    GET /                                   the page (static/index.html; app.js, style.css beside it)
    GET /api/runs                           every source: runs and tournaments
    GET /api/runs/{id}/curves?keys=a,b&max_points=N   metric series from metrics.jsonl
    GET /api/runs/{id}/summary              summary.json (evaluations with intervals) + config.yaml
    GET /api/runs/{id}/steps?offset&limit   the logged steps, summarised from the trajectory index
    GET /api/runs/{id}/episodes?step&offset&limit&outcome&stop_reason&group   one page of episodes
    GET /api/runs/{id}/tournament           ratings.json (ratings with intervals, payoff matrix)
    GET /api/runs/{id}/games?offset&limit   games.jsonl, one page
    GET /api/runs/{id}/replay?player_a&player_b&index   one recorded game, move by move

Binding: loopback by default; any other address needs a token (the check of
:func:`turngym.agents.serve.check_binding`), which every ``/api`` request must then carry as
``Authorization: Bearer <token>`` or ``?token=<token>`` (the page forwards the one in its own URL).
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from turngym.agents.serve import check_binding
from turngym.training.trajectory_log import OUTCOME_FILTERS
from turngym.training.viewer.data import Source, discover

STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 500


def checked_binding(host: str, token: str | None) -> None:
    """:func:`turngym.agents.serve.check_binding`, worded for the viewer."""
    try:
        check_binding(host, token)
    except ValueError:
        raise ValueError(f"binding {host!r} shows the runs beyond this machine: give --token "
                         "(or TURNGYM_VIEW_TOKEN), or keep the default 127.0.0.1") from None


def _int(request: web.Request, name: str, default: int | None, low: int = 0, high: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise web.HTTPBadRequest(text=f"{name} must lie in [{low}, {high if high is not None else '∞'}], got {value}")
    return value


def build_app(sources: list[Source], token: str | None = None) -> web.Application:
    """The aiohttp application serving ``sources`` (see the module docstring)."""
    by_id = {s.id: s for s in sources}

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if token and request.path.startswith("/api"):
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise web.HTTPUnauthorized(text="missing or wrong token: open the page with ?token=<token>")
        return await handler(request)

    def source(request: web.Request, kind: str | None = None) -> Source:
        sid = request.match_info["id"]
        if sid not in by_id:
            raise web.HTTPNotFound(text=f"no run {sid!r}; known: {sorted(by_id)}")
        found = by_id[sid]
        if kind is not None and found.kind != kind:
            raise web.HTTPNotFound(text=f"{sid!r} is a {found.kind}, not a {kind}")
        return found

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def no_icon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    async def runs(_: web.Request) -> web.Response:
        return web.json_response({"runs": [s.describe() for s in sources]})

    async def curves(request: web.Request) -> web.Response:
        keys = request.query.get("keys")
        max_points = _int(request, "max_points", 2000, 2, 100_000)
        return web.json_response(source(request, "run").curves(keys.split(",") if keys else None, max_points))

    async def summary(request: web.Request) -> web.Response:
        return web.json_response(source(request, "run").summary())

    async def steps(request: web.Request) -> web.Response:
        return web.json_response(source(request, "run").steps(_int(request, "offset", 0), _int(request, "limit", 100, 1, MAX_LIMIT)))

    async def episodes(request: web.Request) -> web.Response:
        outcome = request.query.get("outcome") or None
        if outcome is not None and outcome not in OUTCOME_FILTERS:
            raise web.HTTPBadRequest(text=f"outcome must be one of {OUTCOME_FILTERS}, got {outcome!r}")
        page = source(request, "run").episodes(
            step=_int(request, "step", None, 0), offset=_int(request, "offset", 0), limit=_int(request, "limit", 20, 1, MAX_LIMIT),
            outcome=outcome, stop_reason=request.query.get("stop_reason") or None, group=request.query.get("group") or None)
        return web.json_response({"total": page.total, "bytes_read": page.bytes_read, "episodes": page.episodes})

    async def tournament(request: web.Request) -> web.Response:
        return web.json_response(source(request, "tournament").tournament())

    async def games(request: web.Request) -> web.Response:
        page = source(request, "tournament").game_page(_int(request, "offset", 0), _int(request, "limit", 100, 1, MAX_LIMIT))
        return web.json_response(page)

    async def replay(request: web.Request) -> web.Response:
        q = request.query
        found = source(request, "tournament").replay(q.get("player_a", ""), q.get("player_b", ""), _int(request, "index", 0))
        if found is None:
            raise web.HTTPNotFound(text="no replay recorded for that game (the tournament keeps the first games of each pair)")
        return web.json_response(found)

    app = web.Application(middlewares=[auth])
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{id}/curves", curves)
    app.router.add_get("/api/runs/{id}/summary", summary)
    app.router.add_get("/api/runs/{id}/steps", steps)
    app.router.add_get("/api/runs/{id}/episodes", episodes)
    app.router.add_get("/api/runs/{id}/tournament", tournament)
    app.router.add_get("/api/runs/{id}/games", games)
    app.router.add_get("/api/runs/{id}/replay", replay)
    app.router.add_static("/static/", STATIC)
    return app


class ViewerThread:
    """The viewer served from a background thread (tests, notebooks): ``with ViewerThread([run]) as v: v.url``."""

    def __init__(self, paths: list[Path], host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        checked_binding(host, token)
        self.sources = discover([Path(p) for p in paths])
        self.host, self.port, self.token = host, port, token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="turngym-view", daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> ViewerThread:
        self.thread.start()

        async def boot() -> int:
            self.runner = web.AppRunner(build_app(self.sources, self.token))
            await self.runner.setup()
            await web.TCPSite(self.runner, self.host, self.port).start()
            return int(self.runner.addresses[0][1])

        self.port = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def __enter__(self) -> ViewerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(paths: list[Path], host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Serve ``paths`` until interrupted (``turngym view``); prints the page's URL on stdout first
    (with the bound port when ``port`` is 0)."""
    checked_binding(host, token)
    sources = discover(paths)

    async def run() -> None:
        runner = web.AppRunner(build_app(sources, token))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        print(f"turngym view: {len(sources)} source(s) on http://{shown}:{bound}/" + (f"?token={token}" if token else ""), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())


__all__ = ["ViewerThread", "build_app", "checked_binding", "serve"]

"""Client of ``turngym search serve`` implementing the :class:`~.retrieval.Retriever` interface.

``SearchClient(url).search(queries, k)`` (sync, a keep-alive ``http.client`` connection) and
``await client.asearch(queries, k)`` (aiohttp) return ``list[list[Hit]]`` like the in-process
:class:`~.retrieval.FieldedBM25`. Connection failures, timeouts and 5xx answers are retried
``retries`` times with exponential backoff, then raise :class:`SearchServiceUnavailable`; a 4xx
answer raises :class:`SearchRequestError` at once (retrying a bad request cannot help). With
``expect_key`` the client checks once that the server serves the dataset the caller expects.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from turngym.envs.search_qa.records import Hit


class SearchServiceError(RuntimeError):
    """Base class: the search service could not answer."""


class SearchServiceUnavailable(SearchServiceError):
    """The service did not answer after every retry (down, overloaded, or failing)."""


class SearchRequestError(SearchServiceError):
    """The service rejected the request (4xx); the message carries its typed error."""


class _Retry(Exception):
    pass


class SearchClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        expect_key: str | None = None,
    ):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"search service url must look like http://host:port, got {url!r}")
        self.url = f"http://{parts.hostname}:{parts.port or 80}"
        self.host, self.port = parts.hostname, parts.port or 80
        self.token, self.timeout, self.retries, self.backoff = token, float(timeout), int(retries), float(backoff)
        self.expect_key = expect_key
        self._key_checked = expect_key is None
        self._local = threading.local()
        self._sessions: dict[int, object] = {}

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    # --------------------------------------------------------------- sync
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def _request_once(self, method: str, path: str, body: bytes | None):
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=self._headers())
            resp = conn.getresponse()
            status, data = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._local.conn = None
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        return self._decode(status, data)

    def _decode(self, status: int, data: bytes):
        try:
            payload = json.loads(data)
        except ValueError:
            payload = {"error": {"type": "internal", "message": data[:200].decode("utf-8", "replace")}}
        if status >= 500:
            raise _Retry(f"HTTP {status}: {payload.get('error', {}).get('message', '')}")
        if status >= 400:
            err = payload.get("error", {})
            raise SearchRequestError(f"search service at {self.url} rejected the request ({status} {err.get('type')}): {err.get('message')}")
        return payload

    def _request(self, method: str, path: str, body: bytes | None = None):
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return self._request_once(method, path, body)
            except _Retry as exc:
                last = str(exc)
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        raise SearchServiceUnavailable(f"search service at {self.url} did not answer after {self.retries + 1} attempts ({last}); is `turngym search serve` running?")

    def _check_key(self, health: dict) -> None:
        if health.get("key") != self.expect_key:
            raise SearchRequestError(
                f"search service at {self.url} serves dataset {health.get('key')!r} but this environment uses {self.expect_key!r}; "
                "start the server with the same --source/--seed (or user files)"
            )
        self._key_checked = True

    def health(self) -> dict:
        return self._request("GET", "/health")

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if not self._key_checked:
            self._check_key(self.health())
        payload = self._request("POST", "/search", json.dumps({"queries": list(queries), "k": k}).encode())
        return [[Hit.from_dict(h) for h in hits] for hits in payload["results"]]

    # -------------------------------------------------------------- async
    async def _arequest(self, method: str, path: str, body: bytes | None = None):
        import aiohttp

        loop_id = id(asyncio.get_running_loop())
        session = self._sessions.get(loop_id)
        if session is None or session.closed:
            session = self._sessions[loop_id] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        last = ""
        for attempt in range(self.retries + 1):
            try:
                async with session.request(method, self.url + path, data=body, headers=self._headers()) as resp:
                    return self._decode(resp.status, await resp.read())
            except (TimeoutError, aiohttp.ClientError, _Retry) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * 2**attempt)
        raise SearchServiceUnavailable(f"search service at {self.url} did not answer after {self.retries + 1} attempts ({last}); is `turngym search serve` running?")

    async def asearch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if not self._key_checked:
            self._check_key(await self._arequest("GET", "/health"))
        payload = await self._arequest("POST", "/search", json.dumps({"queries": list(queries), "k": k}).encode())
        return [[Hit.from_dict(h) for h in hits] for hits in payload["results"]]

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

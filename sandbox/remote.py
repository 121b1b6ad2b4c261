"""The client of ``turngym sandbox serve`` (:mod:`turngym.sandbox.server`): :class:`RemoteSandbox`
implements the ``Sandbox`` protocol over HTTP (``requests``, from the ``[sandbox]`` extra).

Errors come back as JSON ``{"error": {"type", "message"}}`` and are raised as the same exception
classes as locally (``SandboxClosed``, ``SandboxUnavailable``, ``EpisodeTimeExceeded``,
``SandboxError``, ``ValueError``). Connection failures and 429/503 answers are retried with backoff
(an exec, which may have run, only when the connection was refused), then :class:`SandboxError`.
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence

from turngym.sandbox.base import (
    Command,
    EpisodeTimeExceeded,
    ExecResult,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
    WorkdirFull,
)
from turngym.sandbox.files import check_rel_path, safe_member_name

_ERRORS: dict[str, type[Exception]] = {
    "SandboxClosed": SandboxClosed, "SandboxUnavailable": SandboxUnavailable,
    "EpisodeTimeExceeded": EpisodeTimeExceeded, "SandboxError": SandboxError, "ValueError": ValueError,
    "WorkdirFull": WorkdirFull,
}


class RemoteSandbox:
    """A sandbox living on a ``turngym sandbox serve`` host; same protocol as the local ones."""

    backend = "remote"

    def __init__(self, url: str, *, token: str | None = None, limits: SandboxLimits | None = None,
                 image: str | None = None, retries: int = 3, _sid: str | None = None, session=None) -> None:
        import requests  # the [sandbox] extra (via docker); `import turngym.sandbox` works without it

        self.url = url.rstrip("/")
        self.token = token
        self.limits = limits or SandboxLimits()
        self.retries = retries
        self._closed = False
        self._session = session or requests.Session()
        self._exec_time = 0.0
        if _sid is None:
            body = {"limits": dataclasses.asdict(self.limits), "request_id": uuid.uuid4().hex}
            _sid = self._request("POST", "/v1/sandboxes", body, timeout=120, idempotent=True)["id"]
        self.id = _sid
        self.name = f"remote:{_sid[:12]}"

    def _request(self, method: str, path: str, body: dict | None = None, *, timeout: float = 60,
                 idempotent: bool = True) -> dict:
        import requests

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        delay = 0.2
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = self._session.request(method, self.url + path, json=body, headers=headers, timeout=timeout)
            except requests.exceptions.ConnectionError as exc:
                last = exc
                refused = "NewConnectionError" in repr(exc) or "Connection refused" in str(exc)
                if not (idempotent or refused) or attempt == self.retries:
                    break
                time.sleep(delay)
                delay *= 2.5
                continue
            except requests.exceptions.RequestException as exc:
                raise SandboxError(f"sandbox service {self.url} {method} {path} failed: {exc}") from exc
            if resp.status_code in (429, 503) and attempt < self.retries and (idempotent or resp.status_code == 429):
                time.sleep(max(delay, float(resp.headers.get("Retry-After", delay))))
                delay *= 2.5
                continue
            if resp.status_code >= 400:
                try:
                    err = resp.json()["error"]
                    kind, msg = err["type"], err["message"]
                except (ValueError, KeyError, TypeError):
                    kind, msg = "SandboxError", resp.text[:500]
                if resp.status_code == 401:
                    raise SandboxUnavailable(f"sandbox service {self.url} rejected the token (401): {msg}; "
                                             "pass token=... / set the same --token as the server")
                cls = _ERRORS.get(kind, SandboxError)
                raise cls(f"sandbox service {self.url}: {msg} (HTTP {resp.status_code})")
            return resp.json()
        raise SandboxError(f"sandbox service {self.url} unreachable after {self.retries + 1} attempt(s): {last}")

    def _check(self) -> None:
        if self._closed:
            raise SandboxClosed(f"sandbox {self.name} is closed")

    def exec(self, command: Command, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
             workdir: str | None = None) -> ExecResult:
        self._check()
        cmd = command if isinstance(command, str) else [str(a) for a in command]
        t = float(timeout if timeout is not None else self.limits.exec_timeout_s)
        res = self._request("POST", f"/v1/sandboxes/{self.id}/exec",
                            {"command": cmd, "timeout": timeout, "env": dict(env or {}), "workdir": workdir},
                            timeout=t + 60, idempotent=False)
        return ExecResult(**res)

    def put_files(self, files: Mapping[str, bytes]) -> None:
        self._check()
        payload = {check_rel_path(k): base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode()
                   for k, v in files.items()}
        self._request("POST", f"/v1/sandboxes/{self.id}/files", {"files": payload}, timeout=120)

    def get_files(self, paths: Sequence[str]) -> dict[str, bytes]:
        self._check()
        res = self._request("POST", f"/v1/sandboxes/{self.id}/files/get",
                            {"paths": [check_rel_path(p) for p in paths]}, timeout=120)
        out = {}
        for name, b64 in res["files"].items():
            safe = safe_member_name(name)
            if safe is not None:
                out[safe] = base64.b64decode(b64)
        return out

    def fork(self, n: int = 1) -> list[RemoteSandbox]:
        self._check()
        ids = self._request("POST", f"/v1/sandboxes/{self.id}/fork", {"n": n}, timeout=300, idempotent=False)["ids"]
        return [RemoteSandbox(self.url, token=self.token, limits=self.limits, retries=self.retries, _sid=i,
                              session=self._session) for i in ids]

    def reset(self) -> None:
        self._check()
        self._request("POST", f"/v1/sandboxes/{self.id}/reset", {}, timeout=120)

    def alive(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(self._request("GET", f"/v1/sandboxes/{self.id}", None, timeout=30)["alive"])
        except (SandboxError, ValueError):
            return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._request("DELETE", f"/v1/sandboxes/{self.id}", None, timeout=60)
        except (SandboxError, ValueError):
            pass  # the server's idle reaper is the backstop

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RemoteSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

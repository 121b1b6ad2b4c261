"""Warm pool of pre-started sandboxes, recycled or discarded per episode.

Contract:

- ``SandboxPool(config, size=N, max_live=M)`` holds ``N`` started sandboxes, idle or handed
  out (``prestart``: started at construction; ``refill``: when one is discarded, or more than
  ``N`` are wanted at once, replacements are started in background threads up to ``N`` idle) and never has more than ``M`` sandboxes alive at once
  (idle + handed out + starting); ``acquire`` blocks (up to ``timeout``) when ``M`` is reached,
  which bounds a flood of concurrent episodes.
- ``acquire()`` returns an idle sandbox if one is warm, else starts one. A sandbox that died while
  idle is discarded, never handed out.
- ``release(sb, reuse=True)`` resets the sandbox (work dir and ``/tmp`` wiped, processes
  killed, episode budget restored) and keeps it warm if the pool has room; ``reuse=False`` (or a
  failed reset, or a closed pool) closes it. Release is idempotent per handout.
- ``acquire_async`` / ``release_async`` run the same in a worker thread (asyncio-friendly);
  ``with pool.sandbox() as sb`` / ``async with pool.sandbox_async() as sb`` pair them and
  discard the sandbox if the body raised a :class:`SandboxError`.
- ``close()`` (and leaving ``with``/``async with``) closes every idle sandbox and makes later
  releases close theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from turngym.sandbox.base import Sandbox, SandboxConfig, SandboxError, SandboxUnavailable
from turngym.sandbox.factory import open_sandbox, resolve_config


@dataclass
class PoolStats:
    started: int = 0
    handed_out: int = 0
    warm_hits: int = 0
    recycled: int = 0
    discarded: int = 0


class SandboxPool:
    """See the module docstring."""

    def __init__(self, config: SandboxConfig | None = None, *, size: int | None = None, max_live: int | None = None,
                 prestart: bool = True, refill: bool = True, **overrides: Any) -> None:
        self.config = resolve_config(config, **overrides)
        self.size = self.config.pool_size if size is None else size
        if self.size < 0:
            raise ValueError(f"pool size must be >= 0, got {self.size!r}")
        self.max_live = max_live
        self.refill = refill
        if max_live is not None and max_live < max(1, self.size):
            raise ValueError(f"max_live ({max_live}) must be >= max(1, size={self.size})")
        self.stats = PoolStats()
        self._idle: deque[Sandbox] = deque()
        self._live = 0  # idle + out + starting
        self._starting = 0
        self._claims = 0  # acquirers waiting for a background start
        self._out: set[int] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._errors: deque[BaseException] = deque(maxlen=5)
        self._executor = ThreadPoolExecutor(max_workers=max(1, min(self.size, 4)), thread_name_prefix="sandbox-pool")
        if prestart:
            self._refill(initial=True)

    # -- internals -----------------------------------------------------------------------------
    def _new(self) -> Sandbox:
        sb = open_sandbox(self.config)
        with self._cond:
            self.stats.started += 1
        return sb

    def _refill(self, initial: bool = False) -> None:
        with self._cond:
            if self._closed or not (self.refill or initial):
                return
            # a pool of `size` sandboxes: handed-out ones count, they come back recycled
            want = self.size - len(self._idle) - self._starting - len(self._out)
            if self.max_live is not None:
                want = min(want, self.max_live - self._live)
            for _ in range(max(0, want)):
                self._starting += 1
                self._live += 1
                self._executor.submit(self._start_one)

    def _start_one(self) -> None:
        try:
            sb = self._new()
        except BaseException as exc:  # recorded; acquire() starts synchronously and raises it
            with self._cond:
                self._starting -= 1
                self._live -= 1
                self._errors.append(exc)
                self._cond.notify_all()
            return
        with self._cond:
            self._starting -= 1
            if self._closed:
                self._live -= 1
                sb.close()
            else:
                self._idle.append(sb)
            self._cond.notify_all()

    def _take_idle(self) -> Sandbox | None:
        while self._idle:
            sb = self._idle.popleft()
            alive = getattr(sb, "alive", None)
            if alive is None or alive():
                return sb
            self._live -= 1
            self.stats.discarded += 1
            sb.close()
        return None

    # -- public API ----------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> Sandbox:
        """A started sandbox for one episode (warm if possible)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        claimed = False  # this caller waits for one of the sandboxes being started in the background
        with self._cond:
            try:
                while True:
                    if self._closed:
                        raise SandboxError("the sandbox pool is closed")
                    sb = self._take_idle()
                    if sb is not None:
                        self.stats.warm_hits += 1
                        break
                    if not claimed and self._starting > self._claims:
                        self._claims += 1
                        claimed = True
                    if claimed and self._starting > 0:
                        pass  # a warm one is on its way for us: wait rather than start another
                    elif self.max_live is None or self._live < self.max_live:
                        self._live += 1
                        sb = None
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise SandboxUnavailable(
                            f"no sandbox free within {timeout:g} s (max_live={self.max_live} all in use); "
                            "raise max_live or release sandboxes")
                    self._cond.wait(remaining if remaining is not None else 1.0)
            finally:
                if claimed:
                    self._claims -= 1
        if sb is None:
            try:
                sb = self._new()
            except BaseException:
                with self._cond:
                    self._live -= 1
                    self._cond.notify_all()
                raise
        with self._cond:
            self._out.add(id(sb))
            self.stats.handed_out += 1
        self._refill()
        return sb

    def release(self, sb: Sandbox, reuse: bool = True) -> None:
        """Return ``sb``: recycled (reset, kept warm) if ``reuse`` and there is room, else closed."""
        with self._cond:
            if id(sb) not in self._out:
                return
            self._out.discard(id(sb))
            keep = reuse and not self._closed and len(self._idle) < self.size
        if keep:
            try:
                sb.reset()  # type: ignore[attr-defined]
            except (SandboxError, AttributeError):
                keep = False
        with self._cond:
            if keep and not self._closed:
                self._idle.append(sb)
                self.stats.recycled += 1
                self._cond.notify_all()
                return
            self._live -= 1
            self.stats.discarded += 1
            self._cond.notify_all()
        sb.close()
        self._refill()

    async def acquire_async(self, timeout: float | None = None) -> Sandbox:
        return await asyncio.to_thread(self.acquire, timeout)

    async def release_async(self, sb: Sandbox, reuse: bool = True) -> None:
        await asyncio.to_thread(self.release, sb, reuse)

    @contextlib.contextmanager
    def sandbox(self, timeout: float | None = None) -> Iterator[Sandbox]:
        sb = self.acquire(timeout)
        ok = False
        try:
            yield sb
            ok = True
        except SandboxError:
            raise
        except BaseException:
            ok = True  # the code/harness failed, not the sandbox: still recyclable
            raise
        finally:
            self.release(sb, reuse=ok)

    @contextlib.asynccontextmanager
    async def sandbox_async(self, timeout: float | None = None) -> AsyncIterator[Sandbox]:
        sb = await self.acquire_async(timeout)
        ok = False
        try:
            yield sb
            ok = True
        except SandboxError:
            raise
        except BaseException:
            ok = True
            raise
        finally:
            await self.release_async(sb, reuse=ok)

    def wait_warm(self, timeout: float = 60.0) -> int:
        """Block until ``size`` sandboxes are idle (or ``timeout``); returns the idle count.
        Re-raises the last start error if no sandbox could be started."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._idle) < self.size and time.monotonic() < deadline:
                if self._errors and not self._starting:
                    raise self._errors[-1]
                self._cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            return len(self._idle)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._live -= len(idle)
            self._cond.notify_all()
        for sb in idle:
            sb.close()
        self._executor.shutdown(wait=True)
        # a refill that finished during shutdown closed its sandbox itself (see _start_one)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SandboxPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

"""The warm pool on real backends: warm hand-out, recycle vs discard, async twins, dead idle
sandboxes never handed out, and a flood of concurrent episodes bounded by max_live (row 23)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from turngym.sandbox import SandboxPool
from turngym.sandbox.base import SandboxError, SandboxLimits

SMALL = SandboxLimits(memory_mb=128, pids=64, disk_mb=16, inodes=2000, exec_timeout_s=10, output_bytes=4096)


def test_warm_acquire_recycle_and_refill_after_discard(local_backend):
    with SandboxPool(backend=local_backend, limits=SMALL, size=1) as pool:
        assert pool.wait_warm(60) == 1
        sb = pool.acquire()
        assert pool.stats.warm_hits == 1 and sb.exec("echo ok > f").exit_code == 0
        pool.release(sb)  # recycled: the pool holds one sandbox, idle or out
        assert not sb.closed and pool.idle == 1 and pool.stats.started == 1
        again = pool.acquire()
        assert again is sb and again.exec("ls -A").stdout == ""  # wiped
        pool.release(again, reuse=False)  # discarded: a replacement starts in the background
        assert sb.closed and pool.wait_warm(60) == 1 and pool.stats.started == 2
    assert pool.idle == 0


def test_recycle_wipes_and_discard_closes(local_backend):
    with SandboxPool(backend=local_backend, limits=SMALL, size=1, prestart=False, refill=False) as pool:
        sb = pool.acquire()
        sb.exec("echo secret > f; echo more > /tmp/g; sleep 100 &")
        pool.release(sb, reuse=True)  # room in the pool: wiped and kept warm
        assert not sb.closed and pool.idle == 1
        again = pool.acquire()
        assert again is sb and again.exec("ls -A . /tmp").stdout.split() == [".:", "/tmp:"]
        pool.release(again, reuse=False)
        assert again.closed and pool.idle == 0
        pool.release(again)  # a second release of the same hand-out is a no-op
        assert pool.stats.recycled == 1 and pool.stats.discarded == 1


def test_dead_idle_sandbox_is_never_handed_out(need_backend):
    need_backend("docker")
    from turngym.sandbox.docker import docker_client

    with SandboxPool(backend="docker", limits=SMALL, size=1) as pool:
        pool.wait_warm(60)
        victim = pool._idle[0]
        docker_client().api.kill(victim.id)
        sb = pool.acquire()
        assert sb is not victim and sb.exec("echo ok").stdout == "ok\n"
        assert pool.stats.discarded == 1
        pool.release(sb)
    victim.close()


def test_async_twins(local_backend):
    async def main():
        async with SandboxPool(backend=local_backend, limits=SMALL, size=2) as pool:
            async def episode(i: int) -> str:
                async with pool.sandbox_async() as sb:
                    return (await asyncio.to_thread(sb.exec, f"echo {i}")).stdout

            return await asyncio.gather(*(episode(i) for i in range(4)))

    assert asyncio.run(main()) == [f"{i}\n" for i in range(4)]


def test_a_sandbox_error_in_the_body_discards_the_sandbox(local_backend):
    with SandboxPool(backend=local_backend, limits=SMALL, size=1) as pool:
        with pytest.raises(SandboxError), pool.sandbox() as sb:
            raise SandboxError("engine hiccup")
        assert sb.closed


def test_row23_concurrency_flood_is_bounded_by_max_live(local_backend):
    in_use, peak, lock = 0, 0, threading.Lock()

    with SandboxPool(backend=local_backend, limits=SMALL, size=1, max_live=3) as pool:
        def episode(i: int) -> str:
            nonlocal in_use, peak
            sb = pool.acquire(timeout=120)
            with lock:
                in_use += 1
                peak = max(peak, in_use)
            try:
                return sb.exec(f"echo {i}").stdout
            finally:
                with lock:
                    in_use -= 1
                pool.release(sb)

        with ThreadPoolExecutor(16) as ex:
            outs = list(ex.map(episode, range(32)))
        assert outs == [f"{i}\n" for i in range(32)]
        assert peak <= 3 and pool._live <= 3
        assert pool.stats.started <= 3 + pool.stats.discarded

"""Bubblewrap specifics: limits really applied (cgroups, tmpfs), harness-crash reaping (row 22),
and fail-closed behaviour when bubblewrap or its rootfs is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from turngym.sandbox.base import SandboxLimits

SMALL = SandboxLimits(memory_mb=128, pids=64, disk_mb=16, inodes=2000, exec_timeout_s=10, output_bytes=4096)


@pytest.fixture(autouse=True)
def _bwrap(need_backend):
    need_backend("bwrap")


def test_limits_are_enforced_by_cgroups_and_tmpfs_when_root():
    from turngym.sandbox.bwrap import BwrapSandbox

    with BwrapSandbox(limits=SMALL) as sb:
        if os.geteuid() != 0:
            assert sb.enforcement == "rlimit"
            pytest.skip("cgroup and tmpfs limits need root; as non-root bwrap enforces rlimits (checked above)")
        assert sb.enforcement == "tmpfs+cgroup-v1"
        mem, pids, cpu = (sb.cgroups.dirs[c] for c in ("memory", "pids", "cpu"))
        assert int((mem / "memory.limit_in_bytes").read_text()) == 128 << 20
        assert int((pids / "pids.max").read_text()) == 64
        assert int((cpu / "cpu.cfs_quota_us").read_text()) == 100000
        assert os.path.ismount(sb.work) and os.path.ismount(sb.tmp)
        # the exec runs inside the sandbox's cgroup (its cgroup namespace shows it as the root)
        assert sb.exec("cat /proc/self/cgroup").stdout.count(":/\n") >= 3
        sb.exec(["python3", "-c", "b = bytearray(64 << 20)"])
        assert int((mem / "memory.max_usage_in_bytes").read_text()) >= 64 << 20
        host_dir = sb.host_dir
    assert not host_dir.exists() and not mem.exists()


CRASHER = """
import os, signal
from turngym.sandbox.bwrap import BwrapSandbox
sb = BwrapSandbox()
sb.exec("echo x > f")
print(sb.host_dir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_row22_harness_crash_leftovers_are_reaped():
    from turngym.sandbox.bwrap import reap_bwrap

    proc = subprocess.run([sys.executable, "-c", CRASHER], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    host_dir = Path(proc.stdout.split()[0])
    assert host_dir.exists()
    assert host_dir.name in reap_bwrap()
    assert not host_dir.exists()


def test_fail_closed_without_bubblewrap_or_docker(tmp_path):
    """No engine and no bwrap on PATH: open_sandbox refuses instead of running on the host."""
    code = ("from turngym.sandbox import open_sandbox, SandboxUnavailable\n"
            "try:\n    open_sandbox()\nexcept SandboxUnavailable as e:\n    print('REFUSED', e)\n")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": str(tmp_path)}
    env.pop("TURNGYM_SANDBOX_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.startswith("REFUSED"), proc.stdout + proc.stderr
    assert "refusing to run code on the bare host" in proc.stdout and "bubblewrap" in proc.stdout


def test_auto_falls_back_to_bwrap_without_an_engine(tmp_path):
    code = ("from turngym.sandbox import open_sandbox\n"
            "with open_sandbox(memory_mb=128) as sb:\n    print(sb.backend, sb.exec('id -u').stdout.strip())\n")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    env.pop("TURNGYM_SANDBOX_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.split() == ["bwrap", "10001"], proc.stdout + proc.stderr


def test_missing_rootfs_is_a_clear_error(tmp_path):
    from turngym.sandbox.base import SandboxUnavailable
    from turngym.sandbox.bwrap import BwrapSandbox

    with pytest.raises(SandboxUnavailable, match="build-image"):
        BwrapSandbox(rootfs=tmp_path / "nope", limits=SMALL)

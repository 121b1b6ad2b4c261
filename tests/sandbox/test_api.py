"""The Sandbox protocol on every backend (docker, bwrap, remote): exec forms, env/workdir, files,
fork, reset, episode budget, closing; plus open_sandbox's configuration handling."""

from __future__ import annotations

import pytest

from turngym.sandbox import SandboxConfig, SandboxLimits, open_sandbox, resolve_config
from turngym.sandbox.base import EpisodeTimeExceeded, Sandbox, SandboxClosed, WorkdirFull


def test_exec_forms_env_workdir_and_exit_codes(backend, make_sandbox):
    sb = make_sandbox(backend)
    assert isinstance(sb, Sandbox)
    r = sb.exec(["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out, r.ok) == (3, "out\n", "err\n", False, False)
    r = sb.exec("echo $GREETING from $(pwd)", env={"GREETING": "hello"}, workdir="/tmp")
    assert r.ok and r.stdout == "hello from /tmp\n"
    r = sb.exec(["sh", "-c", 'printf "%s|" "$@"', "argv0", "a b", "$HOME", ";rm -rf"])
    assert r.stdout == "a b|$HOME|;rm -rf|"  # argv is passed verbatim, no shell expansion
    assert sb.exec(["no-such-binary"]).exit_code == 127
    with pytest.raises(ValueError):
        sb.exec([])


def test_files_roundtrip_fork_and_reset(backend, make_sandbox):
    sb = make_sandbox(backend)
    payload = bytes(range(256)) * 100
    sb.put_files({"pkg/mod.py": b"X = 1\n", "pkg/data.bin": payload, "empty": b"", "deep/a/b/c.txt": b"c"})
    assert sb.exec("python3 -c 'import pkg.mod; print(pkg.mod.X)'").stdout == "1\n"
    assert sb.get_files(["pkg", "empty", "deep/a/b/c.txt", "nope"]) == {
        "pkg/mod.py": b"X = 1\n", "pkg/data.bin": payload, "empty": b"", "deep/a/b/c.txt": b"c"}
    sb.exec("echo generated > out.txt")
    child, sibling = sb.fork(2)
    try:
        assert child.get_files(["out.txt", "pkg/data.bin"]) == {"out.txt": b"generated\n", "pkg/data.bin": payload}
        child.exec("echo changed > out.txt")
        assert sb.get_files(["out.txt"]) == {"out.txt": b"generated\n"}  # forks are independent
        assert sibling.get_files(["out.txt"]) == {"out.txt": b"generated\n"}
    finally:
        child.close()
        sibling.close()
    sb.reset()
    assert sb.exec("ls -A . /tmp").stdout.split() == [".:", "/tmp:"]


def test_episode_budget_and_closing(backend, make_sandbox):
    sb = make_sandbox(backend, episode_timeout_s=1.5)
    r = sb.exec("sleep 5")
    assert r.timed_out and r.duration < 5  # capped to the remaining episode budget
    with pytest.raises(EpisodeTimeExceeded, match="episode"):
        sb.exec("true")
    if backend != "remote":  # the server keeps its own budget; reset restores it
        sb.reset()
        assert sb.exec("echo again").stdout == "again\n"
    sb.close()
    sb.close()  # idempotent
    with pytest.raises(SandboxClosed):
        sb.exec("true")


def test_open_sandbox_config_and_overrides():
    cfg = resolve_config(SandboxConfig(backend="bwrap"), memory_mb=64, pool_size=3)
    assert (cfg.backend, cfg.limits.memory_mb, cfg.pool_size) == ("bwrap", 64, 3)
    with pytest.raises(TypeError, match="memory_mb"):
        resolve_config(memroy_mb=64)
    with pytest.raises(ValueError, match="choose one of"):
        resolve_config(backend="chroot")
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=0)
    with pytest.raises(ValueError, match="url"):
        open_sandbox(backend="remote")


def test_oversized_argv_or_env_is_the_commands_error_not_a_sandbox_error(backend, make_sandbox):
    """E2BIG (one argument over the kernel's 128 KiB, or argv+env over ARG_MAX) is the command's own
    failure — a non-zero exit with a message — on every backend, never a SandboxError: a policy can
    cause it, and a masked sandbox_error would leave its group without a penalty."""
    sb = make_sandbox(backend)
    too_long = sb.exec(["echo", "x" * 300_000])
    assert too_long.exit_code != 0 and not too_long.timed_out
    assert "too long" in (too_long.stderr + too_long.stdout).lower()
    many = sb.exec(["true", *(["y" * 1000] * 3000)])
    assert many.exit_code != 0
    env = sb.exec(["true"], env={"BIG": "z" * 300_000})
    assert env.exit_code != 0
    assert sb.exec(["echo", "still usable"]).stdout.strip() == "still usable"


def test_writing_into_a_full_work_dir_raises_workdir_full(backend, make_sandbox):
    """Code that fills the work dir makes the next ``put_files`` raise :class:`WorkdirFull` (a
    ``SandboxError`` subclass callers can tell apart: the policy's doing, not the engine's)."""
    sb = make_sandbox(backend, disk_mb=8)
    sb.exec("head -c 64M /dev/zero > fill; true")
    with pytest.raises(WorkdirFull, match="full"):
        sb.put_files({"more.bin": b"z" * 200_000})
    sb.exec("rm -f fill")
    sb.put_files({"more.bin": b"z"})  # usable again once space is freed
    assert sb.get_files(["more.bin"]) == {"more.bin": b"z"}

"""Pieces shared by the local backends (Docker, bubblewrap): the checks every ``exec`` starts with,
raw exec records, the exec environment, and file transfer / fork / reset implemented *inside* the
sandbox with ``tar``.

Why inside: the work dir may hold symlinks planted by the code (``work/a -> /etc``); the host
never resolves paths in it. ``put_files`` pipes an archive into ``tar -x`` running as the sandbox
user; ``get_files`` runs ``tar -c`` (symlinks archived as links, not followed) and parses the
result with :func:`~turngym.sandbox.files.tar_to_files`, which keeps regular files only.

A backend using :class:`TarFilesMixin` provides ``limits``, ``name``, ``_lock``,
``_check_usable()``, ``alive()``, ``_spawn_like()`` (a new sandbox with the same image and
limits) and ``_run_internal(argv, *, deadline_s, cap, stdin_data=None, kill_factor=16)``
returning a :class:`RawExec` (runs as the sandbox user in the work dir).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turngym.sandbox.base import (
    Command,
    EpisodeTimeExceeded,
    SandboxError,
    SandboxLimits,
    WorkdirFull,
)
from turngym.sandbox.files import check_rel_path, files_to_tar, tar_to_files
from turngym.sandbox.output import OutputCapture

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT_KILL_FACTOR = 16
"""The code is killed once its combined output exceeds this many times ``limits.output_bytes``."""


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key or "\0" in str(value):
            raise ValueError(f"invalid environment variable {key!r}={value!r}")
        env[key] = str(value)
    return env


@dataclass(frozen=True)
class ExecRequest:
    """An ``exec`` call, checked: what to run (``argv``; a shell string becomes ``/bin/sh -c``),
    for how long (``timeout_s``, capped by what is left of the episode budget) and where."""

    argv: list[str]
    timeout_s: float
    workdir: str


def check_exec(name: str, limits: SandboxLimits, exec_time: float, command: Command,
               timeout: float | None, workdir: str | None) -> ExecRequest:
    """The checks every ``exec`` starts with. Raises :class:`EpisodeTimeExceeded` once the sandbox has
    spent ``limits.episode_timeout_s`` (``exec_time`` so far), ``ValueError`` for a timeout <= 0, a
    relative work dir or an empty command."""
    remaining = limits.episode_timeout_s - exec_time
    if remaining <= 0:
        raise EpisodeTimeExceeded(
            f"sandbox {name} spent its episode exec budget ({limits.episode_timeout_s:g} s)")
    t = min(float(timeout if timeout is not None else limits.exec_timeout_s), remaining)
    if t <= 0:
        raise ValueError(f"exec timeout must be > 0, got {timeout!r}")
    if workdir is not None and not (isinstance(workdir, str) and workdir.startswith("/")):
        raise ValueError(f"exec workdir must be an absolute path inside the sandbox, got {workdir!r}")
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
    if not argv:
        raise ValueError("exec command is empty; pass a shell string or a non-empty argv list")
    return ExecRequest(argv, t, workdir or limits.workdir)


class RawExec:
    """What one low-level exec produced (before classification into an ExecResult)."""

    def __init__(self, cap: int) -> None:
        self.stdout = OutputCapture(cap)
        self.stderr = OutputCapture(cap)
        self.exit_code: int | None = None
        self.deadline_hit = False
        self.output_killed = False
        self.duration = 0.0

    def stdout_bytes(self) -> bytes:
        return bytes(self.stdout.head + self.stdout.tail)


class TarFilesMixin:
    """``put_files`` / ``get_files`` / ``fork`` / ``reset`` on top of ``_run_internal``."""

    limits: Any
    name: str

    def put_files(self, files: Mapping[str, bytes]) -> None:
        self._check_usable()  # type: ignore[attr-defined]
        self._put_tar(files_to_tar(files, uid=10001))

    def _put_tar(self, data: bytes) -> None:
        with self._lock:  # type: ignore[attr-defined]
            raw = self._run_internal(["tar", "-x", "-p", "-m", "-f", "-", "-C", self.limits.workdir],  # type: ignore[attr-defined]
                                     deadline_s=60, cap=8192, stdin_data=data)
        if raw.exit_code != 0:
            err = raw.stderr.text()
            if "No space left on device" in err or "Disk quota exceeded" in err:
                raise WorkdirFull(f"writing files into sandbox {self.name} failed: the work dir is full "
                                  f"(disk_mb={self.limits.disk_mb}, inodes={self.limits.inodes}): {err[-300:]}")
            raise SandboxError(
                f"writing files into sandbox {self.name} failed (tar exit {raw.exit_code}): {err[-500:]}"
                f" — is the work dir full (disk_mb={self.limits.disk_mb}, inodes={self.limits.inodes})?")

    def _get_tar(self, rel_paths: Sequence[str]) -> bytes:
        cap = (self.limits.disk_mb * 2 + 16) << 20
        with self._lock:  # type: ignore[attr-defined]
            raw = self._run_internal(["tar", "-c", "-f", "-", "--ignore-failed-read", "-C", self.limits.workdir, "--",  # type: ignore[attr-defined]
                                      *rel_paths], deadline_s=60, cap=cap, kill_factor=1)
        if raw.stdout.truncated:
            raise SandboxError(f"reading files from sandbox {self.name}: the archive exceeds {cap} bytes")
        return raw.stdout_bytes()

    def get_files(self, paths: Sequence[str]) -> dict[str, bytes]:
        self._check_usable()  # type: ignore[attr-defined]
        rel = [check_rel_path(p) for p in paths]
        if not rel:
            return {}
        with self._lock:  # type: ignore[attr-defined]
            # tar fails on every missing path, so ask only for those that exist (seen by the sandbox user)
            probe = self._run_internal(  # type: ignore[attr-defined]
                ["/bin/sh", "-c", 'for p do { [ -e "$p" ] || [ -L "$p" ]; } && printf "%s\\0" "$p"; done; true',
                 "probe", *rel], deadline_s=30, cap=1 << 20)
            present = [p for p in probe.stdout_bytes().decode(errors="replace").split("\0") if p]
            if not present:
                return {}
            data = self._get_tar(present)
        return tar_to_files(data)

    def fork(self, n: int = 1) -> list[Any]:
        self._check_usable()  # type: ignore[attr-defined]
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"fork(n) needs an int n >= 1, got {n!r}")
        data = self._get_tar(["."])
        out: list[Any] = []
        try:
            for _ in range(n):
                child = self._spawn_like()  # type: ignore[attr-defined]
                out.append(child)
                child._put_tar(data)
        except BaseException:
            for child in out:
                child.close()
            raise
        return out

    def reset(self) -> None:
        """Wipe the work dir and ``/tmp``, kill all processes, restore the episode budget (eagerly;
        the Docker and bubblewrap backends override this with a wipe folded into the next call)."""
        self._check_usable()  # type: ignore[attr-defined]
        with self._lock:  # type: ignore[attr-defined]
            raw = self._run_internal(["/bin/sh", "-c", f"kill -9 -1 2>/dev/null; find {self.limits.workdir} /tmp "  # type: ignore[attr-defined]
                                      "-mindepth 1 -delete 2>/dev/null; true"], deadline_s=30, cap=8192)
        if raw.exit_code != 0 or not self.alive():  # type: ignore[attr-defined]
            raise SandboxError(f"resetting sandbox {self.name} failed (exit {raw.exit_code})")
        self._exec_time = 0.0

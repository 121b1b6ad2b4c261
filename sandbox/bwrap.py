"""Bubblewrap backend: the same Debian rootfs as the Docker image, no daemon.

Each ``exec`` is one ``bwrap`` process: the rootfs bound read-only as ``/``, the sandbox's work
dir and ``/tmp`` bound read-write from host directories, fresh ``/dev`` and ``/proc``,
``--unshare-all`` (user, pid, net, ipc, uts, cgroup namespaces; ``--share-net`` only when
``limits.network``), ``--disable-userns``, ``--cap-drop ALL``, ``--new-session`` (no TTY
injection), ``--die-with-parent``, a cleared environment, uid/gid 10001 inside, stdin
``/dev/null``. Processes never outlive their exec: bwrap is PID 1 of the exec's PID namespace,
and when it exits the kernel kills everything left in it, ``setsid`` escapees included. On
timeout the host kills bwrap's process group (and the exec's cgroup).

Limits: as root on a cgroup-v1 host (this project's machines), each sandbox gets memory (no
swap), pids and CPU-quota cgroups, and its work dir and ``/tmp`` are tmpfs mounts capped in size
and inodes; OOM kills are read from ``memory.oom_control``. Without root (or on cgroup v2 only
hosts) the backend falls back to rlimits (address space, process count, file size): weaker, and
reported by :attr:`BwrapSandbox.enforcement` and ``turngym sandbox doctor``.

Fail closed: :func:`bwrap_problem` returns why the backend cannot run (no ``bwrap``, no rootfs,
user namespaces disabled); :class:`BwrapSandbox` raises :class:`SandboxUnavailable` then.
"""

from __future__ import annotations

import atexit
import errno
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from turngym.sandbox.base import (
    Command,
    ExecResult,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)
from turngym.sandbox.common import OUTPUT_KILL_FACTOR, RawExec, TarFilesMixin, base_env, check_exec
from turngym.sandbox.image import ensure_rootfs, rootfs_path

CGROUP_V1 = Path("/sys/fs/cgroup")
CGROUP_PARENT = "turngym-bwrap"
HOST_PREFIX = "turngym-bwrap-"

_problem_cache: dict[str, str | None] = {}


def _rootfs_or_none() -> Path | None:
    path = rootfs_path()
    return path if (path / ".turngym-recipe").is_file() else None


def bwrap_problem(rootfs: str | os.PathLike | None = None) -> str | None:
    """``None`` if bubblewrap can isolate here (binary present, rootfs built, namespaces allowed),
    else a one-line reason with the fix."""
    exe = shutil.which("bwrap")
    if not exe:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    root = Path(rootfs) if rootfs else _rootfs_or_none()
    if root is None or not (root / "bin" / "sh").exists():
        return f"the sandbox rootfs is not built ({rootfs or rootfs_path()}); run `turngym sandbox build-image`"
    key = str(root)
    if key not in _problem_cache:
        try:
            proc = subprocess.run([exe, "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
                                   "--unshare-all", "--unshare-user", "--uid", "10001", "--gid", "10001",
                                   "--die-with-parent", "/bin/true"], capture_output=True, text=True, timeout=20)
            _problem_cache[key] = None if proc.returncode == 0 else (
                f"bwrap cannot create namespaces here (exit {proc.returncode}: {proc.stderr.strip()[:200]}); "
                "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _problem_cache[key] = f"bwrap failed to run: {exc}"
    return _problem_cache[key]


def _is_root() -> bool:
    return os.geteuid() == 0


def _uid_processes() -> int:
    """How many processes (threads included) this uid runs now: the base for RLIMIT_NPROC."""
    uid, n = os.getuid(), 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{d}/task"))
            except OSError:
                pass
    return n


class _Cgroups:
    """Per-sandbox cgroup-v1 directories (memory, pids, cpu); ``None`` when not usable."""

    CONTROLLERS = ("memory", "pids", "cpu")

    def __init__(self, name: str, limits: SandboxLimits) -> None:
        self.dirs: dict[str, Path] = {}
        for ctrl in self.CONTROLLERS:
            d = CGROUP_V1 / ctrl / CGROUP_PARENT / name
            d.mkdir(parents=True, exist_ok=True)
            self.dirs[ctrl] = d
        mem = limits.memory_mb << 20
        (self.dirs["memory"] / "memory.limit_in_bytes").write_text(str(mem))
        memsw = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(mem))
        else:
            (self.dirs["memory"] / "memory.swappiness").write_text("0")
        (self.dirs["pids"] / "pids.max").write_text(str(limits.pids))
        (self.dirs["cpu"] / "cpu.cfs_period_us").write_text("100000")
        (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(max(1000, int(limits.cpus * 100000))))

    @classmethod
    def usable(cls) -> bool:
        return _is_root() and all((CGROUP_V1 / c / "tasks").exists() for c in cls.CONTROLLERS)

    def join_self(self) -> None:
        """Move the calling process (a forked child, before exec) into the cgroups."""
        pid = str(os.getpid())
        for d in self.dirs.values():
            with open(d / "cgroup.procs", "w") as fh:
                fh.write(pid)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.dirs["pids"] / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self) -> None:
        for _ in range(20):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def oom_kills(self) -> int:
        try:
            for line in (self.dirs["memory"] / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _mount_tmpfs(path: Path, size_mb: int, inodes: int, mode: str) -> bool:
    if not _is_root():
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,nr_inodes={inodes},mode={mode},nosuid,nodev",
                           "turngym-bwrap", str(path)], capture_output=True, text=True)
    return proc.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def reap_bwrap() -> list[str]:
    """Remove host dirs and cgroups of bwrap sandboxes whose owner process is gone."""
    removed = []
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(HOST_PREFIX + "*"):
        try:
            owner = int((d / "owner").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            owner = 0
        if owner and owner != os.getpid():
            try:
                os.kill(owner, 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        elif owner == os.getpid():
            continue
        for sub in ("work", "tmp"):
            if os.path.ismount(d / sub):
                _umount(d / sub)
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d.name)
        name = d.name[len(HOST_PREFIX):]
        for ctrl in _Cgroups.CONTROLLERS:
            cg = CGROUP_V1 / ctrl / CGROUP_PARENT / name
            if cg.exists():
                try:
                    cg.rmdir()
                except OSError:
                    pass
    return removed


_live: dict[str, BwrapSandbox] = {}
_reaped = False


def _atexit() -> None:
    for sb in list(_live.values()):
        try:
            sb.close()
        except Exception:
            pass


class BwrapSandbox(TarFilesMixin):
    """A sandbox made of bubblewrap invocations over the shared rootfs (see module docstring)."""

    backend = "bwrap"

    def __init__(self, *, rootfs: str | os.PathLike | None = None, limits: SandboxLimits | None = None) -> None:
        global _reaped
        self.limits = limits or SandboxLimits()
        if rootfs is None:
            if _rootfs_or_none() is None and not _is_root():
                raise SandboxUnavailable(bwrap_problem() or "no sandbox rootfs")
            rootfs = ensure_rootfs()
        self.rootfs = Path(rootfs)
        why = bwrap_problem(self.rootfs)
        if why:
            raise SandboxUnavailable(f"bubblewrap backend unavailable: {why}")
        if not _reaped:
            _reaped = True
            reap_bwrap()
            atexit.register(_atexit)
        self._lock = threading.RLock()
        self._closed = False
        self._exec_time = 0.0
        self._wipe = ""  # shell run before the next call: a pending reset()
        self.name = uuid.uuid4().hex[:12]
        self.host_dir = Path(tempfile.gettempdir()) / f"{HOST_PREFIX}{self.name}"
        self.host_dir.mkdir(mode=0o711)
        (self.host_dir / "owner").write_text(f"{os.getpid()}\n")
        self.work = self.host_dir / "work"
        self.tmp = self.host_dir / "tmp"
        self.work.mkdir()
        self.tmp.mkdir()
        enforced = []
        self.cgroups: _Cgroups | None = None
        try:
            if _mount_tmpfs(self.work, self.limits.disk_mb, self.limits.inodes, "0755") and \
                    _mount_tmpfs(self.tmp, self.limits.disk_mb, self.limits.inodes, "1777"):
                enforced.append("tmpfs")
            else:
                self.work.chmod(0o777)
                self.tmp.chmod(0o1777)
            if _Cgroups.usable():
                self.cgroups = _Cgroups(self.name, self.limits)
                enforced.append("cgroup-v1")
            else:
                enforced.append("rlimit")
        except BaseException:
            self.close()
            raise
        self.enforcement = "+".join(enforced)
        _live[self.name] = self
        self._oom = self.cgroups.oom_kills() if self.cgroups else 0

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _live.pop(self.name, None)
        if getattr(self, "cgroups", None):
            self.cgroups.remove()
        for sub in (self.work, self.tmp):
            if os.path.ismount(sub):
                _umount(sub)
        shutil.rmtree(self.host_dir, ignore_errors=True)

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def alive(self) -> bool:
        return not self._closed and self.work.is_dir()

    def _check_usable(self) -> None:
        if self._closed:
            raise SandboxClosed(f"bwrap sandbox {self.name} is closed")
        if not self.work.is_dir():
            raise SandboxClosed(f"bwrap sandbox {self.name} lost its work dir {self.work}")

    def _spawn_like(self) -> BwrapSandbox:
        return BwrapSandbox(rootfs=self.rootfs, limits=self.limits)

    # -- exec ----------------------------------------------------------------------------------
    def _argv(self, inner: Sequence[str], env: Mapping[str, str], workdir: str) -> list[str]:
        lim = self.limits
        argv = ["bwrap", "--ro-bind", str(self.rootfs), "/", "--dev", "/dev", "--proc", "/proc",
                "--bind", str(self.work), lim.workdir, "--bind", str(self.tmp), "/tmp",
                "--unshare-all", "--unshare-user", "--disable-userns", "--uid", "10001", "--gid", "10001",
                "--hostname", "sandbox", "--cap-drop", "ALL", "--new-session", "--die-with-parent",
                "--chdir", workdir, "--clearenv"]
        if lim.network:
            argv.append("--share-net")
            if Path("/etc/resolv.conf").exists():
                argv += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        return argv + ["--", *inner]

    def _preexec(self, nproc: int) -> None:  # runs in the forked child before exec
        if self.cgroups is not None:
            self.cgroups.join_self()
        else:
            mem = self.limits.memory_mb << 20
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            if not _is_root():  # RLIMIT_NPROC counts all of this uid's processes host-wide
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            disk = self.limits.disk_mb << 20
            resource.setrlimit(resource.RLIMIT_FSIZE, (disk, disk))
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _run(self, inner: Sequence[str], env: Mapping[str, str], workdir: str, *, deadline_s: float, cap: int,
             stdin_data: bytes | None = None, kill_factor: int = OUTPUT_KILL_FACTOR) -> RawExec:
        out = RawExec(cap)
        start = time.monotonic()
        nproc = self.limits.pids + (_uid_processes() if self.cgroups is None and not _is_root() else 0)
        try:
            proc = subprocess.Popen(self._argv(inner, env, workdir),
                                    stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                    preexec_fn=lambda: self._preexec(nproc), close_fds=True)
        except OSError as exc:
            if exc.errno == errno.E2BIG:  # the command's own argv/env is too long: its error, as under Docker
                out.stderr.add(f"sandbox: cannot run the command: argument list too long ({exc})\n".encode())
                out.exit_code = 1
                out.duration = time.monotonic() - start
                return out
            raise SandboxError(f"starting bwrap for sandbox {self.name} failed: {exc}") from exc
        writer = None
        if stdin_data is not None:
            def feed() -> None:
                try:
                    proc.stdin.write(stdin_data)
                except OSError:
                    pass
                finally:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, out.stdout)
        sel.register(proc.stderr, selectors.EVENT_READ, out.stderr)
        deadline = start + deadline_s
        killed = False
        open_streams = 2
        try:
            while open_streams:
                now = time.monotonic()
                if now >= deadline:
                    if killed:
                        break  # killed yet a pipe is still open: give up reading
                    out.deadline_hit = True
                    killed = True
                    self._kill(proc)
                    deadline = time.monotonic() + 5.0
                    continue
                for key, _ in sel.select(min(deadline - now, 1.0)):
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    key.data.add(chunk)
                if not killed and out.stdout.total + out.stderr.total > cap * kill_factor:
                    out.output_killed = True
                    killed = True
                    self._kill(proc)
                    deadline = time.monotonic() + 5.0
        finally:
            sel.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            if writer is not None:
                writer.join(timeout=5)
            if self.cgroups is not None:
                self.cgroups.kill_all()
        out.duration = time.monotonic() - start
        rc = proc.returncode
        out.exit_code = 128 - rc if rc < 0 else rc
        return out

    def _kill(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroups is not None:
            self.cgroups.kill_all()

    def _run_internal(self, argv: Sequence[str], *, deadline_s: float, cap: int, stdin_data: bytes | None = None,
                      kill_factor: int = OUTPUT_KILL_FACTOR) -> RawExec:
        if self._wipe:
            argv = ["/bin/sh", "-c", f'{self._wipe}exec "$@"', "sh", *argv]
        raw = self._run(argv, base_env(), self.limits.workdir, deadline_s=deadline_s, cap=cap,
                        stdin_data=stdin_data, kill_factor=kill_factor)
        self._wipe = ""
        return raw

    def reset(self) -> None:
        """Recycle for a new episode: restore the episode budget now; the work dir and ``/tmp``
        are wiped at the start of the next call, in the same bwrap process (no extra process)."""
        self._check_usable()
        with self._lock:
            self._wipe = (f"find {self.limits.workdir} /tmp -mindepth 1 -delete 2>/dev/null; "
                          'cd "$PWD" 2>/dev/null || { echo "sandbox: $PWD was removed by reset" >&2; exit 126; }; ')
            self._exec_time = 0.0

    def exec(self, command: Command, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
             workdir: str | None = None) -> ExecResult:
        self._check_usable()
        request = check_exec(self.name, self.limits, self._exec_time, command, timeout, workdir)
        inner = request.argv
        if not isinstance(command, str) or self._wipe:  # exit 127 for a missing binary, as under Docker
            inner = ["/bin/sh", "-c", f'{self._wipe}exec "$@"', "sh", *inner]
        with self._lock:
            raw = self._run(inner, base_env(env), request.workdir, deadline_s=request.timeout_s,
                            cap=self.limits.output_bytes)
            self._wipe = ""
            self._exec_time += raw.duration
            oom = False
            if self.cgroups is not None and raw.exit_code == 137:
                count = self.cgroups.oom_kills()
                oom = count > self._oom
                self._oom = count
        code = 137 if raw.deadline_hit else raw.exit_code
        return ExecResult(exit_code=code, stdout=raw.stdout.text(), stderr=raw.stderr.text(),
                          timed_out=raw.deadline_hit, oom_killed=oom and not raw.deadline_hit,
                          output_truncated=raw.stdout.truncated or raw.stderr.truncated or raw.output_killed,
                          duration=raw.duration)

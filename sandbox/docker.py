"""Docker backend: one hardened, long-lived container per sandbox; ``exec`` per command.

Container (created by :class:`DockerSandbox`): ``network_mode="none"`` (unless
``limits.network``), ``cap_drop=ALL``, ``no-new-privileges``, read-only root, the work dir and
``/tmp`` are tmpfs capped in size (``disk_mb``) and inodes (``inodes``), ``pids_limit``,
``mem_limit == memswap_limit`` (no swap), ``nano_cpus``, ``init=True`` (docker-init reaps
zombies), no stdin, no TTY, labelled ``turngym.sandbox=1`` plus run/owner/creation labels.
The container's keeper process (``sleep infinity``) runs as root *without capabilities*; every
exec runs as the unprivileged ``sandbox`` user (uid 10001), which therefore cannot signal the
keeper or PID 1: ``kill -9 -1`` inside only kills the code's own processes.

Exec contract: each command runs under a wrapper
``kill -9 -1; timeout -s KILL T cmd; rc=$?; kill -9 -1; exit $rc`` as uid 10001, so when an
exec returns no process of it survives — double-forked ``setsid`` children included
(processes never outlive their exec). The host reads the multiplexed stream itself with a
deadline (``T + grace``), caps each stream head+tail, and kills the code (a second exec
``kill -9 -1``) when the deadline passes or output exceeds ``OUTPUT_KILL_FACTOR × cap``, then
drains the stream to EOF (which avoids the engine's 10 s kill hang on an unread stream).
Exit 137 is classified as a timeout (the wall time reached ``T``) or an OOM kill (the
container's cgroup ``oom_kill`` counter grew). An exec after which the container is no longer
running raises :class:`SandboxClosed` ("sandbox died"); engine failures are retried a bounded
number of times, then raise :class:`SandboxError`.

Leaked containers are reaped by label: at the first sandbox start in a process (owner process
on this host gone, or older than a day without a live local owner), at exit (this process's
containers), and on demand (:func:`reap`, ``turngym sandbox reap --max-age``).
"""

from __future__ import annotations

import atexit
import os
import re
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from turngym.sandbox.base import (
    Command,
    ExecResult,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)
from turngym.sandbox.common import (
    OUTPUT_KILL_FACTOR,
    PATH,
    RawExec,
    TarFilesMixin,
    base_env,
    check_exec,
)
from turngym.sandbox.engine import docker_client, engine_problem
from turngym.sandbox.image import ensure_image

LABEL = "turngym.sandbox"
RUN_ID = uuid.uuid4().hex[:12]
HOSTNAME = socket.gethostname()
SANDBOX_USER = "10001:10001"
EXEC_GRACE_S = 3.0
WRAPPER = 'kill -9 -1 2>/dev/null; {prelude}timeout -s KILL "$0" "$@"; rc=$?; kill -9 -1 2>/dev/null; exit $rc'
KILL_ALL = "kill -9 -1 2>/dev/null; kill -9 -1 2>/dev/null; exit 0"

T = TypeVar("T")

def _is_transient(exc: BaseException) -> bool:
    import docker.errors
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(exc, docker.errors.APIError) and exc.status_code is not None and exc.status_code >= 500:
        text = str(exc)
        return "is not running" not in text and "No such" not in text
    return isinstance(exc, docker.errors.DockerException) and not isinstance(exc, docker.errors.APIError)


def _with_retries(what: str, fn: Callable[[], T], retries: int = 3) -> T:
    """Call ``fn``; retry transient engine errors with backoff, then raise :class:`SandboxError`."""
    import docker.errors

    delay = 0.2
    for attempt in range(retries + 1):
        try:
            return fn()
        except docker.errors.NotFound as exc:
            raise SandboxClosed(f"{what}: the container is gone ({exc.explanation or exc})") from exc
        except docker.errors.APIError as exc:
            if "is not running" in str(exc) or "is paused" in str(exc):
                raise SandboxClosed(f"{what}: the container is not running ({exc.explanation or exc})") from exc
            if not _is_transient(exc) or attempt == retries:
                raise SandboxError(f"{what} failed after {attempt + 1} attempt(s): {exc}") from exc
            time.sleep(delay)
            delay *= 2.5
        except Exception as exc:
            if not _is_transient(exc) or attempt == retries:
                raise SandboxError(f"{what} failed after {attempt + 1} attempt(s): {exc}") from exc
            time.sleep(delay)
            delay *= 2.5
    raise AssertionError("unreachable")


EXTRA_LABELS: dict[str, str] = {}
"""Labels added to every container this process creates from now on (e.g. a CI job id)."""


def labels_for(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    labels = {**EXTRA_LABELS,
        LABEL: "1",
        f"{LABEL}.run_id": RUN_ID,
        f"{LABEL}.owner_pid": str(os.getpid()),
        f"{LABEL}.owner_host": HOSTNAME,
        f"{LABEL}.created_at": f"{time.time():.0f}",
    }
    labels.update(extra or {})
    return labels


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(client=None, *, max_age_s: float | None = 24 * 3600, run_id: str | None = None,
         dead_owners: bool = True, spare_live_owners: bool = True,
         only: Mapping[str, str] | None = None) -> list[str]:
    """Remove labelled sandbox containers: those of ``run_id`` (if given), those whose owner
    process on this host is dead (``dead_owners``), and those older than ``max_age_s`` — except,
    with ``spare_live_owners``, containers whose owner process on this host is still alive (a
    long training run legitimately holds old sandboxes). ``only`` restricts the candidates to
    containers carrying these extra labels. Returns the removed container names. Never touches
    containers without our label."""
    cli = client or docker_client()
    removed = []
    labels = [f"{LABEL}=1"] + [f"{k}={v}" for k, v in (only or {}).items()]
    try:
        found = cli.api.containers(all=True, filters={"label": labels})
    except Exception:
        return removed
    now = time.time()
    for info in found:
        lab = info.get("Labels") or {}
        doomed = run_id is not None and lab.get(f"{LABEL}.run_id") == run_id
        live_owner = False
        if lab.get(f"{LABEL}.owner_host") == HOSTNAME:
            try:
                owner = int(lab.get(f"{LABEL}.owner_pid", "0"))
            except ValueError:
                owner = 0
            live_owner = owner == os.getpid() or (owner > 0 and _pid_alive(owner))
            if dead_owners and owner and not live_owner:
                doomed = True
        try:
            created = float(lab.get(f"{LABEL}.created_at", info.get("Created", now)))
        except ValueError:
            created = now
        if max_age_s is not None and now - created > max_age_s and not (spare_live_owners and live_owner):
            doomed = True
        if doomed:
            try:
                cli.api.remove_container(info["Id"], force=True, v=True)
                removed.append((info.get("Names") or [info["Id"][:12]])[0].lstrip("/"))
            except Exception:
                pass
    return removed


_startup_reaped = False
_live: dict[str, DockerSandbox] = {}
_live_lock = threading.Lock()


def _startup_reap(client) -> None:
    global _startup_reaped
    if _startup_reaped:
        return
    _startup_reaped = True
    # provably leaked ones (owner process on this host is gone) and stale ones (over a day old,
    # owner not alive here, e.g. another host's crashed harness); never a live local owner's
    reap(client, max_age_s=24 * 3600)
    atexit.register(_atexit_cleanup)


def _atexit_cleanup() -> None:
    with _live_lock:
        live = list(_live.values())
    for sb in live:
        try:
            sb.close()
        except Exception:
            pass


class DockerSandbox(TarFilesMixin):
    """A sandbox backed by one hardened container. See the module docstring for the contract."""

    backend = "docker"

    def __init__(self, *, image: str | None = None, limits: SandboxLimits | None = None, client=None,
                 labels: Mapping[str, str] | None = None, retries: int = 3) -> None:
        self.limits = limits or SandboxLimits()
        self.client = client or docker_client()
        self.retries = retries
        self._lock = threading.RLock()
        self._closed = False
        self._dead_reason: str | None = None
        self._wipe = ""  # shell run before the next call: a pending reset()
        self._exec_time = 0.0
        self._oom_count = 0
        _startup_reap(self.client)
        if image is None:
            image = ensure_image(client=self.client)
        self.image = image
        self.name = f"turngym-sbx-{uuid.uuid4().hex[:12]}"
        self.id = self._create(labels)
        with _live_lock:
            _live[self.id] = self
        try:
            count = self._read_oom_count()
            if count is None:
                raise SandboxError(f"sandbox {self.name} started but cannot run commands")
            self._oom_count = count
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------
    def _create(self, labels: Mapping[str, str] | None) -> str:
        lim = self.limits
        tmpfs_opts = f"rw,nosuid,nodev,size={lim.disk_mb}m,nr_inodes={lim.inodes}"
        host_config = self.client.api.create_host_config(
            init=True,
            network_mode="bridge" if lim.network else "none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={
                lim.workdir: f"{tmpfs_opts},uid=10001,gid=10001,mode=0755",
                "/tmp": f"{tmpfs_opts},mode=1777",
            },
            pids_limit=lim.pids,
            mem_limit=f"{lim.memory_mb}m",
            memswap_limit=f"{lim.memory_mb}m",
            nano_cpus=int(lim.cpus * 1e9),
            ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 1024}],
        )

        def create() -> str:
            import docker.errors

            try:
                res = self.client.api.create_container(
                    self.image, ["sleep", "infinity"], name=self.name, user="0:0", detach=True,
                    stdin_open=False, tty=False, network_disabled=not lim.network, hostname="sandbox",
                    working_dir=lim.workdir, labels=labels_for(labels), host_config=host_config,
                    environment={"PATH": PATH},
                )
            except docker.errors.ImageNotFound as exc:
                raise SandboxUnavailable(
                    f"sandbox image {self.image!r} is missing; run `turngym sandbox build-image`") from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # a previous attempt created it: reuse (idempotent)
                    return self.client.api.inspect_container(self.name)["Id"]
                raise
            return res["Id"]

        cid = _with_retries(f"creating sandbox container {self.name}", create, self.retries)
        try:
            _with_retries(f"starting sandbox container {self.name}", lambda: self.client.api.start(cid), self.retries)
        except BaseException:
            try:
                self.client.api.remove_container(cid, force=True)
            except Exception:
                pass
            raise
        return cid

    def close(self) -> None:
        """Remove the container (idempotent; errors are swallowed: the reaper is the backstop)."""
        with _live_lock:
            _live.pop(getattr(self, "id", ""), None)
        if self._closed:
            return
        self._closed = True
        try:
            self.client.api.remove_container(self.id, force=True, v=True)
        except Exception:
            pass

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_usable(self) -> None:
        if self._closed:
            raise SandboxClosed(f"sandbox {self.name} is closed")
        if self._dead_reason:
            raise SandboxClosed(f"sandbox {self.name} died: {self._dead_reason}")

    def alive(self) -> bool:
        """Whether the container is still running (one engine round trip)."""
        if self._closed or self._dead_reason:
            return False
        try:
            state = self.client.api.inspect_container(self.id)["State"]
        except Exception:
            return False
        return bool(state.get("Running"))

    # -- exec ----------------------------------------------------------------------------------
    def exec(self, command: Command, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
             workdir: str | None = None) -> ExecResult:
        self._check_usable()
        request = check_exec(self.name, self.limits, self._exec_time, command, timeout, workdir)
        t = request.timeout_s
        argv = ["/bin/sh", "-c", WRAPPER.format(prelude=self._wipe), f"{t:.3f}", *request.argv]
        environment = base_env(env)
        with self._lock:
            try:
                return self._exec_locked(command, argv, environment, request.workdir, t)
            except SandboxClosed as exc:
                if not self._dead_reason:
                    self._dead_reason = f"the container stopped during `{_short(command)}` ({exc})"
                raise SandboxClosed(f"sandbox {self.name} died: {self._dead_reason}") from exc

    def _exec_locked(self, command: Command, argv: list[str], environment: dict[str, str], workdir: str,
                     t: float) -> ExecResult:
        raw = self._run(argv, environment, workdir, deadline_s=t + EXEC_GRACE_S, cap=self.limits.output_bytes)
        self._wipe = ""
        self._exec_time += raw.duration
        code = raw.exit_code if raw.exit_code is not None else 137
        timed_out = raw.deadline_hit or (code == 137 and raw.duration >= t - 0.05 and not raw.output_killed)
        oom = False
        if code >= 128 or raw.exit_code is None:
            # killed by a signal: the code, the OOM killer, or the container dying under it. The
            # engine's "Running" state lags a container kill, so probe with an exec instead.
            count = self._read_oom_count()
            if count is None or not self.alive():
                self._dead_reason = f"the container stopped during `{_short(command)}` (exit {code})"
                raise SandboxClosed(self._dead_reason)
            if code == 137 and not timed_out:
                oom = count > self._oom_count
            self._oom_count = count
        return ExecResult(
            exit_code=code, stdout=raw.stdout.text(), stderr=raw.stderr.text(), timed_out=timed_out,
            oom_killed=oom, output_truncated=raw.stdout.truncated or raw.stderr.truncated or raw.output_killed,
            duration=raw.duration,
        )

    def _read_oom_count(self) -> int | None:
        """The container cgroup's OOM-kill counter; ``None`` if the probe exec could not run."""
        raw = self._run(["/bin/sh", "-c", "cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events"
                         " 2>/dev/null; echo probe-ok"], {"PATH": PATH}, "/", deadline_s=10, cap=8192)
        text = raw.stdout.text()
        if raw.exit_code != 0 or "probe-ok" not in text:
            return None
        match = re.search(r"oom_kill (\d+)", text)
        return int(match.group(1)) if match else 0

    def _kill_all(self) -> None:
        """Kill every process of the sandbox user (from a second exec)."""
        def run() -> None:
            eid = self.client.api.exec_create(self.id, ["/bin/sh", "-c", KILL_ALL], user=SANDBOX_USER,
                                              stdout=False, stderr=False, stdin=False)["Id"]
            self.client.api.exec_start(eid, detach=True)
        try:
            _with_retries("killing sandbox processes", run, 1)
        except SandboxError:
            pass

    def _open_exec(self, argv: Sequence[str], environment: Mapping[str, str], workdir: str, stdin: bool):
        def create() -> str:
            return self.client.api.exec_create(self.id, list(argv), stdout=True, stderr=True, stdin=stdin,
                                               tty=False, environment=dict(environment), workdir=workdir,
                                               user=SANDBOX_USER)["Id"]

        eid = _with_retries(f"exec in sandbox {self.name}", create, self.retries)
        resp_sock = _with_retries(f"starting exec in sandbox {self.name}",
                                  lambda: self.client.api.exec_start(eid, socket=True), 0)
        sock = getattr(resp_sock, "_sock", resp_sock)
        return eid, resp_sock, sock

    def _run(self, argv: Sequence[str], environment: Mapping[str, str], workdir: str, *, deadline_s: float,
             cap: int, stdin_data: bytes | None = None, kill_factor: int = OUTPUT_KILL_FACTOR) -> RawExec:
        """Run one exec to completion; never leaves its stream unread."""
        out = RawExec(cap)
        start = time.monotonic()
        eid, resp_sock, sock = self._open_exec(argv, environment, workdir, stdin_data is not None)
        try:
            if stdin_data is not None:
                sock.settimeout(max(5.0, deadline_s))
                try:
                    sock.sendall(stdin_data)
                    sock.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    raise SandboxError(f"sending files into sandbox {self.name} failed: {exc}") from exc
            sock.setblocking(False)
            deadline = start + deadline_s
            killed = False
            buf = bytearray()
            kill_limit = cap * kill_factor
            while True:
                now = time.monotonic()
                if now >= deadline:
                    if killed:  # the kill did not end the stream: the sandbox is wedged
                        self._dead_reason = "an exec could not be stopped"
                        try:
                            self.client.api.kill(self.id)
                        except Exception:
                            pass
                        break
                    out.deadline_hit = True
                    killed = True
                    self._kill_all()
                    deadline = time.monotonic() + 10.0
                    continue
                ready, _, _ = select.select([sock], [], [], min(deadline - now, 1.0))
                if not ready:
                    continue
                try:
                    chunk = sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    raise SandboxError(f"the exec stream of sandbox {self.name} broke: {exc}") from exc
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 8:
                    kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
                    if len(buf) < 8 + size:
                        break
                    payload = bytes(buf[8:8 + size])
                    del buf[:8 + size]
                    (out.stderr if kind == 2 else out.stdout).add(payload)
                if not killed and out.stdout.total + out.stderr.total > kill_limit:
                    out.output_killed = True
                    killed = True
                    self._kill_all()
                    deadline = time.monotonic() + 10.0
        finally:
            for closable in (resp_sock, sock):  # the hijacked connection is ours alone: close it now
                try:
                    closable.close()
                except Exception:
                    pass
        out.duration = time.monotonic() - start
        for _ in range(50):
            try:
                info = self.client.api.exec_inspect(eid)
            except Exception as exc:
                if self._dead_reason:
                    break
                engine_down = engine_problem(self.client)
                if engine_down:
                    self._dead_reason = f"the Docker engine went away during an exec ({engine_down})"
                    raise SandboxError(f"sandbox {self.name}: {self._dead_reason}") from exc
                if not self.alive():
                    self._dead_reason = f"the container stopped ({exc})"
                    raise SandboxClosed(f"sandbox {self.name} died: {self._dead_reason}") from exc
                raise SandboxError(f"inspecting an exec in sandbox {self.name} failed: {exc}") from exc
            if not info.get("Running"):
                out.exit_code = info.get("ExitCode")
                break
            time.sleep(0.02)
        return out

    # -- files / fork / reset: TarFilesMixin ------------------------------------------------------
    def _run_internal(self, argv: Sequence[str], *, deadline_s: float, cap: int, stdin_data: bytes | None = None,
                      kill_factor: int = OUTPUT_KILL_FACTOR) -> RawExec:
        if self._wipe:
            argv = ["/bin/sh", "-c", f'{self._wipe}exec "$@"', "sh", *argv]
        raw = self._run(argv, {"PATH": PATH}, self.limits.workdir, deadline_s=deadline_s, cap=cap,
                        stdin_data=stdin_data, kill_factor=kill_factor)
        self._wipe = ""
        return raw

    def reset(self) -> None:
        """Recycle for a new episode: restore the episode budget now; the work dir and ``/tmp``
        are wiped (and processes killed) at the start of the next call, in the same exec, so a
        recycle costs no extra engine round trip."""
        self._check_usable()
        with self._lock:
            # (re-entering the cwd fails, exit 126, if the wipe removed it: as an eager wipe would)
            self._wipe = (f"kill -9 -1 2>/dev/null; find {self.limits.workdir} /tmp -mindepth 1 -delete 2>/dev/null; "
                          'cd "$PWD" 2>/dev/null || { echo "sandbox: $PWD was removed by reset" >&2; exit 126; }; ')
            self._exec_time = 0.0

    def _spawn_like(self) -> DockerSandbox:
        return DockerSandbox(image=self.image, limits=self.limits, client=self.client, retries=self.retries)


def _short(command: Command) -> str:
    text = command if isinstance(command, str) else " ".join(map(str, command))
    return text if len(text) <= 60 else text[:57] + "..."

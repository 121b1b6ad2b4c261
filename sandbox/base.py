"""The ``Sandbox`` protocol: where model-written code runs, and the records it speaks in.

Contract (every backend — Docker, bubblewrap, the remote client — honours it):

- A sandbox is an isolated filesystem + process space, started by its backend and owned by one
  episode. ``exec`` runs a command inside it and always returns an :class:`ExecResult` when the
  *code* misbehaved (non-zero exit, timeout, OOM, huge output): that is data for the environment.
- When the *sandbox itself* fails (engine gone, container vanished, backend unavailable), the
  call raises :class:`SandboxError` (or a subclass). Environments turn it into
  ``stop_reason="sandbox_error"``; the learner masks that trajectory instead of scoring it 0.
- Nothing ever runs on the bare host: a backend that cannot isolate raises
  :class:`SandboxUnavailable` at start (fail closed).
- ``put_files`` / ``get_files`` move files as ``{relative path: bytes}``; paths are relative to
  the sandbox work dir. Absolute paths, ``..`` components and symlinks met inside the sandbox
  never make the host read or write outside the returned mapping.
- ``fork(n)`` returns ``n`` new sandboxes holding a copy of this one's work-dir state.
- ``close()`` is idempotent and releases everything; sandboxes are context managers.
- Calls on one sandbox are serialised (one exec at a time); use several sandboxes (or ``fork``)
  for parallel work.
- Processes never outlive the ``exec`` that started them (background and ``setsid`` children are
  killed when it returns), so one exec's leftovers cannot interfere with the next step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Command = str | Sequence[str]
"""A shell string (run with ``/bin/sh -c``) or an argv list (run directly)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits a sandbox enforces; environments declare theirs in their spec.

    Attributes:
        cpus: CPU share (1.0 = one core).
        memory_mb: memory cap (RAM, no swap); exceeding it OOM-kills the process.
        pids: maximum number of processes/threads (fork-bomb guard).
        disk_mb: size of the writable work dir (tmpfs).
        inodes: maximum number of files in the work dir.
        exec_timeout_s: default wall-clock limit of one ``exec``.
        episode_timeout_s: total ``exec`` wall time allowed over the sandbox's life.
        output_bytes: stdout and stderr are each capped to this many bytes (head + tail kept).
        network: allow network access (off by default).
        workdir: the writable work dir inside the sandbox.
    """

    cpus: float = 1.0
    memory_mb: int = 512
    pids: int = 128
    disk_mb: int = 256
    inodes: int = 20_000
    exec_timeout_s: float = 30.0
    episode_timeout_s: float = 600.0
    output_bytes: int = 64_000
    network: bool = False
    workdir: str = "/work"

    def __post_init__(self) -> None:
        for name in ("cpus", "memory_mb", "pids", "disk_mb", "inodes", "exec_timeout_s", "episode_timeout_s", "output_bytes"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {value!r}")
        if not self.workdir.startswith("/"):
            raise ValueError(f"SandboxLimits.workdir must be an absolute path, got {self.workdir!r}")


@dataclass(frozen=True)
class ExecResult:
    """What one ``exec`` did. The code failing is recorded here, never raised.

    Attributes:
        exit_code: the process's exit status (``-signal`` or 128+signal conventions are
            normalised to 128+signal; 137 for SIGKILL).
        stdout, stderr: decoded output (UTF-8, undecodable bytes replaced), each capped to
            ``limits.output_bytes`` with the middle replaced by a marker.
        timed_out: the wall-clock limit killed the process tree.
        oom_killed: the memory limit killed a process.
        output_truncated: some output was dropped by the cap.
        duration: wall seconds the exec took.
    """

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    output_truncated: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


class SandboxError(RuntimeError):
    """The sandbox or its engine failed (not the code inside it). Maps to ``sandbox_error``."""


class WorkdirFull(SandboxError):
    """Writing into the work dir failed because it is full (``disk_mb`` or ``inodes`` spent).

    The code in the sandbox fills the work dir, so callers that run a policy's code treat this as
    the policy's outcome (a tool error, a failed test run), never as an infrastructure failure."""


class SandboxUnavailable(SandboxError):
    """No isolating backend can run here (no Docker engine, no bubblewrap, missing image)."""


class SandboxClosed(SandboxError):
    """The sandbox was closed (or its container vanished) and cannot be used."""


class EpisodeTimeExceeded(SandboxError):
    """The sandbox's per-episode exec time budget is spent."""


@runtime_checkable
class Sandbox(Protocol):
    """One isolated workspace. See the module docstring for the contract."""

    limits: SandboxLimits

    def exec(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run ``command``; ``timeout`` defaults to ``limits.exec_timeout_s``."""
        ...

    def put_files(self, files: Mapping[str, bytes]) -> None:
        """Write ``{relative path: content}`` under the work dir (parents created)."""
        ...

    def get_files(self, paths: Sequence[str]) -> dict[str, bytes]:
        """Read regular files (or directories, recursively) under the work dir; missing paths are
        left out of the result. Symlinks are not followed out of the sandbox."""
        ...

    def fork(self, n: int = 1) -> list[Sandbox]:
        """``n`` new sandboxes with a copy of this one's work dir."""
        ...

    def reset(self) -> None:
        """Wipe the work dir and ``/tmp``, kill leftover processes and restore the episode budget
        (used by the pool to recycle a sandbox between episodes)."""
        ...

    def alive(self) -> bool:
        """Whether the sandbox can still run commands (cheap health check)."""
        ...

    def close(self) -> None:
        """Release the sandbox; idempotent."""
        ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass
class SandboxConfig:
    """How to obtain sandboxes: which backend, image/rootfs, limits, pool size.

    ``backend``: ``"auto"`` (Docker if an engine answers, else bubblewrap, else
    :class:`SandboxUnavailable`; ``$TURNGYM_SANDBOX_BACKEND`` overrides ``"auto"``), ``"docker"``,
    ``"bwrap"`` or ``"remote"`` (``url`` + ``token`` of a ``turngym sandbox serve`` host). There is
    deliberately no backend that runs code on the bare host. ``image``: a Docker image tag (Docker)
    or a rootfs directory (bubblewrap); ``None`` = the offline image, built if missing.
    ``pool_size``: default size of a :class:`~turngym.sandbox.pool.SandboxPool`.
    """

    backend: str = "auto"
    image: str | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    pool_size: int = 0
    url: str | None = None
    token: str | None = None

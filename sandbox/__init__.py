"""Sandboxes for model-written code: Docker and bubblewrap backends, warm pool, offline images, remote service.

Entry points:

- :func:`open_sandbox` — one started sandbox from a :class:`SandboxConfig` (+ keyword overrides;
  fields of :class:`SandboxLimits` such as ``memory_mb=128`` are accepted too).
- :class:`SandboxPool` — warm pool with ``acquire()`` / ``release(sb, reuse=...)`` and async twins.
- :func:`turngym.sandbox.image.ensure_image` — the offline image tag (built if missing).

Backend choice (``config.backend``, default ``"auto"`` or ``$TURNGYM_SANDBOX_BACKEND``): Docker
when an engine answers, else bubblewrap when usable, else :class:`SandboxUnavailable` — code never
runs on the bare host (there is no unisolated backend). See :mod:`turngym.sandbox.factory`.
"""

from __future__ import annotations

from turngym.sandbox.base import (
    Command,
    EpisodeTimeExceeded,
    ExecResult,
    Sandbox,
    SandboxClosed,
    SandboxConfig,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
    WorkdirFull,
)
from turngym.sandbox.factory import BACKENDS, choose_backend, open_sandbox, resolve_config
from turngym.sandbox.pool import SandboxPool

__all__ = [
    "BACKENDS", "Command", "EpisodeTimeExceeded", "ExecResult", "Sandbox", "SandboxClosed", "SandboxConfig",
    "SandboxError", "SandboxLimits", "SandboxPool", "SandboxUnavailable", "choose_backend", "open_sandbox",
    "resolve_config", "WorkdirFull",
]

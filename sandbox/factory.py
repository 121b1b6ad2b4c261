"""Sandboxes from a :class:`SandboxConfig`: option overrides, the backend choice (fail closed) and
:func:`open_sandbox`.

Backend choice (``config.backend``, default ``"auto"`` or ``$TURNGYM_SANDBOX_BACKEND``): Docker
when an engine answers, else bubblewrap when usable, else :class:`SandboxUnavailable` — code never
runs on the bare host (there is no unisolated backend). The backend modules import without their
optional packages (``docker``, ``requests``), which load when a sandbox is made.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from turngym.sandbox.base import Sandbox, SandboxConfig, SandboxLimits, SandboxUnavailable
from turngym.sandbox.bwrap import BwrapSandbox, bwrap_problem
from turngym.sandbox.docker import DockerSandbox, engine_problem
from turngym.sandbox.remote import RemoteSandbox

BACKENDS = ("auto", "docker", "bwrap", "remote")
_LIMIT_FIELDS = {f.name for f in dataclasses.fields(SandboxLimits)}
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SandboxConfig)}


def resolve_config(config: SandboxConfig | None = None, **overrides: Any) -> SandboxConfig:
    """``config`` with ``overrides`` applied (limit fields go into ``config.limits``)."""
    config = config or SandboxConfig()
    limit_changes = {k: overrides.pop(k) for k in list(overrides) if k in _LIMIT_FIELDS}
    unknown = set(overrides) - _CONFIG_FIELDS
    if unknown:
        raise TypeError(f"unknown sandbox option(s) {sorted(unknown)}; valid: "
                        f"{sorted(_CONFIG_FIELDS | _LIMIT_FIELDS)}")
    if isinstance(overrides.get("limits"), dict):
        overrides["limits"] = SandboxLimits(**overrides["limits"])
    config = dataclasses.replace(config, **overrides)
    if limit_changes:
        config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, **limit_changes))
    if config.backend == "auto" and os.environ.get("TURNGYM_SANDBOX_BACKEND"):
        config = dataclasses.replace(config, backend=os.environ["TURNGYM_SANDBOX_BACKEND"])
    if config.backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {config.backend!r}; choose one of {BACKENDS}")
    return config


def choose_backend(config: SandboxConfig) -> str:
    """The concrete backend ``config`` resolves to; raises :class:`SandboxUnavailable` (fail closed)."""
    if config.backend != "auto":
        return config.backend
    docker_why = engine_problem()
    if docker_why is None:
        return "docker"
    bwrap_why = bwrap_problem()
    if bwrap_why is None:
        return "bwrap"
    raise SandboxUnavailable(
        "no isolating sandbox backend is available, refusing to run code on the bare host.\n"
        f"  docker: {docker_why}\n  bwrap: {bwrap_why}\n"
        "Fix: start a Docker engine (`dockerd &`) or install bubblewrap (`apt-get install bubblewrap`); "
        "see `turngym sandbox doctor`."
    )


def open_sandbox(config: SandboxConfig | None = None, **overrides: Any) -> Sandbox:
    """Start and return one sandbox (caller closes it, e.g. ``with open_sandbox() as sb:``)."""
    config = resolve_config(config, **overrides)
    backend = choose_backend(config)
    if backend == "docker":
        return DockerSandbox(image=config.image, limits=config.limits)
    if backend == "bwrap":
        return BwrapSandbox(rootfs=config.image, limits=config.limits)
    if backend == "remote":
        if not config.url:
            raise ValueError("backend='remote' needs url='http://host:port' (and token=...)")
        return RemoteSandbox(config.url, token=config.token, limits=config.limits, image=config.image)
    raise AssertionError(backend)


__all__ = ["BACKENDS", "choose_backend", "open_sandbox", "resolve_config"]

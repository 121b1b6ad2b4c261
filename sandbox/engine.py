"""The Docker engine connection shared by the Docker backend and the image builder: a cached
client per engine address, and a one-line diagnosis when no engine answers.

The ``docker`` package (the ``[sandbox]`` extra) is imported when a client is made, so this module,
and every module importing it, loads without it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from turngym.sandbox.base import SandboxUnavailable

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def docker_client(base_url: str | None = None, *, pool_size: int = 128, timeout: float = 60.0):
    """A cached ``docker.DockerClient`` (``$DOCKER_HOST`` or the local socket) whose HTTP
    connection pool (``pool_size``) exceeds any concurrency we drive."""
    import docker
    import docker.errors

    key = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = docker.DockerClient(base_url=key, timeout=timeout, max_pool_size=pool_size)
            except docker.errors.DockerException as exc:
                raise SandboxUnavailable(f"no Docker engine answers at {key}: {exc}; start dockerd "
                                         "(`dockerd &`, then `docker info`) or set DOCKER_HOST") from exc
            _clients[key] = client
        return client


def engine_problem(client=None) -> str | None:
    """``None`` if a Docker engine answers ``ping``, else a one-line reason."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        cli = client or docker_client()
        where = _engine_address(cli, where)
        cli.api.ping()
        return None
    except Exception as exc:  # docker.errors.DockerException, requests errors, missing package
        return f"no Docker engine answers at {where}: {exc}"


def _engine_address(client, default: str) -> str:
    base = getattr(client.api, "base_url", default)
    if base.startswith("http+docker://"):
        try:
            return "unix://" + client.api.get_adapter(base).socket_path
        except Exception:
            return default
    return base


__all__ = ["docker_client", "engine_problem"]

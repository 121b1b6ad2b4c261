"""Fixtures for the code/SWE tests: small, separately cached task sets and the sandbox check."""

from __future__ import annotations

import pytest


def _sandbox_ready() -> str | None:
    try:
        from turngym.sandbox import choose_backend, resolve_config

        choose_backend(resolve_config())
        return None
    except Exception as exc:  # no docker, no bwrap: these tests need a real sandbox
        return f"no sandbox backend: {exc}"


_WHY = _sandbox_ready()


@pytest.fixture
def sandbox_ready() -> None:
    if _WHY is not None:
        pytest.skip(_WHY)


@pytest.fixture
def make_env(sandbox_ready):
    """``make_env(task_set, **kw)`` → a RepairEnv over a small subset; closed after the test."""
    from turngym.envs.swe.env import RepairEnv

    made = []

    def factory(task_set: str = "coderepair", **kw):
        kw.setdefault("limit", 10)
        env = RepairEnv(task_set=task_set, **kw)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()

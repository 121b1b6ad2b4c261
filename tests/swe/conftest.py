"""Fixtures for the code/SWE tests: small, separately cached task sets and the sandbox check."""

from __future__ import annotations

import os

import pytest


def _sandbox_ready() -> str | None:
    try:
        from turngym.sandbox import choose_backend, resolve_config

        choose_backend(resolve_config())
        return None
    except Exception as exc:  # no docker, no bwrap: these tests need a real sandbox
        return f"no sandbox backend: {exc}"


_WHY = _sandbox_ready()


REQUIRE = os.environ.get("TURNGYM_REQUIRE_DOCKER") == "1"


def skip_or_fail(why: str) -> None:
    """Skip without a sandbox engine; under ``TURNGYM_REQUIRE_DOCKER=1`` (CI) fail instead."""
    if REQUIRE:
        pytest.fail(why + " (TURNGYM_REQUIRE_DOCKER=1: code-env tests must run)")
    pytest.skip(why)


@pytest.fixture
def sandbox_ready() -> None:
    if _WHY is not None:
        skip_or_fail(_WHY)


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


@pytest.fixture
def docker_engine(sandbox_ready) -> None:
    """The Docker engine itself (SWE-bench instances are Docker images); skip or fail without it."""
    from turngym.sandbox.docker import engine_problem

    problem = engine_problem()
    if problem is not None:
        skip_or_fail(f"SWE-bench instances need a Docker engine: {problem}")

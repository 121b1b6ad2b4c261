"""Shared fixtures. Tests import the installed ``turngym`` (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

import turngym

# CI replays a fixed set of examples (reproducible runs; no example database on a clean clone);
# on a workstation every run explores new ones. TURNGYM_FUZZ_SCALE multiplies the fuzz budget.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

GAME_IDS = sorted(i for i, s in turngym.registry().items() if s.family == "game" and i.startswith("turngym/"))


@pytest.fixture(params=GAME_IDS)
def game_id(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def collect_killing_worker():
    """``collect(collector, tasks, policy, rc, at=n) -> (batch, sent)``: a Ray collect during which worker 0
    is SIGKILLed when it is handed its ``n``-th unit; ``sent`` lists the worker of every dispatch (check
    ``sent.count(0) >= n`` to know the kill happened)."""
    import signal

    def collect(collector, tasks, policy, rc, *, at: int):
        victim = collector.pids()[0]
        sent: list[int] = []

        def kill_worker_0(worker: int, unit) -> None:
            sent.append(worker)
            if worker == 0 and sent.count(0) == at:
                os.kill(victim, signal.SIGKILL)

        collector.on_dispatch = kill_worker_0
        try:
            return collector.collect(tasks, policy, rc), sent
        finally:
            collector.on_dispatch = None

    return collect

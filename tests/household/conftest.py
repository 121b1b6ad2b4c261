"""Household fixtures: a private problem cache with a few verified problems per task type."""

from __future__ import annotations

import pytest

pytest.importorskip("alfworld")

from turngym.envs.household.generator import TASK_TYPES, ProblemStore

PER_TYPE = 1


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> ProblemStore:
    """Problems 0..PER_TYPE-1 of every task type, seen split, generated and verified once per session."""
    store = ProblemStore(tmp_path_factory.mktemp("household-cache"))
    for task in TASK_TYPES:
        for index in range(PER_TYPE):
            store.get("seen", task, index)
    return store

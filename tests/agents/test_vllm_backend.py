"""Runs the vLLM backend's tests (``tests/vllm``) in the environment that has vLLM.

vLLM pins its own torch and transformers, so on a CPU machine it lives in a separate venv made by
``.ci/vllm-venv`` (``TURNGYM_VLLM_PYTHON`` names its interpreter; default
``~/.cache/turngym/vllm-cpu-venv/bin/python``). Where vLLM imports in this environment (a GPU
machine with the ``[vllm]`` extra), ``tests/vllm`` is collected directly and this runner skips.
Without either, it skips with the command that fixes it — unless ``TURNGYM_REQUIRE_VLLM=1`` (set by
``.ci/run``), where a missing backend fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = Path.home() / ".cache/turngym/vllm-cpu-venv/bin/python"


def _missing(reason: str) -> None:
    if os.environ.get("TURNGYM_REQUIRE_VLLM") == "1":
        pytest.fail(f"{reason} (TURNGYM_REQUIRE_VLLM=1)")
    pytest.skip(reason)


@pytest.mark.slow
def test_vllm_backend_suite_passes_in_the_vllm_environment():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM imports here: tests/vllm runs in this session directly")
    python = Path(os.environ.get("TURNGYM_VLLM_PYTHON") or DEFAULT_PYTHON)
    if not python.exists():
        _missing(f"no vLLM environment at {python}; run `.ci/vllm-venv` (vLLM's CPU build in its own venv)")
    where = subprocess.run([str(python), "-c", "import turngym, vllm; print(turngym.__file__)"],
                           capture_output=True, text=True, timeout=300)
    if where.returncode != 0:
        _missing(f"{python} cannot import turngym and vllm; rerun `.ci/vllm-venv`: {where.stderr[-500:]}")
    linked = Path(where.stdout.strip()).resolve().parent
    if linked != REPO:
        _missing(f"the vLLM venv runs the turngym at {linked}, not this checkout {REPO}; rerun `.ci/vllm-venv`")
    run = subprocess.run(
        [str(python), "-m", "pytest", "tests/vllm", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    summary = run.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert run.returncode == 0, f"tests/vllm failed in {python}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert "passed" in summary[0] and "skipped" not in summary[0], summary[0]

"""Run a named benchmark suite and write its JSON.

``bench/`` is the package ``turngym.bench`` (shipped in the wheel): each suite is a module exposing
``run(quick: bool = False) -> dict``, loaded by its file path (a fresh module object each time).
This module is importable by path too, which is how ``turngym bench <suite> --json FILE`` uses it::

    import importlib.util
    spec = importlib.util.spec_from_file_location("turngym_bench_run", "bench/run.py")
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    result = bench_run.run_suite("games", quick=True)

or directly: ``python bench/run.py games --json out.json [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# suite name -> script path, relative to the repository root
SUITES: dict[str, str] = {
    "games": "bench/games.py",
    "policy": "bench/policy.py",
    "rollout": "bench/rollout.py",
    "grpo": "bench/grpo.py",
    "updates": "bench/updates.py",
    "tournament": "bench/tournament.py",
    "sandbox": "bench/sandbox.py",
    "search": "bench/search.py",
    "household": "bench/household.py",
    "swe": "bench/swe.py",
    "ray": "bench/ray_rollout.py",
    "vllm": "bench/vllm_backend.py",  # run it with the vLLM environment's python (.ci/vllm-venv)
    "ray-vllm": "bench/ray_vllm.py",  # Ray workers under the vLLM environment's python
    "async": "bench/async_rollout.py",
    "ddp": "bench/data_parallel.py",
    "gateway": "bench/gateway.py",
    "precision": "bench/precision.py",
}


class UnknownSuite(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def suite_path(name: str) -> Path:
    if name not in SUITES:
        raise UnknownSuite(f"unknown benchmark suite {name!r}; choose one of {sorted(SUITES)}")
    return REPO_ROOT / SUITES[name]


def load_suite(name: str) -> ModuleType:
    """Import the suite's script by path (a fresh module object each call)."""
    path = suite_path(name)
    spec = importlib.util.spec_from_file_location(f"turngym_bench_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark suite {name!r} from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ImportError(f"benchmark suite {name!r} ({path}) defines no run(quick) function")
    return module


def run_suite(name: str, quick: bool = False) -> dict[str, Any]:
    """Run suite ``name`` and return its JSON-able result."""
    result = load_suite(name).run(quick=quick)
    result.setdefault("suite", name)
    return result


def write_json(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a turngym benchmark suite.")
    parser.add_argument("suite", choices=sorted(SUITES), help="which suite to run")
    parser.add_argument("--json", metavar="FILE", help="write the result JSON here (else stdout)")
    parser.add_argument("--quick", action="store_true", help="fewer episodes and rounds")
    args = parser.parse_args(argv)
    module = load_suite(args.suite)
    result = module.run(quick=args.quick)
    result.setdefault("suite", args.suite)
    if args.json:
        write_json(result, args.json)
    else:
        print(json.dumps(result, indent=2))
    summary = getattr(module, "summary", None)
    if callable(summary):
        print(summary(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

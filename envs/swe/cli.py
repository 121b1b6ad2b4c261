"""``turngym swe …``: build and verify the code/SWE task sets.

    turngym swe build  [--set coderepair|swe|all] [--rebuild] [--limit N] [--json FILE]
    turngym swe verify [--set coderepair|swe|swebench|all] [--limit N] [--instances PATH] [--json FILE]
    turngym swe fixture                      build the local SWE-bench-format fixture, print its path

``build`` verifies every task in the sandbox (buggy fails >= 1 hidden test, gold passes all) and
caches the set under ``~/.cache/turngym/swe/<hash>/``. ``verify`` re-checks a built set through the
grader itself: the gold patch must grade as passing, and a patch that changes no code
(a ``NOTES.md`` file) must grade as failing, each in a fresh sandbox.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence


def _sets(choice: str, allowed: tuple[str, ...]) -> list[str]:
    return list(allowed) if choice == "all" else [choice]


def _build(args) -> int:
    from turngym.envs.swe.build import load_tasks

    reports = []
    for kind in _sets(args.set, ("coderepair", "swe")):
        tasks, report = load_tasks(kind, rebuild=args.rebuild, limit=args.limit,
                                   log=(lambda s: print("  " + s, file=sys.stderr)) if args.verbose else (lambda s: None))
        status = "cached" if report.cached else f"built and verified in {report.seconds:.1f} s"
        print(f"{kind}: {report.tasks} tasks ({status}); skipped {len(report.skipped)}; {report.path}")
        for task_id, why in sorted(report.skipped.items()):
            print(f"  skipped {task_id}: {why}")
        reports.append({"kind": kind, "tasks": report.tasks, "skipped": report.skipped, "seconds": report.seconds,
                        "cached": report.cached, "path": report.path})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports, f, indent=2)
    return 0


def verify_tasks(tasks, open_fresh) -> dict:
    """Grade the gold patch (must pass) and a code-free patch (must fail) of every task."""
    from turngym.envs.swe import grading
    from turngym.envs.swe.tasks import unified_diff

    noise = unified_diff({}, {"NOTES.md": "notes\n"})
    bad = []
    start = time.perf_counter()
    for task in tasks:
        gold = grading.grade(task, task.gold_patch, open_fresh)
        buggy = grading.grade(task, noise, open_fresh)
        if not gold.passed or buggy.passed:
            bad.append({"task_id": task.task_id, "gold_passed": gold.passed, "buggy_passed": buggy.passed,
                        "gold_message": gold.message})
    return {"tasks": len(tasks), "failed": bad, "seconds": time.perf_counter() - start}


def _verify(args) -> int:
    from turngym.envs.swe.env import sandbox_pool, task_set

    results, ok = [], True
    for kind in _sets(args.set, ("coderepair", "swe", "swebench")):
        tasks = task_set(kind, "all", args.instances if kind == "swebench" else None)
        if args.limit:
            tasks = tasks[: args.limit]
        by_image: dict = {}
        for t in tasks:
            by_image.setdefault(t.image, []).append(t)
        summary = {"kind": kind, "tasks": 0, "failed": [], "seconds": 0.0}
        for image, group in by_image.items():
            pool = sandbox_pool(image, 2 if image is None else 0, {"memory_mb": 1024, "pids": 256})
            part = verify_tasks(group, pool.sandbox)
            summary["tasks"] += part["tasks"]
            summary["failed"] += part["failed"]
            summary["seconds"] += part["seconds"]
        ok &= not summary["failed"]
        print(f"{kind}: {summary['tasks'] - len(summary['failed'])}/{summary['tasks']} tasks verified through the grader "
              f"(gold passes, code-free patch fails) in {summary['seconds']:.1f} s")
        for bad in summary["failed"]:
            print(f"  FAILED {bad}")
        results.append(summary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym swe``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="turngym swe", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build", help="build, verify in the sandbox and cache the task sets")
    p.add_argument("--set", choices=["coderepair", "swe", "all"], default="all")
    p.add_argument("--rebuild", action="store_true", help="ignore the cache")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems/repos")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--json", metavar="FILE")
    p = sub.add_parser("verify", help="re-check built tasks through the grader (gold passes, no-op fails)")
    p.add_argument("--set", choices=["coderepair", "swe", "swebench", "all"], default="all")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--instances", default=None, help="SWE-bench-format JSON/JSONL (default: the local fixture)")
    p.add_argument("--json", metavar="FILE")
    sub.add_parser("fixture", help="build the local SWE-bench-format fixture and print its JSONL path")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            return _build(args)
        if args.cmd == "verify":
            return _verify(args)
        from turngym.envs.swe.swebench import build_fixture

        print(build_fixture())
        return 0
    except Exception as exc:  # a CLI answers with the reason, not a traceback
        from turngym.sandbox.base import SandboxError

        if isinstance(exc, (SandboxError, ImportError, ValueError)):
            print(f"turngym swe {args.cmd}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        raise

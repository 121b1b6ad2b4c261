"""``turngym swe …``: build and verify the code/SWE task sets.

    turngym swe build  [--set coderepair|swe|all] [--rebuild] [--limit N] [--json FILE]
    turngym swe verify [--set coderepair|swe|swebench|all] [--limit N] [--instances PATH] [--json FILE]
    turngym swe fixture                      build the local SWE-bench-format fixture, print its path

``build`` verifies every task in the sandbox (buggy fails >= 1 hidden test, gold passes all) and
caches the set under ``~/.cache/turngym/swe/<hash>/``. ``verify`` re-checks a built set through the
grader itself: the gold patch must grade as passing, and a patch that changes no code
(a ``NOTES.md`` file) must grade as failing, each in a fresh sandbox.

Results are tables on stdout (tab-separated when piped), progress on stderr (``--quiet`` silences
it), ``--json [FILE]`` the result as JSON. Exit status: 0 ok, 1 a task failed verification or the
sandbox is unavailable, 2 bad options or input.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from turngym.console import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Column,
    Progress,
    add_json_argument,
    add_quiet_argument,
    emit_json,
    error,
    print_table,
)


def _sets(choice: str, allowed: tuple[str, ...]) -> list[str]:
    return list(allowed) if choice == "all" else [choice]


def _build(args) -> int:
    from turngym.envs.swe.build import load_tasks

    reports = []
    for kind in _sets(args.set, ("coderepair", "swe")):
        with Progress(f"swe build {kind}") as progress:
            def log(line: str, progress: Progress = progress) -> None:
                progress.update(info=line[:80])
                if args.verbose:
                    progress.note("  " + line)

            _, report = load_tasks(kind, rebuild=args.rebuild, limit=args.limit, log=log)
            progress.update(info="cached" if report.cached else f"{report.tasks} tasks verified")
        reports.append({"kind": kind, "tasks": report.tasks, "skipped": report.skipped, "seconds": report.seconds,
                        "cached": report.cached, "path": report.path})
    if emit_json(reports, args.json):
        return EXIT_OK
    print_table(
        [Column("set"), Column("tasks", "right"), Column("status"), Column("skipped", "right"), Column("path")],
        [(r["kind"], r["tasks"], "cached" if r["cached"] else f"built and verified in {r['seconds']:.1f} s",
          len(r["skipped"]), r["path"]) for r in reports],
        title="swe task sets",
    )
    skipped = [(r["kind"], task_id, why) for r in reports for task_id, why in sorted(r["skipped"].items())]
    if skipped:
        print_table(["set", "task_id", "why skipped"], skipped, title="skipped tasks")
    return EXIT_OK


def verify_tasks(tasks, open_fresh, on_task: Callable[[object, bool], None] | None = None) -> dict:
    """Grade the gold patch (must pass) and a code-free patch (must fail) of every task;
    ``on_task(task, ok)`` after each (progress)."""
    from turngym.envs.swe import grading
    from turngym.envs.swe.tasks import unified_diff

    noise = unified_diff({}, {"NOTES.md": "notes\n"})
    bad = []
    start = time.perf_counter()
    for task in tasks:
        gold = grading.grade(task, task.gold_patch, open_fresh)
        buggy = grading.grade(task, noise, open_fresh)
        ok = gold.passed and not buggy.passed
        if not ok:
            bad.append({"task_id": task.task_id, "gold_passed": gold.passed, "buggy_passed": buggy.passed,
                        "gold_message": gold.message})
        if on_task is not None:
            on_task(task, ok)
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
        with Progress(f"swe verify {kind}", len(tasks), unit="tasks") as progress:
            def on_task(task, passed: bool, progress: Progress = progress) -> None:
                progress.advance(info=f"{task.task_id} {'ok' if passed else 'FAILED'}")

            for image, group in by_image.items():
                pool = sandbox_pool(image, 2 if image is None else 0, {"memory_mb": 1024, "pids": 256})
                part = verify_tasks(group, pool.sandbox, on_task=on_task)
                summary["tasks"] += part["tasks"]
                summary["failed"] += part["failed"]
                summary["seconds"] += part["seconds"]
            progress.update(info=f"{len(summary['failed'])} failed")
        ok &= not summary["failed"]
        results.append(summary)
    code = EXIT_OK if ok else EXIT_FAILED
    if emit_json(results, args.json):
        return code
    print_table(
        [Column("set"), Column("verified", "right"), Column("tasks", "right"), Column("seconds", "right")],
        [(r["kind"], r["tasks"] - len(r["failed"]), r["tasks"], f"{r['seconds']:.1f}") for r in results],
        title="verified through the grader (gold passes, a code-free patch fails)",
    )
    failed = [(r["kind"], b["task_id"], b["gold_passed"], b["buggy_passed"], b["gold_message"])
              for r in results for b in r["failed"]]
    if failed:
        print_table(["set", "task_id", "gold passed", "code-free passed", "gold message"], failed, title="FAILED tasks")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym swe``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="turngym swe", description=__doc__.split("\n\n")[0],
                                     epilog="Exit status: 0 ok, 1 a task failed verification or no sandbox, 2 usage.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build", help="build, verify in the sandbox and cache the task sets")
    p.add_argument("--set", choices=["coderepair", "swe", "all"], default="all")
    p.add_argument("--rebuild", action="store_true", help="ignore the cache")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems/repos")
    p.add_argument("--verbose", "-v", action="store_true", help="print every build step on stderr")
    add_json_argument(p, "one report per set (tasks, skipped, seconds, cached, path)")
    add_quiet_argument(p)
    p = sub.add_parser("verify", help="re-check built tasks through the grader (gold passes, no-op fails)")
    p.add_argument("--set", choices=["coderepair", "swe", "swebench", "all"], default="all")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--instances", default=None, help="SWE-bench-format JSON/JSONL (default: the local fixture)")
    add_json_argument(p, "one summary per set (tasks, failed, seconds)")
    add_quiet_argument(p)
    p = sub.add_parser("fixture", help="build the local SWE-bench-format fixture and print its JSONL path")
    add_json_argument(p, "the fixture's path")
    add_quiet_argument(p)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            return _build(args)
        if args.cmd == "verify":
            return _verify(args)
        from turngym.envs.swe.swebench import build_fixture

        with Progress("swe fixture"):
            path = build_fixture()
        if not emit_json({"path": str(path)}, args.json):
            print(path)
        return EXIT_OK
    except Exception as exc:  # a CLI answers with the reason, not a traceback
        from turngym.sandbox.base import SandboxError

        if isinstance(exc, ValueError):
            error(f"{type(exc).__name__}: {exc}", prefix=f"turngym swe {args.cmd}")
            return EXIT_USAGE
        if isinstance(exc, (SandboxError, ImportError)):
            error(f"{type(exc).__name__}: {exc}", prefix=f"turngym swe {args.cmd}")
            return EXIT_FAILED
        raise

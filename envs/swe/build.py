"""Build, verify and cache the task sets (``turngym swe build``; called lazily by the envs).

Every task is verified in the sandbox at build time: the buggy repository fails at least one hidden
test and the gold patch, applied with ``git apply``, passes every test. Verified sets are cached as
JSON under ``~/.cache/turngym/swe/<hash>/<kind>.json``, where the hash covers the generator code,
the source material (HumanEval problems / repo bundles) and the sandbox image recipe, so a change to
any of them rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from turngym.envs.swe import coderepair, grading, mutations, swerepos
from turngym.envs.swe.tasks import RepoTask, content_hash

KINDS = ("coderepair", "swe")
BUILD_VERSION = "1"


@dataclass
class BuildReport:
    kind: str
    tasks: int
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False
    path: str = ""


def cache_root() -> Path:
    return Path(os.environ.get("TURNGYM_CACHE", Path.home() / ".cache" / "turngym")) / "swe"


def _source_hash(*modules) -> str:
    h = hashlib.sha256()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()[:16]


def _image_key() -> str:
    """The sandbox image recipe's hash: a task set verified in another image is rebuilt."""
    from turngym.sandbox.image import recipe_hash

    return recipe_hash()


def build_key(kind: str, limit: int | None = None, names: tuple[str, ...] | None = None) -> str:
    if kind == "coderepair":
        material = json.dumps(coderepair.load_problems(), sort_keys=True)
        code = _source_hash(coderepair, mutations, grading)
    elif kind == "swe":
        material = json.dumps([b.__dict__ for b in swerepos.load_bundles()], sort_keys=True, default=str)
        code = _source_hash(swerepos, grading)
    else:
        raise ValueError(f"unknown task kind {kind!r}; choose one of {KINDS}")
    return content_hash(BUILD_VERSION, kind, limit, names, hashlib.sha256(material.encode()).hexdigest(), code, _image_key())


def default_opener(**limits) -> Callable[[], object]:
    """A function opening a fresh sandbox with build-time limits (long execs, more memory)."""
    from turngym.sandbox import open_sandbox

    opts = {"exec_timeout_s": 1800.0, "episode_timeout_s": 3600.0, "memory_mb": 1024, "pids": 256,
            "disk_mb": 512, "inodes": 100_000}
    opts.update(limits)
    return lambda: open_sandbox(**opts)


def load_tasks(kind: str, *, rebuild: bool = False, limit: int | None = None, names: tuple[str, ...] | None = None,
               opener: Callable[[], object] | None = None,
               log: Callable[[str], None] = lambda _: None) -> tuple[list[RepoTask], BuildReport]:
    """The verified task set of ``kind`` (from the cache, or built in the sandbox and cached).

    ``limit``: only the first N problems/repos; ``names``: only these repos (``swe``) — smaller,
    separately cached sets for tests and quick runs.
    """
    names = tuple(names) if names else None
    key = build_key(kind, limit, names)
    path = cache_root() / key / f"{kind}.json"
    if path.exists() and not rebuild:
        data = json.loads(path.read_text())
        tasks = [RepoTask.from_dict(t) for t in data["tasks"]]
        return tasks, BuildReport(kind, len(tasks), data.get("skipped", {}), data.get("seconds", 0.0), True, str(path))
    opener = opener or default_opener()
    start = time.perf_counter()
    if kind == "coderepair":
        problems = coderepair.load_problems()
        if limit is not None:
            problems = dict(list(problems.items())[:limit])
        tasks, skipped = coderepair.build(opener, problems, log=log)
    else:
        bundles = swerepos.load_bundles()
        if names:
            unknown = set(names) - {b.name for b in bundles}
            if unknown:
                raise ValueError(f"unknown repo name(s) {sorted(unknown)}; known: {[b.name for b in bundles]}")
            bundles = [b for b in bundles if b.name in names]
        if limit is not None:
            bundles = bundles[:limit]
        tasks, skipped = build_swe(opener, bundles, log=log)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"kind": kind, "key": key, "seconds": seconds, "skipped": skipped,
                               "tasks": [t.to_dict() for t in tasks]}))
    tmp.replace(path)
    return tasks, BuildReport(kind, len(tasks), skipped, seconds, False, str(path))


def build_swe(opener: Callable[[], object], bundles: list[swerepos.RepoBundle], *,
              log: Callable[[str], None] = lambda _: None) -> tuple[list[RepoTask], dict[str, str]]:
    """Verify each authored repo in the sandbox and measure its FAIL_TO_PASS / PASS_TO_PASS lists."""
    tasks, skipped = [], {}
    with opener() as sb:
        for b in bundles:
            draft = RepoTask(task_id=f"swe/{b.name}", kind="swe", problem_statement=b.issue, files=b.buggy,
                             hidden_tests=b.hidden_tests, gold_patch=b.gold_patch, fail_to_pass=(), pass_to_pass=(),
                             visible_tests=(), split=b.split)
            files = b.visible_test_files + sorted(b.hidden_tests)
            probe = tuple(f"{f}::__probe__" for f in files)
            d_bug, d_fix = f"build/{b.name}/buggy", f"build/{b.name}/gold"
            grading.setup_repo(sb, draft, d_bug)
            grading.restore_tests(sb, draft, d_bug)
            buggy = grading.run_pytest(sb, d_bug, probe).all_nodeids(files)
            grading.setup_repo(sb, draft, d_fix)
            applied, message = grading.apply_patch(sb, b.gold_patch, d_fix)
            if not applied:
                skipped[draft.task_id] = f"gold patch does not apply: {message}"
                continue
            grading.restore_tests(sb, draft, d_fix)
            gold = grading.run_pytest(sb, d_fix, probe).all_nodeids(files)
            sb.exec(["rm", "-rf", f"{sb.limits.workdir}/build/{b.name}"])
            hidden_ids = [t for t in gold if t.split("::")[0] in b.hidden_tests]
            visible_ids = [t for t in gold if t.split("::")[0] not in b.hidden_tests]
            f2p = tuple(t for t in hidden_ids if buggy.get(t) != "passed")
            if not gold or any(s != "passed" for s in gold.values()):
                skipped[draft.task_id] = f"gold repo fails tests: {[t for t, s in gold.items() if s != 'passed']}"
                continue
            if not f2p:
                skipped[draft.task_id] = "the buggy repo passes every hidden test"
                continue
            p2p = tuple(t for t in gold if t not in f2p)
            baseline = sum(buggy.get(t) == "passed" for t in visible_ids) / max(1, len(visible_ids))
            tasks.append(RepoTask(
                task_id=draft.task_id, kind="swe", problem_statement=b.issue, files=b.buggy, hidden_tests=b.hidden_tests,
                gold_patch=b.gold_patch, fail_to_pass=f2p, pass_to_pass=p2p, visible_tests=tuple(visible_ids),
                visible_baseline=baseline, split=b.split, meta={"title": b.title, "repo": b.name},
            ))
            log(f"{draft.task_id}: {len(f2p)} fail-to-pass, {len(p2p)} pass-to-pass, visible baseline {baseline:.2f}")
    return tasks, skipped

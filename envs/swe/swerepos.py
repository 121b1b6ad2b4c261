"""``turngym/SWE-v0`` tasks: project-authored multi-file Python repositories with one real bug each.

Each repository is one bundle file ``repos/<name>.repo`` (package data), sections introduced by a
line ``@@@ <kind> [arg]``:

* ``@@@ meta`` — ``key: value`` lines (``split: seen|unseen``, ``title: …``).
* ``@@@ issue`` — the issue text shown to the agent (a user's bug report).
* ``@@@ file <path>`` — a repository file, written in its *fixed* form with the bug inline::

      #[fix]
          if qty <= 0:
      #[bug]
          if qty < 0:
      #[end]

  The fixed repo keeps the ``fix`` lines, the buggy one the ``bug`` lines (marker lines vanish).
* ``@@@ hidden <path>`` — a test file added only at grading (the SWE-bench ``test_patch``).

The gold patch is the diff buggy → fixed; FAIL_TO_PASS / PASS_TO_PASS are measured at build time
by running pytest in the sandbox on both versions (:mod:`.build`), never written by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from turngym.envs.swe.tasks import unified_diff

_SECTION = re.compile(r"^@@@ (\w+)(?: (.+))?$")


@dataclass(frozen=True)
class RepoBundle:
    """One authored repository: both versions of its files, hidden tests and the issue."""

    name: str
    split: str
    title: str
    issue: str
    buggy: dict[str, str]
    fixed: dict[str, str]
    hidden_tests: dict[str, str]

    @property
    def gold_patch(self) -> str:
        return unified_diff(self.buggy, self.fixed)

    @property
    def visible_test_files(self) -> list[str]:
        return sorted(p for p in self.fixed if p.startswith("tests/") and p.endswith(".py") and "/test_" in "/" + p)


def _resolve(text: str, path: str) -> tuple[str, str]:
    """``(fixed, buggy)`` versions of a file body with inline ``#[fix]/#[bug]/#[end]`` markers."""
    fixed, buggy, state = [], [], None
    for line in text.splitlines(keepends=True):
        tag = line.strip()
        if tag in ("#[fix]", "#[bug]", "#[end]"):
            expected = {"#[fix]": (None,), "#[bug]": ("fix",), "#[end]": ("bug",)}[tag]
            if state not in expected:
                raise ValueError(f"{path}: marker {tag} out of order")
            state = {"#[fix]": "fix", "#[bug]": "bug", "#[end]": None}[tag]
            continue
        if state in (None, "fix"):
            fixed.append(line)
        if state in (None, "bug"):
            buggy.append(line)
    if state is not None:
        raise ValueError(f"{path}: unterminated bug marker")
    return "".join(fixed), "".join(buggy)


def parse_bundle(name: str, text: str) -> RepoBundle:
    meta: dict[str, str] = {}
    issue = ""
    fixed: dict[str, str] = {}
    buggy: dict[str, str] = {}
    hidden: dict[str, str] = {}
    kind, arg, body = None, None, []

    def flush() -> None:
        nonlocal issue
        content = "".join(body)
        if kind == "meta":
            for line in content.splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    meta[k.strip()] = v.strip()
        elif kind == "issue":
            issue = content.strip() + "\n"
        elif kind == "file":
            fixed[arg], buggy[arg] = _resolve(content, f"{name}:{arg}")
        elif kind == "hidden":
            hidden[arg] = content
        elif kind is not None:
            raise ValueError(f"{name}: unknown section {kind!r}")

    for line in text.splitlines(keepends=True):
        m = _SECTION.match(line.rstrip("\n"))
        if m:
            flush()
            kind, arg, body = m.group(1), m.group(2), []
        else:
            body.append(line)
    flush()
    if fixed == buggy:
        raise ValueError(f"{name}: no #[fix]/#[bug] marker, so the repo has no bug")
    if not hidden:
        raise ValueError(f"{name}: no @@@ hidden test file")
    return RepoBundle(name, meta.get("split", "seen"), meta.get("title", name), issue, buggy, fixed, hidden)


def load_bundles(split: str | None = None) -> list[RepoBundle]:
    """Every bundle shipped in ``repos/`` (sorted by name), optionally one split only."""
    root = resources.files("turngym.envs.swe") / "repos"
    bundles = [
        parse_bundle(entry.name[: -len(".repo")], entry.read_text(encoding="utf-8"))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".repo")
    ]
    return [b for b in bundles if split in (None, "all", b.split)]

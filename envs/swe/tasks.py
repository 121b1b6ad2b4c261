"""The task record shared by the three task sets, and pure helpers on patches and test paths.

A :class:`RepoTask` is everything an episode and its grader need: the buggy repository (as files,
or as a directory inside an instance image for SWE-bench-format data), the issue text, the hidden
tests that grading adds (SWE-bench's ``test_patch``), the gold patch, and the FAIL_TO_PASS /
PASS_TO_PASS test ids (pytest node ids, ``tests/test_x.py::test_name``).

Test-path rule (:func:`is_test_path`): files under a ``tests``/``test`` directory, ``test_*.py``,
``*_test.py``, ``conftest.py`` and the pytest/tox/setup config files. The agent's diff to such paths
is dropped at grading, and those files are restored from the task, so editing, deleting or adding
tests cannot change a grade.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

TEST_CONFIG_FILES = frozenset({"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py", "usercustomize.py"})


@dataclass(frozen=True)
class RepoTask:
    """One repair task.

    Attributes:
        task_id: unique id, e.g. ``coderepair/HumanEval-12`` or ``swe/ledger-1``.
        kind: ``coderepair``, ``swe`` or ``swebench``.
        problem_statement: the issue text shown to the agent.
        files: the buggy repository ``{relative path: text}`` (empty for image-based instances).
        hidden_tests: test files ``{relative path: text}`` written at grading (never shown).
        gold_patch: unified diff (``a/`` ``b/`` prefixes) from the buggy repo to the fixed one.
        fail_to_pass / pass_to_pass: pytest node ids graded; all must pass for success.
        visible_tests: node ids ``run_tests`` runs (files the agent can see).
        visible_baseline: fraction of ``visible_tests`` passing on the buggy repo (build-time).
        split: ``seen`` / ``unseen`` (SWE-v0) or ``all``.
        image: instance image (SWE-bench format); ``None``: the default sandbox image.
        repo_dir: where the repo lives inside ``image`` (SWE-bench images: ``/testbed``).
        test_cmd: the python interpreter/pytest launcher inside the image (``python3``).
        meta: build facts (mutation kind, source problem…), never shown to agents.
    """

    task_id: str
    kind: str
    problem_statement: str
    files: dict[str, str]
    hidden_tests: dict[str, str]
    gold_patch: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    visible_tests: tuple[str, ...]
    visible_baseline: float = 0.0
    split: str = "all"
    image: str | None = None
    repo_dir: str | None = None
    python: str = "python3"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def graded_tests(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.fail_to_pass + self.pass_to_pass))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoTask:
        data = dict(data)
        for key in ("fail_to_pass", "pass_to_pass", "visible_tests"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


def is_test_path(path: str) -> bool:
    """Whether ``path`` (repo-relative, ``/``-separated) is a test or test-configuration file."""
    parts = posixpath.normpath(path).split("/")
    name = parts[-1]
    return (
        any(p in ("tests", "test", "testing") for p in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name in TEST_CONFIG_FILES
        or name.endswith(".pth")
    )


CODEREPAIR_SPLITS = ("train", "dev")
CODEREPAIR_DEV_EVERY = 5


def coderepair_split(task_id: str) -> str:
    """The CodeRepair split of ``task_id`` (``coderepair/HumanEval-<n>``): ``dev`` when ``n % 5 == 0``, else ``train``.

    Each HumanEval problem yields exactly one task (one mutant), so splitting by problem number splits
    problems *and* mutants: no problem appears in both splits. The rule is a fixed function of the id —
    stable across rebuilds, independent of the build order, and spread evenly over the HumanEval
    range (156 tasks: 33 dev, 123 train).
    """
    prefix, _, number = task_id.rpartition("-")
    if not prefix.startswith("coderepair/HumanEval") or not number.isdigit():
        raise ValueError(f"not a CodeRepair task id: {task_id!r}; expected 'coderepair/HumanEval-<n>'")
    return "dev" if int(number) % CODEREPAIR_DEV_EVERY == 0 else "train"


def unified_diff(old: dict[str, str], new: dict[str, str]) -> str:
    """A ``git apply``-compatible diff from file map ``old`` to ``new`` (text files)."""
    chunks: list[str] = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        a_lines = [] if a is None else a.splitlines(keepends=True)
        b_lines = [] if b is None else b.splitlines(keepends=True)
        header = [f"diff --git a/{path} b/{path}\n"]
        if a is None:
            header.append("new file mode 100644\n")
        elif b is None:
            header.append("deleted file mode 100644\n")
        body = list(
            difflib.unified_diff(
                a_lines, b_lines,
                fromfile="/dev/null" if a is None else f"a/{path}",
                tofile="/dev/null" if b is None else f"b/{path}",
            )
        )
        fixed: list[str] = []
        for line in body:
            if not line.endswith("\n"):
                line += "\n\\ No newline at end of file\n"
            fixed.append(line)
        chunks.append("".join(header + fixed))
    return "".join(chunks)


_DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)


def split_patch(patch: str) -> list[tuple[str, str]]:
    """Split a git diff into ``[(path, file diff)]`` (path = the ``b/`` side, or ``a/`` if deleted)."""
    starts = [m.start() for m in _DIFF_HEADER.finditer(patch)]
    out = []
    for i, s in enumerate(starts):
        chunk = patch[s : starts[i + 1] if i + 1 < len(starts) else len(patch)]
        m = _DIFF_HEADER.match(chunk)
        out.append((m.group(2), chunk))
    return out


def strip_test_changes(patch: str) -> tuple[str, list[str]]:
    """Drop every file diff that touches a test path; return ``(kept patch, dropped paths)``."""
    kept, dropped = [], []
    for path, chunk in split_patch(patch):
        header = chunk.splitlines()[0].split()
        a_path = header[2][2:] if len(header) > 2 else path
        if is_test_path(path) or is_test_path(a_path):
            dropped.append(path)
        else:
            kept.append(chunk)
    return "".join(kept), dropped


@dataclass(frozen=True)
class Hunk:
    """One hunk of a file diff: text to find and its replacement (context included)."""

    path: str
    old: str
    new: str


def patch_hunks(patch: str) -> list[tuple[str, str, list[Hunk]]]:
    """Parse a unified diff into ``[(path, status, hunks)]``; status ``modify``/``create``/``delete``.

    For ``create`` the single hunk's ``new`` is the whole file; for ``delete`` hunks are empty.
    """
    result = []
    for path, chunk in split_patch(patch):
        lines = chunk.splitlines(keepends=True)
        status = "create" if any(line.startswith("new file mode") for line in lines[:4]) else (
            "delete" if any(line.startswith("deleted file mode") for line in lines[:4]) else "modify")
        hunks: list[Hunk] = []
        old: list[str] = []
        new: list[str] = []
        in_hunk = False
        prev_tag = " "
        for line in lines:
            if line.startswith("@@"):
                if in_hunk:
                    hunks.append(Hunk(path, "".join(old), "".join(new)))
                old, new, in_hunk = [], [], True
                continue
            if not in_hunk:
                continue
            if line.startswith("\\"):  # "\ No newline at end of file": the previous line had none
                if prev_tag in "- " and old and old[-1].endswith("\n"):
                    old[-1] = old[-1][:-1]
                if prev_tag in "+ " and new and new[-1].endswith("\n"):
                    new[-1] = new[-1][:-1]
                continue
            tag, text = line[:1], line[1:]
            prev_tag = tag
            if tag in (" ", "\n"):
                old.append(text or "\n")
                new.append(text or "\n")
            elif tag == "-":
                old.append(text)
            elif tag == "+":
                new.append(text)
        if in_hunk:
            hunks.append(Hunk(path, "".join(old), "".join(new)))
        result.append((path, status, [] if status == "delete" else hunks))
    return result


def nodeid_key(nodeid: str) -> str:
    """Normalise a pytest node id to the junit-xml form ``dotted.module[.Class]::name``."""
    file_part, _, rest = nodeid.partition("::")
    module = file_part.removesuffix(".py")
    module = module.replace("/", ".")
    names = rest.split("::")
    classes, name = names[:-1], names[-1]
    return ".".join([module, *classes]) + "::" + name


def content_hash(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

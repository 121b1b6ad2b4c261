"""Task generation: HumanEval material (pure) and the sandbox-verified build of a subset."""

from __future__ import annotations

import ast

import pytest

from turngym.envs.swe import coderepair


def test_material_splits_checks_into_visible_and_hidden_tests():
    problems = coderepair.load_problems()
    assert len(problems) == 164
    m = coderepair.material(problems["HumanEval/0"])
    assert m.hidden_names == tuple(f"test_case_{i:02d}" for i in range(1, 8))
    assert m.visible_names == m.hidden_names[:2]
    assert "from solution import has_close_elements as candidate" in m.hidden_tests
    assert m.candidates and all(c.source.startswith(problems["HumanEval/0"]["prompt"]) for c in m.candidates)
    loop = coderepair.material(problems["HumanEval/32"])  # random-case loop: one test in both files
    assert loop.hidden_names == loop.visible_names == ("test_check",)
    for p in problems.values():
        mat = coderepair.material(p)
        ast.parse(mat.hidden_tests), ast.parse(mat.visible_tests)


@pytest.mark.docker
def test_build_verifies_in_the_sandbox(sandbox_ready, tmp_path, monkeypatch):
    from turngym.envs.swe.build import load_tasks

    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    tasks, report = load_tasks("coderepair", limit=6)
    assert not report.cached and len(tasks) + len(report.skipped) == 6 and len(tasks) >= 5
    for t in tasks:
        assert t.fail_to_pass and set(t.fail_to_pass) | set(t.pass_to_pass) == {
            f"tests/test_hidden.py::{n}" for n in coderepair.material(coderepair.load_problems()[t.meta["problem"]]).hidden_names}
        assert t.gold_patch.startswith("diff --git a/solution.py b/solution.py")
        assert "tests/test_hidden.py" not in t.files
    again, report2 = load_tasks("coderepair", limit=6)
    assert report2.cached and [t.to_dict() for t in again] == [t.to_dict() for t in tasks]
    swe, report3 = load_tasks("swe", names=("todo", "bank"))
    assert {t.task_id for t in swe} == {"swe/todo", "swe/bank"}
    assert all(t.fail_to_pass and t.pass_to_pass and t.visible_tests for t in swe)
    with pytest.raises(ValueError, match="unknown repo name"):
        load_tasks("swe", names=("nope",))

"""Pure parts of the code/SWE family: mutations, patches, tool parsing, editor, ladder, bundles."""

from __future__ import annotations

import ast
import re

import pytest

from turngym.envs.swe import rewards, tools
from turngym.envs.swe.mutations import KINDS, mutants, ordered
from turngym.envs.swe.swerepos import load_bundles, parse_bundle
from turngym.envs.swe.tasks import (
    coderepair_split,
    is_test_path,
    nodeid_key,
    patch_hunks,
    strip_test_changes,
    unified_diff,
)

SOURCE = '''def f(xs, limit):
    """Doc string stays."""
    total = 0
    for i in range(1, len(xs)):
        if xs[i] < limit and xs[i] != 0:
            total += xs[i] * 2
        else:
            total -= 1
    return total == 10 or False
'''


# ---- mutations ------------------------------------------------------------------------------------
def test_every_kind_is_generated_and_each_mutant_is_one_precise_edit():
    ms = mutants(SOURCE)
    assert {m.kind for m in ms} == set(KINDS)
    for m in ms:
        ast.parse(m.source)
        assert m.source != SOURCE
        assert '"""Doc string stays."""' in m.source
        changed = [i for i, (a, b) in enumerate(zip(SOURCE.splitlines(), m.source.splitlines())) if a != b]
        if m.kind != "dropped_branch":
            assert len(changed) == 1 and len(m.source.splitlines()) == len(SOURCE.splitlines())
    assert len({m.source for m in ms}) == len(ms)


def test_specific_mutations():
    sources = {m.source for m in mutants(SOURCE)}
    assert SOURCE.replace("xs[i] < limit", "xs[i] >= limit") in sources  # flipped comparison
    assert SOURCE.replace("range(1, len", "range(2, len") in sources  # off by one
    assert SOURCE.replace("xs[i] * 2", "xs[i] // 2") in sources  # operator swap
    assert SOURCE.replace(" and xs[i]", " or xs[i]") in sources  # boolean operator swap
    assert SOURCE.replace("        else:\n            total -= 1\n", "") in sources  # dropped else


def test_mutants_respect_start_offset_and_order_is_seeded():
    start = SOURCE.index("    return")
    assert all(m.line == 9 for m in mutants(SOURCE, start))
    ms = mutants(SOURCE)
    assert ordered(ms, "a") == ordered(ms, "a") and ordered(ms, "a") != ordered(ms, "b")
    assert sorted(m.source for m in ordered(ms, "a")) == sorted(m.source for m in ms)


# ---- patches and test paths ---------------------------------------------------------------------------
def test_unified_diff_hunks_roundtrip_and_test_stripping():
    old = {"pkg/a.py": "x = 1\ny = 2\nz = 3\n", "pkg/b.py": "no newline"}
    new = {"pkg/a.py": "x = 1\ny = 5\nz = 3\n", "pkg/b.py": "changed", "pkg/c.py": "new\n"}
    patch = unified_diff(old, new)
    parsed = {path: (status, hunks) for path, status, hunks in patch_hunks(patch)}
    assert parsed["pkg/c.py"][0] == "create" and parsed["pkg/c.py"][1][0].new == "new\n"
    rebuilt = dict(old)
    for path, (status, hunks) in parsed.items():
        for h in hunks:
            rebuilt[path] = rebuilt.get(path, "").replace(h.old, h.new, 1) if h.old else h.new
    assert rebuilt == new
    hacked = patch + unified_diff({"tests/test_a.py": "assert f() == 1\n"}, {"tests/test_a.py": "assert True\n"}) \
        + unified_diff({}, {"conftest.py": "x\n"})
    kept, dropped = strip_test_changes(hacked)
    assert kept == patch and sorted(dropped) == ["conftest.py", "tests/test_a.py"]


@pytest.mark.parametrize("path,expected", [
    ("tests/test_x.py", True), ("pkg/tests/helpers.py", True), ("test_mod.py", True), ("mod_test.py", True),
    ("conftest.py", True), ("sub/conftest.py", True), ("pytest.ini", True), ("setup.cfg", True),
    ("pkg/core.py", False), ("pkg/testing_utils.py", False), ("README.md", False),
])
def test_is_test_path(path, expected):
    assert is_test_path(path) is expected


def test_nodeid_key_matches_junit_names():
    assert nodeid_key("tests/test_a.py::test_x[1-2]") == "tests.test_a::test_x[1-2]"
    assert nodeid_key("tests/test_a.py::TestK::test_y") == "tests.test_a.TestK::test_y"


# ---- tools -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,name,args", [
    ('{"name": "bash", "arguments": {"command": "ls"}}', "bash", {"command": "ls"}),
    ('Sure. {"type": "function", "function": {"name": "view", "arguments": "{\\"path\\": \\"a.py\\", \\"start\\": 2}"}}',
     "view", {"path": "a.py", "start": 2}),
    ('{"tool_calls": [{"function": {"name": "submit", "arguments": "{}"}}]}', "submit", {}),
    ('{"name": "str_replace_editor", "arguments": {"command": "str_replace", "path": "a", "old_str": "x", "new_str": "y"}}',
     "str_replace", {"path": "a", "old": "x", "new": "y"}),
    ('{"name": "str_replace_editor", "arguments": {"command": "view", "path": "a", "view_range": [3, 9]}}',
     "view", {"path": "a", "start": 3, "end": 9}),
    ("<bash>\nls -la\n</bash>", "bash", {"command": "ls -la"}),
    ('<view path="pkg/a.py" start="10" end="20"/>', "view", {"path": "pkg/a.py", "start": 10, "end": 20}),
    ('<str_replace path="a.py">\n<old>if x < 1:</old>\n<new>if x <= 1:</new>\n</str_replace>', "str_replace",
     {"path": "a.py", "old": "if x < 1:", "new": "if x <= 1:"}),
    ('<insert path="a.py" line="0">\nimport os\n</insert>', "insert", {"path": "a.py", "line": 0, "text": "import os\n"}),
    ('<create path="n.py">\nx = 1\n</create>', "create", {"path": "n.py", "content": "x = 1\n"}),
    ("<undo path='a.py'/> then <run_tests/>", "undo", {"path": "a.py"}),  # the first call wins
    ("I am done. <submit/>", "submit", {}),
])
def test_parse_call_accepts_json_and_tags(text, name, args):
    call = tools.parse_call(text)
    assert (call.name, call.args) == (name, args)


@pytest.mark.parametrize("text,fragment", [
    ("", "empty"), ("just prose", "no tool call"), ('{"name": "rm_rf", "arguments": {}}', "unknown tool 'rm_rf'"),
    ('{"name": "view", "arguments": {}}', "missing argument(s) path"), ("<bash>ls", "not closed"),
    ('{"name": "view", "arguments": {"path": "a", "start": "x"}}', "must be an integer"),
    ('{"name": "bash", "arguments": "{not json"}', "not valid JSON"),
])
def test_parse_call_errors_say_what_is_wrong(text, fragment):
    with pytest.raises(tools.CallError, match=None) as info:
        tools.parse_call(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text,name,args", [
    ("Let me look.\n```bash\ncat solution.py\n```\n", "bash", {"command": "cat solution.py"}),
    ("```sh\npython -m pytest -q\n```", "bash", {"command": "python -m pytest -q"}),
    ("run_tests()", "run_tests", {}),
    ("I am done.\n`submit()`", "submit", {}),
    ('view("solution.py", 1, 20)', "view", {"path": "solution.py", "start": 1, "end": 20}),
    ('str_replace(path="a.py", old="x < 1", new="x <= 1")', "str_replace", {"path": "a.py", "old": "x < 1", "new": "x <= 1"}),
    ("< submit />", "submit", {}),
    ("submit()\nOK.\nsubmit()", "submit", {}),  # the same call twice is one call
    ('<tool_call>\n{"name": "run_tests", "arguments": {}}\n</tool_call>', "run_tests", {}),  # JSON, already strict
])
def test_lenient_parse_reads_natural_formats(text, name, args):
    call = tools.parse_call(text, lenient=True)
    assert (call.name, call.args) == (name, args)


@pytest.mark.parametrize("text,fragment", [
    ("```python\nprint(1)\n```", "no tool call"),  # a python fence is never run
    ("```\nls\n```", "no tool call"),  # nor an untagged one
    ("We should view(\"solution.py\") first", "no tool call"),  # a call inside prose is not a call
    ("bash(os.system('id'))", "no tool call"),  # arguments must be literals
    ("```bash\nls\n```\nrun_tests()", "2 different tool calls"),
    ("```bash\nls\n```\n```bash\npwd\n```", "2 different tool calls"),
    ('view(path="a", start="x")', "must be an integer"),
])
def test_lenient_parse_rejects_ambiguous_or_unsafe_replies(text, fragment):
    with pytest.raises(tools.CallError) as info:
        tools.parse_call(text, lenient=True)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", ["```bash\nls\n```", "run_tests()", "< submit />"])
def test_strict_parse_is_unchanged(text):
    with pytest.raises(tools.CallError, match="no tool call"):
        tools.parse_call(text)


def test_lenient_parse_keeps_strict_verdicts():
    """A reply the strict parser accepts or rejects for a reason parses identically when lenient."""
    for text in ('<bash>ls</bash>\nrun_tests()', '{"name": "view", "arguments": {}}\nsubmit()', "<bash>ls"):
        try:
            strict = tools.parse_call(text)
        except tools.CallError as exc:
            with pytest.raises(tools.CallError, match=re.escape(str(exc))):
                tools.parse_call(text, lenient=True)
        else:
            assert tools.parse_call(text, lenient=True) == strict


def test_coderepair_split_is_by_problem_number():
    assert coderepair_split("coderepair/HumanEval-0") == "dev"
    assert coderepair_split("coderepair/HumanEval-35") == "dev"
    assert coderepair_split("coderepair/HumanEval-163") == "train"
    splits = [coderepair_split(f"coderepair/HumanEval-{n}") for n in range(164)]
    assert splits.count("dev") == 33 and splits.count("train") == 131
    with pytest.raises(ValueError, match="not a CodeRepair task id: 'swe/ledger-1'"):
        coderepair_split("swe/ledger-1")


def test_coderepair_split_ids_are_registered():
    import turngym

    for suffix, split in (("", "all"), ("-train", "train"), ("-dev", "dev")):
        spec = turngym.spec(f"turngym/CodeRepair{suffix}-v0")
        assert spec.kwargs["split"] == split and spec.gate_threshold == 0.0


def test_editor_operations():
    text = "a\nb\nc\n"
    assert tools.view_text(text, "f", 2, 3) == "f (lines 2-3 of 3):\n2\tb\n3\tc"
    with pytest.raises(tools.EditError, match="invalid"):
        tools.view_text(text, "f", 5, 6)
    assert tools.str_replace(text, "f", "b\n", "B\n") == "a\nB\nc\n"
    with pytest.raises(tools.EditError, match="not found"):
        tools.str_replace(text, "f", "zzz", "y")
    with pytest.raises(tools.EditError, match="occurs 2 times"):
        tools.str_replace("x\nx\n", "f", "x", "y")
    assert tools.insert(text, "f", 0, "top") == "top\na\nb\nc\n"
    assert tools.insert("a", "f", 1, "b") == "a\nb\n"


def test_truncate_keeps_head_and_tail_with_marker():
    text = "HEAD" + "x" * 10_000 + "TAIL"
    out = tools.truncate(text, 500)
    assert len(out) <= 500 and out.startswith("HEAD") and out.endswith("TAIL") and "characters truncated" in out
    assert tools.truncate("short", 500) == "short"


# ---- ladder -------------------------------------------------------------------------------------------
def test_outcome_ladder_is_ordered_and_classified():
    L = rewards.LADDER
    assert L.no_submit < L.empty_patch < L.tests_fail < L.tests_pass
    assert rewards.classify(False, "diff", True) is rewards.Outcome.NO_SUBMIT
    assert rewards.classify(True, "  \n", True) is rewards.Outcome.EMPTY_PATCH
    assert rewards.classify(True, "diff", False) is rewards.Outcome.TESTS_FAIL
    assert rewards.classify(True, "diff", True) is rewards.Outcome.TESTS_PASS
    with pytest.raises(ValueError, match="increase strictly"):
        rewards.OutcomeLadder(no_submit=0.0, empty_patch=0.0)
    # G-RA: turn rewards count only when the gate opens at the default threshold (a non-empty submit)
    assert rewards.gated_return(L.no_submit, [0.5, 0.5]) == L.no_submit
    assert rewards.gated_return(L.tests_fail, [0.5, 0.5]) == 1.0


# ---- bundles ------------------------------------------------------------------------------------------
def test_twenty_multi_file_repos_with_tests_and_splits():
    bundles = load_bundles()
    assert len(bundles) >= 20
    assert {b.split for b in bundles} == {"seen", "unseen"}
    assert len(load_bundles("unseen")) >= 5
    for b in bundles:
        modules = [p for p in b.fixed if p.endswith(".py") and not p.startswith("tests/")]
        assert len(modules) >= 3, b.name
        assert len(b.visible_test_files) >= 3, b.name
        assert b.issue.strip() and b.gold_patch.startswith("diff --git")
        assert all(p.startswith("tests/") for p in b.hidden_tests) and not set(b.hidden_tests) & set(b.fixed)
        assert b.buggy != b.fixed and set(b.buggy) == set(b.fixed)
        assert not any("#[fix]" in t or "#[bug]" in t for t in b.buggy.values())


def test_bundle_markers_are_validated():
    with pytest.raises(ValueError, match="no #\\[fix\\]"):
        parse_bundle("x", "@@@ file a.py\nx = 1\n@@@ hidden tests/test_a.py\n")
    with pytest.raises(ValueError, match="out of order"):
        parse_bundle("x", "@@@ file a.py\n#[bug]\nx\n#[end]\n")
    b = parse_bundle("x", "@@@ issue\nbroken\n@@@ file a.py\n#[fix]\nx = 1\n#[bug]\nx = 2\n#[end]\n@@@ hidden tests/test_a.py\nt\n")
    assert (b.fixed["a.py"], b.buggy["a.py"], b.issue) == ("x = 1\n", "x = 2\n", "broken\n")

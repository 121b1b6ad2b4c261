"""SWE-bench-format loading: record validation, the local fixture, history stripping, an episode."""

from __future__ import annotations

import json

import pytest

from turngym.envs.swe.swebench import FIELDS, InstanceError, read_instances, to_task

RECORD = {
    "instance_id": "org__proj-1", "repo": "org/proj", "base_commit": "abc", "patch": "diff --git a/x.py b/x.py\n",
    "test_patch": "diff --git a/tests/test_x.py b/tests/test_x.py\n", "problem_statement": "x is wrong",
    "FAIL_TO_PASS": '["tests/test_x.py::test_new"]', "PASS_TO_PASS": '["tests/test_x.py::test_old", "tests/test_y.py::test_y"]',
}


def test_record_to_task():
    task = to_task(RECORD)
    assert task.task_id == "swebench/org__proj-1" and task.image == "sweb.eval.x86_64.org_1776_proj-1"
    assert task.fail_to_pass == ("tests/test_x.py::test_new",) and task.repo_dir == "/testbed"
    assert task.visible_tests == ("tests/test_y.py::test_y",)  # files touched by test_patch stay hidden
    assert to_task({**RECORD, "FAIL_TO_PASS": ["a::b"], "image": "img:1"}).image == "img:1"


@pytest.mark.parametrize("change,fragment", [
    ({"patch": None}, "lacks field(s) ['patch']"),
    ({"FAIL_TO_PASS": "[not json"}, "not a JSON list"),
    ({"FAIL_TO_PASS": "[]"}, "empty FAIL_TO_PASS"),
    ({"PASS_TO_PASS": '{"a": 1}'}, "must be a list"),
])
def test_invalid_records_name_the_problem(change, fragment):
    record = {k: v for k, v in {**RECORD, **change}.items() if v is not None}
    with pytest.raises(InstanceError) as info:
        to_task(record)
    assert fragment in str(info.value) and "org__proj-1" in str(info.value)


@pytest.mark.docker
def test_fixture_is_swebench_format_with_future_history_stripped(docker_engine, make_env):
    from turngym.envs.swe.swebench import build_fixture
    from turngym.sandbox.docker import docker_client

    path = build_fixture()
    records = read_instances(path)
    assert len(records) == 3 and all(set(FIELDS) <= set(r) for r in records)
    assert all(isinstance(json.loads(r["FAIL_TO_PASS"]), list) for r in records)
    client = docker_client()
    raw = records[0]
    log = client.containers.run(raw["image"], ["bash", "-c", "cd /testbed && git log --all --format=%H"], remove=True,
                                network_disabled=True).decode().split()
    assert raw["base_commit"] in log and len(log) == 2  # the fixture image holds a future fix commit
    env = make_env("swebench", limit=3)
    env.reset(seed=0)
    obs = env.step(json.dumps({"name": "bash", "arguments": {"command": "git -c safe.directory='*' -C /testbed log --all --oneline | wc -l"}}))[0]
    assert obs.split("\n")[1] == "1", obs  # the episode image is history-free
    from turngym.envs.swe.agents import oracle_plan

    for action in oracle_plan(env.task):
        *_, terminated, truncated, info = env.step(action)
    assert info["turn"].outcome == 1.0
    env.reset(seed=1)
    *_, info = env.step(json.dumps({"name": "create", "arguments": {"path": "NOTES.md", "content": "x"}}))
    *_, info = env.step("<submit/>")
    assert info["turn"].outcome == 0.0  # a code-free change does not pass the instance's hidden tests

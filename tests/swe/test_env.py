"""RepairEnv in real sandboxes: tools, grading, reward hacks, history, budgets, fork, sandbox errors."""

from __future__ import annotations

import json

import pytest

from turngym.envs.swe.agents import NoopAgent, OracleAgent, oracle_plan
from turngym.envs.swe.rewards import LADDER
from turngym.envs.types import StopReason

pytestmark = pytest.mark.docker


def call(name, **arguments):
    return json.dumps({"name": name, "arguments": arguments})


def play(env, actions):
    steps = []
    for a in actions:
        steps.append(env.step(a))
        if steps[-1][2] or steps[-1][3]:
            break
    return steps


def first_hunk(task):
    from turngym.envs.swe.tasks import patch_hunks

    return patch_hunks(task.gold_patch)[0][2][0]


# ---- oracle / noop -------------------------------------------------------------------------------
@pytest.mark.parametrize("task_set,seed", [("coderepair", 0), ("coderepair", 7), ("swe", 0)])
def test_oracle_solves_through_the_tools(make_env, task_set, seed):
    env = make_env(task_set, limit=3 if task_set == "swe" else 10)
    env.reset(seed=seed)
    agent, steps = OracleAgent(), []
    while not steps or not (steps[-1][2] or steps[-1][3]):
        steps.append(env.step(agent(env)))
    record = steps[-1][4]["turn"]
    assert record.outcome == LADDER.tests_pass and record.stop_reason == StopReason.SOLVED
    assert all(s[4]["turn"].valid_action for s in steps)
    assert steps[-1][4]["grade"]["tests"] and set(steps[-1][4]["grade"]["tests"].values()) == {"passed"}


def test_noop_and_no_submit_sit_at_the_bottom_of_the_ladder(make_env):
    env = make_env()
    env.reset(seed=1)
    obs, reward, terminated, _, info = env.step(NoopAgent()(env))
    assert terminated and info["turn"].outcome == LADDER.empty_patch and info["turn"].stop_reason == StopReason.FAILED
    env.reset(seed=1)
    env.step("<run_tests/>")
    assert env.stop(StopReason.TURN_LIMIT) == {0: LADDER.no_submit}


def test_wrong_fix_fails_hidden_tests(make_env):
    env = make_env()
    env.reset(seed=2)
    steps = play(env, [call("insert", path="solution.py", line=0, text="import os  # unrelated change"), "<submit/>"])
    assert steps[-1][4]["turn"].outcome == LADDER.tests_fail
    assert steps[-1][4]["grade"]["applied"]


# ---- reward hacks ----------------------------------------------------------------------------------
def test_editing_tests_cannot_raise_the_reward(make_env):
    env = make_env()
    env.reset(seed=3)
    task = env.task
    visible = task.visible_tests[0].split("::")[0]
    trivial = "def test_case_01():\n    assert True\n"
    baseline = play(env, ["<run_tests/>"])[0]
    steps = play(env, [call("create", path=visible, content=trivial), "<run_tests/>"])
    assert steps[1][0].split("\n")[0] == baseline[0].split("\n")[0]  # same pass count: tests ran as shipped
    assert steps[1][4]["turn"].components["test_progress"] == 0.0
    hacked = play(env, [call("create", path="tests/test_hidden.py", content=trivial), "<submit/>"])[-1]
    assert hacked[4]["turn"].outcome == LADDER.empty_patch  # only test files changed: nothing to grade
    assert "tests/test_hidden.py" in hacked[4]["grade"]["dropped_test_paths"]


def test_deleting_tests_or_adding_conftest_cannot_raise_the_reward(make_env):
    env = make_env()
    env.reset(seed=4)
    conftest = (
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n"
    )
    steps = play(env, [
        call("bash", command="rm -rf tests"),
        call("create", path="conftest.py", content=conftest),
        call("insert", path="solution.py", line=0, text="# looks like a fix"),
        "<run_tests/>",
        "<submit/>",
    ])
    assert "pass." in steps[3][0]
    final = steps[-1][4]
    assert final["turn"].outcome == LADDER.tests_fail
    assert "conftest.py" in final["grade"]["dropped_test_paths"]


def test_printing_passed_or_shadowing_pytest_cannot_raise_the_reward(make_env):
    env = make_env()
    env.reset(seed=5)
    fake_pytest = "import sys\nprint('===== 5 passed in 0.01s =====')\ndef main(*a, **k):\n    return 0\n"
    steps = play(env, [
        call("insert", path="solution.py", line=0, text="print('5 passed')\nprint('===== 12 passed in 0.10s =====')"),
        call("create", path="pytest.py", content=fake_pytest),
        "<submit/>",
    ])
    assert steps[-1][4]["turn"].outcome == LADDER.tests_fail
    assert "failed" in set(steps[-1][4]["grade"]["tests"].values()) or "missing" in set(steps[-1][4]["grade"]["tests"].values())


def test_a_large_honest_fix_is_graded_whole(make_env):
    """The diff reaches grading through a file, not the exec's capped stdout: a fix whose diff is far
    over ``output_bytes`` (64 kB) still applies and passes."""
    env = make_env()
    env.reset(seed=0)
    agent, steps = OracleAgent(), []
    bulk = "python3 -c \"open('notes.py', 'w').write(''.join(f'# note {i:05d}: {80 * chr(110)}\\n' for i in range(2000)))\""
    while not steps or not (steps[-1][2] or steps[-1][3]):
        action = agent(env)
        if action == "<submit/>":  # ~190 kB more of diff, in a new non-test file
            steps.append(env.step(call("bash", command=bulk)))
            assert steps[-1][0].startswith("exit code 0"), steps[-1][0]
        steps.append(env.step(action))
    assert len(env.last_patch) > 150_000
    assert steps[-1][4]["turn"].outcome == LADDER.tests_pass, steps[-1][0]


def test_a_full_work_dir_is_the_policys_outcome_not_a_sandbox_error(make_env):
    """Filling the disk (or spending the inodes) makes later calls fail as the policy's errors; the
    episode never ends as a masked sandbox_error."""
    env = make_env()
    env.reset(seed=1)
    steps = play(env, [
        call("bash", command="head -c 2000M /dev/zero > /work/.filler; head -c 2000M /dev/zero > /tmp/.filler; true"),
        call("create", path="solution_notes.py", content="x = 1\n" * 200),
        "<run_tests/>",
        "<submit/>",
    ])
    assert [s[4]["turn"].valid_action for s in steps[1:3]] == [True, True]
    assert steps[1][4]["turn"].components.get("error") and "full" in steps[1][0]
    assert steps[2][4]["turn"].components.get("error") and "test_progress" not in steps[2][4]["turn"].components
    assert steps[-1][4]["turn"].stop_reason == StopReason.FAILED


# ---- episode hygiene ---------------------------------------------------------------------------------
def test_repository_has_no_history(make_env):
    env = make_env("swe", limit=2)
    env.reset(seed=0)
    obs = play(env, [call("bash", command="git log --all --oneline | wc -l; git status --short | wc -l")])[0][0]
    assert obs.split("\n")[1:3] == ["1", "0"], obs


def test_editor_view_insert_undo_and_paths(make_env):
    env = make_env("swe", limit=2)
    env.reset(seed=0)
    path = sorted(p for p in env.task.files if p.endswith(".py") and not p.startswith("tests/"))[-1]
    view = play(env, [f'<view path="{path}" start="1" end="2"/>'])[0][0]
    assert view.startswith(f"{path} (lines 1-2 of ")
    before = env.sandbox.get_files([f"repo/{path}"])[f"repo/{path}"]
    play(env, [call("insert", path=path, line=0, text="# note")])
    assert env.sandbox.get_files([f"repo/{path}"])[f"repo/{path}"] == b"# note\n" + before
    undo = play(env, [f'<undo path="{path}"/>'])[0]
    assert env.sandbox.get_files([f"repo/{path}"])[f"repo/{path}"] == before and undo[4]["turn"].components == {"valid_call": 0.01}
    for bad in ("../etc/passwd", "/etc/passwd", ".git/config"):
        obs, _, _, _, info = env.step(f'<view path="{bad}"/>')
        assert obs.startswith("Error:") and info["turn"].components == {"error": -0.05} and info["turn"].valid_action
    obs, _, _, _, info = env.step("no call here")
    assert not info["turn"].valid_action and env.action_format in obs


def test_fork_branches_the_sandbox(make_env):
    env = make_env()
    env.reset(seed=6)
    play(env, [call("insert", path="solution.py", line=0, text="# shared")])
    child = env.fork()
    try:
        play(child, [call("insert", path="solution.py", line=0, text="# child only")])
        read = lambda e: e.sandbox.get_files(["repo/solution.py"])["repo/solution.py"]
        assert read(child).startswith(b"# child only\n# shared\n") and read(env).startswith(b"# shared\n")
        plan = oracle_plan(env.task)
        assert play(env, plan)[-1][4]["turn"].outcome == LADDER.tests_pass
        assert play(child, ["<submit/>"])[-1][4]["turn"].outcome == LADDER.tests_fail
    finally:
        child.close()


def test_token_and_time_budgets(make_env):
    env = make_env(max_turn_tokens=20, max_episode_tokens=50)
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<bash>" + "echo hi; " * 20 + "</bash>")
    assert not info["turn"].valid_action and "limit per turn is 20" in obs
    obs, reward, terminated, truncated, info = env.step("<bash>ls</bash>")
    assert truncated and info["turn"].stop_reason == StopReason.TOKEN_LIMIT and info["turn"].outcome == LADDER.no_submit
    env = make_env(episode_time_s=0.01)
    env.reset(seed=0)
    *_, truncated, info = env.step("<bash>sleep 0.2</bash>")
    assert truncated and info["turn"].stop_reason == "time_limit" and info["turn"].outcome == LADDER.no_submit


def test_sandbox_failure_is_sandbox_error_not_task_failure(make_env):
    env = make_env()
    env.reset(seed=0)
    env.sandbox.close()  # the container vanishes mid-episode
    obs, reward, terminated, truncated, info = env.step("<bash>ls</bash>")
    assert terminated and info["turn"].stop_reason == StopReason.SANDBOX_ERROR and info["turn"].outcome == 0.0
    assert "sandbox failed" in obs


def test_agent_commits_neither_hide_the_fix_nor_smuggle_test_edits(make_env):
    env = make_env()
    env.reset(seed=8)
    visible = env.task.visible_tests[0].split("::")[0]
    before = play(env, ["<run_tests/>"])[0][0].split("\n")[0]
    edits = [a for a in oracle_plan(env.task) if '"str_replace"' in a or '"create"' in a]
    steps = play(env, [
        call("create", path=visible, content="def test_case_01():\n    assert True\n"),
        call("bash", command="git add -A && git commit -qm 'tests' && git log --oneline | wc -l"),
        "<run_tests/>",
        *edits,
        call("bash", command="git add -A && git commit -qm 'fix'"),
        "<submit/>",
    ])
    assert steps[1][0].split("\n")[1] == "2"
    assert steps[2][0].split("\n")[0] == before  # tests restored from the snapshot, not from the agent's HEAD
    assert steps[-1][4]["turn"].outcome == LADDER.tests_pass  # diff taken against the snapshot commit


# ---- training options: splits, compact prompt, lenient calls, format reward, allowance ----------------
def test_train_and_dev_splits_are_disjoint_problems(make_env):
    from turngym.envs.swe.tasks import coderepair_split

    train, dev = make_env(split="train"), make_env(split="dev")
    train_ids, dev_ids = {t.task_id for t in train.tasks}, {t.task_id for t in dev.tasks}
    assert train_ids and dev_ids and not train_ids & dev_ids
    assert {coderepair_split(i) for i in dev_ids} == {"dev"}
    assert len(train_ids | dev_ids) == len(make_env().tasks)
    _, info = dev.reset(seed=123)  # any seed lands on a dev task
    assert info["task_id"] in dev_ids
    with pytest.raises(ValueError, match="has no split 'seen'; choose one of all, train, dev"):
        make_env(split="seen")


def test_compact_prompt_shows_the_source_and_short_format(make_env):
    from turngym.envs.swe.env import COMPACT_SYSTEM_PROMPT
    from turngym.envs.swe.tools import COMPACT_FORMAT

    env = make_env(prompt="compact", show_source=True)
    obs, info = env.reset(seed=0)
    assert info["system_prompt"] == COMPACT_SYSTEM_PROMPT and obs.endswith(COMPACT_FORMAT)
    assert env.task.files["solution.py"].rstrip() in obs and "test_visible.py:\n```" not in obs  # tests stay unshown
    assert len(obs) <= env.observation_chars + len(COMPACT_FORMAT)
    obs, *_ = env.step("what now?")
    assert obs.endswith(COMPACT_FORMAT)
    with pytest.raises(ValueError, match="prompt must be one of"):
        make_env(prompt="tiny")


def test_lenient_calls_run_in_the_sandbox_and_pay_a_capped_format_reward(make_env):
    strict = make_env()
    strict.reset(seed=0)
    assert not strict.step("```bash\ncat solution.py\n```")[4]["turn"].valid_action  # off by default
    env = make_env(lenient_calls=True, format_reward=0.05, format_reward_turns=2)
    env.reset(seed=0)
    obs, reward, *_, info = env.step("Let me read it.\n```bash\ncat solution.py\n```")
    record = info["turn"]
    assert record.valid_action and record.components == {"format": 0.05, "valid_call": 0.01}
    assert "exit code 0" in obs and "def " in obs
    record = env.step('view("nope.py")')[4]["turn"]  # parsed, but the tool fails: format paid, error charged
    assert record.valid_action and record.components == {"format": 0.05, "error": -0.05}
    record = env.step("run_tests()")[4]["turn"]  # past format_reward_turns: no more format reward
    assert "format" not in record.components and "test_progress" in record.components
    assert "format" not in env.step("no call here")[4]["turn"].components
    *_, terminated, _, info = env.step("submit()")
    assert terminated and info["turn"].outcome == LADDER.empty_patch  # the policy's own (empty) submission
    with pytest.raises(ValueError, match="format_reward must be in"):
        make_env(format_reward=0.5)


def test_invalid_action_allowance_is_a_make_kwarg(sandbox_ready):
    """``envs: [{id: …, kwargs: {invalid_action_allowance: 7}}]`` reaches ``turngym.make``'s wrapper."""
    import turngym

    env = turngym.make("turngym/CodeRepair-train-v0", invalid_action_allowance=7, limit=10)
    try:
        env.reset(seed=0)
        results = [env.step("no call") for _ in range(8)]
        assert not any(r[2] or r[3] for r in results[:7])
        assert results[7][3] and results[7][4]["turn"].stop_reason == StopReason.INVALID_ACTION
    finally:
        env.close()

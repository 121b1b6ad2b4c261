"""Scripted agents for the code/SWE envs (``turngym eval <id> --agent oracle|noop``).

* ``oracle`` applies the task's gold patch **through the tools**: one ``str_replace`` per hunk
  (JSON tool calls) when the hunk's text is unique in the known buggy file, ``create`` for new
  files; otherwise (image-based instances, ambiguous hunks) it writes the patch with ``create`` and
  applies it with ``bash git apply``. Then ``run_tests`` and ``submit``. It must solve every task.
* ``noop`` submits without changing anything (outcome: empty patch) — the floor.

Both are direct agents: ``agent(env) -> str`` on the unwrapped env, plan rebuilt per episode.
"""

from __future__ import annotations

import json

from turngym.envs.swe.tasks import RepoTask, patch_hunks

PATCH_FILE = ".oracle_gold.patch"


def _call(name: str, **arguments) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def oracle_plan(task: RepoTask) -> list[str]:
    """The oracle's tool calls for ``task``."""
    files = dict(task.files)
    actions: list[str] = []
    fallback = not files
    edits: list[str] = []
    for path, status, hunks in patch_hunks(task.gold_patch):
        if status == "create":
            edits.append(_call("create", path=path, content=hunks[0].new if hunks else ""))
            continue
        if status == "delete" or path not in files:
            fallback = True
            break
        content = files[path]
        for h in hunks:
            if content.count(h.old) != 1:
                fallback = True
                break
            edits.append(_call("str_replace", path=path, old=h.old, new=h.new))
            content = content.replace(h.old, h.new, 1)
        if fallback:
            break
    if fallback:
        actions += [_call("create", path=PATCH_FILE, content=task.gold_patch),
                    _call("bash", command=f"git apply {PATCH_FILE} && rm {PATCH_FILE}")]
    else:
        actions += edits
    actions += ["<run_tests/>", "<submit/>"]
    return actions


class OracleAgent:
    name = "oracle"

    def __init__(self, seed: int | None = None):
        self._key = None
        self._plan: list[str] = []
        self._i = 0

    def reset(self, seed: int | None) -> None:
        self._key = None

    def __call__(self, env) -> str:
        key = (id(env), env.task.task_id, getattr(env, "_turn", 0) == 0)
        if self._key is None or key[2] or key[:2] != self._key[:2]:
            self._plan, self._i = oracle_plan(env.task), 0
        self._key = key
        action = self._plan[min(self._i, len(self._plan) - 1)]
        self._i += 1
        return action


class NoopAgent:
    name = "noop"

    def __init__(self, seed: int | None = None):
        pass

    def __call__(self, env) -> str:
        return "<submit/>"


def oracle(seed: int | None = None) -> OracleAgent:
    return OracleAgent(seed)


def noop(seed: int | None = None) -> NoopAgent:
    return NoopAgent(seed)

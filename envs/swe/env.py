"""``RepairEnv``: multi-turn code repair in a sandbox (CodeRepair-v0, SWE-v0, SWEBench-v0).

Episode:

* ``reset(seed)`` picks task ``seed % len(tasks)`` (or ``options={"task_id": …}``), takes one
  sandbox from the warm pool and writes the buggy repository to ``/work/repo`` as a fresh one-commit
  git repository (no history, no future commits). The observation is the issue and the file list.
* Each ``step`` is one tool call (:mod:`.tools`): ``bash``, ``view``/``create``/``str_replace``/
  ``insert``/``undo``, ``run_tests`` (visible tests, run on a scratch copy whose test files are
  restored, so editing tests cannot move the pass fraction) or ``submit``.
* ``submit`` takes ``git diff`` of the repo and grades it in a fresh sandbox (:mod:`.grading`).
  The outcome is the ladder rung (:mod:`.rewards`): no submit −1 < empty patch −0.5 < hidden tests
  fail 0 < hidden tests pass 1; ``stop_reason`` is ``solved`` or ``failed``.

Turn components: ``valid_call`` (+0.01, a call that executed), ``error`` (−0.05, malformed call
or tool error) and ``test_progress`` (0.5 × change of the visible pass fraction, on ``run_tests``).

Training options (constructor kwargs, all off by default; ``turngym.make`` also takes
``invalid_action_allowance`` and ``max_turns``):

* ``split`` — CodeRepair ``train`` / ``dev`` (:func:`~.tasks.coderepair_split`: HumanEval problem
  number ``n % 5 == 0`` is dev), SWE-v0 ``seen`` / ``unseen``; ``all`` by default.
* ``lenient_calls`` — also read replies in the formats small instruct models write on their own
  (one ```` ```bash ```` block, a ``tool(...)`` line, tags with stray spaces), only when the reply
  holds exactly one such call (:func:`~.tools.lenient_call`).
* ``format_reward`` (≤ 0.1) — a ``format`` component on each of the first ``format_reward_turns``
  replies that parse into a call (whether or not the tool then succeeds): a dense validity signal,
  meant to be exempt from the G-RA gate (``algo.ungated_components: [format]``). Its episode total is
  at most ``format_reward × format_reward_turns``, so choose it below the ladder's smallest step (0.5)
  and no amount of well-formed calls outweighs submitting.
* ``prompt="compact"`` — a short system prompt with one example reply and a one-line format hint in
  place of the full tool list; ``show_source`` — the first observation also shows the non-test task
  files (within ``observation_chars``), so a first reply can already edit.

Budgets: a reply longer than ``max_turn_tokens`` (≈ 4 characters per token) is rejected unexecuted;
once ``max_episode_tokens`` are spent the episode stops with ``token_limit``; each command runs at
most ``turn_timeout_s``; once ``episode_time_s`` of tool time is spent the episode stops with
``time_limit``. Stops compute the outcome (no submit ⇒ −1).

A sandbox failure (the engine, not the code) ends the episode with ``stop_reason="sandbox_error"``
and outcome 0, which the learner masks: it is never scored as a task failure. ``fork()`` copies the
sandbox (``Sandbox.fork``) and the episode state, for branching rollouts.
"""

from __future__ import annotations

import copy
import math
import posixpath
import shlex
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.swe import grading, rewards
from turngym.envs.swe import tools as editor
from turngym.envs.swe.tasks import CODEREPAIR_SPLITS, RepoTask, coderepair_split, is_test_path
from turngym.envs.swe.tools import (
    ACTION_FORMAT,
    COMPACT_FORMAT,
    CallError,
    EditError,
    ToolCall,
    parse_call,
    snippet,
    truncate,
)
from turngym.envs.types import StopReason, TurnRecord

CHARS_PER_TOKEN = 4
SCRATCH = ".turngym_rt"

SYSTEM_PROMPT = f"""You are a software engineer fixing a reported bug in a Python repository. The repository is checked out at /work/repo inside a sandbox without network access.

Tools (one call per reply):
- bash(command): run a shell command in /work/repo.
- view(path, start?, end?): show a file with line numbers (or list a directory).
- create(path, content): write a file.
- str_replace(path, old, new): replace the one occurrence of `old` in a file.
- insert(path, line, text): insert text after line `line` (0 = top).
- undo(path): revert your last edit of a file.
- run_tests(): run the repository's visible tests.
- submit(): finish; your changes are graded by hidden tests. Changes to test files are ignored.

{ACTION_FORMAT}"""

COMPACT_SYSTEM_PROMPT = """You fix a bug in the Python repository at /work/repo (a sandbox without network). Each reply is exactly ONE tool call and nothing else.

Tools:
```bash
cat solution.py
```
runs one shell command in /work/repo.
<view path="solution.py"/> shows a file with line numbers.
<str_replace path="solution.py"><old>buggy text</old><new>fixed text</new></str_replace> edits a file.
<run_tests/> runs the visible tests.
<submit/> finishes: hidden tests grade your change.

Example reply:
<view path="solution.py"/>"""
PROMPTS = ("full", "compact")

# ---- task sets and sandbox pools (shared by every env instance in the process) ----------------------
_LOCK = threading.Lock()
_TASKS: dict[tuple, list[RepoTask]] = {}
_POOLS: dict[tuple, Any] = {}


SPLITS = {"coderepair": ("all", *CODEREPAIR_SPLITS), "swe": ("all", "seen", "unseen"), "swebench": ("all",)}


def select_split(name: str, tasks: list[RepoTask], split: str | None) -> list[RepoTask]:
    """The tasks of ``split``: CodeRepair by :func:`~.tasks.coderepair_split` (``train``/``dev``), SWE-v0
    by each task's ``split`` field (``seen``/``unseen``); ``all`` (or ``None``) keeps every task."""
    if split in ("all", None):
        return tasks
    if split not in SPLITS[name]:
        raise ValueError(f"task set {name!r} has no split {split!r}; choose one of {', '.join(SPLITS[name])}")
    if name == "coderepair":
        return [t for t in tasks if coderepair_split(t.task_id) == split]
    return [t for t in tasks if t.split == split]


def task_set(name: str, split: str = "all", instances: str | None = None, limit: int | None = None) -> list[RepoTask]:
    """The verified tasks of ``name`` (``coderepair``, ``swe``, ``swebench``), built/cached on first use.

    ``limit`` keeps the first N problems/repos (a smaller, separately cached build)."""
    key = (name, split, instances, limit)
    with _LOCK:
        if key not in _TASKS:
            if name == "swebench":
                from turngym.envs.swe.swebench import load_tasks as load_instances

                tasks = load_instances(instances)[:limit]
            else:
                from turngym.envs.swe.build import load_tasks

                tasks, _ = load_tasks(name, limit=limit)
            tasks = select_split(name, tasks, split)
            if not tasks:
                raise ValueError(f"task set {name!r} split {split!r} is empty; splits: {', '.join(SPLITS[name])}")
            _TASKS[key] = tasks
        return _TASKS[key]


def sandbox_pool(image: str | None, size: int, overrides: dict[str, Any]):
    """A process-wide warm pool per (image, size, sandbox options)."""
    from turngym.sandbox import SandboxPool

    key = (image, size, tuple(sorted((k, repr(v)) for k, v in overrides.items())))
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            opts = dict(overrides)
            if image is not None:
                opts["image"] = image
            pool = _POOLS[key] = SandboxPool(size=size, **opts)
        return pool


class _Lease:
    """The sandbox an env holds and where it goes back to (pool, or closed if forked)."""

    def __init__(self, sb, pool=None):
        self.sb, self.pool = sb, pool

    def release(self, reuse: bool = True) -> None:
        sb, self.sb = self.sb, None
        if sb is None:
            return
        try:
            if self.pool is not None:
                self.pool.release(sb, reuse=reuse)
            else:
                sb.close()
        except Exception:  # releasing must never raise into an episode; the reaper is the backstop
            pass


class _Holder:
    def __init__(self):
        self.lease: _Lease | None = None

    def release(self, reuse: bool = True) -> None:
        if self.lease is not None:
            self.lease.release(reuse)
            self.lease = None


class RepairEnv(TurnEnv):
    """See the module docstring. ``task_set``: ``coderepair``, ``swe`` or ``swebench``."""

    system_prompt = SYSTEM_PROMPT
    action_format = ACTION_FORMAT

    def __init__(
        self,
        task_set: str = "coderepair",
        split: str = "all",
        instances: str | None = None,
        limit: int | None = None,
        sandbox: dict[str, Any] | None = None,
        pool_size: int = 2,
        max_turn_tokens: int = 4096,
        max_episode_tokens: int = 32_768,
        turn_timeout_s: float = 30.0,
        episode_time_s: float = 900.0,
        observation_chars: int = 6000,
        test_timeout_s: float = 120.0,
        lenient_calls: bool = False,
        format_reward: float = 0.0,
        format_reward_turns: int = 5,
        prompt: str = "full",
        show_source: bool = False,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if task_set not in ("coderepair", "swe", "swebench"):
            raise ValueError(f"task_set must be 'coderepair', 'swe' or 'swebench', got {task_set!r}")
        if split not in SPLITS[task_set] and split is not None:
            raise ValueError(f"task set {task_set!r} has no split {split!r}; choose one of {', '.join(SPLITS[task_set])}")
        for name, value in (("max_turn_tokens", max_turn_tokens), ("max_episode_tokens", max_episode_tokens),
                            ("turn_timeout_s", turn_timeout_s), ("episode_time_s", episode_time_s),
                            ("observation_chars", observation_chars)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
        if not 0 <= format_reward <= 0.1:
            raise ValueError(f"format_reward must be in [0, 0.1] (a small dense signal, not a goal), got {format_reward!r}")
        if format_reward_turns < 1:
            raise ValueError(f"format_reward_turns must be >= 1, got {format_reward_turns!r}")
        self.task_set_name, self.split, self.instances, self.limit = task_set, split, instances, limit
        self.lenient_calls, self.prompt, self.show_source = bool(lenient_calls), prompt, bool(show_source)
        self.format_reward, self.format_reward_turns = float(format_reward), int(format_reward_turns)
        self.system_prompt = COMPACT_SYSTEM_PROMPT if prompt == "compact" else SYSTEM_PROMPT
        self.format_hint = self.action_format = COMPACT_FORMAT if prompt == "compact" else ACTION_FORMAT
        self.sandbox_options = dict(sandbox or {})
        self.sandbox_options.setdefault("exec_timeout_s", float(turn_timeout_s))
        self.sandbox_options.setdefault("episode_timeout_s", float(episode_time_s) * 4 + 600)
        self.sandbox_options.setdefault("memory_mb", 1024)
        self.sandbox_options.setdefault("pids", 256)
        self.pool_size = int(pool_size)
        self.max_turn_tokens, self.max_episode_tokens = int(max_turn_tokens), int(max_episode_tokens)
        self.turn_timeout_s, self.episode_time_s = float(turn_timeout_s), float(episode_time_s)
        self.test_timeout_s = float(test_timeout_s)
        self.observation_chars = int(observation_chars)
        self.ladder = rewards.LADDER
        self._holder = _Holder()
        weakref.finalize(self, self._holder.release)
        self.task: RepoTask | None = None
        self._over = True
        self._broken: str | None = None
        self.last_grade: grading.Grade | None = None
        self.sandbox_seconds = 0.0  # wall time spent in sandbox calls this episode (bench figure)

    @classmethod
    def data_fingerprint(cls, **kwargs: Any) -> dict[str, str]:
        """The task set (its build key — the problems, the mutation and grading code, the image
        recipe — and the sha256 of the verified set when built; SWE-bench: the instances file) and
        the sandbox image tag (:meth:`TurnEnv.data_fingerprint`)."""
        from turngym.hashing import file_sha256
        from turngym.sandbox.image import image_tag

        name, limit = kwargs.get("task_set", "coderepair"), kwargs.get("limit")
        out: dict[str, str] = {}
        if name == "swebench":
            instances = kwargs.get("instances")
            out["instances"] = file_sha256(instances) if instances else "local fixture"
        else:
            from turngym.envs.swe.build import build_key, cache_root

            key = build_key(name, limit)
            out["task_set"] = key
            built = cache_root() / key / f"{name}.json"
            if built.exists():
                out["verified_tasks"] = file_sha256(built)
        out["sandbox_image"] = str((kwargs.get("sandbox") or {}).get("image") or image_tag())
        return out

    # ---- plumbing ------------------------------------------------------------------------------------
    @property
    def tasks(self) -> list[RepoTask]:
        return task_set(self.task_set_name, self.split, self.instances, self.limit)

    def _pool(self, task: RepoTask):
        size = self.pool_size if task.image is None else 0
        return sandbox_pool(task.image, size, self.sandbox_options)

    @property
    def sandbox(self):
        return None if self._holder.lease is None else self._holder.lease.sb

    def _timed(self, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            spent = time.perf_counter() - start
            self.sandbox_seconds += spent
            self._time_used += spent

    def close(self) -> None:
        self._holder.release()
        super().close()

    # ---- reset ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._holder.release()
        options = options or {}
        tasks = self.tasks
        if "task_id" in options:
            matches = [t for t in tasks if t.task_id == options["task_id"]]
            if not matches:
                raise ValueError(f"unknown task_id {options['task_id']!r}; e.g. {tasks[0].task_id!r}")
            self.task = matches[0]
        else:
            index = seed if seed is not None else int(self.np_random.integers(len(tasks)))
            self.task = tasks[int(index) % len(tasks)]
        self._over, self._broken, self._submitted = False, None, False
        self._turn, self._tokens, self._time_used = 0, 0, 0.0
        self.sandbox_seconds = 0.0
        self._fraction = float(self.task.visible_baseline)
        self._undo: dict[str, list[bytes | None]] = {}
        self.last_grade = None
        self.last_patch = ""
        self._base = "HEAD"
        listing = ""
        pool = self._pool(self.task)
        from turngym.sandbox.base import SandboxError, SandboxUnavailable

        try:
            sb = self._timed(pool.acquire)
            self._holder.lease = _Lease(sb, pool)
            self._base = self._timed(lambda: grading.setup_repo(sb, self.task))
            listing = "\n".join(sorted(self.task.files)) if self.task.files else self._timed(self._git_files)
        except SandboxUnavailable:
            raise
        except SandboxError as exc:  # reported on the first step as sandbox_error (masked), never a failure
            self._broken = f"{type(exc).__name__}: {exc}"
            self._holder.release(reuse=False)
        self._format_paid = 0
        return self._first_observation(listing), {"system_prompt": self.system_prompt, "seat": 0, "task_id": self.task.task_id}

    def _first_observation(self, listing: str) -> str:
        """The issue, the file list and the call format; ``show_source`` adds the non-test files'
        text (task files only, within ``observation_chars``), sparing the first ``view``."""
        task = self.task
        head = f"Task {task.task_id}. The repository is at /work/repo.\n\n" if self.prompt == "full" else ""
        obs = f"{head}Issue:\n{task.problem_statement.strip()}\n\nFiles:\n{truncate(listing, 3000)}\n\n"
        if self.show_source:
            for path in sorted(p for p in task.files if not is_test_path(p)):
                block = f"{path}:\n```python\n{task.files[path].rstrip()}\n```\n\n"
                if len(obs) + len(block) > self.observation_chars:
                    break
                obs += block
        return obs + self.format_hint

    def _git_files(self) -> str:
        result = self.sandbox.exec(["bash", "-c", f"cd {self._repo} && git ls-files | head -400"], env=grading.GIT_ENV)
        return result.stdout.strip()

    @property
    def _repo(self) -> str:
        return f"{self.sandbox.limits.workdir.rstrip('/')}/{grading.REPO}"

    # ---- step ----------------------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._over:
            raise EpisodeOver("the episode is over; call reset()")
        from turngym.sandbox.base import SandboxError, WorkdirFull

        record = TurnRecord(turn=self._turn, seat=0, reward=0.0)
        self._turn += 1
        info: dict[str, Any] = {"seat": 0}
        if self._broken is not None:
            return self._finish(record, info, f"The sandbox failed: {self._broken}", StopReason.SANDBOX_ERROR, 0.0)
        text, problem = action_text(action)
        tokens = math.ceil(len(text) / CHARS_PER_TOKEN) if text is not None else self.max_turn_tokens + 1
        self._tokens += tokens
        call: ToolCall | None = None
        if problem is None and tokens > self.max_turn_tokens:
            problem = f"your reply is about {tokens} tokens long; the limit per turn is {self.max_turn_tokens}"
        if problem is None:
            try:
                call = parse_call(text, lenient=self.lenient_calls)
            except CallError as exc:
                problem = str(exc)
        if call is None:
            record.valid_action = False
            record.components["error"] = rewards.ERROR
            obs = f"Invalid reply: {problem}. {self.format_hint}"
        else:
            info["tool"] = call.name
            if self.format_reward and self._format_paid < self.format_reward_turns:
                self._format_paid += 1
                record.components[rewards.FORMAT] = self.format_reward
            try:
                if call.name == "submit":
                    return self._submit(record, info)
                obs, ok, extra = self._timed(lambda: self._run_tool(call))
            except WorkdirFull as exc:  # the policy filled the work dir: its error, never a masked sandbox_error
                obs, ok, extra = f"Error: {exc}", False, {}
            except SandboxError as exc:
                self._holder.release(reuse=False)
                return self._finish(record, info, f"The sandbox failed: {exc}", StopReason.SANDBOX_ERROR, 0.0)
            record.components["valid_call" if ok else "error"] = rewards.VALID_CALL if ok else rewards.ERROR
            record.components.update(extra)
        obs = truncate(obs, self.observation_chars)
        if self._tokens > self.max_episode_tokens:
            return self._finish(record, info, obs + "\n\nThe episode's token budget is spent.", StopReason.TOKEN_LIMIT,
                                self.ladder.no_submit, truncated=True)
        if self._time_used > self.episode_time_s:
            return self._finish(record, info, obs + "\n\nThe episode's time budget is spent.", StopReason.TIME_LIMIT,
                                self.ladder.no_submit, truncated=True)
        record.reward = record.turn_reward
        info["turn"] = record
        return obs, record.reward, False, False, info

    def _finish(self, record: TurnRecord, info: dict[str, Any], obs: str, reason: StopReason, outcome: float,
                truncated: bool = False) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._over = True
        self._holder.release()
        record.outcome = float(outcome)
        record.stop_reason = reason
        record.terminated, record.truncated = not truncated, truncated
        record.reward = record.turn_reward + record.outcome
        info["turn"] = record
        return truncate(obs, self.observation_chars), record.reward, record.terminated, record.truncated, info

    def stop(self, reason: StopReason) -> dict[int, float]:
        if self._over:
            raise EpisodeOver("the episode is already over")
        self._over = True
        self._holder.release()
        return {0: self.ladder.no_submit}

    # ---- tools ---------------------------------------------------------------------------------------
    def _rel(self, path: str) -> str:
        """A repo-relative path, or :class:`EditError` for paths outside the repository."""
        path = path.strip()
        for prefix in (self._repo + "/", self._repo):
            path = path.removeprefix(prefix)
        if path.startswith("/"):
            raise EditError(f"path {path!r} is outside the repository; use paths relative to /work/repo")
        norm = posixpath.normpath(path or ".")
        if norm == ".." or norm.startswith("../"):
            raise EditError(f"path {path!r} leaves the repository")
        if norm == ".git" or norm.startswith(".git/"):
            raise EditError("the editor does not touch .git; use bash for git commands")
        return norm

    def _read(self, rel: str) -> bytes | None:
        return self.sandbox.get_files([f"{grading.REPO}/{rel}"]).get(f"{grading.REPO}/{rel}")

    def _write(self, rel: str, data: bytes | None) -> None:
        if rel == ".":
            raise EditError("the path must name a file, not the repository root")
        if data is None:
            self.sandbox.exec(["rm", "-f", "--", f"{self._repo}/{rel}"])
            return
        try:
            self.sandbox.put_files({f"{grading.REPO}/{rel}": data})
        except ValueError as exc:  # a path the sandbox refuses (bad characters…): the agent's error
            raise EditError(f"cannot write {rel!r}: {exc}") from None

    def _run_tool(self, call: ToolCall) -> tuple[str, bool, dict[str, float]]:
        name, args = call.name, call.args
        if name == "bash":
            return self._bash(args["command"]), True, {}
        if name == "run_tests":
            return self._run_tests()
        try:
            rel = self._rel(args["path"])
            if name == "view":
                return self._view(rel, args.get("start"), args.get("end")), True, {}
            if name == "create":
                old = self._read(rel) if rel != "." else None
                self._undo.setdefault(rel, []).append(old)
                self._write(rel, args["content"].encode("utf-8"))
                return f"{'Overwrote' if old is not None else 'Created'} {rel} ({args['content'].count(chr(10)) + 1} lines).", True, {}
            if name in ("str_replace", "insert"):
                data = self._read(rel)
                if data is None:
                    raise EditError(f"{rel} does not exist; create it first")
                content = data.decode("utf-8", "replace")
                if name == "str_replace":
                    new = editor.str_replace(content, rel, args["old"], args["new"])
                    shown = snippet(new, args["new"])
                else:
                    new = editor.insert(content, rel, args["line"], args["text"])
                    shown = snippet(new, args["text"])
                self._undo.setdefault(rel, []).append(data)
                self._write(rel, new.encode("utf-8"))
                return f"Edited {rel}:\n{shown}", True, {}
            if name == "undo":
                stack = self._undo.get(rel)
                if not stack:
                    raise EditError(f"there is no edit of {rel} to undo")
                self._write(rel, stack.pop())
                return f"Reverted the last edit of {rel}.", True, {}
        except EditError as exc:
            return f"Error: {exc}", False, {}
        raise AssertionError(name)  # pragma: no cover - parse_call only returns known tools

    def _bash(self, command: str) -> str:
        result = self.sandbox.exec(["bash", "-c", command], timeout=self.turn_timeout_s, workdir=self._repo,
                                   env=grading.GIT_ENV)
        parts = [f"exit code {result.exit_code}" + (" (timed out)" if result.timed_out else "")
                 + (" (out of memory)" if result.oom_killed else "")]
        if result.stdout:
            parts.append(result.stdout.rstrip("\n"))
        if result.stderr:
            parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
        return "\n".join(parts)

    def _view(self, rel: str, start: int | None, end: int | None) -> str:
        q = shlex.quote(rel)
        probe = self.sandbox.exec(
            ["bash", "-c", f"cd {self._repo} && if [ -d {q} ]; then echo DIR; find {q} -maxdepth 2 -not -path '*/.git*' "
             f"-not -name '*.pyc' -not -path '*/__pycache__*' | sort | head -300; elif [ -f {q} ]; then echo FILE; else echo MISSING; fi"],
            env=grading.GIT_ENV)
        kind, _, rest = probe.stdout.partition("\n")
        if kind == "DIR":
            return f"{rel}/ contains:\n{rest.rstrip()}"
        if kind != "FILE":
            raise EditError(f"{rel} does not exist")
        data = self._read(rel) or b""
        return editor.view_text(data.decode("utf-8", "replace"), rel, start, end)

    def _run_tests(self) -> tuple[str, bool, dict[str, float]]:
        task = self.task
        if not task.visible_tests:
            return "This task has no visible tests.", True, {}
        work = self.sandbox.limits.workdir.rstrip("/")
        # Every name travels through files, never stdout (capped, middle dropped) or argv (E2BIG):
        # thousands of long-named test files cannot hide an edited visible test from the restore.
        # Fail closed: if the copy, the listing or the restore fails (the policy filled the work dir,
        # made files unreadable…), no test runs and the call is the policy's error.
        listing = f"{grading.REPO_OUT}/changed-{uuid.uuid4().hex}.lst"
        copy_cmd = (  # first kill what the agent left running: nothing may edit the copy after its restore
            f"kill -9 -1 2>/dev/null; mkdir -p {work}/{grading.REPO_OUT} && rm -rf {work}/{SCRATCH} && cp -a {self._repo} {work}/{SCRATCH} && "
            f"cd {work}/{SCRATCH} && git add -A -- . ':!**/__pycache__/**' >/dev/null && "
            f"git diff --cached --name-only -z {self._base} > {work}/{listing} && git reset -q && echo READY"
        )
        copied = self.sandbox.exec(["bash", "-c", copy_cmd], env=grading.GIT_ENV, timeout=60)
        names = self.sandbox.get_files([listing]).get(listing) if "READY" in copied.stdout else None
        if names is None:
            return self._tests_not_run(f"copying the repository for the test run failed: {copied.stderr.strip()[-300:]}")
        restore = [p for p in names.decode("utf-8", "surrogateescape").split("\0") if p and is_test_path(p)]
        if restore:
            self.sandbox.put_files({listing: "\0".join(restore).encode("utf-8", "surrogateescape") + b"\0"})
            undone = self.sandbox.exec(
                ["bash", "-c", f"cd {work}/{SCRATCH} && while IFS= read -r -d '' p; do if git cat-file -e "
                 f"{self._base}:\"$p\" 2>/dev/null; then git checkout -q {self._base} -- \"$p\" || exit 1; "
                 f"else rm -rf -- \"$p\" || exit 1; fi; done < {work}/{listing} && echo RESTORED"],
                env=grading.GIT_ENV, timeout=60)
            if "RESTORED" not in undone.stdout:
                return self._tests_not_run(f"restoring the shipped test files failed: {undone.stderr.strip()[-300:]}")
        self.sandbox.exec(["rm", "-f", f"{work}/{listing}"], env=grading.GIT_ENV)
        run = grading.run_pytest(self.sandbox, SCRATCH, task.visible_tests, python=task.python,
                                 timeout=min(self.test_timeout_s, self.turn_timeout_s * 4))
        previous, self._fraction = self._fraction, run.fraction
        failing = [t for t, s in run.status.items() if s != "passed"]
        lines = [f"Visible tests: {len(run.passed)}/{len(run.status)} pass."]
        if restore:
            lines.append(f"(Your changes to {len(restore)} test file(s) were not used: tests run as shipped.)")
        if failing:
            lines.append("Not passing: " + ", ".join(failing[:20]) + (" …" if len(failing) > 20 else ""))
        lines.append(truncate(run.output.strip(), max(1000, self.observation_chars - 1500)))
        return "\n".join(lines), True, {"test_progress": rewards.test_progress(previous, run.fraction)}

    @staticmethod
    def _tests_not_run(why: str) -> tuple[str, bool, dict[str, float]]:
        return f"Error: the tests did not run: {why} (is the work dir full? disk and inodes are limited)", False, {}

    def _submit(self, record: TurnRecord, info: dict[str, Any]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        from turngym.sandbox.base import SandboxError

        self._submitted = True
        task = self.task
        pool = self._pool(task)
        try:
            patch = self._timed(lambda: grading.current_diff(self.sandbox, self._base))
            self._holder.release()  # done with the episode sandbox before grading takes one
            grade = self._timed(lambda: grading.grade(task, patch, pool.sandbox, timeout=self.test_timeout_s))
        except SandboxError as exc:
            self._holder.release(reuse=False)
            return self._finish(record, info, f"The sandbox failed while grading: {exc}", StopReason.SANDBOX_ERROR, 0.0)
        self.last_patch, self.last_grade = patch, grade
        level = rewards.classify(True, grade.kept_patch, grade.passed)
        outcome = self.ladder.value(level)
        record.components["valid_call"] = rewards.VALID_CALL
        info["grade"] = {"outcome": level.value, "passed": grade.passed, "applied": grade.applied,
                         "dropped_test_paths": list(grade.dropped_test_paths), "tests": dict(grade.tests)}
        failing = [t for t, s in grade.tests.items() if s != "passed"]
        obs = {
            rewards.Outcome.EMPTY_PATCH: "Submitted an empty patch (no change outside test files).",
            rewards.Outcome.TESTS_FAIL: f"Submitted. The hidden tests fail: {grade.message}."
            + (f" Failing: {', '.join(failing[:10])}" if failing else ""),
            rewards.Outcome.TESTS_PASS: "Submitted. All hidden tests pass.",
        }[level]
        if grade.dropped_test_paths:
            obs += f" (Changes to test files were ignored: {', '.join(grade.dropped_test_paths[:10])}.)"
        reason = StopReason.SOLVED if level is rewards.Outcome.TESTS_PASS else StopReason.FAILED
        return self._finish(record, info, obs, reason, outcome)

    # ---- fork / sampling -----------------------------------------------------------------------------
    def fork(self) -> RepairEnv:
        """An independent copy: the sandbox is forked (work dir copied), the episode state deep-copied."""
        from turngym.sandbox.base import SandboxError

        new = copy.copy(self)
        new._holder = _Holder()
        weakref.finalize(new, new._holder.release)
        new._undo = copy.deepcopy(getattr(self, "_undo", {}))
        new._np_random = copy.deepcopy(self._np_random)
        new.observation_space, new.action_space = copy.deepcopy(self.observation_space), copy.deepcopy(self.action_space)
        if not self._over and self.sandbox is not None:
            try:
                child = self.sandbox.fork(1)[0]
            except SandboxError as exc:
                new._broken = f"fork failed: {exc}"
            else:
                new._holder.lease = _Lease(child, None)
        return new

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        """A well-formed call: mostly read-only looks and test runs, sometimes a submit."""
        if self._over or self.task is None:
            return None
        sources = sorted(p for p in self.task.files if not is_test_path(p)) or ["."]
        path = sources[int(rng.integers(len(sources)))]
        roll = float(rng.random())
        if roll < 0.15:
            return "<submit/>"
        if roll < 0.35:
            return "<run_tests/>"
        if roll < 0.6:
            return f'<view path="{path}" start="1" end="{int(rng.integers(5, 40))}"/>'
        if roll < 0.8:
            return f'{{"name": "bash", "arguments": {{"command": "grep -n def {path} | head -5"}}}}'
        return "<bash>git status --short && ls</bash>"

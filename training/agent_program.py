"""Rollouts played by an agent program through the training gateway (config ``agent_program:``).

Per step, :func:`collect_programs` starts a gateway (:mod:`turngym.agents.gateway`) over the rollout
policy — the weights the trainer syncs after every update, fixed while the step's programs run — and
runs the program once per rollout of every task's group, all concurrently, each with its own session
and per-session base URL ``http://127.0.0.1:<port>/s/<session>/v1`` and a fresh bearer token. Every
call is sampled as ``rollout:`` says (temperature, top-p/k, at most ``max_new_tokens``), whatever the
program asks. The program is

* a Python callable ``run(task, base_url, api_key)`` returning the reward, or
* a command line: task JSON on stdin, ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (and
  ``TURNGYM_SESSION``) in its environment, the reward on its last stdout line.

A reward is a number or ``{"reward": r, "call_rewards": [...]}``; a program may instead report it to
``POST /sessions/<session>/reward`` and return nothing. Each session becomes one trajectory
(:func:`turngym.training.sessions.session_trajectory`). A program that raises, exits non-zero,
prints no reward, or is still running at ``timeout_s`` (a command is killed; a callable's thread is
abandoned and its session closed, so its next call fails) yields a ``failed`` trajectory: masked in
its group and counted in ``rollout/failed``, never scored 0. Sampling seeds are fresh per call
(a program's run is not reproducible).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from turngym.agents.base import Policy
from turngym.agents.gateway import GatewayConfig, SessionRecorder
from turngym.agents.serve import RequestError, ServeConfig, ServerThread
from turngym.training.rollout import RolloutBatch, RolloutConfig, RolloutMetrics, Task
from turngym.training.sessions import session_trajectory

if TYPE_CHECKING:
    from turngym.training.config import AgentProgramSection, TrainConfig


def load_object(spec: str) -> Any:
    """``module:name`` or ``path/to/file.py:name`` → the object (``ValueError`` quoting ``spec``)."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise ValueError(f"{spec!r} must be 'module:name' or 'path/file.py:name'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.exists():
            raise ValueError(f"{spec!r}: no file {path}")
        module_spec = importlib.util.spec_from_file_location(f"turngym_program_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, name):
        raise ValueError(f"{spec!r}: {target} has no {name!r}")
    return getattr(module, name)


_TASKS: dict[str, list[dict[str, Any]]] = {}


def load_tasks(spec: str) -> list[dict[str, Any]]:
    """The task set of ``agent_program.tasks`` (a ``.jsonl`` / ``.json`` file or ``module:function``), cached."""
    if spec not in _TASKS:
        if spec.endswith(".jsonl"):
            tasks = [json.loads(line) for line in Path(spec).read_text().splitlines() if line.strip()]
        elif spec.endswith(".json"):
            tasks = json.loads(Path(spec).read_text())
        else:
            tasks = list(load_object(spec)())
        if not tasks or not all(isinstance(t, dict) for t in tasks):
            raise ValueError(f"agent_program.tasks {spec!r} must give a non-empty list of task objects")
        _TASKS[spec] = tasks
    return _TASKS[spec]


def program_tasks(config: TrainConfig, step: int) -> list[Task]:
    """``tasks_per_step`` tasks of the program's task set, drawn uniformly; a function of (seed, step).
    A task's ``seed`` is its index in the set."""
    program = config.agent_program
    assert program is not None
    count = len(load_tasks(program.tasks))
    picks = np.random.default_rng([config.seed, step, 17]).integers(0, count, size=config.rollout.tasks_per_step)
    return [Task(program.name, int(i)) for i in picks]


def parse_reward(value: Any) -> tuple[float | None, list[float] | None]:
    """A program's result → ``(reward, call_rewards)``: a number, ``{"reward", "call_rewards"}``, the
    text of either (a command's last stdout line), or ``None`` (no reward). ``ValueError`` otherwise."""
    if value is None:
        return None, None
    if isinstance(value, str):
        lines = [line for line in value.strip().splitlines() if line.strip()]
        if not lines:
            return None, None
        try:
            return parse_reward(json.loads(lines[-1]))
        except json.JSONDecodeError:
            raise ValueError(f"the program's last output line is not a reward: {lines[-1]!r:.80}") from None
    if isinstance(value, dict) and "reward" in value:
        calls = value.get("call_rewards")
        return parse_reward(value["reward"])[0], None if calls is None else [float(x) for x in calls]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), None
    raise ValueError(f"a reward must be a number or {{'reward': ..., 'call_rewards': [...]}}, got {value!r:.80}")


@dataclass
class _Run:
    """One rollout's program run."""

    task: Task
    sample_index: int
    session: str
    result: Any = None
    error: str | None = None
    done: bool = False


def collect_programs(tasks: list[Task], policy: Policy, config: RolloutConfig, program: AgentProgramSection) -> RolloutBatch:
    """Run ``program`` ``config.group_size`` times per task against a gateway over ``policy``
    (module docstring); one trajectory per run, sorted by (task, sample)."""
    started = time.perf_counter()
    data = load_tasks(program.tasks)
    function = load_object(program.callable) if program.callable else None
    runs = [_Run(task, k, f"{config.seed}-{i}-{k}-{secrets.token_hex(4)}")
            for i, task in enumerate(tasks) for k in range(config.group_size)]
    recorder = SessionRecorder(GatewayConfig(
        max_sessions=len(runs), max_tokens_per_session=program.max_tokens_per_session, auto_open=False,
        temperature=config.temperature, top_p=config.top_p, top_k=config.top_k, max_new_tokens=config.max_new_tokens))
    token = secrets.token_hex(16)
    serve = ServeConfig(model_name="turngym", token=token, batch_wait_s=0.02, accept_any_model=True, max_concurrent_requests=max(256, 4 * len(runs)))
    with ServerThread(policy, serve, recorder=recorder) as server:
        deadline = time.monotonic() + program.timeout_s
        threads = []
        for run in runs:
            recorder.open(run.session)
            base_url = f"{server.root_url}/s/{run.session}/v1"
            target = _call_function(function, data[run.task.seed], base_url, token, run) if function else \
                _call_command(program.command or [], data[run.task.seed], base_url, token, run, deadline)
            threads.append(threading.Thread(target=target, name=f"turngym-program-{run.session}", daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        trajectories = []
        for run in runs:
            error = run.error if run.done else f"the program was still running at agent_program.timeout_s={program.timeout_s}"
            if error is None:
                error = _report(recorder, run)
            if error is not None:
                recorder.close(run.session, error)
            trajectories.append(session_trajectory(recorder.take(run.session), env_id=run.task.env_id, seed=run.task.seed,
                                                   sample_index=run.sample_index))
    metrics = RolloutMetrics(episodes=len(runs), trajectories=len(trajectories))
    for t in trajectories:
        metrics.failed += t.failed
        metrics.turns += len(t.turns)
        metrics.generated_tokens += t.num_generated_tokens
        metrics.length_finishes += sum(turn.finish_reason == "length" for turn in t.turns)
    metrics.wall_seconds = time.perf_counter() - started
    trajectories.sort(key=lambda t: (t.env_id, t.seed, t.sample_index))
    return RolloutBatch(trajectories, metrics)


def _report(recorder: SessionRecorder, run: _Run) -> str | None:
    """Report a finished run's reward to its session; the failure text when there is none to report."""
    try:
        reward, call_rewards = parse_reward(run.result)
    except (ValueError, TypeError) as exc:
        return str(exc)
    record = recorder.get(run.session)
    if reward is None:
        return None if record.reward is not None else "the program returned no reward and reported none to the gateway"
    if record.closed:  # it reported to the gateway as well: that report stands
        return None
    try:
        recorder.report(run.session, reward, call_rewards)
    except RequestError as exc:
        return str(exc)
    return None


def _call_function(function: Callable[..., Any], task: dict[str, Any], base_url: str, token: str, run: _Run) -> Callable[[], None]:
    def target() -> None:
        try:
            run.result = function(task, base_url, token)
        except Exception as exc:  # the program's failure is data (a masked rollout), not a crash of the trainer
            run.error = f"the program raised {type(exc).__name__}: {exc}"
        run.done = True

    return target


def _call_command(command: list[str], task: dict[str, Any], base_url: str, token: str, run: _Run,
                  deadline: float) -> Callable[[], None]:
    def target() -> None:
        env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": token, "TURNGYM_SESSION": run.session}
        try:
            proc = subprocess.run(command, input=json.dumps(task), capture_output=True, text=True, env=env,
                                  timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:  # subprocess.run killed it
            run.error = "the program was killed at agent_program.timeout_s"
        except OSError as exc:
            run.error = f"the program could not start: {exc}"
        else:
            if proc.returncode != 0:
                run.error = f"the program exited with status {proc.returncode}: {proc.stderr.strip()[-300:]!r}"
            run.result = proc.stdout
        run.done = True

    return target


def program_collector(program: AgentProgramSection) -> Callable[[list[Task], Policy, RolloutConfig], RolloutBatch]:
    """``collect``'s signature for the trainer: ``(tasks, policy, rollout_config) -> RolloutBatch``."""
    return lambda tasks, policy, config: collect_programs(tasks, policy, config, program)

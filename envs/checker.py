"""Conformance checker for registered turngym environments (``turngym check``).

:func:`check` runs Gymnasium's own ``check_env`` on the unwrapped environment, then the multi-turn
checks Gymnasium has no notion of. Each check is a small function below, under a banner comment;
each returns a :class:`CheckResult` (``passed``, ``failed`` or ``skipped`` with a one-line detail).

1. ``gymnasium_check_env`` — Gymnasium's API checker on ``env.unwrapped``.
2. ``reset_determinism`` — same seed ⇒ identical observation and info, on fresh instances.
3. ``scripted_episode_determinism`` — same seed and same action script ⇒ identical episode.
4. ``turn_records`` — every step has a well-formed :class:`TurnRecord`; rewards finite and inside the
   spec's ``reward_bounds``; ``reward == sum(components) + outcome``; outcome and stop reason set on
   exactly the final step.
5. ``outcome_on_truncation`` — with a 1–2 turn limit the truncating step still carries the outcome.
6. ``bad_actions`` — empty, 100 kB, non-UTF-8, NUL and random-unicode actions never raise; a rejected
   action's observation quotes the env's ``action_format``.
7. ``fork`` — a fork continues exactly like the original; stepping one leaves the other untouched.
8. ``step_after_end`` — stepping a finished episode raises :class:`EpisodeOver`, not something obscure.

Scripts are drawn from ``env.sample_valid_action(rng)`` (falling back to fixed probe strings), with a
seeded generator, so a check is reproducible.
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from turngym.envs.core import EpisodeOver, ForkNotSupported, TurnEnv
from turngym.envs.registration import TurnSpec, make, spec
from turngym.envs.types import StopReason, TurnRecord

MAX_SCRIPT_STEPS = 200
_PROBE_ACTIONS = ("1", "[1]", "yes", "look", "<answer>a</answer>")


@dataclass
class CheckResult:
    name: str
    status: str  # "passed" | "failed" | "skipped"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class CheckReport:
    env_id: str
    results: list[CheckResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time of all the checks."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "ok": self.ok,
            "results": [r.__dict__ for r in self.results],
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


class CheckFailure(AssertionError):
    """A conformance violation; its message is the report line."""


def check(
    env_id: str, seeds: tuple[int, ...] = (0, 1, 2, 123), on_check: Callable[[str], None] | None = None
) -> CheckReport:
    """Run every check on ``env_id`` and return the report (never raises for env misbehaviour).

    ``on_check(name)`` is called as each check starts (progress displays).
    """
    started = time.perf_counter()
    turn_spec = spec(env_id)
    report = CheckReport(env_id)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("gymnasium_check_env", lambda: _gymnasium_check_env(env_id, report)),
        ("reset_determinism", lambda: _reset_determinism(env_id, seeds)),
        ("scripted_episode_determinism", lambda: _scripted_episode_determinism(env_id, seeds)),
        ("turn_records", lambda: _turn_records(env_id, turn_spec, seeds)),
        ("outcome_on_truncation", lambda: _outcome_on_truncation(env_id, turn_spec, seeds)),
        ("bad_actions", lambda: _bad_actions(env_id)),
        ("fork", lambda: _fork(env_id, seeds)),
        ("step_after_end", lambda: _step_after_end(env_id)),
    ]
    for name, run in checks:
        if on_check is not None:
            on_check(name)
        try:
            detail = run()
            status = "skipped" if detail.startswith("skipped") else "passed"
            report.results.append(CheckResult(name, status, detail))
        except CheckFailure as exc:
            report.results.append(CheckResult(name, "failed", str(exc)))
        except Exception as exc:  # the env raised where it must not: that is the finding
            where = traceback.extract_tb(exc.__traceback__)[-1]
            report.results.append(
                CheckResult(
                    name,
                    "failed",
                    f"raised {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                )
            )
    report.seconds = time.perf_counter() - started
    return report


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailure(message)


def _fresh(env_id: str, **overrides: Any) -> gymnasium.Env:
    return make(env_id, **overrides)


def _record(info: dict[str, Any], where: str) -> TurnRecord:
    record = info.get("turn")
    _require(isinstance(record, TurnRecord), f"{where}: info['turn'] must be a TurnRecord, got {type(record).__name__}")
    return record


def _script_action(env: gymnasium.Env, rng: np.random.Generator) -> str:
    base: TurnEnv = env.unwrapped
    action = base.sample_valid_action(rng)
    return action if action is not None else _PROBE_ACTIONS[int(rng.integers(len(_PROBE_ACTIONS)))]


def _script_rng(seed: int) -> np.random.Generator:
    """The action-script generator: a different stream from the env's own ``np_random`` for ``seed``."""
    return np.random.default_rng([seed, 0x5C817])


def _play(env: gymnasium.Env, seed: int, script_seed: int, max_steps: int = MAX_SCRIPT_STEPS) -> list[Any]:
    """Reset with ``seed`` and play a scripted episode; return a comparable transcript."""
    rng = _script_rng(script_seed)
    obs, info = env.reset(seed=seed)
    transcript: list[Any] = [("reset", obs, _comparable_info(info))]
    for _ in range(max_steps):
        action = _script_action(env, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        transcript.append((action, obs, reward, terminated, truncated, _comparable_info(info)))
        if terminated or truncated:
            break
    return transcript


def _comparable_info(info: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_dict() if isinstance(v, TurnRecord) else v) for k, v in info.items()}


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"step {i}: {str(x)[:160]!r} != {str(y)[:160]!r}"
    return f"lengths differ: {len(a)} vs {len(b)}"


# ==== 1. Gymnasium's own checker ================================================================
def _gymnasium_check_env(env_id: str, report: CheckReport) -> str:
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make(env_id).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(env, skip_render_check=True)
        except AssertionError as exc:
            raise CheckFailure(f"gymnasium check_env: {exc}") from exc
    report.warnings.extend(sorted({f"check_env: {w.message}" for w in caught}))
    return "ok"


# ==== 2. Same seed ⇒ same start ==================================================================
def _reset_determinism(env_id: str, seeds: tuple[int, ...]) -> str:
    for seed in seeds:
        first = _fresh(env_id).reset(seed=seed)
        second = _fresh(env_id).reset(seed=seed)
        again_env = _fresh(env_id)
        again_env.reset(seed=seed + 1000)
        third = again_env.reset(seed=seed)
        for other, what in ((second, "a fresh instance"), (third, "a reused instance")):
            _require(first[0] == other[0], f"seed {seed}: reset observation differs on {what}")
            _require(
                _comparable_info(first[1]) == _comparable_info(other[1]),
                f"seed {seed}: reset info differs on {what}",
            )
    return f"{len(seeds)} seeds × fresh and reused instances"


# ==== 3. Same seed and actions ⇒ same episode ====================================================
def _scripted_episode_determinism(env_id: str, seeds: tuple[int, ...]) -> str:
    steps = 0
    for seed in seeds:
        a = _play(_fresh(env_id), seed, script_seed=seed)
        b = _play(_fresh(env_id), seed, script_seed=seed)
        _require(a == b, f"seed {seed}: episodes differ at {_first_difference(a, b)}")
        steps += len(a) - 1
    return f"{len(seeds)} episodes, {steps} steps"


# ==== 4. Turn records and rewards ================================================================
def _turn_records(env_id: str, turn_spec: TurnSpec, seeds: tuple[int, ...]) -> str:
    low, high = turn_spec.reward_bounds
    episodes = 0
    for seed in seeds:
        for invalid_every in (0, 3):  # clean scripts, then scripts salted with malformed replies
            env = _fresh(env_id)
            rng = _script_rng(seed)
            env.reset(seed=seed)
            for t in range(MAX_SCRIPT_STEPS):
                salted = invalid_every and t % invalid_every == invalid_every - 1
                action = "\u2603 not a move" if salted else _script_action(env, rng)
                obs, reward, terminated, truncated, info = env.step(action)
                where = f"seed {seed} step {t}"
                record = _record(info, where)
                _require(isinstance(obs, str), f"{where}: observation must be str, got {type(obs).__name__}")
                _require(math.isfinite(reward), f"{where}: reward {reward!r} is not finite")
                _require(low <= reward <= high, f"{where}: reward {reward!r} outside reward_bounds {turn_spec.reward_bounds}")
                _require(record.reward == reward, f"{where}: info['turn'].reward {record.reward!r} != step reward {reward!r}")
                _require(
                    all(isinstance(k, str) and math.isfinite(v) for k, v in record.components.items()),
                    f"{where}: components must map names to finite floats, got {record.components!r}",
                )
                _require(record.reward_consistent(), f"{where}: reward {record.reward!r} != sum(components) + outcome ({record.components!r}, {record.outcome!r})")
                done = terminated or truncated
                _require(record.terminated == terminated and record.truncated == truncated, f"{where}: record flags disagree with the step's")
                if done:
                    _require(record.outcome is not None, f"{where}: final step has no outcome")
                    _require(isinstance(record.stop_reason, StopReason), f"{where}: final step has no stop_reason")
                    break
                _require(record.outcome is None, f"{where}: outcome {record.outcome!r} set before the episode ended")
                _require(record.stop_reason is None, f"{where}: stop_reason set before the episode ended")
            episodes += 1
    return f"{episodes} episodes; rewards within {turn_spec.reward_bounds}"


# ==== 5. The outcome is computed when a turn limit truncates =====================================
def _outcome_on_truncation(env_id: str, turn_spec: TurnSpec, seeds: tuple[int, ...]) -> str:
    truncations = 0
    for limit in (1, 2):
        for seed in seeds:
            env = _fresh(env_id, max_turns=limit)
            rng = _script_rng(seed)
            env.reset(seed=seed)
            for t in range(limit):
                obs, reward, terminated, truncated, info = env.step(_script_action(env, rng))
                record = _record(info, f"limit {limit} seed {seed} step {t}")
                if terminated:
                    break
                if t == limit - 1:
                    _require(truncated, f"limit {limit} seed {seed}: not truncated at the limit")
                if truncated:
                    _require(record.outcome is not None, f"limit {limit} seed {seed}: truncated without an outcome")
                    _require(record.stop_reason == StopReason.TURN_LIMIT, f"limit {limit} seed {seed}: stop_reason {record.stop_reason!r}, expected turn_limit")
                    _require(math.isfinite(reward) and record.reward_consistent(), f"limit {limit} seed {seed}: bad final reward {reward!r}")
                    truncations += 1
                    break
    if truncations == 0:
        return "skipped: every scripted episode terminated before a 1–2 turn limit"
    return f"{truncations} truncated episodes carried their outcome"


# ==== 6. Bad input is data, not a crash ==========================================================
def _bad_actions(env_id: str) -> str:
    rng = np.random.default_rng(0)
    random_unicode = [
        "".join(chr(int(c)) for c in rng.integers(0x20, 0x2FFF, size=int(n)) if not 0xD800 <= c <= 0xDFFF)
        for n in (1, 7, 64)
    ]
    bad: list[tuple[str, Any]] = [
        ("empty", ""),
        ("whitespace", " \n\t "),
        ("100 kB", "x" * 100_000),
        ("100 kB of digits", "7" * 100_000),
        ("non-UTF-8 bytes", b"\xff\xfe\x00\x80bad"),
        ("NUL", "\x00"),
        *((f"random unicode {i}", s) for i, s in enumerate(random_unicode)),
    ]
    rejected = 0
    for label, action in bad:
        env = _fresh(env_id)
        env.reset(seed=0)
        base: TurnEnv = env.unwrapped
        obs, reward, terminated, truncated, info = env.step(action)
        record = _record(info, f"action {label}")
        _require(isinstance(obs, str), f"action {label}: observation must be str")
        _require(math.isfinite(reward), f"action {label}: reward {reward!r} not finite")
        if not record.valid_action:
            rejected += 1
            fmt = base.action_format
            _require(bool(fmt), "the env rejects actions but declares no action_format")
            _require(fmt in obs, f"action {label}: the corrective observation does not state the expected format {fmt!r}")
    return f"{len(bad)} malformed actions handled, {rejected} rejected with the expected format"


# ==== 7. fork() continues identically ============================================================
def _fork(env_id: str, seeds: tuple[int, ...]) -> str:
    checked = 0
    for seed in seeds:
        env = _fresh(env_id, max_turns=None)
        rng = _script_rng(seed)
        env.reset(seed=seed)
        base: TurnEnv = env.unwrapped
        done = False
        for _ in range(2):
            *_, terminated, truncated, _ = env.step(_script_action(env, rng))
            if terminated or truncated:
                done = True
                break
        if done:
            continue
        try:
            copy_env = base.fork()
        except ForkNotSupported:
            return "skipped: the env does not support fork()"
        _require(copy_env is not base, "fork() returned the same object")
        original = _continue(base, _script_rng(seed + 7))
        forked = _continue(copy_env, _script_rng(seed + 7))
        _require(original == forked, f"seed {seed}: fork diverged at {_first_difference(original, forked)}")
        checked += 1
    if checked == 0:
        return "skipped: every scripted episode ended within two steps"
    return f"{checked} forks continued identically"


def _continue(env: TurnEnv, rng: np.random.Generator) -> list[Any]:
    transcript = []
    for _ in range(MAX_SCRIPT_STEPS):
        action = env.sample_valid_action(rng) or _PROBE_ACTIONS[int(rng.integers(len(_PROBE_ACTIONS)))]
        obs, reward, terminated, truncated, info = env.step(action)
        transcript.append((action, obs, reward, terminated, truncated, _comparable_info(info)))
        if terminated or truncated:
            break
    return transcript


# ==== 8. stepping a finished episode =============================================================
def _step_after_end(env_id: str) -> str:
    env = _fresh(env_id)
    transcript = _play(env, seed=0, script_seed=0)
    last = transcript[-1]
    if not (last[3] or last[4]):
        return f"skipped: no scripted episode ended within {MAX_SCRIPT_STEPS} steps"
    try:
        env.step("1")
    except EpisodeOver:
        return "raises EpisodeOver"
    except Exception as exc:
        raise CheckFailure(f"step after the end raised {type(exc).__name__} ({exc}); expected EpisodeOver") from exc
    raise CheckFailure("step after the end of an episode did not raise EpisodeOver")

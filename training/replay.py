"""``turngym replay``: re-run a trajectory log's recorded actions through the environment and find the
first turn whose observation, reward or reward components differ from the record.

Input: a trajectory log — a run's ``trajectories.jsonl`` (:mod:`turngym.training.trajectory_log`) or
``turngym eval --save-trajectories`` — one JSON line per episode. How an episode is rebuilt:

* **single-agent** environments: ``turngym.make(env_id, **env_kwargs)``, ``reset(seed=seed)``, then
  every turn's ``action``;
* **a game against an opponent** (``opponent`` names an agent spec): the policy's seat against the
  opponent the rollout met — built by :func:`turngym.training.rollout.task_opponent` from the spec and
  the seed exactly as the rollout built it, so its dice repeat;
* **every seat's moves recorded**: a line whose turns hold several seats (``turngym eval`` of scripted
  agents plays hot-seat), or a self-play episode (``opponent == "self"``) whose seats' lines are
  merged (same ``step``, ``group_id`` and ``sample_index``) and ordered by ``env_turn``. A self-play
  seat whose partner line is not in the log cannot be replayed (the other seat's replies are
  unknown), and says so.

Compared per turn: the seat to act, the observation the turn replied to, the dense reward, every
component and the action's validity; at the end the episode's length, stop reason and outcomes.
An episode the run marked ``failed`` (the environment failed; masked by the learner) is skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.envs.registration import make
from turngym.envs.registration import spec as env_spec
from turngym.envs.types import StopReason
from turngym.training.rollout import task_opponent

TOLERANCE = 1e-9
"""Rewards are written with ``repr`` precision; this only absorbs summation order."""


@dataclass
class Difference:
    """The first mismatch: ``turn`` is the index in the replayed sequence of moves (for one seat's
    episode, the log's ``turn``), ``seat`` the seat that moved, ``field`` what differs."""

    turn: int
    seat: int
    field: str
    recorded: Any
    replayed: Any

    def describe(self) -> str:
        return (f"turn {self.turn} (seat {self.seat}): {self.field} differs: recorded {_show(self.recorded)}, "
                f"replayed {_show(self.replayed)}")


@dataclass
class ReplayResult:
    """One episode's verdict: ``status`` is ``identical``, ``different`` (see ``difference``),
    ``cannot`` (``reason`` says why) or ``skipped`` (the run's rollout failed)."""

    episode: int
    env_id: str
    seed: int
    status: str
    turns: int = 0
    difference: Difference | None = None
    reason: str = ""
    lines: list[int] = field(default_factory=list)
    """The log lines replayed together (a self-play episode's seats)."""

    def describe(self) -> str:
        head = f"episode {self.episode} ({self.env_id} seed {self.seed})"
        if self.status == "identical":
            return f"{head}: identical ({self.turns} turns)"
        if self.status == "different" and self.difference is not None:
            return f"{head}: {self.difference.describe()}"
        return f"{head}: {'cannot replay' if self.status == 'cannot' else 'skipped'}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode, "env_id": self.env_id, "seed": self.seed, "status": self.status,
            "turns": self.turns, "lines": self.lines, "reason": self.reason,
            "difference": None if self.difference is None else self.difference.__dict__,
        }


# ------------------------------------------------------------------------------------ reading
def read_log(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line index, episode record)`` of every non-empty line; a malformed line raises
    ``ValueError`` naming the file and line."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no trajectory log at {str(path)!r}; give a run's trajectories.jsonl or a file "
                                "written by `turngym eval --save-trajectories`")
    with open(source) as f:
        index = 0
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(source)!r} line {number} is not JSON ({exc})") from None
            if not isinstance(record, dict) or "env_id" not in record or "turns" not in record:
                raise ValueError(f"{str(source)!r} line {number} is not a trajectory-log episode "
                                 "(expected an object with env_id, seed and turns)")
            yield index, record
            index += 1


def _episode_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record.get("step"), record.get("group_id"), record.get("sample_index"), record["env_id"], record["seed"])


def replay_log(path: str | Path, episode: int | None = None,
               on_result: Callable[[ReplayResult, int], None] | None = None) -> list[ReplayResult]:
    """Replay every episode of the log at ``path`` (or only episode ``episode``, its 0-based line
    index), self-play seats merged; results in file order. ``on_result(result, lines_done)`` is
    called after each episode (a progress display).

    The log is streamed: a self-play seat waits only until the log's ``step`` changes (a step's
    records are contiguous), so memory holds one step's self-play records, and ``episode`` stops
    reading once it and its partners are replayed.
    """
    results: list[ReplayResult] = []
    pending: dict[tuple[Any, ...], list[tuple[int, dict[str, Any]]]] = {}
    lines, step, target_step, found = 0, object(), object(), False

    def flush() -> None:
        for group in pending.values():
            indices = [i for i, _ in group]
            if episode is None or episode in indices:
                finish(replay_episode([r for _, r in group], indices[0], indices))
        pending.clear()

    def finish(result: ReplayResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result, lines)

    for index, record in read_log(path):
        lines = index + 1
        if record.get("step") != step:
            flush()
            step = record.get("step")
            if found and step != target_step:
                break
        if record.get("opponent") == "self":
            pending.setdefault(_episode_key(record), []).append((index, record))
            if index == episode:
                found, target_step = True, step
        elif episode is None or index == episode:
            finish(replay_episode([record], index, [index]))
            if episode is not None:
                return results
    flush()
    if episode is not None and not results:
        raise ValueError(f"--episode {episode} is out of range: {str(path)!r} holds {lines} episodes"
                         + (f" (0-{lines - 1})" if lines else ""))
    return sorted(results, key=lambda r: r.episode)


# ------------------------------------------------------------------------------------ replaying
def replay_episode(records: list[dict[str, Any]], episode: int = 0, lines: list[int] | None = None) -> ReplayResult:
    """Replay one episode from its log record(s): one record, or every seat's record of a self-play
    game. Never raises for the environment's sake: an env that raises during the replay is a
    difference (the run did not fail there)."""
    first = records[0]
    env_id, seed = str(first["env_id"]), int(first["seed"])
    result = ReplayResult(episode, env_id, seed, "cannot", lines=list(lines or [episode]))
    if any(r.get("failed") for r in records):
        result.status, result.reason = "skipped", f"the rollout failed in the run ({first.get('error') or 'env error'}); it was masked"
        return result
    num_seats = env_spec(env_id).num_seats
    opponent = first.get("opponent")
    kwargs = dict(first.get("env_kwargs") or {})
    turns = sorted((t for r in records for t in r["turns"]), key=lambda t: t.get("env_turn", t["turn"]))
    seats = {int(t["seat"]) for t in turns}
    missing = set(range(num_seats)) - {int(r["seat"]) for r in records} if opponent == "self" else set()
    if any(t.get("action") is None for t in turns):
        result.reason = "the log has no actions for this episode (a record written before actions were logged)"
        return result
    hot_seat = num_seats > 1 and (opponent == "self" or len(seats) > 1)
    if num_seats > 1 and not hot_seat and not opponent:
        result.reason = "a game episode without an opponent spec: the other seats' moves are unknown"
        return result
    try:
        if num_seats > 1 and not hot_seat:
            env = make(env_id, opponent=task_opponent(str(opponent), env_id, seed), agent_seat=int(first["seat"]), **kwargs)
        else:
            env = make(env_id, **kwargs)
    except Exception as exc:  # the env (or opponent) cannot be built here: nothing was compared
        result.reason = f"cannot build {env_id} with {kwargs!r} (opponent {opponent!r}): {type(exc).__name__}: {exc}"
        return result
    try:
        _compare(env, seed, turns, records, hot_seat, result)
        if result.status == "different" and result.difference is not None and result.difference.field == "seat to act" \
                and result.difference.replayed in missing:
            result.status, result.difference = "cannot", None
            result.reason = (f"a self-play episode: seat {sorted(missing)} of this game (step {first.get('step')}, "
                             f"group {first.get('group_id')}, sample {first.get('sample_index')}) has no trajectory in the "
                             "log, so its replies are unknown")
    finally:
        env.close()
    return result


def _compare(env: Any, seed: int, turns: list[dict[str, Any]], records: list[dict[str, Any]], hot_seat: bool,
             result: ReplayResult) -> None:
    def differ(k: int, seat: int, name: str, recorded: Any, replayed: Any) -> None:
        result.status, result.turns = "different", k
        result.difference = Difference(k, seat, name, recorded, replayed)

    try:
        obs, info = env.reset(seed=seed)
    except Exception as exc:
        return differ(0, 0, "reset", "an observation", f"{type(exc).__name__}: {exc}")
    done, info_end = False, {}
    for k, turn in enumerate(turns):
        seat = int(turn["seat"])
        if done:
            return differ(k, seat, "episode length", f"{len(turns)} turns", f"ended after {k} turns")
        acting = int(info["game_seat"]) if "game_seat" in info else int(info.get("seat", 0))
        if acting != seat:
            return differ(k, seat, "seat to act", seat, acting)
        if turn.get("observation") is not None and obs != turn["observation"]:
            return differ(k, seat, "observation", turn["observation"], obs)
        try:
            obs, _, terminated, truncated, info = env.step(turn["action"])
        except Exception as exc:
            return differ(k, seat, "step", "a step result", f"{type(exc).__name__}: {exc}")
        record = info["turn"]
        if not _close(turn.get("reward"), record.turn_reward):
            return differ(k, seat, "reward", turn.get("reward"), record.turn_reward)
        components = {str(n): _finite(v) for n, v in record.components.items()}
        recorded = dict(turn.get("components") or {})
        if set(recorded) != set(components) or not all(_close(recorded[n], components[n]) for n in recorded):
            return differ(k, seat, "components", recorded, components)
        if "valid" in turn and bool(turn["valid"]) != record.valid_action:
            return differ(k, seat, "valid action", turn["valid"], record.valid_action)
        done = terminated or truncated
        if done:
            info_end = info
    n = len(turns)
    final = records[0]
    stop_reason = final.get("stop_reason")
    if not done:
        if stop_reason != StopReason.TOKEN_LIMIT.value:
            return differ(n, int(turns[-1]["seat"]) if turns else 0, "episode length",
                          f"{n} turns, then {stop_reason}", "the episode goes on")
        outcomes = env.unwrapped.stop(StopReason.TOKEN_LIMIT)  # the rollout's token budget ended it
        replayed_reason = StopReason.TOKEN_LIMIT.value
    else:
        outcomes = info_end.get("outcomes", {info_end["turn"].seat: info_end["turn"].outcome})
        replayed_reason = str(info_end["turn"].stop_reason)
    seat_last = int(turns[-1]["seat"]) if turns else 0
    if stop_reason is not None and stop_reason != replayed_reason:
        return differ(n - 1, seat_last, "stop reason", stop_reason, replayed_reason)
    replayed = {int(s): _finite(v) for s, v in outcomes.items()}
    for r in records:
        own = int(r["seat"])
        if not hot_seat and own not in replayed and len(replayed) == 1:  # a VsOpponent view reports the agent's
            replayed = {own: next(iter(replayed.values()))}
        if not _close(r.get("outcome"), replayed.get(own)):
            return differ(n - 1, own, "outcome", r.get("outcome"), replayed.get(own))
        logged = {int(s): v for s, v in (r.get("outcomes") or {}).items()}
        if hot_seat and logged and any(not _close(v, replayed.get(s)) for s, v in logged.items()):
            return differ(n - 1, own, "outcomes", logged, replayed)
    result.status, result.turns = "identical", n


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _close(a: Any, b: Any) -> bool:
    a, b = _finite(a), _finite(b)
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE)


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 300 else text[:297] + "..."

"""Typed trajectory records: what the rollout engine produces and the learner consumes.

One :class:`Trajectory` is one seat's view of one episode, as a single token sequence built
token-in/token-out::

    [prompt_0][completion_0][prompt_1][completion_1] ... [completion_{T-1}]
     mask 0    mask 1        mask 0    mask 1             mask 1

``prompt_k`` holds the template/environment tokens appended before the model's k-th turn (system
prompt and first observation for k = 0; the closing of the previous assistant message, the next
observation and the generation prompt afterwards). ``completion_k`` holds exactly the ids the policy
generated, never re-tokenized. :meth:`Trajectory.flat` gives the learner its aligned arrays.

With ``context="turn"`` (bounded history, as verl-agent/GiGPO use for long-horizon tasks whose
observation carries the state) every turn is its own sequence ``[prompt_k][completion_k]``, where
``prompt_k`` is the system prompt and the current observation only; :meth:`Trajectory.sequences`
returns one aligned sequence per turn, all sharing the trajectory's turn ids and advantages.
Trajectories round-trip through JSONL (:meth:`to_dict` / :meth:`from_dict`).

**Anchor states.** :attr:`Turn.anchor` is the environment's state right before the turn's action,
as the env reports it in ``info["anchor"]`` (reset info for the first turn, the previous step's
info afterwards): a game's board / information state as the acting seat sees it, a household
world's facts. Equal anchors within a GRPO group mark the same state reached by different
rollouts; GiGPO groups turns by them. ``None`` where the env provides none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.envs.types import TurnRecord


@dataclass
class Turn:
    """One model turn.

    Attributes:
        prompt_ids: tokens appended before this turn's generation (loss-masked).
        completion_ids: the ids the policy generated (trained on).
        logprobs: log-prob of each completion id under the sampling policy (``len == len(completion_ids)``).
        text: the decoded completion, as sent to the environment.
        finish_reason: ``"stop"`` or ``"length"``.
        record: the environment's record of this action (reward components, validity, outcome if final).
        anchor: the env's anchor state before this action (module docstring); ``None``: not provided.
        observation: the environment's observation text this turn replied to (the one routed to the
            seat just before it acted); ``None`` in records made before it was kept.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str
    record: TurnRecord
    anchor: str | None = None
    observation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_ids": self.prompt_ids,
            "completion_ids": self.completion_ids,
            "logprobs": self.logprobs,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "record": self.record.to_dict(),
            "anchor": self.anchor,
            "observation": self.observation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        return cls(
            prompt_ids=[int(i) for i in data["prompt_ids"]],
            completion_ids=[int(i) for i in data["completion_ids"]],
            logprobs=[float(x) for x in data["logprobs"]],
            text=str(data["text"]),
            finish_reason=str(data["finish_reason"]),
            record=TurnRecord.from_dict(data["record"]),
            anchor=None if data.get("anchor") is None else str(data["anchor"]),
            observation=None if data.get("observation") is None else str(data["observation"]),
        )


@dataclass
class FlatSequence:
    """Aligned per-token arrays of one trajectory (all of length ``L``).

    ``token_ids[L]``; ``loss_mask[L]`` (1 on generated tokens); ``turn_ids[L]`` (turn index on
    generated tokens, −1 elsewhere); ``old_logprobs[L]`` (0.0 on masked tokens).
    """

    token_ids: list[int]
    loss_mask: list[int]
    turn_ids: list[int]
    old_logprobs: list[float]


@dataclass
class Trajectory:
    """One seat's episode (see the module docstring).

    Attributes:
        env_id, seed: the task; rollouts of one GRPO group share both.
        group_id: ``f"{env_id}#{seed}"`` unless the caller chose another grouping.
        sample_index: which rollout of the group this is.
        seat: the seat this trajectory trains (0 for single-agent tasks).
        turns: the model's turns in order.
        outcome: the seat's episode-level reward (``None`` only when ``failed``).
        stop_reason: why the episode ended (``StopReason`` value).
        failed: the environment or sandbox failed; the learner masks this trajectory.
        error: the failure, quoted.
        info: the environment's extra reset info the learner may use (e.g. ``answer`` for IGPO).
        context: ``"full"`` or ``"turn"`` (see the module docstring).
        outcomes: every seat's outcome of the episode (``{seat: outcome}``; single-agent tasks
            ``{0: outcome}``); empty until the episode ends and when it failed.
        opponent: who played the other seats of a game: an agent spec, ``"self"`` when the policy
            played every seat; ``None`` for single-agent tasks.
        policy_version: how many learner steps the weights that played it had taken (set by the
            asynchronous producer; ``None`` when played by the learner's current weights).
    """

    env_id: str
    seed: int
    group_id: str
    sample_index: int
    seat: int
    turns: list[Turn] = field(default_factory=list)
    outcome: float | None = None
    stop_reason: str = ""
    failed: bool = False
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    context: str = "full"
    outcomes: dict[int, float] = field(default_factory=dict)
    opponent: str | None = None
    policy_version: int | None = None

    @property
    def group_key(self) -> str:
        """The GRPO group of this trajectory: its task and seat (the seats of one game are different tasks)."""
        return f"{self.group_id}/seat{self.seat}"

    @property
    def turn_rewards(self) -> list[float]:
        """Dense turn rewards (the sum of each turn's components), index = turn id."""
        return [t.record.turn_reward for t in self.turns]

    @property
    def num_generated_tokens(self) -> int:
        return sum(len(t.completion_ids) for t in self.turns)

    def sequences(self) -> list[FlatSequence]:
        """The training sequences: ``[flat()]`` for full context, one per turn for ``context="turn"``."""
        if self.context == "full":
            return [self.flat()]
        out = []
        for k, turn in enumerate(self.turns):
            n_prompt, n_gen = len(turn.prompt_ids), len(turn.completion_ids)
            out.append(
                FlatSequence(
                    token_ids=list(turn.prompt_ids) + list(turn.completion_ids),
                    loss_mask=[0] * n_prompt + [1] * n_gen,
                    turn_ids=[-1] * n_prompt + [k] * n_gen,
                    old_logprobs=[0.0] * n_prompt + list(turn.logprobs),
                )
            )
        return out

    def flat(self) -> FlatSequence:
        """The whole trajectory as one sequence (the exact token stream of ``context="full"``)."""
        if self.context != "full":
            raise ValueError("flat() is only defined for context='full'; use sequences()")
        ids: list[int] = []
        mask: list[int] = []
        turn_ids: list[int] = []
        logprobs: list[float] = []
        for k, turn in enumerate(self.turns):
            ids += turn.prompt_ids
            mask += [0] * len(turn.prompt_ids)
            turn_ids += [-1] * len(turn.prompt_ids)
            logprobs += [0.0] * len(turn.prompt_ids)
            ids += turn.completion_ids
            mask += [1] * len(turn.completion_ids)
            turn_ids += [k] * len(turn.completion_ids)
            logprobs += list(turn.logprobs)
        return FlatSequence(ids, mask, turn_ids, logprobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "seed": self.seed,
            "group_id": self.group_id,
            "sample_index": self.sample_index,
            "seat": self.seat,
            "turns": [t.to_dict() for t in self.turns],
            "outcome": self.outcome,
            "stop_reason": self.stop_reason,
            "failed": self.failed,
            "error": self.error,
            "info": self.info,
            "context": self.context,
            "outcomes": {str(s): v for s, v in self.outcomes.items()},  # JSON keys are strings
            "opponent": self.opponent,
            "policy_version": self.policy_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        return cls(
            env_id=str(data["env_id"]),
            seed=int(data["seed"]),
            group_id=str(data["group_id"]),
            sample_index=int(data["sample_index"]),
            seat=int(data["seat"]),
            turns=[Turn.from_dict(t) for t in data["turns"]],
            outcome=None if data.get("outcome") is None else float(data["outcome"]),
            stop_reason=str(data.get("stop_reason", "")),
            failed=bool(data.get("failed", False)),
            error=data.get("error"),
            info=dict(data.get("info", {})),
            context=str(data.get("context", "full")),
            outcomes=_seat_outcomes(data.get("outcomes", {})),
            opponent=None if data.get("opponent") is None else str(data["opponent"]),
            policy_version=None if data.get("policy_version") is None else int(data["policy_version"]),
        )


def _seat_outcomes(raw: Mapping[Any, Any]) -> dict[int, float]:
    """``{seat: outcome}`` from JSON, whose object keys are strings."""
    return {int(s): float(v) for s, v in raw.items()}


def write_jsonl(trajectories: Iterable[Trajectory], path: str | Path) -> None:
    with open(path, "w") as f:
        f.writelines(json.dumps(t.to_dict()) + "\n" for t in trajectories)


def read_jsonl(path: str | Path) -> list[Trajectory]:
    with open(path) as f:
        return [Trajectory.from_dict(json.loads(line)) for line in f if line.strip()]

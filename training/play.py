"""Play one episode with *direct agents*, one per seat (``turngym eval``, tournaments, anchor ratings).

A direct agent is a callable ``agent(env) -> str`` that reads the (unwrapped) environment, such as
the scripted agents of :mod:`turngym.agents.scripted` or a person at a terminal. Two-player games are
played hot-seat, one agent per seat; single-agent tasks use seat 0 only. Every step's
:class:`TurnRecord` is kept. (Model policies play through the batched engine,
:func:`turngym.training.rollout.collect`.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from turngym.envs.types import TurnRecord

DirectAgent = Callable[[Any], str]


@dataclass
class EpisodeResult:
    """One finished episode seen from every seat.

    Attributes:
        seed: the reset seed.
        outcomes: each seat's outcome (single-agent: ``{0: outcome}``).
        returns: each seat's summed step rewards (turn components + outcome).
        turns: each seat's number of actions.
        invalid_actions: each seat's number of actions with ``valid_action=False``.
        stop_reason: why the episode ended.
        records: every step's record, in order.
        moves: every step as ``{"seat", "observation", "action"}``: the text the acting seat was
            shown and what it replied, in order (a game's replay).
    """

    seed: int
    outcomes: dict[int, float]
    returns: dict[int, float]
    turns: dict[int, int]
    invalid_actions: dict[int, int]
    stop_reason: str
    records: list[TurnRecord] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "outcomes": self.outcomes,
            "returns": self.returns,
            "turns": self.turns,
            "invalid_actions": self.invalid_actions,
            "stop_reason": self.stop_reason,
            "records": [r.to_dict() for r in self.records],
            "moves": self.moves,
        }


def play_episode(
    env: gymnasium.Env,
    agents: Mapping[int, DirectAgent],
    seed: int,
    max_steps: int = 10_000,
) -> EpisodeResult:
    """Play one episode of ``env`` (built by :func:`turngym.make`, no opponent) with one agent per seat.

    Agents exposing ``reset(seed)`` are reset first (seat ``s`` gets ``seed * 1009 + s``) so an
    evaluation is reproducible. Raises ``RuntimeError`` if the episode does not end in ``max_steps``.
    """
    for seat, agent in agents.items():
        reset = getattr(agent, "reset", None)
        if callable(reset):
            reset(seed * 1009 + seat)
    obs, info = env.reset(seed=seed)
    base = env.unwrapped
    seats = range(getattr(base, "num_seats", 1))
    returns = {s: 0.0 for s in seats}
    turns = {s: 0 for s in seats}
    invalid = {s: 0 for s in seats}
    records: list[TurnRecord] = []
    moves: list[dict[str, Any]] = []
    for _ in range(max_steps):
        seat = int(info.get("seat", 0))
        if seat not in agents:
            raise KeyError(f"no agent for seat {seat}; agents were given for seats {sorted(agents)}")
        action = agents[seat](base)
        moves.append({"seat": seat, "observation": obs, "action": action})
        obs, _, terminated, truncated, info = env.step(action)
        record: TurnRecord = info["turn"]
        records.append(record)
        turns[record.seat] += 1
        invalid[record.seat] += 0 if record.valid_action else 1
        for s, r in info.get("seat_rewards", {record.seat: record.reward}).items():
            returns[s] += r
        if terminated or truncated:
            outcomes = {int(s): float(v) for s, v in info.get("outcomes", {record.seat: record.outcome}).items()}
            return EpisodeResult(
                seed=seed,
                outcomes=outcomes,
                returns=returns,
                turns=turns,
                invalid_actions=invalid,
                stop_reason=str(record.stop_reason),
                records=records,
                moves=moves,
            )
    raise RuntimeError(f"episode with seed {seed} did not end within {max_steps} steps")

"""Evaluation of an agent on a registered environment, with 95% intervals (``turngym eval``).

For two-player games the agent alternates seats (seat = episode index mod number of seats) against
the opponent, over seeds ``seed0, seed0 + 1, …``. Results are seen from the agent's side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from turngym.envs.registration import make, spec
from turngym.training.rollout import DirectAgent, EpisodeResult, play_episode
from turngym.training.stats import mean_interval, wilson_interval
from turngym.training.trajectory import Trajectory


@dataclass
class Rate:
    value: float
    low: float
    high: float
    count: int
    n: int


@dataclass
class EvalSummary:
    """What ``turngym eval`` reports. Rates carry Wilson 95% intervals, means normal 95% intervals.

    ``win``/``draw``/``loss`` compare the agent's outcome with the best other seat's (games);
    ``success`` is ``outcome > 0`` (single-agent tasks). ``invalid_action_rate`` is per agent action.
    """

    env_id: str
    agent: str
    opponent: str | None
    episodes: int
    win: Rate
    draw: Rate
    loss: Rate
    success: Rate
    mean_return: Rate
    mean_outcome: Rate
    mean_turns: float
    invalid_action_rate: Rate
    stop_reasons: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(
    env_id: str,
    make_agent: Callable[[], DirectAgent],
    make_opponent: Callable[[], DirectAgent] | None = None,
    *,
    episodes: int,
    seed: int = 0,
    agent_name: str = "agent",
    opponent_name: str | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[EvalSummary, list[tuple[int, EpisodeResult]]]:
    """Play ``episodes`` episodes and summarize them from the agent's side.

    Returns the summary and the ``(agent_seat, result)`` of every episode.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    turn_spec = spec(env_id)
    num_seats = turn_spec.num_seats
    if num_seats > 1 and make_opponent is None:
        raise ValueError(f"{env_id!r} is a {num_seats}-player game: give an opponent (e.g. --opponent random)")
    env = make(env_id, **(env_kwargs or {}))
    agent, opponent = make_agent(), (make_opponent() if make_opponent else None)
    played: list[tuple[int, EpisodeResult]] = []
    for i in range(episodes):
        agent_seat = i % num_seats
        seats = {s: (agent if s == agent_seat else opponent) for s in range(num_seats)}
        result = play_episode(env, seats, seed=seed + i)
        played.append((agent_seat, result))
        if on_episode is not None:
            on_episode(result)
    return summarize(env_id, agent_name, opponent_name, played), played


def evaluate_model(
    env_id: str,
    policy: Any,
    *,
    episodes: int,
    opponent: str = "random",
    seed: int = 0,
    temperature: float = 0.0,
    max_new_tokens: int = 32,
    context: str = "full",
    agent_name: str = "model",
    on_progress: Callable[[int, int], None] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[EvalSummary, list[Trajectory]]:
    """Evaluate a model policy with the batched rollout engine: one episode per seed ``seed + i``.

    In games the model plays seat ``(seed + i) % 2`` against ``opponent`` (seats alternate with the
    seed); ``temperature=0`` is greedy decoding.
    """
    from turngym.training.rollout import RolloutConfig, Task, collect

    config = RolloutConfig(
        group_size=1, temperature=temperature, max_new_tokens=max_new_tokens,
        max_episode_tokens=max(4096, max_new_tokens), opponent=opponent, context=context, seed=seed,
        env_kwargs={env_id: dict(env_kwargs or {})},
    )
    batch = collect([Task(env_id, seed + i) for i in range(episodes)], policy, config, on_progress=on_progress)
    played = []
    for t in batch.trajectories:
        outcomes = {int(s): v for s, v in t.info.get("outcomes", {str(t.seat): t.outcome or 0.0}).items()}
        result = EpisodeResult(
            seed=t.seed,
            outcomes=outcomes,
            returns={t.seat: sum(turn.record.reward for turn in t.turns)},
            turns={t.seat: len(t.turns)},
            invalid_actions={t.seat: sum(not turn.record.valid_action for turn in t.turns)},
            stop_reason=t.stop_reason,
        )
        played.append((t.seat, result))
    opponent_name = opponent if spec(env_id).num_seats > 1 else None
    return summarize(env_id, agent_name, opponent_name, played), batch.trajectories


def summarize(
    env_id: str, agent: str, opponent: str | None, played: Iterable[tuple[int, EpisodeResult]]
) -> EvalSummary:
    played = list(played)
    n = len(played)
    wins = draws = losses = successes = 0
    returns, outcomes, turns = [], [], []
    actions = invalid = 0
    reasons: dict[str, int] = {}
    for seat, result in played:
        mine = result.outcomes.get(seat, 0.0)
        others = [v for s, v in result.outcomes.items() if s != seat]
        if others:
            best_other = max(others)
            wins += mine > best_other
            draws += mine == best_other
            losses += mine < best_other
        successes += mine > 0
        returns.append(result.returns.get(seat, 0.0))
        outcomes.append(mine)
        turns.append(result.turns.get(seat, 0))
        actions += result.turns.get(seat, 0)
        invalid += result.invalid_actions.get(seat, 0)
        reasons[result.stop_reason] = reasons.get(result.stop_reason, 0) + 1

    def rate(count: int, total: int) -> Rate:
        low, high = wilson_interval(count, total)
        return Rate(count / total if total else 0.0, low, high, count, total)

    def mean(values: list[float]) -> Rate:
        m, low, high = mean_interval(values)
        return Rate(m, low, high, len(values), len(values))

    return EvalSummary(
        env_id=env_id,
        agent=agent,
        opponent=opponent,
        episodes=n,
        win=rate(wins, n),
        draw=rate(draws, n),
        loss=rate(losses, n),
        success=rate(successes, n),
        mean_return=mean(returns),
        mean_outcome=mean(outcomes),
        mean_turns=sum(turns) / n if n else 0.0,
        invalid_action_rate=rate(invalid, actions),
        stop_reasons=dict(sorted(reasons.items())),
    )

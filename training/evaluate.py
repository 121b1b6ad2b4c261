"""Episode statistics, with 95% intervals: one implementation for ``turngym eval``, the trainer's
rollout metrics and before/after evaluations, and the self-play and tournament scores.

The unit every statistic counts is a :class:`SeatResult`: one seat's finished episode, read from a
model rollout (:meth:`SeatResult.from_trajectory`) or a direct-agent episode
(:meth:`SeatResult.from_episode`). :func:`summarize` turns any number of them into an
:class:`EvalSummary`, whose docstring holds the definitions of win, loss, success and invalid.

:func:`evaluate` plays direct agents (:func:`turngym.training.play.play_episode`); for two-player
games the agent alternates seats (seat = episode index mod number of seats) against the opponent, over
seeds ``seed0, seed0 + 1, …``. :func:`evaluate_model` plays a model policy with the batched rollout
engine. Results are seen from the agent's side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from turngym.envs.registration import make, spec
from turngym.training.play import DirectAgent, EpisodeResult, play_episode
from turngym.training.ratings import score_from_outcomes
from turngym.training.rollout import RolloutConfig, Task, collect
from turngym.training.stats import mean_interval, wilson_interval
from turngym.training.trajectory import Trajectory


def seat_score(outcomes: Mapping[int, float], seat: int) -> float:
    """1 (win) / 0.5 (draw) / 0 (loss) for ``seat``: its outcome against the best other seat's, or
    against 0 (the neutral outcome) when it is the only seat. The one definition of win and loss
    (:class:`EvalSummary`, PFSP pool scores, anchor ratings, tournaments)."""
    mine = float(outcomes.get(seat, 0.0))
    others = [float(v) for s, v in outcomes.items() if s != seat]
    return score_from_outcomes(mine, max(others) if others else 0.0)


@dataclass(frozen=True)
class SeatResult:
    """One seat's finished episode: what every episode statistic counts.

    Attributes:
        seat: the seat seen.
        outcomes: every seat's outcome (single-agent tasks: ``{0: outcome}``).
        turns: the seat's actions.
        invalid_actions: how many of them were invalid (``valid_action=False``).
        episode_return: the seat's summed step rewards (dense components + outcome).
        stop_reason: why the episode ended.
        failed: the environment failed; the episode has no score and is only counted as failed.
        components: names of the dense reward components that were nonzero on at least one of the
            seat's turns (e.g. ``retrieval_hit``, a milestone, ``format``); empty for direct agents.
    """

    seat: int
    outcomes: dict[int, float]
    turns: int
    invalid_actions: int
    episode_return: float
    stop_reason: str
    failed: bool = False
    components: frozenset[str] = frozenset()

    @property
    def outcome(self) -> float:
        return float(self.outcomes.get(self.seat, 0.0))

    @property
    def score(self) -> float:
        """:func:`seat_score`: 1 win, 0.5 draw, 0 loss."""
        return seat_score(self.outcomes, self.seat)

    @classmethod
    def from_trajectory(cls, t: Trajectory) -> SeatResult:
        """A model rollout's seat (its typed outcomes; ``{seat: outcome}`` if the env gave only its own)."""
        outcomes = dict(t.outcomes) or ({} if t.outcome is None else {t.seat: float(t.outcome)})
        return cls(
            seat=t.seat,
            outcomes=outcomes,
            turns=len(t.turns),
            invalid_actions=sum(not turn.record.valid_action for turn in t.turns),
            episode_return=sum(turn.record.reward for turn in t.turns),
            stop_reason=t.stop_reason,
            failed=t.failed or t.outcome is None,
            components=frozenset(k for turn in t.turns for k, v in turn.record.components.items() if v != 0),
        )

    @classmethod
    def from_episode(cls, seat: int, result: EpisodeResult) -> SeatResult:
        """Seat ``seat`` of a direct-agent episode."""
        return cls(
            seat=seat,
            outcomes=dict(result.outcomes),
            turns=result.turns.get(seat, 0),
            invalid_actions=result.invalid_actions.get(seat, 0),
            episode_return=result.returns.get(seat, 0.0),
            stop_reason=result.stop_reason,
        )


@dataclass
class Rate:
    """A rate (Wilson 95% interval) or a mean (normal 95% interval) over ``n`` items.

    For a rate, ``count`` items of ``n`` qualified; for a mean, ``count == n`` values were averaged.
    """

    value: float
    low: float
    high: float
    count: int
    n: int

    @classmethod
    def of(cls, count: int, n: int) -> Rate:
        low, high = wilson_interval(count, n)
        return cls(count / n if n else 0.0, low, high, count, n)

    @classmethod
    def mean(cls, values: Sequence[float]) -> Rate:
        m, low, high = mean_interval(values)
        return cls(m, low, high, len(values), len(values))


@dataclass
class EvalSummary:
    """Episode statistics of one agent (or the learner's rollouts), seen from its seats.

    Definitions (one each, used by ``turngym eval``, training metrics and evaluations):

    * Every statistic counts the seat-episodes that did not fail (``episodes``); episodes whose
      environment failed are only counted in ``failed``.
    * ``win`` / ``draw`` / ``loss``: the seat's outcome above / equal to / below the best outcome
      of the other seats — in single-agent tasks, above / equal to / below 0 (:func:`seat_score`).
    * ``success``: outcome > 0 (for games with ±1 outcomes, the same as a win).
    * ``invalid``: **per episode** — the share of episodes in which the seat made at least one
      invalid action (an unparsable or illegal one; in games without an error allowance it also
      ended the game).
    * ``invalid_action_rate``: **per action** — invalid actions over all of the seat's actions.
    * ``mean_outcome`` / ``mean_return``: the seat's outcome / summed step rewards (dense + outcome).
    * ``components[name]``: the share of episodes in which the dense component ``name`` was nonzero
      on at least one turn — an intermediate metric (search: ``retrieval_hit``; household: each
      milestone; a penalty such as ``format``: episodes with at least one malformed reply).

    Rates carry Wilson 95% intervals, means normal 95% intervals. :meth:`to_dict` is the JSON of
    ``turngym eval --json`` and of the trainer's ``summary.json`` evals.
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
    invalid: Rate
    invalid_action_rate: Rate
    stop_reasons: dict[str, int]
    failed: int = 0
    components: dict[str, Rate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalSummary:
        values = dict(data)
        for name in ("win", "draw", "loss", "success", "mean_return", "mean_outcome", "invalid", "invalid_action_rate"):
            values[name] = Rate(**values[name])
        values["components"] = {k: Rate(**v) for k, v in values.get("components", {}).items()}
        return cls(**values)


def summarize(env_id: str, agent: str, opponent: str | None, results: Iterable[SeatResult]) -> EvalSummary:
    """The :class:`EvalSummary` of ``results`` (definitions in its docstring)."""
    results = list(results)
    ok = [r for r in results if not r.failed]
    n = len(ok)
    scores = [r.score for r in ok]
    reasons: dict[str, int] = {}
    for r in ok:
        reasons[r.stop_reason] = reasons.get(r.stop_reason, 0) + 1
    actions = sum(r.turns for r in ok)
    return EvalSummary(
        env_id=env_id,
        agent=agent,
        opponent=opponent,
        episodes=n,
        win=Rate.of(sum(s == 1.0 for s in scores), n),
        draw=Rate.of(sum(s == 0.5 for s in scores), n),
        loss=Rate.of(sum(s == 0.0 for s in scores), n),
        success=Rate.of(sum(r.outcome > 0 for r in ok), n),
        mean_return=Rate.mean([r.episode_return for r in ok]),
        mean_outcome=Rate.mean([r.outcome for r in ok]),
        mean_turns=actions / n if n else 0.0,
        invalid=Rate.of(sum(r.invalid_actions > 0 for r in ok), n),
        invalid_action_rate=Rate.of(sum(r.invalid_actions for r in ok), actions),
        stop_reasons=dict(sorted(reasons.items())),
        failed=len(results) - n,
        components={name: Rate.of(sum(name in r.components for r in ok), n)
                    for name in sorted({c for r in ok for c in r.components})},
    )


def summarize_trajectories(
    trajectories: Sequence[Trajectory], *, env_id: str | None = None, agent: str = "policy"
) -> EvalSummary:
    """:func:`summarize` over model rollouts, one :class:`SeatResult` per trajectory. ``env_id`` and
    ``opponent`` default to the trajectories' own (joined with ``", "`` when they differ)."""
    env_ids = sorted({t.env_id for t in trajectories})
    opponents = sorted({t.opponent for t in trajectories if t.opponent is not None})
    return summarize(
        env_id if env_id is not None else ", ".join(env_ids),
        agent,
        ", ".join(opponents) or None,
        (SeatResult.from_trajectory(t) for t in trajectories),
    )


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
    num_seats = spec(env_id).num_seats
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
    results = [SeatResult.from_episode(seat, result) for seat, result in played]
    return summarize(env_id, agent_name, opponent_name, results), played


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
    config = RolloutConfig(
        group_size=1, temperature=temperature, max_new_tokens=max_new_tokens,
        max_episode_tokens=max(4096, max_new_tokens), opponent=opponent, context=context, seed=seed,
        env_kwargs={env_id: dict(env_kwargs or {})},
    )
    batch = collect([Task(env_id, seed + i) for i in range(episodes)], policy, config, on_progress=on_progress)
    opponent_name = opponent if spec(env_id).num_seats > 1 else None
    summary = summarize(env_id, agent_name, opponent_name, (SeatResult.from_trajectory(t) for t in batch.trajectories))
    return summary, batch.trajectories

"""The LLM rollout engine: many episodes in lock-step, one batched generate call per turn.

:func:`collect` plays ``group_size`` rollouts of every :class:`Task` with a model policy and returns
one typed :class:`~turngym.training.trajectory.Trajectory` per seat the policy played, token-in /
token-out. Environment failures (``reset``/``step``/``stop`` raising) fail that episode only: its
trajectories are marked ``failed`` (masked by the learner) or replayed; any other exception is a bug
and propagates. Direct (scripted) agents play through :func:`turngym.training.play.play_episode`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from turngym.agents.base import CachingPolicy, Policy, SamplingParams
from turngym.envs.core import ForkNotSupported
from turngym.envs.registration import make
from turngym.envs.registration import spec as env_spec
from turngym.envs.types import StopReason
from turngym.envs.wrappers import fork_env
from turngym.training.chat_tokens import ChatTokens
from turngym.training.trajectory import Trajectory, Turn

if TYPE_CHECKING:
    from turngym.training.config import RolloutSection


@dataclass(frozen=True)
class Task:
    """One GRPO group's task: an environment id and the reset seed every rollout of the group shares.

    ``opponent`` (games only) overrides :attr:`RolloutConfig.opponent` / ``self_play`` for this task:
    ``"self"`` — the policy plays every seat; an agent spec — the policy plays seat ``seed % 2``
    against it (scripted names or a frozen checkpoint ``hf:<path>``). ``seat`` (games against an
    opponent only) puts the policy in that seat instead of ``seed % 2`` — e.g. to play one deal from
    both seats for duplicate scoring.
    """

    env_id: str
    seed: int
    opponent: str | None = None
    seat: int | None = None

    @property
    def group_id(self) -> str:
        return f"{self.env_id}#{self.seed}"


def draw_tasks(envs: Any, count: int, rng: Any, seed_limit: int) -> list[Task]:
    """``count`` tasks from a weighted env mix (items with ``id`` and ``weight``), seeds uniform below
    ``seed_limit`` (the eval seeds start there): env choices first, then seeds, from ``rng``."""
    weights = [float(e.weight) for e in envs]
    total = sum(weights)
    picks = rng.choice(len(envs), size=count, p=[w / total for w in weights])
    seeds = rng.integers(0, seed_limit, size=count)
    return [Task(envs[int(i)].id, int(s)) for i, s in zip(picks, seeds)]


def task_opponent(spec: str, env_id: str, seed: int) -> Any:
    """The scripted (or frozen-model) opponent of a game task with reset seed ``seed``, as every
    rollout of the task meets it — and as ``turngym replay`` rebuilds it.

    Seeded by the task only: every rollout of a group meets the same opponent dice, so the group
    starts identically and differences in outcome come from the policy's choices.
    """
    from turngym.agents.specs import resolve_agent

    opponent = resolve_agent(spec, env_id, seed=seed * 7919 + 1)
    opponent.reset(seed * 7919 + 1)
    return opponent


@dataclass
class RolloutConfig:
    """How :func:`collect` plays.

    Attributes:
        group_size: rollouts per task, all from the same reset seed.
        max_new_tokens: generation budget per turn (``finish_reason="length"`` past it).
        max_episode_tokens: budget of one seat's whole token sequence; past it the episode stops
            with ``stop_reason="token_limit"`` and the outcome computed by ``env.stop``.
        max_turns: overrides the env spec's turn limit (``None`` keeps the spec's).
        temperature, top_p, top_k: sampling parameters.
        self_play: in games, the policy plays every seat (one trajectory per seat); otherwise it plays
            the seat ``seed % num_seats`` against ``opponent``.
        opponent: scripted opponent name for games when not ``self_play`` (see ``turngym eval --help``).
        on_env_error: ``"mask"`` keeps a failed trajectory marked ``failed`` (the learner masks it);
            ``"resample"`` replays the rollout up to ``max_resamples`` times, then masks it.
        seed: base of the sampling seeds (generation is reproducible for a fixed seed and batch).
        seeding: ``"batch"`` — one seed per generate call (``seed`` and the round); ``"episode"`` —
            every episode's turn gets its own seed (:func:`episode_seed`), so its samples do not depend
            on which other episodes share the call (data-parallel ranks reproduce one process).
        env_kwargs: constructor overrides per env id (e.g. ``{"turngym/TicTacToe-v0": {"valid_move_reward": 0.1}}``).
        context: ``"full"`` — each seat's episode is one growing token sequence; ``"turn"`` — each turn's
            prompt is the system prompt plus the current observation only (bounded history).
        branch_turn: fork-based branching. ``None``: the ``group_size`` rollouts of a task are
            independent episodes. ``k``: ONE trunk episode per task plays ``k`` policy turns, then its
            environment is forked (``env.fork()``, wrappers included) into ``group_size`` branches that
            continue independently; every branch's trajectory holds the shared trunk turns followed by
            its own. (A trunk that ends before turn ``k`` yields ``group_size`` copies.) The envs must
            implement ``fork``. Re-sampled failures replay from the start, without branching.
    """

    group_size: int = 8
    max_new_tokens: int = 48
    max_episode_tokens: int = 2048
    max_turns: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    self_play: bool = False
    opponent: str = "random"
    on_env_error: str = "mask"
    max_resamples: int = 2
    seed: int = 0
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    context: str = "full"
    branch_turn: int | None = None
    seeding: str = "batch"

    @classmethod
    def from_section(
        cls, section: RolloutSection, *, seed: int, env_kwargs: dict[str, dict[str, Any]] | None = None, **overrides: Any
    ) -> RolloutConfig:
        """The config of a training run's ``rollout:`` section: every field the two share is copied
        by name; ``seed`` (per step), ``env_kwargs`` (from ``envs:``) and ``overrides`` (e.g. an
        eval's ``temperature`` or ``group_size``) are set here."""
        shared = {f.name: getattr(section, f.name) for f in fields(cls) if f.name in type(section).model_fields}
        return cls(**{**shared, "seed": seed, "env_kwargs": dict(env_kwargs or {}), **overrides})

    def __post_init__(self) -> None:
        if self.branch_turn is not None and self.branch_turn < 1:
            raise ValueError(f"branch_turn must be >= 1 (or None for independent rollouts), got {self.branch_turn!r}")
        if self.seeding not in ("batch", "episode"):
            raise ValueError(f"seeding must be 'batch' or 'episode', got {self.seeding!r}")
        if self.context not in ("full", "turn"):
            raise ValueError(f"context must be 'full' or 'turn', got {self.context!r}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size!r}")
        if self.on_env_error not in ("mask", "resample"):
            raise ValueError(f"on_env_error must be 'mask' or 'resample', got {self.on_env_error!r}")
        if self.max_new_tokens < 1 or self.max_episode_tokens < self.max_new_tokens:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens!r}) must be >= 1 and <= max_episode_tokens "
                f"({self.max_episode_tokens!r}): one turn's generation has to fit the episode budget"
            )


def episode_seed(base_seed: int, task: Task, sample_index: int, attempt: int, turn: int) -> int:
    """The sampling seed of one policy turn under ``seeding="episode"``: a 63-bit hash of the collect
    seed, the task, the rollout's index in its group, the replay attempt and the turn — nothing about
    the rest of the batch."""
    key = f"{base_seed}/{task.env_id}/{task.seed}/{task.opponent}/{task.seat}/{sample_index}/{attempt}/{turn}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


@dataclass
class RolloutMetrics:
    """First-class failure and shape accounting of one :func:`collect` call."""

    episodes: int = 0
    trajectories: int = 0
    failed: int = 0
    resampled: int = 0
    branched: int = 0
    """Rollouts forked from a running trunk episode (``branch_turn``)."""
    turns: int = 0
    invalid_actions: int = 0
    truncated: int = 0
    length_finishes: int = 0
    generated_tokens: int = 0
    kv_reused_tokens: int = 0
    """Prompt tokens served from the policy's KV store instead of being prefilled (``kv_session``)."""
    prefilled_tokens: int = 0
    """Prompt tokens the KV store could not serve (0 when the policy has no store; prompt sharing
    may still have saved some of them)."""
    generate_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, other: RolloutMetrics) -> None:
        """Add ``other``'s counts and seconds to these (``wall_seconds``: the longer of the two, as
        for collections that ran side by side)."""
        for f in fields(RolloutMetrics):
            if f.name == "wall_seconds":
                self.wall_seconds = max(self.wall_seconds, other.wall_seconds)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, float]:
        d = dict(self.__dict__)
        d["invalid_action_rate"] = self.invalid_actions / self.turns if self.turns else 0.0
        d["truncation_rate"] = self.truncated / self.trajectories if self.trajectories else 0.0
        d["failure_rate"] = self.failed / self.trajectories if self.trajectories else 0.0
        d["tokens_per_second"] = self.generated_tokens / self.generate_seconds if self.generate_seconds else 0.0
        prompt = self.kv_reused_tokens + self.prefilled_tokens
        d["kv_reuse_share"] = self.kv_reused_tokens / prompt if prompt else 0.0
        return d


@dataclass
class RolloutBatch:
    """What :func:`collect` returns: the trajectories (sorted by env, seed, sample, seat) and the accounting."""

    trajectories: list[Trajectory]
    metrics: RolloutMetrics


def collect_order(trajectory: Trajectory) -> tuple[str, int, int]:
    """The sort key of :func:`collect`'s output (env, seed, sample); a stable sort by it keeps the seats
    of one episode in order. Batches played apart (Ray units, data-parallel ranks) merge by it."""
    return (trajectory.env_id, trajectory.seed, trajectory.sample_index)


class RolloutFailures(RuntimeError):
    """More of a step's rollouts failed than ``rollout.max_failed_share`` allows: the environment or its
    service is broken, and training on the rest would be training on a biased remnant."""


def check_failures(trajectories: list[Trajectory], max_share: float) -> None:
    """Raise :class:`RolloutFailures` when more than ``max_share`` of ``trajectories`` failed.

    The message names the environment and quotes the first failure. Below the limit, failed
    trajectories stay masked by the learner and counted in ``rollout/failed``.
    """
    failed = [t for t in trajectories if t.failed]
    if not trajectories or len(failed) <= max_share * len(trajectories):
        return
    first = failed[0]
    envs = sorted({t.env_id for t in failed})
    raise RolloutFailures(
        f"{len(failed)} of {len(trajectories)} rollouts failed this step (rollout.max_failed_share is {max_share}), "
        f"in {', '.join(envs)}; the first: {first.env_id} seed {first.seed}: {first.error}. "
        "This is the environment or its service failing, not the policy: fix it (or raise "
        "rollout.max_failed_share) and continue with --resume from the last checkpoint."
    )


class EnvFailure(Exception):
    """An environment's ``reset``, ``step`` or ``stop`` raised (``__cause__``): the episode fails, the
    rollout goes on. Raised only by :meth:`_Episode.env_call`; nothing else is masked."""


class _Episode:
    """Book-keeping of one running episode: env, per-seat token sequences and trajectories."""

    def __init__(self, task: Task, sample_index: int, attempt: int, config: RolloutConfig, chat: ChatTokens):
        self.task, self.sample_index, self.attempt = task, sample_index, attempt
        self.chat = chat
        self.context = config.context
        num_seats = env_spec(task.env_id).num_seats
        overrides: dict[str, Any] = dict(config.env_kwargs.get(task.env_id, {}))
        if config.max_turns is not None:
            overrides["max_turns"] = config.max_turns
        opponent_spec = task.opponent or ("self" if config.self_play else config.opponent)
        self.opponent = opponent_spec if num_seats > 1 else None
        if num_seats > 1 and opponent_spec != "self":
            overrides["opponent"] = task_opponent(opponent_spec, task.env_id, task.seed)
            if task.seat is not None:
                overrides["agent_seat"] = task.seat
        self.env = make(task.env_id, **overrides)
        self.trajectories: dict[int, Trajectory] = {}
        self.sequences: dict[int, list[int]] = {}
        self.pending_obs: dict[int, str] = {}
        self.pending_anchor: dict[int, str | None] = {}
        self.ended_with_eos: dict[int, bool] = {}
        self.system_prompt = ""
        self.seat_to_act = 0
        self.done = False
        self.info: dict[str, Any] = {}
        self.policy_turns = 0

    def branch(self, sample_index: int) -> _Episode:
        """An independent copy of this running episode (env forked, records copied) for rollout ``sample_index``."""
        clone = copy.copy(self)
        try:
            clone.env = self.env if self.done else fork_env(self.env)  # a finished env is never stepped again
        except ForkNotSupported as exc:
            raise ValueError(f"branch_turn needs environments that can fork; {self.task.env_id!r} cannot ({exc})") from None
        clone.sample_index = sample_index
        clone.trajectories = copy.deepcopy(self.trajectories)
        for trajectory in clone.trajectories.values():
            trajectory.sample_index = sample_index
        clone.sequences = {seat: list(ids) for seat, ids in self.sequences.items()}
        clone.pending_obs = dict(self.pending_obs)
        clone.pending_anchor = dict(self.pending_anchor)
        clone.ended_with_eos = dict(self.ended_with_eos)
        clone.info = dict(self.info)
        return clone

    def trajectory(self, seat: int) -> Trajectory:
        if seat not in self.trajectories:
            self.trajectories[seat] = Trajectory(
                env_id=self.task.env_id,
                seed=self.task.seed,
                group_id=self.task.group_id,
                sample_index=self.sample_index,
                seat=seat,
                info={k: v for k, v in self.info.items() if k in ("answer", "task_id")},
                context=self.context,
                opponent=self.opponent,
            )
        return self.trajectories[seat]

    def env_call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an environment method; whatever it raises becomes :class:`EnvFailure`."""
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # any env failure is data for the learner (masked), never a crash
            raise EnvFailure(f"{type(exc).__name__}: {exc}") from exc

    def route(self, obs: str, info: dict[str, Any]) -> None:
        """Hand the next observation (and the anchor state the env reports) to the seat that acts next."""
        self.seat_to_act = self.acting_seat(info)
        self.pending_obs[self.seat_to_act] = obs
        anchor = info.get("anchor")
        self.pending_anchor[self.seat_to_act] = None if anchor is None else str(anchor)

    def acting_seat(self, info: dict[str, Any]) -> int:
        """The game seat that acts next (the agent's game seat in the single-agent view)."""
        return int(info["game_seat"]) if "game_seat" in info else int(info.get("seat", 0))

    def reset(self) -> None:
        obs, info = self.env_call(self.env.reset, seed=self.task.seed)
        self.info = dict(info)
        self.system_prompt = str(info.get("system_prompt", getattr(self.env.unwrapped, "system_prompt", "")))
        self.route(obs, info)

    def prompt_for_turn(self) -> list[int]:
        """The full token context of the seat to act, with this turn's new prompt tokens appended last."""
        seat = self.seat_to_act
        obs = self.pending_obs.pop(seat)
        self._observation = obs
        if self.context == "turn":
            self.sequences[seat] = []
            self._new_prompt = self.chat.first_prompt(self.system_prompt, obs)
            return list(self._new_prompt)
        if seat not in self.sequences:
            new = self.chat.first_prompt(self.system_prompt, obs)
            self.sequences[seat] = []
        else:
            new = self.chat.next_prompt(obs, self.ended_with_eos[seat])
        self._new_prompt = new
        return self.sequences[seat] + new

    def apply(self, generation: Any, eos_token_ids: tuple[int, ...]) -> None:
        """Record the generated turn, step the env with its text, and route the next observation."""
        seat = self.seat_to_act
        obs, _, terminated, truncated, info = self.env_call(self.env.step, generation.text)
        record = info["turn"]
        self.policy_turns += 1
        ids = list(generation.token_ids)
        self.sequences[seat] += self._new_prompt + ids
        self.ended_with_eos[seat] = bool(ids) and ids[-1] in eos_token_ids
        self.trajectory(seat).turns.append(
            Turn(
                prompt_ids=list(self._new_prompt),
                completion_ids=ids,
                logprobs=[float(x) for x in generation.logprobs],
                text=generation.text,
                finish_reason=generation.finish_reason,
                record=record,
                anchor=self.pending_anchor.pop(seat, None),
                observation=self._observation,
            )
        )
        if terminated or truncated:
            outcomes = info.get("outcomes", {record.seat: record.outcome})
            self.finish(outcomes, str(record.stop_reason))
            return
        self.route(obs, info)

    def finish(self, outcomes: dict[int, float], stop_reason: str) -> None:
        self.done = True
        seat_outcomes = {int(s): float(v) for s, v in outcomes.items()}
        for seat, trajectory in self.trajectories.items():
            trajectory.outcome = seat_outcomes.get(seat, 0.0)
            trajectory.outcomes = dict(seat_outcomes)
            trajectory.stop_reason = stop_reason

    def stop_for_tokens(self) -> None:
        outcomes = self.env_call(self.env.unwrapped.stop, StopReason.TOKEN_LIMIT)
        self.finish(outcomes, StopReason.TOKEN_LIMIT.value)

    def fail(self, failure: EnvFailure) -> None:
        self.done = True
        if not self.trajectories:
            self.trajectory(self.seat_to_act)
        for trajectory in self.trajectories.values():
            trajectory.failed = True
            trajectory.outcome = None
            trajectory.outcomes = {}
            trajectory.stop_reason = StopReason.ENV_ERROR.value
            trajectory.error = str(failure)


def collect(
    tasks: list[Task],
    policy: Policy,
    config: RolloutConfig,
    on_progress: Callable[[int, int], None] | None = None,
    on_episode_done: Callable[[list[Trajectory]], None] | None = None,
) -> RolloutBatch:
    """Play ``config.group_size`` rollouts of every task with ``policy`` and return their trajectories.

    All episodes advance in lock-step: at every round, each running episode's acting seat needs one
    reply, and all of them are generated in ONE ``policy.generate`` call (batched across envs). Token
    sequences are built token-in/token-out (:mod:`turngym.training.chat_tokens`); the chat template is
    checked for prefix stability first. An environment that raises marks its trajectories ``failed``
    (or is replayed, see ``on_env_error``); groups never shrink silently — every
    ``(task, sample_index)`` yields its trajectories, failed or not, and :class:`RolloutMetrics` counts.
    ``on_progress(episodes_done, episodes_total)`` is called after every round (progress bars);
    ``on_episode_done(trajectories)`` once per episode as soon as it has ended for good (not when it
    is about to be replayed), with the trajectories it contributes to the result (one per seat that
    acted, seat order) — e.g. a running success rate.
    A policy with ``kv_session()`` keeps its KV caches across the rounds of this call, so each turn
    prefills only its new tokens; the session closes (caches dropped) before ``collect`` returns.
    """
    started = time.perf_counter()
    chat = ChatTokens(policy.tokenizer)
    eos = tuple(policy.eos_token_ids)
    metrics = RolloutMetrics()
    finished: list[_Episode] = []
    rounds = [0]
    total = len(tasks) * config.group_size
    reported: set[int] = set()

    def report_done(episodes: list[_Episode]) -> None:
        if on_episode_done is None:
            return
        for ep in episodes:
            if ep.done and id(ep) not in reported and not _will_replay(ep, config):
                reported.add(id(ep))
                on_episode_done([t for _, t in sorted(ep.trajectories.items()) if t.turns or t.failed])

    def play(episodes: list[_Episode], until_turn: int | None = None) -> None:
        """Advance ``episodes`` in lock-step (one batched generate per round) until they end, or
        until each has taken ``until_turn`` policy turns."""
        while True:
            if until_turn is None:  # (a trunk that stops at the branch turn has not ended for good)
                report_done(episodes)
            active = [ep for ep in episodes if not ep.done and (until_turn is None or ep.policy_turns < until_turn)]
            if not active:
                return
            prompts, asking = [], []
            for ep in active:
                prompt = ep.prompt_for_turn()
                if len(prompt) + config.max_new_tokens > config.max_episode_tokens:
                    _guard(ep, ep.stop_for_tokens)
                    continue
                prompts.append(prompt)
                asking.append(ep)
            if not asking:
                continue
            params = SamplingParams(
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k,
                seed=config.seed * 1_000_003 + rounds[0],
                row_seeds=[episode_seed(config.seed, ep.task, ep.sample_index, ep.attempt, ep.policy_turns)
                           for ep in asking] if config.seeding == "episode" else None,
            )
            rounds[0] += 1
            t0 = time.perf_counter()
            generations = policy.generate(prompts, params)
            metrics.generate_seconds += time.perf_counter() - t0
            for ep, generation in zip(asking, generations, strict=True):
                metrics.generated_tokens += len(generation.token_ids)
                metrics.length_finishes += generation.finish_reason == "length"
                _guard(ep, lambda ep=ep, g=generation: ep.apply(g, eos))
            if on_progress is not None:
                on_progress(len(finished) + sum(ep.done for ep in episodes), total)

    with _kv_session(policy) as store:  # cross-turn KV reuse, valid while the weights are fixed
        reused_before = (store.stats.reused_tokens, store.stats.prefilled_tokens) if store is not None else (0, 0)
        queue: list[tuple[Task, int, int]] = []
        if config.branch_turn is None:
            queue = [(task, k, 0) for task in tasks for k in range(config.group_size)]
        else:  # fork-based branching: one trunk per task, forked into the group at the branch turn
            trunks = [_Episode(task, 0, 0, config, chat) for task in tasks]
            for ep in trunks:
                _guard(ep, ep.reset)
            play(trunks, until_turn=config.branch_turn)
            branches = [trunk.branch(k) for trunk in trunks for k in range(config.group_size)]
            metrics.branched += sum(not b.done for b in branches)
            play(branches)
            for ep in branches:
                _collect_or_retry(ep, config, queue, finished, metrics)
        while queue:
            episodes = [_Episode(task, k, attempt, config, chat) for task, k, attempt in queue]
            queue = []
            for ep in episodes:
                _guard(ep, ep.reset)
            play(episodes)
            for ep in episodes:
                _collect_or_retry(ep, config, queue, finished, metrics)
        if store is not None:
            metrics.kv_reused_tokens = store.stats.reused_tokens - reused_before[0]
            metrics.prefilled_tokens = store.stats.prefilled_tokens - reused_before[1]
    trajectories = []
    for ep in sorted(finished, key=lambda e: (e.task.env_id, e.task.seed, e.sample_index)):
        metrics.episodes += 1
        for seat in sorted(ep.trajectories):
            t = ep.trajectories[seat]
            if not t.turns and not t.failed:
                continue  # a seat that never had to act (e.g. the other seat forfeited first)
            trajectories.append(t)
            metrics.trajectories += 1
            metrics.failed += t.failed
            metrics.turns += len(t.turns)
            metrics.invalid_actions += sum(not turn.record.valid_action for turn in t.turns)
            metrics.truncated += t.stop_reason in ("turn_limit", "token_limit", "time_limit")
    metrics.wall_seconds = time.perf_counter() - started
    return RolloutBatch(trajectories, metrics)


def _kv_session(policy: Policy) -> AbstractContextManager[Any]:
    """The policy's ``kv_session()`` (cross-turn KV reuse, see :class:`HFPolicy`) or a no-op context."""
    return policy.kv_session() if isinstance(policy, CachingPolicy) else contextlib.nullcontext()


def _collect_or_retry(ep: _Episode, config: RolloutConfig, queue: list, finished: list, metrics: RolloutMetrics) -> None:
    """A finished episode is kept, or queued for a replay when it failed and re-sampling is on."""
    if _will_replay(ep, config):
        metrics.resampled += 1
        queue.append((ep.task, ep.sample_index, ep.attempt + 1))
    else:
        finished.append(ep)


def _will_replay(ep: _Episode, config: RolloutConfig) -> bool:
    """Whether a finished episode is replayed instead of kept (it failed and re-sampling is on)."""
    failed = any(t.failed for t in ep.trajectories.values())
    return failed and config.on_env_error == "resample" and ep.attempt < config.max_resamples


def _guard(ep: _Episode, action: Callable[[], None]) -> None:
    """Run an episode operation; an :class:`EnvFailure` (the environment raised) fails that episode
    only. Every other exception is a bug of the rollout or the policy and propagates."""
    try:
        action()
    except EnvFailure as failure:
        ep.fail(failure)


def play_scripted(
    tasks: list[Task],
    make_agent: Callable[[Task], Callable[[Any], str]],
    tokenizer: Any,
    eos_token_id: int,
    config: RolloutConfig,
    on_episode_done: Callable[[list[Trajectory]], None] | None = None,
) -> list[Trajectory]:
    """Record a scripted (direct) agent's episodes as the policy would have played them: one
    :class:`Trajectory` per task, whose prompts are built exactly as :func:`collect` builds them
    (same chat template, ``context`` and token budget) and whose completions are the agent's replies
    tokenized with ``tokenizer`` plus ``eos_token_id`` (log-probs 0). Demonstrations for a warm-up
    (:mod:`turngym.training.warmup`).

    ``make_agent(task)`` returns a direct agent ``agent(env) -> str`` that reads the unwrapped env.
    An environment that raises fails its trajectory (``failed``), as in :func:`collect`.
    ``on_episode_done`` receives each finished episode's trajectories (for a progress display).
    """
    chat = ChatTokens(tokenizer)
    out: list[Trajectory] = []
    for task in tasks:
        ep = _Episode(task, 0, 0, config, chat)
        agent = make_agent(task)
        _guard(ep, ep.reset)
        while not ep.done:
            prompt = ep.prompt_for_turn()
            text = agent(ep.env.unwrapped)
            ids = [*tokenizer(text, add_special_tokens=False)["input_ids"], eos_token_id]
            if len(prompt) + len(ids) > config.max_episode_tokens:
                _guard(ep, ep.stop_for_tokens)
                break
            reply = _ScriptedReply(text, ids, [0.0] * len(ids), "stop")
            _guard(ep, lambda reply=reply: ep.apply(reply, (eos_token_id,)))
        ep.env.close()
        done = [t for _, t in sorted(ep.trajectories.items())]
        out += done
        if on_episode_done is not None:
            on_episode_done(done)
    return out


@dataclass(frozen=True)
class _ScriptedReply:
    """A scripted agent's reply in the shape of a policy :class:`~turngym.agents.base.Generation`."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str

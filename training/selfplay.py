"""Self-play: an opponent pool with prioritized fictitious self-play, and ratings against anchors.

Two pieces the trainer uses when ``rollout.self_play`` is on (see ``SelfPlaySection`` and
``RatingSection`` in :mod:`turngym.training.config`):

:class:`OpponentPool`
    Who the learner meets, per task. ``"self"`` means the policy plays every seat (one trajectory per
    seat, role-conditioned advantages with ``rae``); any other entry is an agent spec — a scripted
    agent (``random``, ``heuristic``, ``minimax``…) or a frozen checkpoint of the learner itself
    (``hf:runs/x/snapshots/step-10``). Non-self opponents are drawn by **prioritized fictitious
    self-play** (AlphaStar's PFSP): opponent ``o`` has weight ``f(p_o)`` where ``p_o`` is the
    learner's (prior-smoothed) score against it, ``f(p) = (1 - p)^power`` ("hard": weight toward
    opponents we lose to), ``p(1 - p)`` ("even": toward opponents of similar strength) or 1
    ("uniform"). Snapshots join every ``snapshot_every`` steps; past ``max_snapshots`` the oldest
    snapshot leaves (fixed entries never do). The pool is a plain record, saved in checkpoints.

:class:`AnchorRater`
    Every ``ratings.every`` steps the current policy plays ``games`` games per anchor and env
    (every deal from both seats, greedy by default) against fixed anchors; in games of chance (the
    ``chance`` tag) the two games of a deal form one duplicate match scored by summed outcome, so the
    cards do not decide the rating; a Bradley–Terry fit over those
    games plus a round robin among the anchors themselves (played once, scripted, cheap) puts the
    policy on a stable Elo scale with bootstrap intervals. Self-play win rates sit near 50% by
    construction; the anchor rating is what shows progress.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from turngym.agents.base import LearnerPolicy, Policy
from turngym.agents.factory import discard_snapshot, save_snapshot
from turngym.training.config import TrainConfig
from turngym.training.data_parallel import Ranks
from turngym.training.evaluate import seat_score
from turngym.training.play import play_episode
from turngym.training.ratings import (
    GameResult,
    bootstrap_intervals,
    bradley_terry,
    duplicate_matches,
)
from turngym.training.rollout import RolloutConfig, Task, collect
from turngym.training.run_io import TrainerState
from turngym.training.trajectory import Trajectory

SELF = "self"
PFSP_WEIGHTINGS = ("hard", "even", "uniform")


# ================================================================================================
# Opponent pool with PFSP
# ================================================================================================
@dataclass
class OpponentRecord:
    """One pool entry and the learner's results against it (score 1/0.5/0 per game)."""

    spec: str
    snapshot_step: int | None = None
    """Training step of a frozen learner snapshot; ``None`` for a fixed entry."""
    games: float = 0.0
    score: float = 0.0

    def win_rate(self, prior_games: float = 2.0) -> float:
        """The learner's score against this entry, shrunk toward 0.5 by ``prior_games`` pseudo-games."""
        return (self.score + 0.5 * prior_games) / (self.games + prior_games)


def pfsp_weights(win_rates: Sequence[float], weighting: str = "hard", power: float = 2.0) -> np.ndarray:
    """Normalized PFSP sampling weights from the learner's win rates against each opponent.

    ``hard``: ``(1 - p)^power``; ``even``: ``p (1 - p)``; ``uniform``: 1. A floor of 1e-3 keeps every
    opponent reachable (an opponent we always beat is still visited now and then).
    """
    if weighting not in PFSP_WEIGHTINGS:
        raise ValueError(f"unknown PFSP weighting {weighting!r}; choose one of {PFSP_WEIGHTINGS}")
    p = np.clip(np.asarray(win_rates, dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        raise ValueError("pfsp_weights needs at least one opponent")
    if weighting == "hard":
        w = (1.0 - p) ** power
    elif weighting == "even":
        w = p * (1.0 - p)
    else:
        w = np.ones_like(p)
    w = np.maximum(w, 1e-3)
    return w / w.sum()


@dataclass
class OpponentPool:
    """Fixed opponents + learner snapshots, sampled per task. See the module docstring.

    Attributes:
        entries: the pool (``"self"`` is not an entry; it is chosen with probability ``self_share``).
        self_share: probability that a task is pure self-play.
        weighting, power: PFSP weighting of the non-self entries.
        max_snapshots: snapshots kept; the oldest leaves first.
    """

    entries: list[OpponentRecord] = field(default_factory=list)
    self_share: float = 1.0
    weighting: str = "hard"
    power: float = 2.0
    max_snapshots: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.self_share <= 1.0:
            raise ValueError(f"self_share must be in [0, 1], got {self.self_share!r}")
        if self.self_share < 1.0 and not self.entries:
            raise ValueError("an opponent pool with self_share < 1 needs at least one opponent")
        if self.weighting not in PFSP_WEIGHTINGS:
            raise ValueError(f"unknown PFSP weighting {self.weighting!r}; choose one of {PFSP_WEIGHTINGS}")

    @classmethod
    def from_specs(cls, specs: Sequence[str], **kwargs: Any) -> OpponentPool:
        return cls(entries=[OpponentRecord(s) for s in specs], **kwargs)

    def sample(self, rng: np.random.Generator) -> str:
        """``"self"`` or an entry's spec."""
        if not self.entries or rng.random() < self.self_share:
            return SELF
        weights = pfsp_weights([e.win_rate() for e in self.entries], self.weighting, self.power)
        return self.entries[int(rng.choice(len(self.entries), p=weights))].spec

    def record(self, spec: str, score: float) -> None:
        """Count one game of the learner against ``spec`` (``score`` 1 win, 0.5 draw, 0 loss)."""
        for entry in self.entries:
            if entry.spec == spec:
                entry.games += 1
                entry.score += score
                return

    def add_snapshot(self, spec: str, step: int) -> OpponentRecord | None:
        """Add a frozen learner snapshot; returns the snapshot evicted to respect the cap, if any."""
        self.entries.append(OpponentRecord(spec, snapshot_step=step))
        snapshots = [e for e in self.entries if e.snapshot_step is not None]
        if len(snapshots) <= self.max_snapshots:
            return None
        oldest = min(snapshots, key=lambda e: e.snapshot_step or 0)
        self.entries.remove(oldest)
        return oldest

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpponentPool:
        data = dict(data)
        entries = [OpponentRecord(**e) for e in data.pop("entries", [])]
        return cls(entries=entries, **data)


# ================================================================================================
# Ratings against fixed anchors
# ================================================================================================
@dataclass(frozen=True)
class AnchorRating:
    """The learner's rating at one step, for one game.

    Attributes:
        step: training step rated.
        env_id: the game.
        elo, low, high: Bradley–Terry Elo and its bootstrap 95% interval (anchors share the scale).
        anchors: every anchor's Elo (fitted together with the learner).
        per_anchor: per anchor, the learner's ``score`` (mean of 1/0.5/0 over games — over duplicate
            matches in games of chance), ``win_seat0`` and ``win_seat1`` (win rates of single games by
            the learner's seat), and ``games`` (games, or matches in games of chance).
    """

    step: int
    env_id: str
    elo: float
    low: float
    high: float
    anchors: dict[str, float]
    per_anchor: dict[str, dict[str, float]]

    def to_metrics(self) -> dict[str, float]:
        name = self.env_id.split("/")[-1]
        out = {f"rating/{name}/elo": self.elo, f"rating/{name}/elo_low": self.low, f"rating/{name}/elo_high": self.high}
        for anchor, stats in self.per_anchor.items():
            for key, value in stats.items():
                out[f"rating/{name}/vs_{anchor}/{key}"] = value
        return out


class AnchorRater:
    """Rates a policy against fixed scripted anchors on each game (see the module docstring).

    Args:
        env_ids: the games to rate on (two-seat ids).
        anchors: scripted agent specs valid for every game in ``env_ids``.
        games: games per (anchor, env) for the learner; seats alternate (even counts recommended).
        anchor_games: games per anchor pair in the anchors' own round robin.
        seed: seeds the rating games (the same games every time, so ratings are comparable).
        n_boot: bootstrap resamples for the interval.
    """

    PLAYER = "policy"

    def __init__(self, env_ids: Sequence[str], anchors: Sequence[str], games: int = 32, anchor_games: int = 40,
                 seed: int = 0, n_boot: int = 300):
        from turngym.agents.specs import resolve_agent
        from turngym.envs.registration import spec

        if len(anchors) < 1:
            raise ValueError("ratings need at least one anchor agent (e.g. ['random', 'heuristic'])")
        if games < 2:
            raise ValueError(f"ratings.games must be >= 2 (seats alternate), got {games!r}")
        for env_id in env_ids:
            if spec(env_id).num_seats != 2:
                raise ValueError(f"anchor ratings need two-player games; {env_id!r} has {spec(env_id).num_seats} seat(s)")
            for anchor in anchors:
                resolve_agent(anchor, env_id, seed=0)  # raises, listing valid names, if it does not play
        self.env_ids, self.anchors = list(env_ids), list(anchors)
        self.games, self.anchor_games, self.seed, self.n_boot = games, anchor_games, seed, n_boot
        self.anchor_results = {env_id: self._scored(env_id, self._anchor_round_robin(env_id)) for env_id in self.env_ids}
        self.history: list[AnchorRating] = []

    @staticmethod
    def _scored(env_id: str, games: list[GameResult]) -> list[GameResult]:
        """Games of chance are scored as duplicate matches (one deal from both seats, summed outcome),
        so the cards do not decide the rating; other games game by game."""
        from turngym.envs.registration import spec

        if "chance" not in spec(env_id).tags:
            return games
        complete = [g for g in games if sum(1 for h in games if h.pair == g.pair and h.index // 2 == g.index // 2) == 2]
        return duplicate_matches(complete)

    def _anchor_round_robin(self, env_id: str) -> list[GameResult]:
        from turngym.agents.specs import resolve_agent
        from turngym.envs.registration import make

        env = make(env_id)
        results = []
        for a, b in itertools.combinations(self.anchors, 2):
            for k in range(self.anchor_games):
                seed = self.seed * 7_919 + 100_000 + k // 2
                seat_a = k % 2
                agents = {seat_a: resolve_agent(a, env_id, seed=seed), 1 - seat_a: resolve_agent(b, env_id, seed=seed + 1)}
                episode = play_episode(env, agents, seed=seed)
                oa, ob = episode.outcomes[seat_a], episode.outcomes[1 - seat_a]
                results.append(GameResult(a, b, seat_score(episode.outcomes, seat_a), env_id, seed, seat_a, k, oa, ob))
        return results

    def rate(self, policy: Policy, step: int, rollout: RolloutConfig) -> list[AnchorRating]:
        """Play the rating games with ``policy`` (batched through :func:`collect`) and fit ratings.

        ``rollout`` supplies token budgets, context and env kwargs; its temperature is used as given
        (the trainer passes ``ratings.temperature``, greedy by default).
        """
        ratings = []
        for env_id in self.env_ids:
            games: list[GameResult] = []
            per_anchor: dict[str, dict[str, float]] = {}
            for anchor in self.anchors:
                # game k: deal k // 2, learner in seat k % 2 — every deal is played from both seats
                tasks = [Task(env_id, self.seed * 7_919 + k // 2, opponent=anchor, seat=k % 2) for k in range(self.games)]
                config = dataclasses.replace(rollout, group_size=1, self_play=False)
                batch = collect(tasks, policy, config)
                wins: dict[int, list[bool]] = {0: [], 1: []}
                played = []
                base = self.seed * 7_919
                for t in batch.trajectories:
                    if t.failed:
                        continue
                    k = 2 * (t.seed - base) + t.seat  # the game's index in the paired schedule
                    score = seat_score(t.outcomes, t.seat)
                    wins[t.seat].append(score == 1.0)
                    other = [v for s, v in t.outcomes.items() if s != t.seat]
                    played.append(GameResult(self.PLAYER, anchor, score, env_id, t.seed, t.seat, index=k,
                                             outcome_a=t.outcomes.get(t.seat, 0.0), outcome_b=other[0] if other else 0.0))
                games.extend(self._scored(env_id, played))
                scores = [g.score_a for g in games if g.player_b == anchor]
                per_anchor[anchor] = {
                    "score": float(np.mean(scores)) if scores else math.nan,
                    "win_seat0": float(np.mean(wins[0])) if wins[0] else math.nan,
                    "win_seat1": float(np.mean(wins[1])) if wins[1] else math.nan,
                    "games": float(len(scores)),
                }
            all_games = self.anchor_results[env_id] + games
            elo = bradley_terry(all_games)
            intervals = bootstrap_intervals(all_games, n_boot=self.n_boot, seed=self.seed + step)
            low, high = intervals.get(self.PLAYER, (math.nan, math.nan))
            ratings.append(
                AnchorRating(step, env_id, elo.get(self.PLAYER, math.nan), low, high,
                             {a: elo[a] for a in self.anchors if a in elo}, per_anchor)
            )
        self.history.extend(ratings)
        return ratings


def plot_ratings(history: Sequence[AnchorRating | dict[str, Any]], path: str | Path) -> None:
    """``ratings.png``: the learner's Elo per game over steps (band = 95% interval), anchors dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r if isinstance(r, AnchorRating) else AnchorRating(**r) for r in history]
    env_ids = sorted({r.env_id for r in records})
    if not env_ids:
        return
    fig, axes = plt.subplots(1, len(env_ids), figsize=(6 * len(env_ids), 4), squeeze=False)
    for ax, env_id in zip(axes[0], env_ids):
        rows = sorted((r for r in records if r.env_id == env_id), key=lambda r: r.step)
        steps = [r.step for r in rows]
        ax.plot(steps, [r.elo for r in rows], marker="o", label="policy")
        ax.fill_between(steps, [r.low for r in rows], [r.high for r in rows], alpha=0.25)
        for anchor, value in rows[-1].anchors.items():
            ax.axhline(value, linestyle="--", linewidth=1, color="gray")
            ax.annotate(anchor, (steps[0], value), fontsize=8, va="bottom")
        ax.set_title(f"{env_id}: Elo vs fixed anchors")
        ax.set_xlabel("step")
        ax.set_ylabel("Bradley–Terry Elo")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def assign_opponents(tasks: list[Task], pool: OpponentPool, rng: np.random.Generator,
                     is_game: Callable[[str], bool]) -> list[Task]:
    """Give each game task an opponent drawn from ``pool`` (``"self"`` or an agent spec)."""
    return [Task(t.env_id, t.seed, opponent=pool.sample(rng)) if is_game(t.env_id) else t for t in tasks]


# ------------------------------------------------------------------ the trainer's pool plumbing
def build_pool(config: TrainConfig, state: TrainerState) -> OpponentPool | None:
    """The self-play opponent pool (restored from the checkpoint when resuming), or ``None``."""
    sp = config.selfplay
    if not config.rollout.self_play or not (sp.opponents or sp.snapshot_every):
        return None
    if state.pool is not None:
        return OpponentPool.from_dict(state.pool)
    return OpponentPool.from_specs(sp.opponents, self_share=sp.self_share, weighting=sp.pfsp,
                                   power=sp.pfsp_power, max_snapshots=sp.max_snapshots)


def update_pool(pool: OpponentPool, trajectories: list[Trajectory]) -> None:
    """Count the learner's results against each pool opponent (PFSP statistics)."""
    for t in trajectories:
        if t.opponent is not None and t.opponent != SELF and not t.failed:
            pool.record(t.opponent, seat_score(t.outcomes, t.seat))


def pool_metrics(pool: OpponentPool) -> dict[str, float]:
    out: dict[str, float] = {"selfplay/pool_size": float(len(pool.entries))}
    for e in pool.entries:
        name = e.spec if e.snapshot_step is None else f"snapshot{e.snapshot_step}"
        out[f"selfplay/vs_{name}/score"] = e.win_rate(prior_games=0.0) if e.games else math.nan
        out[f"selfplay/vs_{name}/games"] = e.games
    return out


def add_snapshot(pool: OpponentPool, policy: LearnerPolicy, out: Path, step: int, ranks: Ranks) -> None:
    """Freeze the current weights into ``out/snapshots/step-N`` and add them to the pool (the
    snapshot it evicts, if any, is forgotten and deleted). Rank 0 writes; every rank adds it."""
    path = out / "snapshots" / f"step-{step}"
    spec = save_snapshot(policy, path) if ranks.is_main else f"hf:{path}"
    ranks.barrier()  # the files exist before any rank loads the opponent
    evicted = pool.add_snapshot(spec, step)
    if evicted is not None:
        discard_snapshot(evicted.spec, delete=ranks.is_main)

"""Ratings from two-player game results: Bradley–Terry (Elo scale) with bootstrap intervals, OpenSkill.

Everything here is a pure function of a list of :class:`GameResult` records (one finished game each;
:func:`duplicate_matches` merges seat-swapped games on one seed into one record for games of chance).

Bradley–Terry model (:func:`bradley_terry`)
    ``P(a beats b) = σ(r_a − r_b)`` with σ the logistic function, fitted by **maximum a posteriori**
    with Newton's method (backtracking line search on the concave log-posterior, all players at once).

    * **Draws count as half a win for each side**: a game contributes
      ``s·log σ(r_a − r_b) + (1 − s)·log σ(r_b − r_a)`` with ``s ∈ {0, ½, 1}`` the score of ``a``
      ("fractional wins"; two draws are exactly one win plus one loss).
    * **Elo scale**: ``elo = 1500 + r · 400 / ln 10``, so a 400-point gap is 10:1 odds and
      ``P(a beats b) = 1 / (1 + 10^((elo_b − elo_a) / 400))``.
    * **Prior / anchor**: each rating has an independent Gaussian prior ``N(1500, prior_sd²)`` in Elo
      points, ``prior_sd = 1000`` by default (in logits: an L2 penalty ``λ/2 · Σ r²`` with
      ``λ = (400 / ln 10 / prior_sd)² ≈ 0.030``). It keeps the rating of a player that won (or lost)
      every game finite, and is tiny otherwise: with 4 games it moves a 3-of-4 result from
      190.8 to 187.1 Elo apart, with 400 games by 0.04. At the optimum the prior's gradient must cancel a
      likelihood gradient that sums to zero, so **the mean rating is exactly 1500** (the anchor).
      ``prior_sd=None`` gives the plain maximum-likelihood fit (also centred on a mean of 1500), which
      exists only when every split of the players has each side scoring against the other.

    Why our own Newton solver and not ``choix``: it is ~40 lines of numpy, batched (the bootstrap
    refits 1000 resamples in one call), handles fractional (draw) scores natively and states its
    prior exactly; ``choix`` would be an extra dependency that takes whole comparisons only.

Bootstrap (:func:`bootstrap_intervals`)
    Games are resampled with replacement *within each pair of players* (every pair keeps its game
    count), the model is refitted on each resample, and the percentile interval of each player's Elo
    is reported. Intervals are relative to the field's mean (the anchor). Seat-swapped games played
    on the same seed are resampled as independent games; in games of chance their results are
    negatively correlated (the same deal twice), so this widens the intervals, and duplicate scoring
    (:func:`duplicate_matches`) resamples whole matches instead.

OpenSkill (:func:`openskill_ratings`)
    The Weng–Lin Bayesian online rating of the ``openskill`` library (``PlackettLuce`` by default,
    library defaults ``mu=25, sigma=25/3``), updated once per game in the order given, a draw being a
    tie (equal ranks). Unlike Bradley–Terry it depends on game order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "ELO_BASE",
    "ELO_SCALE",
    "GameResult",
    "bootstrap_intervals",
    "bradley_terry",
    "duplicate_matches",
    "openskill_ratings",
    "payoff_matrix",
    "prior_strength",
    "score_from_outcomes",
]

ELO_BASE = 1500.0
"""The mean rating (anchor)."""
ELO_SCALE = 400.0 / math.log(10.0)
"""Elo points per logit (≈ 173.72)."""
DEFAULT_PRIOR_SD = 1000.0
"""Standard deviation, in Elo points, of the Gaussian prior on each rating."""

_SCORES = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class GameResult:
    """One finished two-player game, seen from ``player_a``.

    Attributes:
        player_a, player_b: the players' names (agent specs in a tournament); they must differ.
        score_a: 1 if ``player_a`` won, 0.5 for a draw, 0 if it lost.
        env_id: the game played.
        seed: the episode seed it was played on.
        seat_a: ``player_a``'s seat (0 moves first); ``player_b`` had the other one.
        index: the game's index within its pair in a tournament (``-1`` when not from one).
        outcome_a, outcome_b: the players' raw outcomes (e.g. chips in poker), if known.
        stop_reason: why the game ended (``game_over``, ``invalid_action``, ``turn_limit``…), if known.
        turns: number of actions taken in the game (both seats), if known.
    """

    player_a: str
    player_b: str
    score_a: float
    env_id: str
    seed: int
    seat_a: int
    index: int = -1
    outcome_a: float | None = None
    outcome_b: float | None = None
    stop_reason: str | None = None
    turns: int | None = None

    def __post_init__(self) -> None:
        if self.player_a == self.player_b:
            raise ValueError(f"a game needs two different players, got {self.player_a!r} twice")
        if self.score_a not in _SCORES:
            raise ValueError(f"score_a must be 0, 0.5 or 1, got {self.score_a!r}")
        if self.seat_a not in (0, 1):
            raise ValueError(f"seat_a must be 0 or 1, got {self.seat_a!r}")

    @property
    def score_b(self) -> float:
        return 1.0 - self.score_a

    @property
    def pair(self) -> tuple[str, str]:
        """The two players' names, sorted: the key of the unordered pair."""
        return (self.player_a, self.player_b) if self.player_a < self.player_b else (self.player_b, self.player_a)

    def seat_of(self, player: str) -> int:
        if player == self.player_a:
            return self.seat_a
        if player == self.player_b:
            return 1 - self.seat_a
        raise KeyError(f"{player!r} did not play this game ({self.player_a!r} vs {self.player_b!r})")

    def score_of(self, player: str) -> float:
        if player == self.player_a:
            return self.score_a
        if player == self.player_b:
            return self.score_b
        raise KeyError(f"{player!r} did not play this game ({self.player_a!r} vs {self.player_b!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GameResult:
        def opt(key: str, kind: type) -> Any:
            value = data.get(key)
            return None if value is None else kind(value)

        return cls(
            player_a=str(data["player_a"]),
            player_b=str(data["player_b"]),
            score_a=float(data["score_a"]),
            env_id=str(data["env_id"]),
            seed=int(data["seed"]),
            seat_a=int(data["seat_a"]),
            index=int(data.get("index", -1)),
            outcome_a=opt("outcome_a", float),
            outcome_b=opt("outcome_b", float),
            stop_reason=opt("stop_reason", str),
            turns=opt("turns", int),
        )

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> GameResult:
        return cls.from_dict(json.loads(line))


def score_from_outcomes(outcome_a: float, outcome_b: float) -> float:
    """1 / 0.5 / 0: whether ``a``'s outcome beats, ties or trails ``b``'s."""
    return 1.0 if outcome_a > outcome_b else (0.5 if outcome_a == outcome_b else 0.0)


def duplicate_matches(games: Sequence[GameResult]) -> list[GameResult]:
    """Merge each seat-swapped pair of games into one *duplicate match* scored by total outcome.

    In games of chance the cards (dice…) decide most single games: in Kuhn poker the equilibrium
    player wins *fewer* hands than a uniformly random one (47.9%) while winning 0.14 chips a hand from
    it. Playing the same deal twice with seats swapped and comparing the chips each player won over
    both ("duplicate" poker / bridge) removes the luck of the deal and makes a win/draw/loss score
    meaningful again: the player with the larger summed outcome wins the match, equal sums draw.

    Games are matched by (pair, ``index // 2``): tournament games ``2k`` and ``2k + 1`` are played on the
    same seed with seats swapped. Each must have its partner and both outcomes. A match keeps the
    pair's sorted player order, ``seed``, ``index = k``, ``seat_a`` of the first game, summed outcomes
    and turns, and ``stop_reason="duplicate"``. Returned in input order of the first game of each match.
    """
    groups: dict[tuple[str, str, int], list[GameResult]] = {}
    for g in games:
        if g.index < 0:
            raise ValueError(f"duplicate scoring needs tournament game indices; got a game without one: {g}")
        groups.setdefault((*g.pair, g.index // 2), []).append(g)
    matches = []
    for (first, second, k), pair in groups.items():
        if len(pair) != 2 or {g.index for g in pair} != {2 * k, 2 * k + 1}:
            indices = sorted(g.index for g in pair)
            raise ValueError(
                f"duplicate scoring needs games {2 * k} and {2 * k + 1} of {first} vs {second}; found {indices} "
                "(play an even number of games per pair)"
            )
        if pair[0].seed != pair[1].seed or pair[0].seat_of(first) == pair[1].seat_of(first):
            raise ValueError(f"games {2 * k} and {2 * k + 1} of {first} vs {second} are not a seat-swapped pair on one seed")
        if any(g.outcome_a is None or g.outcome_b is None for g in pair):
            raise ValueError(f"duplicate scoring needs outcomes; games of {first} vs {second} have none")
        pair.sort(key=lambda g: g.index)
        total_first = sum(g.outcome_a if g.player_a == first else g.outcome_b for g in pair)  # type: ignore[misc]
        total_second = sum(g.outcome_b if g.player_a == first else g.outcome_a for g in pair)  # type: ignore[misc]
        turns = [g.turns for g in pair]
        matches.append(
            GameResult(
                player_a=first,
                player_b=second,
                score_a=score_from_outcomes(total_first, total_second),
                env_id=pair[0].env_id,
                seed=pair[0].seed,
                seat_a=pair[0].seat_of(first),
                index=k,
                outcome_a=total_first,
                outcome_b=total_second,
                stop_reason="duplicate",
                turns=None if None in turns else sum(turns),  # type: ignore[arg-type]
            )
        )
    return matches


# ==================================================================================== Bradley–Terry
def prior_strength(prior_sd: float | None) -> float:
    """The L2 coefficient λ (in logits) of a ``N(1500, prior_sd²)`` prior in Elo points; 0 for ``None``."""
    if prior_sd is None or math.isinf(prior_sd):
        return 0.0
    if not prior_sd > 0:
        raise ValueError(f"prior_sd must be positive (Elo points) or None, got {prior_sd!r}")
    return (ELO_SCALE / float(prior_sd)) ** 2


def _players(games: Iterable[GameResult]) -> list[str]:
    """Players in order of first appearance."""
    seen: dict[str, None] = {}
    for g in games:
        seen.setdefault(g.player_a)
        seen.setdefault(g.player_b)
    return list(seen)


def _tables(games: Sequence[GameResult], players: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``W[i, j]`` = total score of ``i`` against ``j``; ``N[i, j]`` = games between them."""
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    wins = np.zeros((n, n))
    counts = np.zeros((n, n))
    for g in games:
        a, b = index[g.player_a], index[g.player_b]
        wins[a, b] += g.score_a
        wins[b, a] += 1.0 - g.score_a
        counts[a, b] += 1
        counts[b, a] += 1
    return wins, counts


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _objective(r: np.ndarray, wins: np.ndarray, lam: float) -> np.ndarray:
    """Log-posterior (up to a constant) per batch element; ``r`` is (B, P), ``wins`` (B, P, P)."""
    diff = r[:, :, None] - r[:, None, :]
    return (wins * _log_sigmoid(diff)).sum(axis=(1, 2)) - 0.5 * lam * (r * r).sum(axis=1)


def _fit_logits(wins: np.ndarray, counts: np.ndarray, lam: float, *, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """MAP logits of a batch of Bradley–Terry problems by damped Newton; returns (B, P), each row mean 0.

    ``wins`` is (B, P, P) (row player's total score against the column player), ``counts`` is the
    (P, P) symmetric game-count matrix shared by the batch. Raises ``ValueError`` if some batch element
    has no finite optimum (only possible with ``lam == 0``).
    """
    batch, n, _ = wins.shape
    r = np.zeros((batch, n))
    if n < 2:
        return r
    eye = np.eye(n)
    current = _objective(r, wins, lam)
    for _ in range(max_iter):
        diff = r[:, :, None] - r[:, None, :]
        p = np.exp(_log_sigmoid(diff))  # σ(diff), without overflow
        grad = (wins - counts * p).sum(axis=2) - lam * r
        weight = counts * p * (1.0 - p)  # (B, P, P), symmetric
        hess = weight - eye * weight.sum(axis=2)[:, :, None] - lam * eye
        if lam == 0.0:
            hess = hess - 1.0  # the likelihood is shift-invariant: pin the mean (see module docstring)
        try:
            step = -np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            break  # the curvature vanished: ratings running off to infinity (no prior)
        # Backtracking line search (the log-posterior is concave; a full Newton step can overshoot).
        t = np.ones(batch)
        for _ in range(60):
            trial = r + t[:, None] * step
            value = _objective(trial, wins, lam)
            bad = value < current - 1e-12 * (1.0 + np.abs(current))
            if not bad.any():
                break
            t = np.where(bad, t * 0.5, t)
        r, current = trial, value
        if lam == 0.0:
            r = r - r.mean(axis=1, keepdims=True)
        if np.abs(r).max() > 60.0:
            break  # diverging: an unbeaten / winless player without a prior
        if np.abs(t[:, None] * step).max() < tol:
            return r - r.mean(axis=1, keepdims=True)
    raise ValueError(
        "no finite Bradley-Terry ratings: some group of players won (or lost) every game against the rest; "
        "use a prior (prior_sd) or play more games"
    )


def bradley_terry(games: Sequence[GameResult], prior_sd: float | None = DEFAULT_PRIOR_SD) -> dict[str, float]:
    """Elo-scale Bradley–Terry ratings, mean 1500, highest first (model, draws and prior: module docstring).

    Args:
        games: finished games; every player in them gets a rating.
        prior_sd: standard deviation of the ``N(1500, prior_sd²)`` prior on each rating, in Elo points
            (default 1000); ``None`` fits by plain maximum likelihood.
    """
    games = list(games)
    if not games:
        return {}
    players = _players(games)
    wins, counts = _tables(games, players)
    logits = _fit_logits(wins[None], counts, prior_strength(prior_sd))[0]
    elo = ELO_BASE + ELO_SCALE * logits
    order = sorted(range(len(players)), key=lambda i: (-elo[i], players[i]))
    return {players[i]: float(elo[i]) for i in order}


def bootstrap_intervals(
    games: Sequence[GameResult],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of :func:`bradley_terry` ratings, resampling games within each pair.

    Each of ``n_boot`` resamples draws, for every unordered pair of players with ``n`` games, ``n`` of
    that pair's games with replacement (so every pair keeps its count), and refits the model. Returns
    ``{player: (low, high)}`` at the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles, in the order of
    :func:`bradley_terry`'s result. Deterministic for a given ``seed``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    games = list(games)
    if not games:
        return {}
    players = _players(games)
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    # A pair's games differ only in the score of its first player: resampling n games with replacement
    # is a multinomial draw of how many wins, draws and losses the resample holds (exact, and O(1) memory
    # in the number of games).
    by_pair: dict[tuple[str, str], list[int]] = {}
    for g in games:
        first, second = g.pair
        bucket = by_pair.setdefault((first, second), [0, 0, 0])  # wins, draws, losses of `first`
        s = g.score_of(first)
        bucket[0 if s == 1.0 else (1 if s == 0.5 else 2)] += 1
    rng = np.random.default_rng(seed)
    wins = np.zeros((n_boot, n, n))
    counts = np.zeros((n, n))
    for (first, second), tally in sorted(by_pair.items()):
        total = sum(tally)
        draws = rng.multinomial(total, np.asarray(tally, dtype=float) / total, size=n_boot)
        score = draws[:, 0] + 0.5 * draws[:, 1]
        i, j = index[first], index[second]
        wins[:, i, j] = score
        wins[:, j, i] = total - score
        counts[i, j] = counts[j, i] = total
    logits = _fit_logits(wins, counts, prior_strength(prior_sd))
    elo = ELO_BASE + ELO_SCALE * logits
    alpha = (1.0 - level) / 2.0
    low = np.quantile(elo, alpha, axis=0)
    high = np.quantile(elo, 1.0 - alpha, axis=0)
    point = bradley_terry(games, prior_sd=prior_sd)
    return {p: (float(low[index[p]]), float(high[index[p]])) for p in point}


# ==================================================================================== OpenSkill
def openskill_ratings(games: Sequence[GameResult], model: Any = None) -> dict[str, tuple[float, float]]:
    """``{player: (mu, sigma)}`` after rating every game in order with an ``openskill`` model.

    ``model`` is an ``openskill.models`` instance (default ``PlackettLuce()`` with the library's
    defaults). Each game is one 1-vs-1 ``model.rate`` call; a draw is a tie (equal ranks). Players are
    returned highest ``mu`` first.
    """
    if model is None:
        try:
            from openskill.models import PlackettLuce
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("OpenSkill ratings need the 'openskill' package: pip install 'turngym[ratings]'") from exc
        model = PlackettLuce()
    ratings: dict[str, Any] = {}
    for g in games:
        a = ratings[g.player_a] if g.player_a in ratings else model.rating(name=g.player_a)
        b = ratings[g.player_b] if g.player_b in ratings else model.rating(name=g.player_b)
        ranks = [0, 0] if g.score_a == 0.5 else ([0, 1] if g.score_a == 1.0 else [1, 0])
        [[a], [b]] = model.rate([[a], [b]], ranks=ranks)
        ratings[g.player_a], ratings[g.player_b] = a, b
    out = {p: (float(r.mu), float(r.sigma)) for p, r in ratings.items()}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1][0], kv[0])))


# ==================================================================================== payoff matrix
def payoff_matrix(
    games: Sequence[GameResult], players: Sequence[str] | None = None, value: str = "score"
) -> tuple[list[str], list[list[float]], list[list[int]]]:
    """``(players, mean[row][col], counts[row][col])`` from the row player's perspective.

    ``value="score"`` averages 1/0.5/0 scores; ``value="outcome"`` averages the row player's raw outcome
    (e.g. chips won; games without outcomes are skipped). Cells with no games (and the diagonal) are
    ``nan``. ``players`` fixes the row/column order (default: order of first appearance); games of
    players not listed are ignored.
    """
    if value not in ("score", "outcome"):
        raise ValueError(f"value must be 'score' or 'outcome', got {value!r}")
    games = list(games)
    players = list(players) if players is not None else _players(games)
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    total = [[0.0] * n for _ in range(n)]
    counts = [[0] * n for _ in range(n)]
    for g in games:
        if g.player_a not in index or g.player_b not in index:
            continue
        if value == "score":
            va, vb = g.score_a, 1.0 - g.score_a
        else:
            if g.outcome_a is None or g.outcome_b is None:
                continue
            va, vb = g.outcome_a, g.outcome_b
        a, b = index[g.player_a], index[g.player_b]
        total[a][b] += va
        total[b][a] += vb
        counts[a][b] += 1
        counts[b][a] += 1
    mean = [[total[i][j] / counts[i][j] if counts[i][j] else math.nan for j in range(n)] for i in range(n)]
    return players, mean, counts

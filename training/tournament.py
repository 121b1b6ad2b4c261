"""Round-robin tournaments between agents on a two-player game, with ratings (``turngym tournament``).

:func:`run_tournament` plays every unordered pair of agents ``games_per_pair`` times and rates them
(:mod:`turngym.training.ratings`). How games are laid out:

* **Pairs** are keyed by their two agent specs in sorted order, ``(a, b)`` with ``a < b``; the order of
  ``agents`` on the command line does not matter, so a tournament can grow by adding agents.
* **Seats alternate with paired seeds**: game ``2k`` of a pair puts ``a`` in seat 0 and game ``2k + 1``
  puts ``a`` in seat 1, both on the same episode seed (same deal, same dice), so first-move advantage
  and the luck of the deal cancel within each pair of games. Seeds are derived from
  ``(seed, a, b, k)`` by a hash, so pairs are independent and every game is reproducible on its own
  (its seed is in its record).
* **Scores** are 1 / ½ / 0 by comparing the two players' outcomes (an invalid move loses, a turn-limit
  truncation is a draw). ``scoring`` picks what is scored: ``"game"`` rates every game on its own;
  ``"duplicate"`` rates each seat-swapped pair of games on one seed as one match won by the larger
  summed outcome (:func:`~turngym.training.ratings.duplicate_matches`), which removes the luck of the
  deal — without it Kuhn poker's equilibrium player *loses* the hand count to a random one while
  winning its chips. ``"auto"`` (default) uses ``duplicate`` for games tagged ``chance`` (poker,
  dice, negotiation) and ``game`` otherwise. ``games.jsonl`` always holds single games, so a
  tournament can be re-rated with either scoring.

Output directory (all written at the end of a run, ``games.jsonl`` as it goes):

``games.jsonl``
    One :class:`~turngym.training.ratings.GameResult` per line, appended and flushed as each game
    finishes. **Resumable**: a re-run reads it, skips the (pair, game index) already played and plays
    only the missing games — run again with a larger ``--games`` to extend a tournament, or after an
    interruption to finish it. A torn last line (a crash mid-write) is dropped.
``replays.jsonl``
    Move-by-move records of the first ``replays_per_pair`` games of each pair (2 by default): the
    game's ``games.jsonl`` fields plus ``moves`` (``[{"seat", "observation", "action"}]``) and
    ``outcomes``; ``turngym view`` replays them. Bounded by design; appended as games finish.
``tournament.json``
    The env id and seed the games were played with; resuming with different ones is refused.
``ratings.json`` / ``ratings.csv`` / ``ratings.md``
    Bradley–Terry Elo with 95% bootstrap intervals, OpenSkill ``mu``/``sigma``, games and mean score per
    player (highest rating first), and the payoff matrices (mean score, mean outcome, game counts).
``ratings.png`` / ``payoff.png``
    Ratings as bars from the mean (1500) with interval error bars; the mean-score heatmap.

Only the requested agents and game indices ``< games_per_pair`` are rated; other games already in
``games.jsonl`` are kept but left out (and counted in ``ignored_games``).

With ``workers > 1`` games run in a :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``
context, safe for agents that hold threads or GPU state); each worker process builds the env and its
agents from the spec strings once (``turngym.agents.specs.resolve_agent``) and reuses them. Agents are
reseeded at every episode start (``play_episode``), so results do not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.console import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Column,
    Progress,
    add_json_argument,
    add_quiet_argument,
    emit_json,
    error,
    print_table,
)
from turngym.training.ratings import (
    DEFAULT_PRIOR_SD,
    GameResult,
    bootstrap_intervals,
    bradley_terry,
    duplicate_matches,
    openskill_ratings,
    payoff_matrix,
)

__all__ = ["TournamentResult", "game_seed", "run_tournament", "tournament_main"]

GAMES_FILE = "games.jsonl"
REPLAYS_FILE = "replays.jsonl"
MANIFEST_FILE = "tournament.json"
_FORMAT = 1


@dataclass
class TournamentResult:
    """What :func:`run_tournament` rated and wrote.

    Attributes:
        env_id: the game.
        scoring: ``"game"`` or ``"duplicate"`` (what one rated result is).
        players: agent specs, highest Bradley–Terry rating first.
        ratings: Elo per player (mean 1500).
        intervals: bootstrap interval per player.
        openskill: ``(mu, sigma)`` per player.
        games_per_player: games each player took part in.
        payoff: ``(players, mean_score[row][col], counts[row][col])`` of the rated results, rating order.
        games: every game of the tournament, in canonical order (game index, then pair).
        rated: what was rated: ``games`` (``scoring="game"``) or their duplicate matches.
        new_games: games played by this call (the rest were read from ``games.jsonl``).
        ignored_games: games in ``games.jsonl`` outside this tournament (other agents, larger index).
        play_s: seconds spent playing the new games.
        files: name → path of every file written.
    """

    env_id: str
    scoring: str
    players: list[str]
    ratings: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    openskill: dict[str, tuple[float, float]]
    games_per_player: dict[str, int]
    payoff: tuple[list[str], list[list[float]], list[list[int]]]
    games: list[GameResult]
    rated: list[GameResult]
    new_games: int
    ignored_games: int
    play_s: float
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def games_per_s(self) -> float:
        """New games per second of playing (``nan`` when nothing was played)."""
        return self.new_games / self.play_s if self.new_games and self.play_s > 0 else math.nan


# ==================================================================================== seeds and plan
def game_seed(seed: int, player_a: str, player_b: str, k: int) -> int:
    """Episode seed of games ``2k`` and ``2k + 1`` of the pair ``(player_a, player_b)`` (sorted names)."""
    key = f"turngym-tournament\0{seed}\0{player_a}\0{player_b}\0{k}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") & 0x7FFF_FFFF


def _pairs(agents: Sequence[str]) -> list[tuple[str, str]]:
    """Unordered pairs in the order of ``agents``, each as its sorted tuple."""
    return [
        tuple(sorted((agents[i], agents[j])))  # type: ignore[misc]
        for i in range(len(agents))
        for j in range(i + 1, len(agents))
    ]


@dataclass(frozen=True)
class _Job:
    player_a: str
    player_b: str
    index: int
    seed: int
    seat_a: int


def _job(pair: tuple[str, str], index: int, seed: int) -> _Job:
    a, b = pair
    return _Job(a, b, index, game_seed(seed, a, b, index // 2), index % 2)


# ==================================================================================== playing (workers)
_WORKER_CACHE: dict[tuple[str, str], Any] = {}
"""A worker process's env and agents, built once from their spec strings."""


def _cached(cache: dict[tuple[str, str], Any], kind: str, key: str, build: Callable[[], Any]) -> Any:
    if (kind, key) not in cache:
        cache[(kind, key)] = build()
    return cache[(kind, key)]


def _play(env_id: str, job: _Job, cache: dict[tuple[str, str], Any]) -> tuple[GameResult, dict[str, Any]]:
    """Play one game; returns its result and its replay record (``replays.jsonl``'s line)."""
    from turngym.agents.specs import resolve_agent
    from turngym.envs.registration import make
    from turngym.training.evaluate import seat_score
    from turngym.training.play import play_episode

    env = _cached(cache, "env", env_id, lambda: make(env_id))
    agent_a = _cached(cache, "agent", f"{env_id}\0{job.player_a}", lambda: resolve_agent(job.player_a, env_id, seed=0))
    agent_b = _cached(cache, "agent", f"{env_id}\0{job.player_b}", lambda: resolve_agent(job.player_b, env_id, seed=0))
    seat_b = 1 - job.seat_a
    try:
        result = play_episode(env, {job.seat_a: agent_a, seat_b: agent_b}, seed=job.seed)
    except Exception as exc:
        raise RuntimeError(
            f"game {job.index} of {job.player_a} vs {job.player_b} on {env_id} "
            f"(seed {job.seed}, {job.player_a} in seat {job.seat_a}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    out_a, out_b = result.outcomes[job.seat_a], result.outcomes[seat_b]
    game = GameResult(
        player_a=job.player_a,
        player_b=job.player_b,
        score_a=seat_score(result.outcomes, job.seat_a),
        env_id=env_id,
        seed=job.seed,
        seat_a=job.seat_a,
        index=job.index,
        outcome_a=out_a,
        outcome_b=out_b,
        stop_reason=result.stop_reason,
        turns=sum(result.turns.values()),
    )
    return game, {**game.to_dict(), "outcomes": {str(s): v for s, v in result.outcomes.items()}, "moves": result.moves}


def _play_chunk(env_id: str, jobs: list[_Job]) -> list[tuple[GameResult, dict[str, Any]]]:
    """Worker entry point: play ``jobs`` in order."""
    return [_play(env_id, job, _WORKER_CACHE) for job in jobs]


# ==================================================================================== games.jsonl
def _read_games(path: Path, env_id: str, seed: int) -> dict[tuple[str, str, int], GameResult]:
    """Games already played, keyed by (player_a, player_b, index); drops a torn last line."""
    done: dict[tuple[str, str, int], GameResult] = {}
    if not path.exists():
        return done
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        # A crash mid-write left a partial last line: cut it off so appends start on a fresh line.
        keep = raw.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(keep)
        raw = raw[:keep]
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            game = GameResult.from_json(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a game record ({exc}); fix or remove the line") from exc
        if game.env_id != env_id:
            raise ValueError(
                f"{path}:{number} is a game of {game.env_id!r}, not {env_id!r}: use another --out directory"
            )
        a, b = game.pair
        if (game.player_a, game.player_b) != (a, b) or game.index < 0:
            raise ValueError(f"{path}:{number}: not written by a turngym tournament (players not in sorted order or no index)")
        expected = _job((a, b), game.index, seed)
        if (game.seed, game.seat_a) != (expected.seed, expected.seat_a):
            raise ValueError(
                f"{path}:{number}: game {game.index} of {a} vs {b} was played on seed {game.seed}, seat {game.seat_a}, "
                f"but --seed {seed} gives seed {expected.seed}, seat {expected.seat_a}"
            )
        done.setdefault((a, b, game.index), game)
    return done


def _check_manifest(out_dir: Path, env_id: str, seed: int) -> None:
    path = out_dir / MANIFEST_FILE
    if path.exists():
        manifest = json.loads(path.read_text())
        if manifest.get("env_id") != env_id or manifest.get("seed") != seed:
            raise ValueError(
                f"{out_dir} holds a tournament of {manifest.get('env_id')!r} with seed {manifest.get('seed')!r}; "
                f"this run asks for {env_id!r} with seed {seed!r}: use the same --env/--seed or another --out"
            )
        return
    _write_text(path, json.dumps({"format": _FORMAT, "env_id": env_id, "seed": seed}, indent=2) + "\n")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ==================================================================================== the tournament
def run_tournament(
    env_id: str,
    agents: list[str],
    games_per_pair: int,
    out_dir: Path,
    workers: int = 1,
    seed: int = 0,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    scoring: str = "auto",
    chunk_size: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_game: Callable[[GameResult], None] | None = None,
    plots: bool = True,
    replays_per_pair: int = 2,
) -> TournamentResult:
    """Play (or finish) a round robin between ``agents`` on ``env_id`` and write its ratings to ``out_dir``.

    Args:
        env_id: a registered two-player game, e.g. ``turngym/TicTacToe-v0``.
        agents: agent specs (``random``, ``minimax``, ``nash:0.2``…), at least two, all different.
        games_per_pair: games per unordered pair (even numbers give every pair both seats equally).
        out_dir: output directory (created); its ``games.jsonl`` is resumed if present.
        workers: processes playing games; 1 plays in this process.
        seed: tournament seed (with the pair and game index it fixes every episode seed).
        n_boot, level, prior_sd: bootstrap resamples, interval level and Bradley–Terry prior.
        scoring: ``"auto"``, ``"game"`` or ``"duplicate"`` (module docstring).
        chunk_size: games per worker task (default: small enough to balance and persist often).
        on_start: called once before playing with ``(games to play, games in the tournament)``.
        replays_per_pair: games of each pair (the first, by index) whose moves go to ``replays.jsonl``.
        on_game: called in this process with each newly finished game (progress bars).
        plots: write ``ratings.png`` and ``payoff.png`` (needs matplotlib).
    """
    from turngym.agents.specs import resolve_agent
    from turngym.envs.registration import spec

    agents = [str(a).strip() for a in agents]
    if len(agents) < 2:
        raise ValueError(f"a tournament needs at least two agents, got {agents!r}")
    if any(not a for a in agents):
        raise ValueError(f"agent specs must be non-empty, got {agents!r}")
    duplicates = sorted({a for a in agents if agents.count(a) > 1})
    if duplicates:
        raise ValueError(f"each agent may appear once; repeated: {', '.join(duplicates)}")
    if games_per_pair < 1:
        raise ValueError(f"games_per_pair must be >= 1, got {games_per_pair!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    env_spec = spec(env_id)
    if env_spec.num_seats != 2:
        raise ValueError(f"tournaments are for two-player games; {env_id!r} has {env_spec.num_seats} seat(s)")
    if scoring not in ("auto", "game", "duplicate"):
        raise ValueError(f"scoring must be 'auto', 'game' or 'duplicate', got {scoring!r}")
    if scoring == "auto":
        scoring = "duplicate" if "chance" in env_spec.tags else "game"
    if scoring == "duplicate" and games_per_pair % 2:
        raise ValueError(
            f"duplicate scoring rates seat-swapped pairs of games: games_per_pair must be even, got {games_per_pair}"
        )
    # Fail fast on a bad name, before any game runs (the agents are reused when playing in-process).
    cache: dict[tuple[str, str], Any] = {
        ("agent", f"{env_id}\0{agent}"): resolve_agent(agent, env_id, seed=0) for agent in agents
    }
    _require_extras(plots)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, env_id, seed)
    games_path = out_dir / GAMES_FILE
    done = _read_games(games_path, env_id, seed)

    pairs = sorted(_pairs(agents))  # sorted: nothing below depends on the order agents were listed in
    missing = [
        [_job(pair, i, seed) for i in range(games_per_pair) if (*pair, i) not in done] for pair in pairs
    ]
    todo = sum(len(m) for m in missing)
    if on_start is not None:
        on_start(todo, len(pairs) * games_per_pair)

    started = time.perf_counter()
    new: list[GameResult] = []
    with open(games_path, "a", encoding="utf-8") as sink, open(out_dir / REPLAYS_FILE, "a", encoding="utf-8") as replays:

        def record(game: GameResult, replay: dict[str, Any]) -> None:
            sink.write(game.to_json() + "\n")
            sink.flush()
            if game.index < replays_per_pair:  # bounded: the first games of each pair
                replays.write(json.dumps(replay, separators=(",", ":")) + "\n")
                replays.flush()
            new.append(game)
            if on_game is not None:
                on_game(game)

        if todo and workers == 1:
            for job in _interleave(missing):
                record(*_play(env_id, job, cache))
        elif todo:
            size = chunk_size or max(1, min(16, math.ceil(todo / (workers * 4))))
            chunks = _interleave([m[i : i + size] for i in range(0, len(m), size)] for m in missing)
            context = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
                futures = [pool.submit(_play_chunk, env_id, chunk) for chunk in chunks]
                try:
                    for future in cf.as_completed(futures):
                        for game, replay in future.result():
                            record(game, replay)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # finished games are already on disk
                    raise
    play_s = time.perf_counter() - started

    for game in new:
        done.setdefault((game.player_a, game.player_b, game.index), game)
    wanted = {pair: p for p, pair in enumerate(pairs)}
    games = sorted(
        (g for (a, b, i), g in done.items() if (a, b) in wanted and i < games_per_pair),
        key=lambda g: (g.index, wanted[g.pair]),
    )
    ignored = len(done) - len(games)

    rated = games if scoring == "game" else duplicate_matches(games)
    ratings = bradley_terry(rated, prior_sd=prior_sd)
    intervals = bootstrap_intervals(rated, n_boot=n_boot, seed=seed, level=level, prior_sd=prior_sd)
    skill = openskill_ratings(rated)
    players = list(ratings)
    per_player = {p: 0 for p in players}
    for g in games:
        per_player[g.player_a] += 1
        per_player[g.player_b] += 1
    result = TournamentResult(
        env_id=env_id,
        scoring=scoring,
        players=players,
        ratings=ratings,
        intervals=intervals,
        openskill=skill,
        games_per_player=per_player,
        payoff=payoff_matrix(rated, players),
        games=games,
        rated=rated,
        new_games=len(new),
        ignored_games=ignored,
        play_s=play_s,
    )
    meta = {
        "env_id": env_id,
        "agents": agents,
        "games_per_pair": games_per_pair,
        "seed": seed,
        "scoring": scoring,
        "n_boot": n_boot,
        "level": level,
        "prior_sd": prior_sd,
    }
    result.files = _write_outputs(result, out_dir, meta, plots)
    result.files["games"] = games_path
    result.files["manifest"] = out_dir / MANIFEST_FILE
    result.files["replays"] = out_dir / REPLAYS_FILE
    return result


def _interleave(lists: Any) -> list[Any]:
    """Round-robin merge: first item of every list, then the second… (balances pairs if interrupted)."""
    lists = [list(x) for x in lists]
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _require_extras(plots: bool) -> None:
    missing = []
    try:
        import openskill  # noqa: F401
    except ImportError:
        missing.append("openskill")
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            missing.append("matplotlib")
    if missing:
        raise ImportError(
            f"tournament ratings need {' and '.join(missing)}: pip install 'turngym[ratings]'"
        )


# ==================================================================================== outputs
def _json_number(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def _write_outputs(result: TournamentResult, out_dir: Path, meta: dict[str, Any], plots: bool) -> dict[str, Path]:
    players, mean, counts = result.payoff
    _, outcome_mean, outcome_counts = payoff_matrix(result.games, players, value="outcome")
    scores = {p: 0.0 for p in players}
    rated_n = {p: 0 for p in players}
    for g in result.rated:
        scores[g.player_a] += g.score_a
        scores[g.player_b] += g.score_b
        rated_n[g.player_a] += 1
        rated_n[g.player_b] += 1
    stop_reasons: dict[str, int] = {}
    for g in result.games:
        stop_reasons[str(g.stop_reason)] = stop_reasons.get(str(g.stop_reason), 0) + 1
    rows = [
        {
            "rank": rank,
            "player": p,
            "elo": result.ratings[p],
            "low": result.intervals[p][0],
            "high": result.intervals[p][1],
            "openskill_mu": result.openskill[p][0],
            "openskill_sigma": result.openskill[p][1],
            "games": result.games_per_player[p],
            "rated": rated_n[p],
            "mean_score": scores[p] / rated_n[p] if rated_n[p] else math.nan,
        }
        for rank, p in enumerate(players, start=1)
    ]
    unit = "game" if result.scoring == "game" else "duplicate match (two seat-swapped games on one seed)"
    files = {"json": out_dir / "ratings.json", "csv": out_dir / "ratings.csv", "md": out_dir / "ratings.md"}
    data = {
        **meta,
        "games": len(result.games),
        "rated": len(result.rated),
        "ignored_games": result.ignored_games,
        "stop_reasons": dict(sorted(stop_reasons.items())),
        "method": {
            "unit": f"one rated result = one {unit}; score 1/0.5/0 by comparing the players' (summed) outcomes",
            "elo": "Bradley-Terry MAP, Newton; draws = half a win each; elo = 1500 + 400/ln(10) * logit; "
            + ("no prior" if meta["prior_sd"] is None else f"prior N(1500, {meta['prior_sd']:g}^2) per player")
            + "; mean rating 1500",
            "interval": f"{meta['level']:.0%} percentile bootstrap, {meta['n_boot']} resamples of rated results "
            "within each pair (pair counts kept)",
            "openskill": "openskill PlackettLuce (library defaults), one update per rated result in canonical "
            "order (game index, then pair); draws are ties",
        },
        "ratings": rows,
        "payoff": {
            "players": players,
            "mean_score": [[_json_number(v) for v in row] for row in mean],
            "counts": counts,
            "mean_outcome_per_game": [[_json_number(v) for v in row] for row in outcome_mean],
            "games": outcome_counts,
        },
    }
    _write_text(files["json"], json.dumps(data, indent=2) + "\n")

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = ["player", "elo", "low", "high", "openskill_mu", "openskill_sigma", "games"]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row["player"]] + [_csv(row[c]) for c in columns[1:]])
    _write_text(files["csv"], buf.getvalue())
    _write_text(files["md"], _markdown(result, rows, mean, counts, outcome_mean, meta, stop_reasons))
    if plots:
        files["ratings_png"] = out_dir / "ratings.png"
        files["payoff_png"] = out_dir / "payoff.png"
        _plot_ratings(result, files["ratings_png"], meta)
        _plot_payoff(result, files["payoff_png"])
    return files


def _csv(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(
    result: TournamentResult,
    rows: list[dict[str, Any]],
    mean: list[list[float]],
    counts: list[list[int]],
    outcome_mean: list[list[float]],
    meta: dict[str, Any],
    stop_reasons: dict[str, int],
) -> str:
    players = result.players
    level = f"{meta['level']:.0%}"
    duplicate = result.scoring == "duplicate"
    unit = "duplicate match" if duplicate else "game"
    prior = "no prior" if meta["prior_sd"] is None else f"prior N(1500, {meta['prior_sd']:g}²)"
    lines = [
        f"# Tournament: {result.env_id}",
        "",
        (
            f"{len(players)} agents, {meta['games_per_pair']} games per pair ({len(result.games)} games), "
            f"seed {meta['seed']}; seats alternate, each seat-swapped pair of games on the same episode seed."
        ),
        "",
        (
            f"Scoring: duplicate — each seat-swapped pair of games is one match ({len(result.rated)} matches), won by "
            "the player with the larger summed outcome (removes the luck of the deal)."
            if duplicate
            else "Scoring: per game — win 1, draw ½, loss 0."
        ),
        (
            f"Elo: Bradley–Terry fit (draws count half a win; mean 1500; {prior}), "
            f"{level} percentile bootstrap interval over {meta['n_boot']} resamples within pairs. "
            f"OpenSkill: Plackett–Luce μ and σ after every {unit}."
        ),
        "",
        f"| rank | player | Elo | {level} interval | OpenSkill μ | σ | games | mean score |",
        "|---:|:---|---:|:---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['rank']} | {_md_escape(row['player'])} | {row['elo']:.0f} | "
            f"[{row['low']:.0f}, {row['high']:.0f}] | {row['openskill_mu']:.2f} | {row['openskill_sigma']:.2f} | "
            f"{row['games']} | {row['mean_score']:.3f} |"
        )
    header = "| row vs column | " + " | ".join(_md_escape(p) for p in players) + " |"
    rule = "|:---|" + "---:|" * len(players)
    lines += [
        "",
        "## Payoff matrix",
        "",
        f"Mean score of the row player against the column player per {unit} (1 win, ½ draw, 0 loss), "
        f"{unit}es in parentheses." if duplicate else
        "Mean score of the row player against the column player (1 win, ½ draw, 0 loss), games in parentheses.",
        "",
        header,
        rule,
    ]
    for i, p in enumerate(players):
        cells = ["—" if i == j or not counts[i][j] else f"{mean[i][j]:.3f} ({counts[i][j]})" for j in range(len(players))]
        lines.append(f"| **{_md_escape(p)}** | " + " | ".join(cells) + " |")
    lines += ["", "Mean outcome per game of the row player (its reward: ±1 in board games, chips in poker).", "", header, rule]
    for i, p in enumerate(players):
        cells = [
            "—" if i == j or math.isnan(outcome_mean[i][j]) else f"{outcome_mean[i][j]:+.3f}" for j in range(len(players))
        ]
        lines.append(f"| **{_md_escape(p)}** | " + " | ".join(cells) + " |")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(stop_reasons.items()))
    lines += ["", f"Games ended by: {reasons}.", ""]
    return "\n".join(lines)


def _plot_ratings(result: TournamentResult, path: Path, meta: dict[str, Any]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    players = result.players[::-1]  # best on top
    elo = [result.ratings[p] for p in players]
    low = [result.ratings[p] - result.intervals[p][0] for p in players]
    high = [result.intervals[p][1] - result.ratings[p] for p in players]
    fig = Figure(figsize=(7.0, 1.2 + 0.45 * len(players)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    base = 1500.0
    colors = ["tab:blue" if e >= base else "tab:orange" for e in elo]
    ax.barh(players, [e - base for e in elo], left=base, color=colors, alpha=0.8,
            xerr=[low, high], capsize=4, error_kw={"elinewidth": 1.2})
    ax.axvline(base, color="grey", linewidth=0.8)
    for y, (e, lo, hi) in enumerate(zip(elo, low, high)):
        right = e >= base
        ax.annotate(f"{e:.0f}", (e + hi if right else e - lo, y), xytext=(6 if right else -6, 0),
                    textcoords="offset points", ha="left" if right else "right", va="center", fontsize=8)
    ax.margins(x=0.12)
    ax.set_xlabel(f"Elo (Bradley–Terry; bars from the mean 1500; {meta['level']:.0%} bootstrap intervals)")
    scored = "" if result.scoring == "game" else f", scored as {len(result.rated)} duplicate matches"
    ax.set_title(f"{result.env_id}: {len(result.games)} games{scored}")
    fig.savefig(path, dpi=120)


def _plot_payoff(result: TournamentResult, path: Path) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    players, mean, counts = result.payoff
    n = len(players)
    size = 1.6 + 1.1 * n
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    data = np.ma.masked_invalid(np.asarray(mean, dtype=float))
    image = ax.imshow(data, cmap="RdYlGn", vmin=0.0, vmax=1.0)
    unit = "duplicate match" if result.scoring == "duplicate" else "game"
    fig.colorbar(image, ax=ax, label=f"mean score of row vs column per {unit}")
    for i in range(n):
        for j in range(n):
            if i == j or not counts[i][j]:
                ax.text(j, i, "—", ha="center", va="center", color="grey")
            else:
                ax.text(j, i, f"{mean[i][j]:.2f}\nn={counts[i][j]}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(n), players, rotation=30, ha="right")
    ax.set_yticks(range(n), players)
    ax.set_xlabel("column player")
    ax.set_ylabel("row player")
    ax.set_title(f"{result.env_id}: payoff (row player's mean score)")
    fig.savefig(path, dpi=120)


# ==================================================================================== command line
def build_parser(prog: str = "turngym tournament") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Round-robin tournament between agents on a two-player game, rated with Bradley-Terry Elo "
            "(95% bootstrap intervals) and OpenSkill. Every pair plays --games games, alternating seats on "
            "paired seeds. Results go to --out: games.jsonl (one game per line, written as games finish), "
            "ratings.json/.csv/.md, ratings.png and payoff.png. Re-running with the same --out resumes: "
            "games already in games.jsonl are skipped, so a larger --games extends the tournament."
        ),
        epilog=(
            "example: turngym tournament --env turngym/TicTacToe-v0 --agents random,heuristic,minimax "
            "--games 200 --out runs/ttt"
        ),
    )
    parser.add_argument("--env", required=True, metavar="ID", help="a two-player game id, e.g. turngym/KuhnPoker-v0")
    parser.add_argument(
        "--agents",
        required=True,
        metavar="A,B,...",
        help="comma-separated agent specs (at least two): random, first, heuristic, minimax (TicTacToe), "
        "alphabeta[:depth] (ConnectFour), nash[:alpha] (KuhnPoker)",
    )
    parser.add_argument("--games", type=int, default=100, metavar="N", help="games per pair of agents (default 100; even is best)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory; an existing one is resumed")
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="processes playing games (default 1, in this process); more pay off when games are slow "
                        "(model agents, deep searches): each starts fresh (spawn), about half a second")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="tournament seed; fixes every game (default 0)")
    parser.add_argument(
        "--scoring",
        choices=("auto", "game", "duplicate"),
        default="auto",
        help="what one rated result is: 'game', or 'duplicate' (a seat-swapped pair of games on one seed, "
        "won by the larger summed outcome; removes the luck of the deal); 'auto' (default) uses duplicate "
        "for games of chance (poker, dice) and game otherwise",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples for the intervals (default 1000)")
    parser.add_argument("--no-plots", action="store_true", help="skip ratings.png and payoff.png")
    add_json_argument(parser, "the ratings (the fields of ratings.json, plus new_games, play_s and files)")
    add_quiet_argument(parser)
    return parser


def tournament_main(argv: Sequence[str] | None = None) -> int:
    """``turngym tournament``: parse ``argv``, run the tournament, print the table. Returns the exit status
    (0 done, 1 a missing extra, 2 a bad option, agent or game; progress on stderr, ``--json`` for ratings.json's fields)."""
    from turngym.envs.registration import UnknownEnvironment

    args = build_parser().parse_args(argv)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    progress: Progress | None = None

    def start(todo: int, total: int) -> None:  # after validation: a bad agent or game prints no progress
        nonlocal progress
        done = total - todo
        progress = Progress(f"tournament {args.env}", todo, unit="games",
                            info=f"resuming: {done} of {total} games already played" if done else "")

    try:
        result = run_tournament(
            args.env,
            agents,
            args.games,
            Path(args.out),
            workers=args.workers,
            seed=args.seed,
            n_boot=args.bootstrap,
            scoring=args.scoring,
            on_start=start,
            on_game=lambda _: progress.advance(),
            plots=not args.no_plots,
        )
    except BaseException as exc:
        if progress is not None:
            progress.close(final=f"tournament {args.env}: stopped ({type(exc).__name__}) after "
                                 f"{progress.completed} new games; they are saved, a re-run resumes")
        if isinstance(exc, (UnknownEnvironment, ValueError)):
            error(str(exc))
            return EXIT_USAGE
        if isinstance(exc, ImportError):  # a missing extra: the message names it
            error(str(exc))
            return EXIT_FAILED
        raise
    if progress is not None:
        progress.close()

    data = {
        **json.loads(result.files["json"].read_text(encoding="utf-8")),
        "new_games": result.new_games,
        "play_s": result.play_s,
        "files": {k: str(p) for k, p in result.files.items()},
    }
    if emit_json(data, args.json):
        return EXIT_OK
    scored = "" if result.scoring == "game" else f", rated as {len(result.rated)} duplicate matches"
    rows = []
    for rank, p in enumerate(result.players, start=1):
        low, high = result.intervals[p]
        mu, sigma = result.openskill[p]
        rows.append((rank, p, f"{result.ratings[p]:.0f}", f"[{low:.0f}, {high:.0f}]", f"{mu:.2f} ± {sigma:.2f}",
                     result.games_per_player[p]))
    print_table(
        [Column("rank", "right"), Column("player"), Column("Elo", "right"), Column("95% interval", "right"),
         Column("OpenSkill μ ± σ", "right"), Column("games", "right")],
        rows, title=f"{result.env_id}: {len(result.games)} games ({result.new_games} new){scored}",
    )
    if result.new_games:
        print(f"played {result.new_games} games in {result.play_s:.1f} s ({result.games_per_s:.0f} games/s)")
    if result.ignored_games:
        print(f"{result.ignored_games} other games in {result.files['games']} were not rated (other agents or indices)")
    print("wrote " + ", ".join(str(p) for k, p in result.files.items() if k != "manifest"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(tournament_main())

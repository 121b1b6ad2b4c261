"""``turngym household …``: this family's command-line tools.

    turngym household generate --split seen|unseen|both [--per-type N] [--task-types a,b] [--start I] [--cache DIR]
    turngym household show --split seen --task-type pick_and_place --index 0
    turngym household export --out DIR [--split seen] [--alfworld-split train] [--per-type N]
    turngym household info

``generate`` fills the problem cache (``~/.cache/turngym/household/<hash>/``; each problem verified
solvable by the planner expert) and prints a JSON line of counts and the generation rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from turngym.envs.household.layouts import TASK_TYPES

    p = argparse.ArgumentParser(prog="turngym household", description="Household tasks on the ALFWorld engine.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate and verify problems into the cache")
    g.add_argument("--split", choices=("seen", "unseen", "both"), default="seen")
    g.add_argument("--per-type", type=int, default=10, help="problems per task type (default 10)")
    g.add_argument("--start", type=int, default=0, help="first problem index (default 0)")
    g.add_argument("--task-types", default=",".join(TASK_TYPES),
                   help=f"comma-separated task types (default: all six: {','.join(TASK_TYPES)})")
    g.add_argument("--cache", default=None, help="cache directory (default ~/.cache/turngym/household/<hash>)")
    s = sub.add_parser("show", help="print one problem: task, floor plan, objects, expert plan")
    s.add_argument("--split", choices=("seen", "unseen"), default="seen")
    s.add_argument("--task-type", default="pick_and_place", choices=TASK_TYPES)
    s.add_argument("--index", type=int, default=0)
    s.add_argument("--cache", default=None)
    s.add_argument("--pddl", action="store_true", help="also print the PDDL problem")
    e = sub.add_parser("export", help="copy generated problems into ALFWorld's data layout (for turngym/ALFWorld-v0)")
    e.add_argument("--out", required=True, help="directory to use as ALFWORLD_DATA")
    e.add_argument("--split", choices=("seen", "unseen"), default="seen")
    e.add_argument("--alfworld-split", choices=("train", "valid_seen", "valid_unseen"), default="train")
    e.add_argument("--per-type", type=int, default=2)
    e.add_argument("--cache", default=None)
    sub.add_parser("info", help="splits, floor plans, object types and the cache directory")
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
        print(json.dumps(out, indent=2))
        return 0
    store = gen.ProblemStore(args.cache)
    if args.command == "export":
        files = gen.export_alfworld(store, args.split, args.per_type, args.out, args.alfworld_split)
        print(json.dumps({"alfworld_data": args.out, "games": len(files)}))
        return 0
    if args.command == "show":
        problem = store.get(args.split, args.task_type, args.index)
        spec = problem.spec
        print(f"{spec.name}: {spec.description} (FloorPlan{spec.floor_plan}, attempt {spec.attempt})")
        print(f"directory: {problem.directory}")
        for o in spec.objects:
            print(f"  {o.otype:<14} in {o.receptacle}")
        print("expert plan: " + " > ".join(problem.walkthrough))
        if args.pddl:
            print(spec.to_pddl())
        return 0
    tasks = [t.strip() for t in args.task_types.split(",") if t.strip()]
    bad = [t for t in tasks if t not in gen.TASK_TYPES]
    if bad:
        print(f"unknown task type(s) {bad}; choose from {', '.join(gen.TASK_TYPES)}", file=sys.stderr)
        return 2
    if args.per_type < 1:
        print(f"--per-type must be >= 1, got {args.per_type}", file=sys.stderr)
        return 2
    splits = gen.SPLITS if args.split == "both" else (args.split,)
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for split in splits:
        for task in tasks:
            for index in range(args.start, args.start + args.per_type):
                store.get(split, task, index)
                counts[f"{split}/{task}"] = counts.get(f"{split}/{task}", 0) + 1
            print(f"{split}/{task}: {counts[f'{split}/{task}']} problems ready", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    total = sum(counts.values())
    print(json.dumps({"cache": str(store.root), "problems": total, "seconds": round(elapsed, 2),
                      "problems_per_s": round(total / elapsed, 3) if elapsed else None, "counts": counts}))
    return 0

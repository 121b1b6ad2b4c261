"""``turngym search …``: build the corpus and index, evaluate retrieval, query it, serve it.

    turngym search build [--source factbook|fictional] [--seed S] [--force]
    turngym search build --questions FILE --corpus FILE          # user data (Search-R1 format)
    turngym search eval  [--split dev] [-k 5] [--json FILE]      # recall@k per hop
    turngym search query "capital Paris" [-k 3]
    turngym search serve [--host 127.0.0.1] [--port 8765] [--token T]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="factbook", choices=("factbook", "fictional"), help="generated dataset (default factbook)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.add_argument("--questions", help="user question file (.jsonl/.parquet with question, golden_answers)")
    p.add_argument("--corpus", help="user corpus .jsonl ({id, title, text})")


def _load(args):
    from turngym.envs.search_qa import dataset

    return dataset.load(args.source, seed=args.seed, questions_path=args.questions, corpus_path=args.corpus)


def cmd_build(args) -> int:
    from turngym.envs.search_qa import dataset

    if args.questions or args.corpus:
        if not (args.questions and args.corpus):
            print("give both --questions and --corpus for user data", file=sys.stderr)
            return 2
        directory = dataset.build_user(args.questions, args.corpus)
    else:
        directory = dataset.build_generated(args.source, seed=args.seed, force=args.force)
    manifest = json.loads((directory / "manifest.json").read_text())
    print(json.dumps({"directory": str(directory), **manifest}, indent=2))
    return 0


def cmd_eval(args) -> int:
    from turngym.envs.search_qa.evaluation import hop_recall

    data = _load(args)
    split = None if args.split == "all" else args.split
    report = {"dataset": data.key, "split": args.split, **hop_recall(data.retriever, data.select(split), k=args.k)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    print(f"{data.key} split={args.split}: recall@{args.k} over {report['questions']} questions")
    for name, r in {**report["per_hop"], **report["per_shape_hop"], "all_hops": report["all_hops"]}.items():
        print(f"  {name:24s} {r['recall']:.3f}  (n={r['n']})")
    return 0


def cmd_query(args) -> int:
    data = _load(args)
    for i, hit in enumerate(data.retriever.search([args.text], args.k)[0], 1):
        print(f"{i}. [{hit.score:.2f}] {hit.passage.id} | {hit.passage.title}\n   {hit.passage.text[:200]}")
    return 0


def cmd_serve(args) -> int:
    from turngym.envs.search_qa.server import InsecureBind, check_bind, serve

    token = args.token or os.environ.get("TURNGYM_SEARCH_TOKEN")
    try:
        check_bind(args.host, token)
    except InsecureBind as exc:
        print(exc, file=sys.stderr)
        return 2
    data = _load(args)
    retriever = data.retriever
    print(f"serving {data.key} ({len(data.corpus)} passages) on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    serve(retriever, data.key, len(data.corpus), host=args.host, port=args.port, token=token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turngym search", description="Search QA: corpus, questions and BM25 index tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build (or reuse) the cached corpus, questions and index")
    _data_args(p)
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("eval", help="retrieval recall@k of each hop's gold sub-query")
    _data_args(p)
    p.add_argument("--split", default="dev", choices=("train", "dev", "test", "all"))
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("query", help="print the top passages for one query")
    _data_args(p)
    p.add_argument("text")
    p.add_argument("-k", type=int, default=3)
    p.set_defaults(func=cmd_query)
    p = sub.add_parser("serve", help="serve the index over HTTP for many rollout workers")
    _data_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="bearer token clients must send (default $TURNGYM_SEARCH_TOKEN)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym search``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"turngym search: {exc}", file=sys.stderr)
        return 2

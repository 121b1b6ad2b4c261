"""``turngym search …``: build the corpus and index, evaluate retrieval, query it, serve it.

    turngym search build [--source factbook|fictional] [--seed S] [--force]
    turngym search build --questions FILE --corpus FILE          # user data (Search-R1 format)
    turngym search eval  [--split dev] [-k 5] [--json FILE]      # recall@k per hop
    turngym search query "capital Paris" [-k 3]
    turngym search serve [--host 127.0.0.1] [--port 8765] [--token T]

``build``, ``eval`` and ``query`` take ``--json [FILE]`` (the result as JSON on stdout, or written to
FILE as well); tables are tab-separated when stdout is not a terminal; progress goes to stderr
(``--quiet`` silences it). Exit status: 0 ok, 2 bad options or input files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="factbook", choices=("factbook", "fictional"), help="generated dataset (default factbook)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.add_argument("--questions", help="user question file (.jsonl/.parquet with question, golden_answers)")
    p.add_argument("--corpus", help="user corpus .jsonl ({id, title, text})")


def _load(args):
    from turngym.envs.search_qa import dataset

    with Progress("search: loading the corpus, questions and index"):
        return dataset.load(args.source, seed=args.seed, questions_path=args.questions, corpus_path=args.corpus)


def cmd_build(args) -> int:
    from turngym.envs.search_qa import dataset

    if args.questions or args.corpus:
        if not (args.questions and args.corpus):
            error("give both --questions and --corpus for user data")
            return EXIT_USAGE
        with Progress("search build: user corpus, questions and index"):
            directory = dataset.build_user(args.questions, args.corpus)
    else:
        with Progress(f"search build: {args.source} corpus, questions and index (cached after the first run)"):
            directory = dataset.build_generated(args.source, seed=args.seed, force=args.force)
    manifest = {"directory": str(directory), **json.loads((directory / "manifest.json").read_text())}
    if emit_json(manifest, args.json):
        return EXIT_OK
    print_table(["field", "value"], [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in manifest.items()],
                title=f"search data in {directory}")
    return EXIT_OK


def cmd_eval(args) -> int:
    from turngym.envs.search_qa.evaluation import hop_recall

    data = _load(args)
    split = None if args.split == "all" else args.split
    with Progress(f"search eval: recall@{args.k} on {args.split}"):
        report = {"dataset": data.key, "split": args.split, **hop_recall(data.retriever, data.select(split), k=args.k)}
    if emit_json(report, args.json):
        return EXIT_OK
    rows = [(name, f"{r['recall']:.3f}", r["n"])
            for name, r in {**report["per_hop"], **report["per_shape_hop"], "all_hops": report["all_hops"]}.items()]
    print_table([Column("hops"), Column(f"recall@{args.k}", "right"), Column("n", "right")], rows,
                title=f"{data.key} split={args.split}: recall@{args.k} over {report['questions']} questions")
    return EXIT_OK


def cmd_query(args) -> int:
    data = _load(args)
    hits = data.retriever.search([args.text], args.k)[0]
    result = {"query": args.text, "k": args.k, "hits": [
        {"rank": i, "score": hit.score, "id": hit.passage.id, "title": hit.passage.title, "text": hit.passage.text}
        for i, hit in enumerate(hits, 1)
    ]}
    if emit_json(result, args.json):
        return EXIT_OK
    print_table([Column("rank", "right"), Column("score", "right"), Column("id"), Column("title"), Column("text")],
                [(h["rank"], f"{h['score']:.2f}", h["id"], h["title"], h["text"]) for h in result["hits"]],
                title=f"top {args.k} passages for {args.text!r}")
    return EXIT_OK


def cmd_serve(args) -> int:
    from turngym.envs.search_qa.server import InsecureBind, check_bind, serve

    token = args.token or os.environ.get("TURNGYM_SEARCH_TOKEN")
    try:
        check_bind(args.host, token)
    except InsecureBind as exc:
        error(str(exc))
        return EXIT_USAGE
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
    add_json_argument(p, "the data directory and its manifest")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("eval", help="retrieval recall@k of each hop's gold sub-query")
    _data_args(p)
    p.add_argument("--split", default="dev", choices=("train", "dev", "test", "all"))
    p.add_argument("-k", type=int, default=5)
    add_json_argument(p, "the recall report")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("query", help="print the top passages for one query")
    _data_args(p)
    p.add_argument("text")
    p.add_argument("-k", type=int, default=3)
    add_json_argument(p, "the hits (rank, score, id, title, full text)")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_query)
    p = sub.add_parser("serve", help="serve the index over HTTP for many rollout workers")
    _data_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="bearer token clients must send (default $TURNGYM_SEARCH_TOKEN)")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym search``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc), prefix="turngym search")
        return EXIT_USAGE

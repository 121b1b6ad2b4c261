"""Search-QA retrieval benchmark: our fielded bm25s retriever vs ``rank-bm25``, and the search
service's throughput under concurrent clients.

Run as a script::

    python bench/search.py --json out.json     # full run
    python bench/search.py --quick             # smoke run, prints the JSON

or through ``turngym bench search``. What is measured, on the Factbook corpus (~34k passages, the
cached ``turngym search build``) and the gold sub-queries of the dev questions:

``ours_single`` / ``ours_batched``
    :class:`FieldedBM25` (two bm25s indexes, title weighted) — one query per call, and every query
    in one batched call (amortized per query). What the environment and the server use.
``bm25s_native``
    ``bm25s.BM25.retrieve`` on one field (title and text concatenated), one query per call — the
    library's own path, for reference.
``rank_bm25``
    ``rank_bm25.BM25Okapi`` over the same concatenated, identically tokenized documents:
    ``get_scores`` + a partial sort per query (what its ``get_top_n`` does).

Fairness: every method gets the same queries, the same tokenizer and k = 5; indexing is untimed;
``rounds`` interleaved rounds with the order rotating; figures are medians; ratios are medians of
per-round paired ratios. recall@5 of the gold passage is reported next to each latency so a faster
method cannot win by answering worse. rank-bm25 runs a subset of the queries (it is ~1000x slower);
its latency is per query, so the subset size does not bias it.

Server: ``turngym search serve`` in a subprocess; ``clients`` concurrent aiohttp clients each send
one-query requests back to back; queries/s = requests answered / wall time. Both sides share the
machine's cores, so this is a lower bound for a dedicated server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from turngym.bench._script import script_main

K = 5


def _timed(fn) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def _recall(results_ids: list[list[str]], gold: list[str]) -> float:
    return float(np.mean([g in ids for g, ids in zip(gold, results_ids)]))


def bench_latency(data, queries: list[str], gold: list[str], rounds: int, rank_subset: int) -> dict[str, Any]:
    import bm25s
    from rank_bm25 import BM25Okapi

    from turngym.envs.search_qa.retrieval import tokenize

    ours = data.retriever
    docs = [tokenize(f"{p.title} {p.text}") for p in data.corpus.passages]
    ids = [p.id for p in data.corpus.passages]
    t0 = time.perf_counter()
    native = bm25s.BM25(k1=1.5, b=0.75)
    native.index(docs, show_progress=False)
    native_index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rank = BM25Okapi(docs)
    rank_index_s = time.perf_counter() - t0
    q_tokens = [tokenize(q) for q in queries]
    sub = list(range(min(rank_subset, len(queries))))

    def run_ours_single():
        return [[h.passage.id for h in ours.search([q], K)[0]] for q in queries]

    def run_ours_batched():
        return [[h.passage.id for h in hits] for hits in ours.search(queries, K)]

    def run_native():
        out = []
        for toks in q_tokens:
            toks = [t for t in toks if t in native.vocab_dict] or [""]
            docs_idx, _ = native.retrieve([toks], k=K, show_progress=False, n_threads=1)
            out.append([ids[int(i)] for i in docs_idx[0]])
        return out

    def run_rank():
        out = []
        for i in sub:
            scores = rank.get_scores(q_tokens[i])
            top = np.argpartition(-scores, K)[:K]
            out.append([ids[int(j)] for j in top[np.argsort(-scores[top])]])
        return out

    methods = {"ours_single": (run_ours_single, len(queries)), "ours_batched": (run_ours_batched, len(queries)),
               "bm25s_native": (run_native, len(queries)), "rank_bm25": (run_rank, len(sub))}
    recalls = {name: _recall(fn(), gold if name != "rank_bm25" else [gold[i] for i in sub]) for name, (fn, _) in methods.items()}
    per_round: list[dict[str, float]] = []
    names = list(methods)
    for r in range(rounds):
        timings = {}
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn, n = methods[name]
            timings[name] = _timed(fn) / n * 1000.0
        per_round.append(timings)
    ms = {name: statistics.median(t[name] for t in per_round) for name in names}
    ratio = lambda a, b: statistics.median(t[a] / t[b] for t in per_round)  # noqa: E731
    return {
        "queries": len(queries),
        "rank_bm25_queries": len(sub),
        "passages": len(data.corpus),
        "ms_per_query": {k: round(v, 4) for k, v in ms.items()},
        f"recall@{K}": {k: round(v, 3) for k, v in recalls.items()},
        "index_s": {"bm25s_native": round(native_index_s, 2), "rank_bm25": round(rank_index_s, 2)},
        "ratios": {
            "rank_bm25_over_ours_single": round(ratio("rank_bm25", "ours_single"), 1),
            "rank_bm25_over_ours_batched": round(ratio("rank_bm25", "ours_batched"), 1),
            "bm25s_native_over_ours_single": round(ratio("bm25s_native", "ours_single"), 2),
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(url: str, queries: list[str], clients: int, requests: int) -> tuple[int, float, int]:
    import aiohttp

    counter = iter(range(requests))
    errors = 0

    async def worker(session):
        nonlocal errors
        for i in counter:
            body = json.dumps({"queries": [queries[i % len(queries)]], "k": 3})
            async with session.post(url + "/search", data=body) as resp:
                await resp.read()
                errors += resp.status != 200

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url + "/search", data=json.dumps({"queries": queries[:1], "k": 3})) as resp:
            await resp.read()  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return requests, time.perf_counter() - start, errors


def bench_server(queries: list[str], client_counts: tuple[int, ...], requests: int) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "turngym.cli", "search", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"search server did not start: {proc.stderr.read().decode()[-500:]}")
                time.sleep(0.2)
        out = {}
        for clients in client_counts:
            n, seconds, errors = asyncio.run(_load(url, queries, clients, requests))
            out[f"{clients}_clients"] = {"queries_per_s": round(n / seconds, 1), "requests": n, "errors": errors}
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def run(quick: bool = False) -> dict[str, Any]:
    """Run the suite and return its JSON-able result (see the module docstring)."""
    from turngym.envs.search_qa import dataset

    started = time.time()
    data = dataset.load("factbook")
    questions = data.select("dev")
    queries = [h.query for q in questions for h in q.hops]
    gold = [h.passage_id for q in questions for h in q.hops]
    if quick:
        queries, gold = queries[:120], gold[:120]
    latency = bench_latency(data, queries, gold, rounds=3 if quick else 5, rank_subset=20 if quick else 60)
    server = bench_server(queries, (1, 8) if quick else (1, 8, 32), requests=300 if quick else 2000)
    return {
        "suite": "search",
        "quick": quick,
        "metric": "BM25 ms per query (lower is better) and server queries/s; ratios are the figures",
        "method": "same queries, tokenizer and k=5 for every method; median of interleaved rounds; "
        "ratios = median of per-round paired ratios; indexing untimed; gc off while timing",
        "latency": latency,
        "server": server,
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "bm25s": _version("bm25s"),
            "rank_bm25": _version("rank-bm25"),
        },
        "wall_s": round(time.time() - started, 2),
    }


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, None, argv)


if __name__ == "__main__":
    sys.exit(main())

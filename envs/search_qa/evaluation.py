"""Retrieval evaluation: recall@k of each hop's gold sub-query (``turngym search eval``).

For every question with hop annotations and every hop ``i``, the hop is a hit if its supporting
passage is among the top ``k`` results of its gold sub-query. Reported per hop index (over all
shapes), per (shape, hop), and ``all_hops`` (every hop of the question hit). Pure given a retriever.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from turngym.envs.search_qa.records import Question
from turngym.envs.search_qa.retrieval import Retriever


def hop_recall(retriever: Retriever, questions: Sequence[Question], k: int = 5) -> dict:
    annotated = [q for q in questions if q.hops]
    if not annotated:
        raise ValueError("no question has hop annotations (user questions cannot be scored per hop)")
    queries = [h.query for q in annotated for h in q.hops]
    results = iter(retriever.search(queries, k))
    per_hop: dict[int, list[bool]] = defaultdict(list)
    per_shape: dict[str, list[bool]] = defaultdict(list)
    all_hops: list[bool] = []
    for q in annotated:
        hits = [h.passage_id in {r.passage.id for r in next(results)} for h in q.hops]
        for i, hit in enumerate(hits):
            per_hop[i + 1].append(hit)
            per_shape[f"{q.shape}/hop{i + 1}"].append(hit)
        all_hops.append(all(hits))

    def rate(values: list[bool]) -> dict:
        return {"recall": sum(values) / len(values), "n": len(values)}

    return {
        "k": k,
        "questions": len(annotated),
        "per_hop": {f"hop{i}": rate(v) for i, v in sorted(per_hop.items())},
        "per_shape_hop": {name: rate(v) for name, v in sorted(per_shape.items())},
        "all_hops": rate(all_hops),
    }

"""Registration of the ``turngym/SearchQA…`` ids. Imported by :mod:`turngym.envs.builtin`.

Keep this module import-light: entry points are ``"module:Class"`` strings, loaded on ``make``.
``turngym eval`` takes no constructor arguments, so the dev and test splits have their own ids.
"""

from __future__ import annotations

from turngym.envs.registration import register

_ENTRY = "turngym.envs.search_qa.env:SearchQAEnv"
_AGENTS = {"oracle": "turngym.envs.search_qa.agents:oracle", "no-search": "turngym.envs.search_qa.agents:no_search"}

# id suffix → (constructor kwargs, description)
VARIANTS: dict[str, tuple[dict, str]] = {
    "SearchQA-v0": ({}, "Multi-hop QA over the CIA World Factbook with a BM25 search tool (Search-R1 tags); all shapes, train split."),
    "SearchQA-dev-v0": ({"split": "dev"}, "SearchQA-v0 on the dev split (300 questions): evaluation."),
    "SearchQA-test-v0": ({"split": "test"}, "SearchQA-v0 on the test split (300 questions): final evaluation."),
    "SearchQA-Bridge-v0": ({"shape": "bridge"}, "SearchQA, 2-hop bridge questions only (train split)."),
    "SearchQA-Comparison-v0": ({"shape": "comparison"}, "SearchQA, 2-hop yes/no comparison questions only (train split)."),
    "SearchQA-Chain-v0": ({"shape": "chain"}, "SearchQA, 3-hop chain questions only (train split)."),
    "SearchQA-Intersection-v0": ({"shape": "intersection"}, "SearchQA, 2-hop intersection questions only (train split)."),
    "SearchQA-Lookup-v0": ({"shape": "lookup"}, "SearchQA curriculum: single-hop lookups (\"What is the capital of X?\"), train split."),
    "SearchQA-Lookup-dev-v0": ({"split": "dev", "shape": "lookup"}, "SearchQA-Lookup-v0 on the dev split: evaluation."),
    "SearchQA-Fictional-v0": ({"source": "fictional", "split": None}, "SearchQA over a generated fictional-country corpus (no pretraining leakage; tests)."),
}


def register_ids() -> None:
    """Register the SearchQA ids (one per split / question shape, the lookup curriculum, the fictional corpus)."""
    for name, (kwargs, description) in VARIANTS.items():
        register(
            f"turngym/{name}",
            _ENTRY,
            family="search",
            description=description,
            kwargs=kwargs,
            max_turns=None,  # the env counts its own turns (kwarg ``turns``, default 4)
            reward_bounds=(-0.2, 1.0),
            gate_threshold=1.0,  # G-RA: dense terms count once the answer is exactly right
            tags=("search-r1", "single-hop" if kwargs.get("shape") == "lookup" else "multi-hop", "retrieval"),
            agents=dict(_AGENTS),
        )

"""A deterministic knowledge base of fictional countries: no package, no pretraining leakage.

Same passage layout and facts as the Factbook build (:mod:`.corpus`), so the question generator,
retriever and environment run unchanged on it; used by the tests and CI. Countries sit on a grid
and border their grid neighbours (border lengths drawn per pair, both sides agree). Every value
used as a question key (capital, anthem, internet code) is unique.
"""

from __future__ import annotations

import numpy as np

from turngym.envs.search_qa.kb import Entity, Fact, KnowledgeBase, NumberFact
from turngym.envs.search_qa.records import Corpus, Passage

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr", "vl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
_CODAS = ["", "", "n", "r", "s", "l", "th", "nd"]
_GOVERNMENTS = [
    "parliamentary republic", "presidential republic", "constitutional monarchy", "federal republic",
    "absolute monarchy", "semi-presidential republic", "theocratic republic", "confederation of cantons",
]
_ANTHEM_WORDS = ["Hymn", "Song", "March", "Ode", "Call", "Anthem", "Chant", "Ballad"]
_CLIMATES = ["temperate", "arid", "tropical", "subarctic", "mediterranean", "monsoonal", "alpine"]


def _word(rng: np.random.Generator, syllables: int) -> str:
    parts = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] for _ in range(syllables)]
    return ("".join(parts) + _CODAS[rng.integers(len(_CODAS))]).capitalize()


def _unique(rng: np.random.Generator, taken: set[str], make) -> str:
    while True:
        value = make()
        if value.lower() not in taken:
            taken.add(value.lower())
            return value


def build_fictional_kb(n_countries: int = 36, seed: int = 0) -> KnowledgeBase:
    """``n_countries`` fictional countries (on a ⌈√n⌉-wide grid) with ~12 passages each."""
    if n_countries < 4:
        raise ValueError(f"n_countries must be >= 4 for multi-hop questions, got {n_countries!r}")
    rng = np.random.default_rng([seed, 0xF1C7])
    taken: set[str] = set()
    width = int(np.ceil(np.sqrt(n_countries)))
    names = [_unique(rng, taken, lambda: _word(rng, int(rng.integers(2, 4)))) for _ in range(n_countries)]
    codes = [_unique(rng, taken, lambda: "." + "".join(chr(97 + int(c)) for c in rng.integers(0, 26, size=2))) for _ in names]
    border_km: dict[tuple[int, int], float] = {}
    for i in range(n_countries):
        c = i % width
        for j in (i + 1 if c + 1 < width else None, i + width):
            if j is not None and j < n_countries:
                border_km[(i, j)] = float(rng.integers(20, 2000))
    passages: list[Passage] = []
    entities: dict[str, Entity] = {}
    for i, name in enumerate(names):
        key = f"f{i:03d}"
        capital = _unique(rng, taken, lambda: _word(rng, int(rng.integers(2, 4))) + ["", " City", "burg", "port"][int(rng.integers(4))])
        anthem = _unique(rng, taken, lambda: f"{_ANTHEM_WORDS[int(rng.integers(len(_ANTHEM_WORDS)))]} of {_word(rng, 2)}")
        peak = _unique(rng, taken, lambda: f"Mount {_word(rng, 2)}")
        government = _GOVERNMENTS[int(rng.integers(len(_GOVERNMENTS)))]
        population = int(rng.integers(50_000, 90_000_000))
        area = int(rng.integers(500, 2_000_000))
        neighbours = {(b if a == i else a): km for (a, b), km in border_km.items() if i in (a, b)}
        founder = _word(rng, 2)
        text = {
            ("government", "capital", "Capital"): f"name: {capital}; geographic coordinates: {int(rng.integers(0, 80))} {int(rng.integers(0, 60))} N; etymology: named after the founder {founder}",
            ("government", "national-anthem-s", "National anthem(s)"): f'title: "{anthem}"; lyrics/music: {_word(rng, 2)} {_word(rng, 3).upper()}; history: adopted {int(rng.integers(1800, 2020))}',
            ("communications", "internet-country-code", "Internet country code"): codes[i],
            ("geography", "elevation", "Elevation"): f"highest point: {peak} {int(rng.integers(300, 8000)):,} m; lowest point: {_word(rng, 2)} Lake {int(rng.integers(0, 200))} m",
            ("government", "government-type", "Government type"): government,
            ("people-and-society", "population", "Population"): f"total: {population:,} (2025 est.); male: {population // 2:,}; female: {population - population // 2:,}",
            ("geography", "area", "Area"): f"total: {area:,} sq km; land: {int(area * 0.97):,} sq km; water: {area - int(area * 0.97):,} sq km",
            ("geography", "land-boundaries", "Land boundaries"): f"total: {int(sum(neighbours.values())):,} km; border countries: "
            + "; ".join(f"{names[j]} {int(km):,} km" for j, km in sorted(neighbours.items())),
            ("introduction", "background", "Background"): f"{name} was unified under {founder} and trades mostly with "
            + ", ".join(names[j] for j in sorted(neighbours)) + f". Its economy relies on {_word(rng, 2).lower()} exports.",
            ("geography", "climate", "Climate"): f"{_CLIMATES[int(rng.integers(len(_CLIMATES)))]}; rainy season from month {int(rng.integers(1, 13))}",
        }
        ids = {}
        for (section, field_slug, field), body in text.items():
            pid = f"{key}/{section}/{field_slug}"
            ids[field_slug] = pid
            passages.append(Passage(pid, f"{name} — {field}", body))
        entities[key] = Entity(
            key, name, (f"Republic of {name}",),
            facts={
                "capital": Fact(capital, (), ids["capital"]),
                "anthem": Fact(anthem, (), ids["national-anthem-s"]),
                "internet_code": Fact(codes[i], (codes[i][1:],), ids["internet-country-code"]),
                "highest_point": Fact(peak, (), ids["elevation"]),
                "government_type": Fact(government, (), ids["government-type"]),
            },
            numbers={"population": NumberFact(float(population), ids["population"]), "area": NumberFact(float(area), ids["area"])},
            borders={f"f{j:03d}": km for j, km in neighbours.items()},
            borders_passage=ids["land-boundaries"] if neighbours else None,
        )
    return KnowledgeBase(Corpus(passages), entities, source=f"fictional n={n_countries} seed={seed}")

"""The structured knowledge base questions are generated from, shared by the Factbook builder
(:mod:`.corpus`) and the fictional-entity generator (:mod:`.fictional`).

A :class:`KnowledgeBase` is a corpus of passages plus, per entity (a country), the facts the
question generator may use, each tied to the passage that states it:

* text facts (:data:`ATTRIBUTES`): ``capital``, ``anthem``, ``internet_code``, ``highest_point``,
  ``government_type`` — a value, its aliases and the supporting passage id;
* numeric facts (:data:`NUMBERS`): ``population``, ``area``;
* land borders: neighbour entity key → shared border length in km, with the passage listing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from turngym.envs.search_qa.records import Corpus


@dataclass(frozen=True)
class Attribute:
    """How a fact is named in questions and sub-queries; ``key``: unique values may identify an entity."""

    phrase: str
    key: bool
    target: bool
    query: str = ""
    """Words of the gold sub-query (default: ``phrase``), aligned with the passage's field title."""

    @property
    def query_words(self) -> str:
        return self.query or self.phrase


ATTRIBUTES: dict[str, Attribute] = {
    "capital": Attribute("capital", key=True, target=True),
    "anthem": Attribute("national anthem", key=True, target=True),
    "internet_code": Attribute("internet country code", key=True, target=True),
    "highest_point": Attribute("highest point", key=False, target=True, query="elevation highest point"),
    "government_type": Attribute("government type", key=False, target=True),
}

NUMBERS: dict[str, tuple[str, str]] = {"population": ("population", "population total"), "area": ("total area", "area total")}
"""Numeric facts → (phrase in comparison questions, words of the gold sub-query)."""


@dataclass(frozen=True)
class Fact:
    value: str
    aliases: tuple[str, ...]
    passage_id: str

    @property
    def answers(self) -> tuple[str, ...]:
        return (self.value, *[a for a in self.aliases if a != self.value])


@dataclass(frozen=True)
class NumberFact:
    value: float
    passage_id: str


@dataclass
class Entity:
    key: str
    name: str
    aliases: tuple[str, ...] = ()
    facts: dict[str, Fact] = field(default_factory=dict)
    numbers: dict[str, NumberFact] = field(default_factory=dict)
    borders: dict[str, float] = field(default_factory=dict)
    borders_passage: str | None = None

    @property
    def answers(self) -> tuple[str, ...]:
        return (self.name, *[a for a in self.aliases if a != self.name])


@dataclass
class KnowledgeBase:
    corpus: Corpus
    entities: dict[str, Entity]
    source: str = ""

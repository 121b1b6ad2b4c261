"""The Search-R1 tag protocol as pure functions: parse a reply, render retrieved passages.

A reply's action is the **first** ``<search>…</search>`` or ``<answer>…</answer>`` block (Search-R1's
``<(search|answer)>(.*?)</\\1>``; generation is cut after the first closing tag there, so anything
after it is ignored here and reported in :attr:`ParsedAction.note`). Problems that make a reply
invalid: no tag, an unclosed tag, nested tags (a tag inside the block), an empty query or answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from turngym.envs.search_qa.records import Hit

_ANY_TAG = re.compile(r"</?(search|answer|information)>", re.IGNORECASE)
_OPEN = re.compile(r"<(search|answer)>", re.IGNORECASE)
_CLOSE = re.compile(r"</(search|answer)>", re.IGNORECASE)

MAX_QUERY_CHARS = 300
"""Longer queries are cut to this length (and the observation says so)."""


@dataclass(frozen=True)
class ParsedAction:
    kind: Literal["search", "answer", "invalid"]
    content: str = ""
    problem: str | None = None
    note: str | None = None
    ignored_actions: int = 0


@dataclass(frozen=True)
class _Match:
    kind: str
    content: str
    end: int


def _first_action(text: str) -> _Match | None:
    """The first match of ``<(search|answer)>(.*?)</\\1>``, found in linear time.

    (The regex itself backtracks quadratically on replies full of unclosed tags.) The leftmost
    opening tag whose kind is closed somewhere after it wins, with the nearest closing tag.
    """
    dead: set[str] = set()
    for opened in _OPEN.finditer(text):
        kind = opened.group(1).lower()
        if kind in dead:
            continue
        close = _CLOSE_OF[kind].search(text, opened.end())
        if close is None:  # no closing tag after this one, so none after any later one either
            dead.add(kind)
            if len(dead) == 2:
                return None
            continue
        return _Match(kind, text[opened.end() : close.start()], close.end())
    return None


_CLOSE_OF = {kind: re.compile(f"</{kind}>", re.IGNORECASE) for kind in ("search", "answer")}


def parse_action(text: str) -> ParsedAction:
    """Parse one reply (see the module docstring). Never raises; linear in the reply's length."""
    m = _first_action(text)
    if m is None:
        opened = _OPEN.search(text)
        if opened:
            tag = opened.group(1).lower()
            return ParsedAction("invalid", problem=f"your <{tag}> tag was never closed with </{tag}>")
        closed = _CLOSE.search(text)
        if closed:
            tag = closed.group(1).lower()
            return ParsedAction("invalid", problem=f"found </{tag}> without an opening <{tag}>")
        return ParsedAction("invalid", problem="your reply had neither a <search> nor an <answer> block")
    kind, content = m.kind, m.content
    if _ANY_TAG.search(content):
        inner = _ANY_TAG.search(content).group(0)
        return ParsedAction("invalid", problem=f"tags cannot be nested: your <{kind}> block contained {inner}")
    content = " ".join(content.split())
    if not content:
        what = "search query" if kind == "search" else "answer"
        return ParsedAction("invalid", problem=f"your {what} was empty")
    notes = []
    extra = sum(1 for _ in _OPEN.finditer(text, m.end))
    if extra:
        notes.append(f"only the first action of a reply is used; the {extra} other <search>/<answer> tag(s) after it were ignored, so make one search per turn")
    if kind == "search" and len(content) > MAX_QUERY_CHARS:
        content = content[:MAX_QUERY_CHARS]
        notes.append(f"your query was cut to its first {MAX_QUERY_CHARS} characters")
    return ParsedAction(kind, content, note="; ".join(notes) or None, ignored_actions=extra)


def render_information(hits: list[Hit], max_chars: int = 1000) -> str:
    """Search-R1's ``<information>`` block: ``Doc i(Title: …) text`` lines."""
    if not hits:
        return "\n\n<information>No passage matched the query.</information>\n\n"
    docs = []
    for i, hit in enumerate(hits, 1):
        text = hit.passage.text if len(hit.passage.text) <= max_chars else hit.passage.text[:max_chars] + " …"
        docs.append(f"Doc {i}(Title: {hit.passage.title}) {text}")
    return "\n\n<information>" + "\n".join(docs) + "</information>\n\n"

"""Typed source mutations: how a correct function becomes a realistic buggy one.

:func:`mutants` enumerates every single-site mutation of the code that starts at byte offset
``start`` of a module's source (the canonical solution body of a HumanEval problem, never its
prompt). Each :class:`Mutant` is one precise text edit — the rest of the file is left byte for byte
as it was, so the gold patch is a one- or few-line diff — of one of five kinds:

* ``operator_swap`` — ``+``↔``-``, ``*``↔``//``, ``/``→``*``, ``%``→``//``, ``and``↔``or``.
* ``flipped_comparison`` — ``<``↔``>=``, ``>``↔``<=``, ``==``↔``!=``, ``in``↔``not in``, ``is``↔``is not``.
* ``off_by_one`` — an integer literal used as a bound (``range`` argument, index, slice, comparison
  operand, augmented assignment) moved by ±1.
* ``wrong_constant`` — any other literal changed (``0``↔``1``, ``True``↔``False``, a float doubled,
  a string reversed).
* ``dropped_branch`` — an ``if`` without ``else`` deleted, an ``else`` clause deleted, or an
  ``elif`` branch deleted.

Every mutant parses, differs from the original, and is unique. Pure functions: no code is run
here (whether a mutant actually fails tests is decided in the sandbox by :mod:`.coderepair`).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass

KINDS = ("operator_swap", "flipped_comparison", "off_by_one", "wrong_constant", "dropped_branch")

_BINOP_SWAP: dict[type, tuple[str, str]] = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "//"),
    ast.FloorDiv: ("//", "*"),
    ast.Div: ("/", "*"),
    ast.Mod: ("%", "//"),
}
_CMP_SWAP: dict[type, tuple[str, str]] = {
    ast.Lt: ("<", ">="),
    ast.GtE: (">=", "<"),
    ast.Gt: (">", "<="),
    ast.LtE: ("<=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}


@dataclass(frozen=True)
class Mutant:
    """One buggy variant of a source file.

    Attributes:
        kind: one of :data:`KINDS`.
        line: 1-based line of the edit in the original source.
        description: what changed, e.g. ``"line 7: '<' -> '>='"`` (for build logs, never shown to agents).
        source: the complete mutated source.
    """

    kind: str
    line: int
    description: str
    source: str


class _Text:
    """A source file addressed by AST positions (UTF-8 byte columns, as the ``ast`` module gives)."""

    def __init__(self, source: str):
        self.source = source
        self.data = source.encode("utf-8")
        self.line_starts = [0]
        for i, b in enumerate(self.data):
            if b == 0x0A:
                self.line_starts.append(i + 1)

    def offset(self, lineno: int, col: int) -> int:
        return self.line_starts[lineno - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def replace(self, start: int, end: int, new: str) -> str:
        return (self.data[:start] + new.encode("utf-8") + self.data[end:]).decode("utf-8")

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Byte range of whole lines ``first..last`` (1-based, inclusive), newline included."""
        end = self.line_starts[last] if last < len(self.line_starts) else len(self.data)
        return self.line_starts[first - 1], end

    def line_text(self, lineno: int) -> str:
        start, end = self.line_span(lineno, lineno)
        return self.data[start:end].decode("utf-8")


def _swap_token(text: _Text, gap: tuple[int, int], old: str, new: str) -> tuple[int, int, str] | None:
    """Find the operator token ``old`` in the byte gap between two operands; return the edit."""
    segment = text.data[gap[0] : gap[1]].decode("utf-8")
    # strip parentheses/whitespace around the operator; the token must appear exactly once
    if old in ("in", "not in", "is", "is not", "and", "or"):
        words = segment.replace("(", " ").replace(")", " ").split()
        if " ".join(words) != old:
            return None
        i = segment.find(old.split()[0])
        k = segment.find(old.split()[-1], i) + len(old.split()[-1])
        start = gap[0] + len(segment[:i].encode("utf-8"))
        end = gap[0] + len(segment[:k].encode("utf-8"))
        return start, end, new
    stripped = segment.replace("(", " ").replace(")", " ").strip()
    if stripped != old:
        return None
    i = segment.find(old)
    start = gap[0] + len(segment[:i].encode("utf-8"))
    return start, start + len(old.encode("utf-8")), new


def _bound_context(parents: dict[ast.AST, ast.AST], node: ast.AST) -> bool:
    """Whether a literal is used as a bound: range/len arithmetic, index, slice, comparison, +=."""
    child, parent = node, parents.get(node)
    while isinstance(parent, (ast.UnaryOp, ast.BinOp)):
        child, parent = parent, parents.get(parent)
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "range":
        return True
    if isinstance(parent, (ast.Slice, ast.Compare, ast.AugAssign)):
        return True
    return isinstance(parent, ast.Subscript) and parent.slice is child


def mutants(source: str, start: int = 0) -> list[Mutant]:
    """All single-site mutants of the code at or after character offset ``start`` of ``source``.

    Order: by kind (as in :data:`KINDS`), then by position. Use :func:`ordered` for a seeded,
    kind-interleaved order.
    """
    tree = ast.parse(source)
    text = _Text(source)
    start_byte = len(source[:start].encode("utf-8"))
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    in_fstring = {id(n) for js in ast.walk(tree) if isinstance(js, ast.JoinedStr) for n in ast.walk(js)}
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    found: list[tuple[str, int, int, int, str, str]] = []  # kind, byte start, byte end, line, new, desc

    def add(kind: str, s: int, e: int, line: int, new: str) -> None:
        if s >= start_byte:
            old = text.data[s:e].decode("utf-8")
            desc = f"line {line}: {old.strip()[:40]!r} -> {new.strip()[:40]!r}" if kind != "dropped_branch" else f"line {line}: dropped {old.strip().splitlines()[0][:40]!r}…"
            found.append((kind, s, e, line, new, desc))

    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            old, new = _BINOP_SWAP[type(node.op)]
            gap = (text.span(node.left)[1], text.span(node.right)[0])
            edit = _swap_token(text, gap, old, new)
            if edit:
                add("operator_swap", edit[0], edit[1], node.lineno, edit[2])
        elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            gap = (text.span(node.values[0])[1], text.span(node.values[1])[0])
            edit = _swap_token(text, gap, old, new)
            if edit:
                add("operator_swap", edit[0], edit[1], node.lineno, edit[2])
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                if type(op) not in _CMP_SWAP:
                    continue
                old, new = _CMP_SWAP[type(op)]
                gap = (text.span(operands[i])[1], text.span(operands[i + 1])[0])
                edit = _swap_token(text, gap, old, new)
                if edit:
                    add("flipped_comparison", edit[0], edit[1], node.lineno, edit[2])
        elif isinstance(node, ast.Constant) and id(node) not in docstrings and id(node) not in in_fstring:
            s, e = text.span(node)
            value = node.value
            if isinstance(value, bool):
                add("wrong_constant", s, e, node.lineno, repr(not value))
            elif isinstance(value, int):
                if _bound_context(parents, node):
                    add("off_by_one", s, e, node.lineno, str(value + 1))
                    if value > 0:
                        add("off_by_one", s, e, node.lineno, str(value - 1))
                else:
                    add("wrong_constant", s, e, node.lineno, str({0: 1, 1: 0}.get(value, value + 1)))
            elif isinstance(value, float):
                add("wrong_constant", s, e, node.lineno, repr(value * 2 if value else 1.0))
            elif isinstance(value, str) and 0 < len(value) <= 40 and "\n" not in value:
                new = value[::-1] if value[::-1] != value else value + value[:1]
                add("wrong_constant", s, e, node.lineno, repr(new))
        elif isinstance(node, ast.If):
            _dropped_branches(node, parents, text, add)

    results: dict[str, Mutant] = {}
    original = source
    for kind, s, e, line, new, desc in sorted(found, key=lambda f: (KINDS.index(f[0]), f[1], f[4])):
        mutated = text.replace(s, e, new)
        if mutated == original or mutated in results:
            continue
        try:
            ast.parse(mutated)
        except SyntaxError:
            continue
        results[mutated] = Mutant(kind=kind, line=line, description=desc, source=mutated)
    return list(results.values())


def _dropped_branches(node: ast.If, parents: dict, text: _Text, add) -> None:
    parent = parents.get(node)
    siblings = next(
        (getattr(parent, f) for f in ("body", "orelse", "finalbody") if node in getattr(parent, f, [])), []
    )
    is_elif = isinstance(parent, ast.If) and parent.orelse == [node] and text.line_text(node.lineno).lstrip().startswith("elif")
    indent = text.line_text(node.lineno)[: len(text.line_text(node.lineno)) - len(text.line_text(node.lineno).lstrip())]
    if is_elif:
        # delete the `elif cond: body` lines; its own elif/else (if any) attach to the parent if
        last = node.body[-1].end_lineno
        s, e = text.line_span(node.lineno, last)
        if node.orelse:
            rest = text.line_text(node.orelse[0].lineno).lstrip()
            if text.line_text(last + 1).lstrip().startswith("else") or rest.startswith("elif"):
                add("dropped_branch", s, e, node.lineno, "")
        else:
            add("dropped_branch", s, e, node.lineno, "")
    elif not node.orelse:
        s, e = text.line_span(node.lineno, node.end_lineno)
        if text.line_text(node.lineno).lstrip().startswith("if") and text.data[s:e].decode().count("\n") >= 1:
            replacement = "" if len(siblings) > 1 else f"{indent}pass\n"
            add("dropped_branch", s, e, node.lineno, replacement)
    elif not (len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) and text.line_text(node.orelse[0].lineno).lstrip().startswith("elif")):
        # plain else: delete from the `else:` line to the end of the else block
        first = node.body[-1].end_lineno + 1
        for lineno in range(first, node.orelse[0].lineno + 1):
            if text.line_text(lineno).lstrip().startswith("else"):
                s, e = text.line_span(lineno, node.orelse[-1].end_lineno)
                add("dropped_branch", s, e, lineno, "")
                break


def ordered(all_mutants: list[Mutant], key: str) -> list[Mutant]:
    """A deterministic, kind-interleaved order of ``all_mutants`` seeded by ``key`` (e.g. a task id).

    Kinds take turns (in an order shuffled by ``key``) so the first few candidates tried at build
    time cover different bug types across tasks; within a kind, mutants are shuffled by ``key``.
    """

    def h(*parts: object) -> str:
        return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()

    by_kind: dict[str, list[Mutant]] = {}
    for m in all_mutants:
        by_kind.setdefault(m.kind, []).append(m)
    kinds = sorted(by_kind, key=lambda k: h(key, "kind", k))
    queues = [sorted(by_kind[k], key=lambda m: h(key, m.source)) for k in kinds]
    out: list[Mutant] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out

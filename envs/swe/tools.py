"""The agent's tools: call parsing (OpenAI-style JSON or plain tags), the editor's pure text
operations, and observation truncation. Nothing here touches a sandbox; :mod:`.env` executes.

Tools (one call per turn):

==============  ==================================  =============================================
name            arguments                           effect
==============  ==================================  =============================================
``bash``        ``command``                         run a shell command in the repo (sandboxed)
``view``        ``path``, ``start``?, ``end``?      file with line numbers (or a directory listing)
``create``      ``path``, ``content``               write a new file (or overwrite one)
``str_replace`` ``path``, ``old``, ``new``          replace the one occurrence of ``old``
``insert``      ``path``, ``line``, ``text``        insert ``text`` after line ``line`` (0 = top)
``undo``        ``path``                            revert the last edit of ``path``
``run_tests``   —                                   run the visible tests; pass fraction reported
``submit``      —                                   end the episode; the repo diff is graded
==============  ==================================  =============================================

Accepted syntaxes:

* JSON (OpenAI style), anywhere in the reply: ``{"name": "bash", "arguments": {"command": "ls"}}``,
  ``{"type": "function", "function": {"name": ..., "arguments": "<json string>"}}`` or
  ``{"tool_calls": [...]}`` (the first call runs). ``str_replace_editor`` with a ``command`` field
  (``view/create/str_replace/insert/undo_edit``, SWE-agent/Anthropic style) maps onto the editor.
* Tags: ``<bash>ls</bash>``, ``<view path="a.py" start="1" end="40"/>``,
  ``<create path="a.py">text</create>``, ``<str_replace path="a.py"><old>x</old><new>y</new></str_replace>``,
  ``<insert path="a.py" line="3">text</insert>``, ``<undo path="a.py"/>``, ``<run_tests/>``, ``<submit/>``.

:func:`parse_call` returns a :class:`ToolCall` or raises :class:`CallError` whose message says what
was wrong and shows the expected format.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

TOOLS = ("bash", "view", "create", "str_replace", "insert", "undo", "run_tests", "submit")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "bash": ("command",),
    "view": ("path",),
    "create": ("path", "content"),
    "str_replace": ("path", "old", "new"),
    "insert": ("path", "line", "text"),
    "undo": ("path",),
    "run_tests": (),
    "submit": (),
}
_ALIASES = {
    "shell": "bash", "execute_bash": "bash", "run": "bash",
    "undo_edit": "undo", "test": "run_tests", "tests": "run_tests", "finish": "submit",
}
_ARG_ALIASES = {
    "old_str": "old", "new_str": "new", "file_text": "content", "text": "text", "insert_line": "line",
    "new_text": "text", "cmd": "command", "file": "path", "start_line": "start", "end_line": "end",
}

ACTION_FORMAT = (
    'Call exactly one tool per reply, as JSON {"name": "<tool>", "arguments": {...}} or as a tag: '
    '<bash>cmd</bash>, <view path="f" start="1" end="40"/>, <create path="f">text</create>, '
    '<str_replace path="f"><old>x</old><new>y</new></str_replace>, <insert path="f" line="N">text</insert>, '
    '<undo path="f"/>, <run_tests/>, <submit/>.'
)


COMPACT_FORMAT = (
    "Reply with exactly one tool call and nothing else: a ```bash block (one shell command), "
    '<view path="solution.py"/>, <str_replace path="f"><old>x</old><new>y</new></str_replace>, '
    "<run_tests/> or <submit/>."
)


class CallError(ValueError):
    """The reply holds no well-formed tool call; the message explains and quotes the format."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "arguments": self.args})


def _normalise(name: Any, args: Any) -> ToolCall:
    if not isinstance(name, str):
        raise CallError(f"the tool name must be a string, got {name!r}")
    name = name.strip()
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise CallError(f"the arguments of {name!r} are not valid JSON ({exc.msg})") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CallError(f"the arguments of {name!r} must be an object, got {type(args).__name__}")
    args = {_ARG_ALIASES.get(k, k): v for k, v in args.items()}
    if name == "str_replace_editor":
        sub = args.pop("command", None)
        if sub not in ("view", "create", "str_replace", "insert", "undo_edit", "undo"):
            raise CallError(f"str_replace_editor needs command view/create/str_replace/insert/undo_edit, got {sub!r}")
        name = sub
        if "view_range" in args and isinstance(args["view_range"], list) and len(args["view_range"]) == 2:
            args["start"], args["end"] = args.pop("view_range")
        if name == "insert" and "new" in args and "text" not in args:
            args["text"] = args.pop("new")
    name = _ALIASES.get(name, name)
    if name not in TOOLS:
        raise CallError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    missing = [a for a in _REQUIRED[name] if a not in args]
    if missing:
        raise CallError(f"tool {name!r} is missing argument(s) {', '.join(missing)}")
    for key in ("start", "end", "line"):
        if key in args:
            try:
                args[key] = int(args[key])
            except (TypeError, ValueError):
                raise CallError(f"argument {key!r} of {name!r} must be an integer, got {args[key]!r}") from None
    for key in ("command", "path", "content", "old", "new", "text"):
        if key in args and not isinstance(args[key], str):
            raise CallError(f"argument {key!r} of {name!r} must be a string, got {type(args[key]).__name__}")
        if isinstance(args.get(key), str) and "\x00" in args[key]:
            raise CallError(f"argument {key!r} of {name!r} contains a NUL character")
    return ToolCall(name, {k: args[k] for k in sorted(args)})


def _from_json_object(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if "tool_calls" in obj and isinstance(obj["tool_calls"], list) and obj["tool_calls"]:
        return _from_json_object(obj["tool_calls"][0])
    if "function" in obj and isinstance(obj["function"], dict):
        fn = obj["function"]
        return _normalise(fn.get("name"), fn.get("arguments", {}))
    if "name" in obj:
        return _normalise(obj["name"], obj.get("arguments", obj.get("parameters", obj.get("args", {}))))
    return None


_ATTR = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_TAG = re.compile(r"<(" + "|".join(TOOLS) + r")\b([^>]*?)(/?)>", re.DOTALL)


def _tag_call(text: str) -> ToolCall | None:
    m = _TAG.search(text)
    if not m:
        return None
    name, selfclosing = m.group(1), m.group(3)
    attrs = {k: dq or sq for k, dq, sq in _ATTR.findall(m.group(2))}
    body = None
    if not selfclosing:
        close = text.find(f"</{name}>", m.end())
        if close < 0:
            if name in ("run_tests", "submit"):
                body = ""
            else:
                raise CallError(f"<{name}> is not closed with </{name}>")
        else:
            body = text[m.end() : close]
    args: dict[str, Any] = dict(attrs)
    if name == "bash":
        args["command"] = (body or "").strip("\n") if body is not None else attrs.get("command", "")
    elif name == "create":
        args["content"] = _strip_one_newline(body or "")
    elif name == "insert":
        args["text"] = _strip_one_newline(body or "")
    elif name == "str_replace":
        inner = body or ""
        old = re.search(r"<old>(.*?)</old>", inner, re.DOTALL)
        new = re.search(r"<new>(.*?)</new>", inner, re.DOTALL)
        if not old or not new:
            raise CallError("<str_replace> needs <old>…</old> and <new>…</new> inside")
        args["old"], args["new"] = _strip_one_newline(old.group(1)), _strip_one_newline(new.group(1))
    return _normalise(name, args)


def _strip_one_newline(s: str) -> str:
    """Tag bodies usually start right after a newline; drop exactly one leading newline."""
    return s.removeprefix("\n")


def parse_call(text: str, lenient: bool = False) -> ToolCall:
    """The first tool call in ``text`` (JSON objects are tried before tags). Raises :class:`CallError`.

    ``lenient``: a reply in which the strict syntaxes find no call at all is read again by
    :func:`lenient_call` (fenced ``bash`` blocks, Python-style ``tool(...)`` lines, tags with stray
    whitespace). Replies the strict parser accepts or rejects for a reason parse the same either way.
    """
    try:
        return _strict_call(text)
    except CallError as exc:
        if not lenient or str(exc) != _NO_CALL:
            raise
    call = lenient_call(text)
    if call is None:
        raise CallError(_NO_CALL + " (nor a ```bash block or a tool(...) line)")
    return call


_NO_CALL = "no tool call found in your reply"


def _strict_call(text: str) -> ToolCall:
    if not text or not text.strip():
        raise CallError("your reply was empty")
    decoder = json.JSONDecoder()
    tag_match = _TAG.search(text)
    first_tag = tag_match.start() if tag_match else len(text)
    for m in re.finditer(r"\{", text):
        if m.start() > first_tag:
            break
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        call = _from_json_object(obj)
        if call is not None:
            return call
    call = _tag_call(text)
    if call is not None:
        return call
    raise CallError(_NO_CALL)


# ---- lenient reading: formats small instruct models write on their own ---------------------------
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_SHELL_LANGS = ("bash", "sh", "shell", "console")
_CALL_LINE = re.compile(r"^\s*`?(" + "|".join(TOOLS) + r")\s*\(.*\)\s*;?`?\s*$")
_LOOSE_TAG = re.compile(r"<\s+(" + "|".join(TOOLS) + r")\b|(/)\s+>")
_POSITIONAL = {"bash": ("command",), "view": ("path", "start", "end"), "create": ("path", "content"),
               "str_replace": ("path", "old", "new"), "insert": ("path", "line", "text"), "undo": ("path",),
               "run_tests": (), "submit": ()}


def lenient_call(text: str) -> ToolCall | None:
    """The one call a reply without strict syntax unambiguously makes, or ``None`` if it makes none.

    Read, in the reply as a whole:

    * a fenced block tagged ``bash``/``sh``/``shell``/``console`` → ``bash(command=<block>)``
      (the mini-SWE-agent convention; untagged or ``python`` fences are never run);
    * a line that is exactly a Python call of a tool with literal arguments — the notation of the
      env's own system prompt: ``run_tests()``, ``submit()``, ``view("solution.py")``,
      ``view(path="a.py", start=1)``, ``bash("ls")`` (positional arguments in the table's order);
    * a tag written with stray whitespace after ``<``: ``< submit />``, ``< run_tests/>``.

    Unambiguous or nothing: if these readings find two *different* calls, :class:`CallError` says so
    (the reply is invalid, nothing runs); the same call found twice counts once.
    """
    found: list[ToolCall] = []
    shell = [body for lang, body in _FENCE.findall(text) if lang.lower() in _SHELL_LANGS and body.strip()]
    found += [_normalise("bash", {"command": body.strip("\n")}) for body in shell]
    for line in text.splitlines():
        if _CALL_LINE.match(line):
            call = _python_call(line.strip().strip("`;").strip())
            if call is not None:
                found.append(call)
    if not found and _LOOSE_TAG.search(text):
        found += [c for c in [_tag_call(_LOOSE_TAG.sub(lambda m: f"<{m.group(1)}" if m.group(1) else "/>", text))] if c]
    distinct = list({c.to_json(): c for c in found}.values())
    if len(distinct) > 1:
        names = ", ".join(c.name for c in distinct[:5])
        raise CallError(f"your reply holds {len(distinct)} different tool calls ({names}); make exactly one per reply")
    return distinct[0] if distinct else None


def _python_call(line: str) -> ToolCall | None:
    """``tool(arg, key=value)`` with literal arguments → a call; anything else → ``None``."""
    try:
        node = ast.parse(line, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.func.id not in TOOLS:
        return None
    order = _POSITIONAL[node.func.id]
    if len(node.args) > len(order) or any(k.arg is None for k in node.keywords):
        return None
    try:
        args = {name: ast.literal_eval(a) for name, a in zip(order, node.args)}
        args.update({k.arg: ast.literal_eval(k.value) for k in node.keywords})
    except ValueError:
        return None
    return _normalise(node.func.id, args)


# ---- editor: pure text operations -----------------------------------------------------------------
class EditError(ValueError):
    """An editor operation cannot apply (text not found, ambiguous, bad line…); message says why."""


def view_text(content: str, path: str, start: int | None = None, end: int | None = None) -> str:
    """``content`` with 1-based line numbers, lines ``start..end`` inclusive (``-1``/None: to the end)."""
    lines = content.splitlines()
    n = len(lines)
    lo = 1 if start is None else start
    hi = n if end is None or end == -1 else end
    if n == 0:
        return f"{path} is empty."
    if not 1 <= lo <= n or hi < lo:
        raise EditError(f"line range [{start}, {end}] is invalid for {path}, which has {n} lines")
    hi = min(hi, n)
    width = len(str(hi))
    shown = "\n".join(f"{i:>{width}}\t{lines[i - 1]}" for i in range(lo, hi + 1))
    return f"{path} (lines {lo}-{hi} of {n}):\n{shown}"


def str_replace(content: str, path: str, old: str, new: str) -> str:
    if old == "":
        raise EditError("str_replace needs a non-empty old text")
    count = content.count(old)
    if count == 0:
        raise EditError(f"the old text was not found in {path}; view the file and copy the text exactly (whitespace included)")
    if count > 1:
        lines = [content[: m.start()].count("\n") + 1 for m in re.finditer(re.escape(old), content)]
        raise EditError(f"the old text occurs {count} times in {path} (lines {lines[:10]}); include more context to make it unique")
    return content.replace(old, new, 1)


def insert(content: str, path: str, line: int, text: str) -> str:
    lines = content.splitlines(keepends=True)
    if not 0 <= line <= len(lines):
        raise EditError(f"insert line {line} is out of range for {path} (0..{len(lines)})")
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    if not text.endswith("\n"):
        text += "\n"
    return "".join(lines[:line]) + text + "".join(lines[line:])


def snippet(content: str, around: str, context: int = 3) -> str:
    """Numbered lines around the first occurrence of ``around`` (to confirm an edit)."""
    idx = content.find(around) if around else 0
    first = content[: max(idx, 0)].count("\n") + 1
    last = first + around.count("\n")
    lines = content.splitlines()
    lo, hi = max(1, first - context), min(len(lines), last + context)
    if not lines:
        return "(empty file)"
    return "\n".join(f"{i:>{len(str(hi))}}\t{lines[i - 1]}" for i in range(lo, hi + 1))


# ---- observations ---------------------------------------------------------------------------------
def truncate(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, with a marker in between."""
    if len(text) <= limit:
        return text
    marker_room = 64
    keep = max(limit - marker_room, 2)
    head, tail = keep // 2, keep - keep // 2
    dropped = len(text) - head - tail
    return f"{text[:head]}\n[... {dropped} characters truncated ...]\n{text[len(text) - tail:]}"

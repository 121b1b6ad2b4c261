"""What every ``turngym`` command prints, and where: tables, progress, ``--json`` and exit codes.

The contract (``docs/cli.md`` is its user-facing side):

* **stdout carries results.** :func:`print_table` draws a rich table when stdout is a terminal
  (columns fold; a cell is never cut with ``…``) and otherwise prints plain tab-separated lines:
  one header line, then one line per row, every cell whole (tabs and newlines inside a cell become
  spaces). A piped table's title goes to stderr, so ``turngym list | grep X`` and ``cut -f1`` see
  data only.
* **stderr carries progress.** :class:`Progress` reports one long phase: a live bar when stderr is a
  terminal (several phases at once share one live display); otherwise one plain line when the phase
  starts, at most one line every ``interval`` seconds while it moves (a heartbeat line every
  :data:`HEARTBEAT_S` seconds while it does not), and a final line — no carriage returns.
  :func:`set_quiet` (``--quiet``, or ``TURNGYM_QUIET=1`` in the environment) silences all of it.
* **``--json [FILE]``** (:func:`add_json_argument`, :func:`emit_json`): ``--json`` alone prints the
  result as JSON on stdout *instead of* the human output; ``--json FILE`` writes it to FILE and the
  human output is printed as usual. Field names are those of the files a run writes.
* **Exit codes** are the same on every command: :data:`EXIT_OK` 0, :data:`EXIT_FAILED` 1 (the
  command ran and a check, target or verification failed, or what it needs is unavailable),
  :data:`EXIT_USAGE` 2 (bad option or input: unknown id, agent or suite, malformed config).

This module is at the package root and imports nothing from ``turngym``: envs, sandbox, agents,
training and the CLI may all use it without breaking the layering.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Column",
    "Progress",
    "add_json_argument",
    "add_quiet_argument",
    "emit_json",
    "error",
    "format_duration",
    "is_quiet",
    "note",
    "print_table",
    "set_quiet",
    "styled",
    "to_jsonable",
]

EXIT_OK = 0
"""The command did what was asked and everything it checked passed."""
EXIT_FAILED = 1
"""The command ran, and a check, target or verification failed (or what it needs is unavailable)."""
EXIT_USAGE = 2
"""Usage or input error: a bad option, an unknown id/agent/suite, a malformed config or input file."""

HEARTBEAT_S = 30.0
"""Without a terminal, a phase that has not moved still prints a line this often (it is alive)."""
WHOLE_CELL_CHARS = 48
"""In a terminal, columns whose cells are all at most this long never wrap (ids, numbers, paths)."""
DEFAULT_INTERVAL_S = 5.0
"""Without a terminal, at most one progress line per phase this often (``TURNGYM_PROGRESS_INTERVAL``)."""

_quiet = os.environ.get("TURNGYM_QUIET", "").strip() not in ("", "0")


def set_quiet(quiet: bool = True) -> None:
    """Silence (or re-enable) every progress report and note on stderr in this process."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def _interval_from_env() -> float:
    raw = os.environ.get("TURNGYM_PROGRESS_INTERVAL", "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


# ==================================================================================== tables
@dataclasses.dataclass(frozen=True)
class Column:
    """A table column: its header and alignment in the terminal (``"left"`` or ``"right"``)."""

    name: str
    justify: str = "left"


def styled(text: Any, style: str) -> Any:
    """A cell shown with a rich ``style`` (e.g. ``"green"``) in a terminal and as plain text when piped."""
    from rich.text import Text

    return Text(str(text), style=style)


def _cell_text(cell: Any) -> str:
    text = "" if cell is None else str(cell)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def print_table(
    columns: Sequence[str | Column],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    file: IO[str] | None = None,
    tsv: bool | None = None,
) -> None:
    """Print a table of ``rows`` (each a sequence of cells, one per column) on stdout (or ``file``).

    ``tsv=None`` decides by the stream: a terminal gets a rich table (columns fold instead of cutting
    a cell with ``…``), anything else gets a header line and one tab-separated line per row, each cell
    whole (``str(cell)``, tabs/newlines replaced by spaces); the title then goes to stderr (unless
    quiet). Cells may be any object; :func:`styled` cells are colored in the terminal only.
    """
    out = file if file is not None else sys.stdout
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    rows = [list(r) for r in rows]
    for r in rows:
        if len(r) != len(cols):
            raise ValueError(f"a table row has {len(r)} cells for {len(cols)} columns {[c.name for c in cols]}: {r!r}")
    if tsv is None:
        tsv = not _isatty(out)
    if tsv:
        if title and not _quiet:
            print(title, file=sys.stderr, flush=True)
        lines = ["\t".join(_cell_text(c.name) for c in cols)]
        lines += ["\t".join(_cell_text(cell) for cell in r) for r in rows]
        out.write("\n".join(lines) + "\n")
        out.flush()
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = [[cell if isinstance(cell, Text) else Text(_cell_text(cell)) for cell in r] for r in rows]
    table = Table(title=title)
    needed = 1
    for i, c in enumerate(cols):
        longest = max([len(c.name), *(cells[j][i].cell_len for j in range(len(cells)))])
        if longest <= WHOLE_CELL_CHARS:  # ids, numbers, short paths: on one line, whole
            table.add_column(c.name, justify=c.justify, no_wrap=True, min_width=longest)
            needed += longest + 3
        else:  # prose: wraps (folds inside a long word), never cut
            table.add_column(c.name, justify=c.justify, overflow="fold", min_width=min(longest, 20))
            needed += min(longest, 20) + 3
    for r in cells:
        table.add_row(*r)
    terminal = Console(file=out, highlight=False)
    # Wider than the terminal? Draw it wider and let the terminal wrap the lines: rich would crop them.
    Console(file=out, highlight=False, width=max(terminal.width, needed)).print(table)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# ==================================================================================== json
def add_json_argument(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json [FILE]``: alone, print ``what`` as JSON on stdout instead of the human output; with
    FILE, write it there too. (Put ``--json`` after positional arguments, or write ``--json=FILE``.)"""
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="FILE",
        help=f"print {what} as JSON on stdout instead of a table, or with FILE write the JSON there "
             "and print the table as usual",
    )


def to_jsonable(value: Any) -> Any:
    """``value`` with dataclasses, paths, sets, tuples and numpy scalars made JSON-able (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


def emit_json(data: Any, target: str | None) -> bool:
    """Write ``data`` as JSON to ``target`` (``"-"``: stdout; a path: that file; ``None``: nowhere).

    Returns True when it went to stdout, i.e. the caller must print nothing else there.
    """
    if target is None:
        return False
    text = json.dumps(to_jsonable(data), indent=2)
    if target == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return True
    path = Path(target)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return False


# ==================================================================================== quiet, errors
class _QuietAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)
        set_quiet(True)


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress on stderr (results and errors are still printed)."""
    parser.add_argument("--quiet", action=_QuietAction, help="no progress reports on stderr (results and errors still print)")


def error(message: str, prefix: str = "error") -> None:
    """One error line on stderr (never silenced by ``--quiet``)."""
    print(f"{prefix}: {message}" if prefix else message, file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One informational line on stderr (what is about to happen, where files go); silenced by ``--quiet``."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


# ==================================================================================== progress
def format_duration(seconds: float) -> str:
    """``"4 s"``, ``"2 min 05 s"``, ``"1 h 02 min"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class _LiveDisplay:
    """The one rich live display on a terminal's stderr, shared by every open :class:`Progress`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.progress: Any = None
        self.users = 0

    def add(self, progress: Progress) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        with self.lock:
            if self.progress is None:
                self.progress = RichProgress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[info]}"),
                    console=Console(file=sys.stderr, highlight=False), transient=True,
                    redirect_stdout=False,  # stdout is for results, never drawn into the stderr display
                )
                self.progress.start()
            self.users += 1
            return self.progress.add_task(progress.label, total=progress.total, completed=progress.completed,
                                          info=progress.info, eta="")

    def update(self, task: Any, progress: Progress) -> None:
        eta = progress.eta()
        self.progress.update(task, description=progress.label, total=progress.total, completed=progress.completed,
                             info=progress.info, eta=f"ETA {format_duration(eta)}" if eta is not None else "")

    def print(self, text: str) -> None:
        with self.lock:
            if self.progress is not None:
                from rich.text import Text

                self.progress.console.print(Text(text))
                return
        print(text, file=sys.stderr, flush=True)

    def remove(self, task: Any) -> None:
        with self.lock:
            self.progress.remove_task(task)
            self.users -= 1
            if self.users == 0:
                self.progress.stop()
                self.progress = None


_LIVE = _LiveDisplay()


class Progress:
    """Progress of one long phase, on stderr: ``label: done/total unit (pct) · info · elapsed, ETA``.

    Use as a context manager (or call :meth:`close`). ``total=None`` is a phase of unknown length.
    :meth:`update` / :meth:`advance` move it; ``info`` is a short free-form status (``"success
    0.41"``, ``"turngym/X-v0: fork"``). On a terminal (``sys.stderr.isatty()``) it is a live bar;
    otherwise a start line, then at most one line per ``interval`` seconds while it moves (a heartbeat
    every :data:`HEARTBEAT_S` s while it does not; a background thread keeps time, so a phase stuck
    in one long call still shows it is alive), then a final line with the elapsed time. Disabled
    (prints nothing) when ``enabled`` is false or the process is quiet (:func:`set_quiet`).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "",
        completed: int = 0,
        info: str = "",
        enabled: bool = True,
        interval: float | None = None,
        live: bool | None = None,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.completed, self.info = completed, info
        self.started = time.monotonic()
        self._start_completed = completed
        self.enabled = enabled and not _quiet
        self.interval = _interval_from_env() if interval is None else interval
        self.live = _isatty(sys.stderr) if live is None else live
        self._lock = threading.Lock()
        self._closed = False
        self._task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_key: tuple[Any, ...] = ()
        self._last_emit = 0.0
        if not self.enabled:
            return
        if self.live:
            self._task = _LIVE.add(self)
        else:
            self._emit(self._line())
            self._thread = threading.Thread(target=self._tick, name=f"progress:{label}", daemon=True)
            self._thread.start()

    # ---------------------------------------------------------------- moving it
    def update(
        self,
        completed: int | None = None,
        *,
        total: int | None = None,
        advance: int = 0,
        info: str | None = None,
        label: str | None = None,
    ) -> None:
        """Set ``completed`` (or add ``advance``), and optionally a new ``total``, ``info`` or ``label``."""
        with self._lock:
            if completed is not None:
                self.completed = completed
            self.completed += advance
            if total is not None:
                self.total = total
            if info is not None:
                self.info = info
            if label is not None:
                self.label = label
        if not self.enabled or self._closed:
            return
        if self.live:
            _LIVE.update(self._task, self)
        else:
            self._maybe_emit()

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.update(advance=n, info=info)

    def note(self, text: str) -> None:
        """One line on stderr now (above the live bar on a terminal); silenced by ``--quiet``."""
        if not self.enabled:
            return
        if self.live:
            _LIVE.print(text)
        else:
            self._emit(text, status=False)

    def close(self, final: str | None = None) -> None:
        """End the phase: remove the bar (terminal) and print the final line (``final`` overrides it)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        line = final if final is not None else self._line(final=True)
        if self.live:
            _LIVE.remove(self._task)
            print(line, file=sys.stderr, flush=True)
        else:
            self._emit(line)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and self.enabled and not self._closed:
            self.close(final=f"{self.label}: stopped ({exc_type.__name__}) after {format_duration(self.elapsed())}"
                       f"{self._count_text()}")
        else:
            self.close()

    # ---------------------------------------------------------------- the text
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self) -> float | None:
        """Seconds left at the rate so far; ``None`` without a total or before any progress."""
        done = self.completed - self._start_completed
        if not self.total or done <= 0 or self.completed >= self.total:
            return None
        return self.elapsed() / done * (self.total - self.completed)

    def _count_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            pct = 100.0 * self.completed / self.total
            return f" {self.completed}/{self.total}{unit} ({pct:.0f}%)"
        if self.total is None and self.completed == 0:
            return ""
        return f" {self.completed}{unit}"

    def _line(self, final: bool = False) -> str:
        count = self._count_text()
        parts = []
        if self.info:
            parts.append(self.info)
        if final:
            parts.append(f"done in {format_duration(self.elapsed())}")
        else:
            timing = f"{format_duration(self.elapsed())} elapsed"
            eta = self.eta()
            if eta is not None:
                timing += f", ETA {format_duration(eta)}"
            parts.append(timing)
        return f"{self.label}:{count}{' ·' if count else ''} " + " · ".join(parts)

    # ---------------------------------------------------------------- plain lines (no terminal)
    def _status_key(self) -> tuple[Any, ...]:
        return (self.label, self.completed, self.total, self.info)

    def _maybe_emit(self) -> None:
        with self._lock:
            now = time.monotonic()
            since = now - self._last_emit
            changed = self._status_key() != self._last_key
            due = since >= self.interval and (changed or since >= HEARTBEAT_S)
            if not due or self._closed:
                return
            line = self._line()
        self._emit(line)

    def _emit(self, line: str, status: bool = True) -> None:
        with self._lock:
            if status:
                self._last_emit = time.monotonic()
                self._last_key = self._status_key()
            print(line, file=sys.stderr, flush=True)

    def _tick(self) -> None:
        step = max(0.05, min(self.interval, HEARTBEAT_S) / 2) if self.interval > 0 else 0.5
        while not self._stop.wait(step):
            self._maybe_emit()

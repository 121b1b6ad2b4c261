"""The command line every benchmark script shares: ``--json FILE`` and ``--quick``, plus any options
of its own.

A script ends with::

    from turngym.bench._script import script_main

    def main(argv=None) -> int:
        return script_main(__doc__, run, summary, argv)

A script with options of its own adds them (``add_arguments``) and maps them to ``run``'s keyword
arguments (``run_options``); ``before_run`` may handle a mode that is not a benchmark run (a
profile, a child process) and return its exit status instead of ``None``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any


def script_main(
    doc: str | None,
    run: Callable[..., dict[str, Any]],
    summary: Callable[[dict[str, Any]], str] | None = None,
    argv: Sequence[str] | None = None,
    *,
    quick_help: str = "fewer samples and rounds (smoke run)",
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    run_options: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
    before_run: Callable[[argparse.Namespace], int | None] | None = None,
) -> int:
    """Parse ``--json``/``--quick`` (and ``add_arguments``' options), call
    ``run(quick=..., **run_options(args))``, write the JSON (to FILE, else stdout) and the human
    summary (to stderr); returns the exit status."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the result JSON here (default: print it)")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if before_run is not None:
        status = before_run(args)
        if status is not None:
            return status
    result = run(quick=args.quick, **(run_options(args) if run_options is not None else {}))
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    if summary is not None:
        print(summary(result), file=sys.stderr)
    return 0

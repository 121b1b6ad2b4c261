"""The command line every benchmark script shares: ``--json FILE`` and ``--quick``.

A script ends with::

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is a folder of scripts
    from _script import script_main

    def main(argv=None) -> int:
        return script_main(__doc__, run, summary, argv)
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
) -> int:
    """Parse ``--json``/``--quick``, call ``run(quick=...)``, write the JSON (to FILE, else stdout) and
    the human summary (to stderr); returns the exit status."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the result JSON here (default: print it)")
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds (smoke run)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    if summary is not None:
        print(summary(result), file=sys.stderr)
    return 0

"""``turngym sandbox …``: build-image, doctor, serve, reap.

Output follows :mod:`turngym.console`: results on stdout (tables as TSV when piped), progress and
build logs on stderr (``--quiet`` silences them), ``--json [FILE]`` for the result as JSON. Exit
status: 0 ok, 1 failed (the build failed, no backend isolates, no engine to import into), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from turngym.console import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    add_json_argument,
    add_quiet_argument,
    emit_json,
    error,
    print_table,
    styled,
)


def _build_image(args: argparse.Namespace) -> int:
    from turngym.sandbox.base import SandboxUnavailable
    from turngym.sandbox.image import build_dockerfile_image, ensure_image, ensure_rootfs

    t0 = time.monotonic()
    result: dict[str, Any] = {"rootfs": None, "image": None, "docker": None, "seconds": None}
    code = EXIT_OK
    progress = Progress("sandbox build-image")

    def log(line: str) -> None:  # each build step: a line on stderr, and the phase's status
        progress.note(line)
        progress.update(info=line[:80])

    try:
        if args.dockerfile:
            result["image"] = build_dockerfile_image(log=log)
            result["docker"] = "built"
        else:
            result["rootfs"] = str(ensure_rootfs(rebuild=args.rebuild, log=log))
            if not args.rootfs_only:
                from turngym.sandbox.docker import engine_problem

                why = engine_problem()
                if why:
                    result["docker"] = f"skipped: {why}"
                    code = EXIT_OK if args.allow_no_docker else EXIT_FAILED
                else:
                    result["image"] = ensure_image(rebuild=args.rebuild, log=log)
                    result["docker"] = "imported"
    except SandboxUnavailable as exc:
        progress.close(final=f"sandbox build-image: failed after {time.monotonic() - t0:.1f} s")
        error(str(exc))
        return EXIT_FAILED
    progress.close()
    result["seconds"] = round(time.monotonic() - t0, 1)
    if emit_json(result, args.json):
        return code
    if result["rootfs"]:
        print(f"rootfs {result['rootfs']}")
    if result["image"]:
        print(f"image {result['image']}")
    if result["docker"] and result["docker"].startswith("skipped"):
        error(f"{result['docker']} (docker import)", prefix="warning")
    print(f"done in {result['seconds']:.1f}s")
    return code


def _doctor(args: argparse.Namespace) -> int:
    from turngym.sandbox.doctor import report

    with Progress("sandbox doctor" + ("" if args.no_selftest else ": facts and isolation self-tests")):
        rep = report(run_selftest=not args.no_selftest)
    code = EXIT_OK if (rep.ok or args.no_selftest) else EXIT_FAILED
    if emit_json(rep.to_dict(), args.json):
        return code
    print_table(["fact", "value"], [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in rep.facts.items()],
                title="sandbox facts")
    rows = [(backend, c.name, styled("PASS", "green") if c.ok else styled("FAIL", "red"), c.detail)
            for backend, checks in rep.selftests.items() for c in checks]
    if rows:
        print_table(["backend", "check", "result", "detail"], rows, title="isolation self-tests")
    if not args.no_selftest:
        print("OK: at least one backend isolates correctly" if rep.ok else
              "NOT OK: no backend passed the isolation self-test; see above "
              "(start dockerd, `apt-get install bubblewrap`, `turngym sandbox build-image`)")
    return code


def _serve(args: argparse.Namespace) -> int:
    from turngym.sandbox import resolve_config
    from turngym.sandbox.server import ServerConfig, serve

    tokens = list(args.token or [])
    if args.token_file:
        with open(args.token_file) as fh:
            tokens += [line.strip() for line in fh if line.strip()]
    try:
        cfg = ServerConfig(host=args.host, port=args.port, tokens=tokens,
                           sandbox=resolve_config(backend=args.backend, image=args.image),
                           max_request_bytes=args.max_request_mb << 20, max_sandboxes=args.max_sandboxes,
                           max_concurrent_execs=args.max_execs, idle_ttl_s=args.idle_ttl)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    print(f"turngym sandbox service on http://{args.host}:{args.port} (backend {args.backend}, "
          f"{'token required' if tokens else 'no token: localhost only'})", flush=True)
    serve(cfg)
    return EXIT_OK


def _reap(args: argparse.Namespace) -> int:
    from turngym.sandbox.bwrap import reap_bwrap
    from turngym.sandbox.docker import engine_problem, reap

    removed = reap_bwrap()
    if engine_problem() is None:
        removed += reap(max_age_s=args.max_age, spare_live_owners=not args.include_live)
    if emit_json({"removed": removed}, args.json):
        return EXIT_OK
    if removed:
        print_table(["removed"], [(r,) for r in removed], title=f"reaped {len(removed)} sandbox(es)")
    else:
        print("nothing to reap")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym sandbox``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="turngym sandbox", description="Sandboxes for model-written code.",
                                     epilog="Exit status: 0 ok, 1 failed (build, isolation self-test), 2 usage.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build-image", help="debootstrap the offline rootfs and `docker import` it (cached)")
    b.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    b.add_argument("--rootfs-only", action="store_true", help="build the rootfs (bubblewrap) but do not import it")
    b.add_argument("--allow-no-docker", action="store_true", help="exit 0 when no engine is there to import into")
    b.add_argument("--dockerfile", action="store_true", help="build FROM python:3.11-slim instead (needs a registry)")
    add_json_argument(b, "the rootfs path, image tag and seconds")
    add_quiet_argument(b)
    b.set_defaults(fn=_build_image)
    d = sub.add_parser("doctor", help="report engine, images, backends; run an isolation self-test")
    add_json_argument(d, "the report (facts, self-tests, ok)")
    d.add_argument("--no-selftest", action="store_true", help="facts only (exit 0 whatever they say)")
    add_quiet_argument(d)
    d.set_defaults(fn=_doctor)
    s = sub.add_parser("serve", help="serve sandboxes over HTTP (create/exec/files/fork/close)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8766)
    s.add_argument("--token", action="append", help="bearer token a client must send (repeatable)")
    s.add_argument("--token-file", help="file with one token per line")
    s.add_argument("--backend", default="auto", choices=["auto", "docker", "bwrap"])
    s.add_argument("--image", default=None)
    s.add_argument("--max-request-mb", type=int, default=64)
    s.add_argument("--max-sandboxes", type=int, default=32, help="per client")
    s.add_argument("--max-execs", type=int, default=8, help="concurrent execs per client")
    s.add_argument("--idle-ttl", type=float, default=1800.0, help="close sandboxes idle this long (s)")
    add_quiet_argument(s)
    s.set_defaults(fn=_serve)
    r = sub.add_parser("reap", help="remove leaked sandboxes (dead owner or older than --max-age)")
    r.add_argument("--max-age", type=float, default=24 * 3600, help="seconds (default one day)")
    r.add_argument("--include-live", action="store_true",
                   help="also remove old containers whose owner process here is still running")
    add_json_argument(r, "the removed sandboxes")
    add_quiet_argument(r)
    r.set_defaults(fn=_reap)
    args = parser.parse_args(argv)
    return int(args.fn(args))

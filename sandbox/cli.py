"""``turngym sandbox …``: build-image, doctor, serve, reap."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence


def _build_image(args: argparse.Namespace) -> int:
    from turngym.sandbox.base import SandboxUnavailable
    from turngym.sandbox.image import build_dockerfile_image, ensure_image, ensure_rootfs

    t0 = time.monotonic()
    try:
        if args.dockerfile:
            tag = build_dockerfile_image(log=print)
            print(f"image {tag} ({time.monotonic() - t0:.1f}s)")
            return 0
        rootfs = ensure_rootfs(rebuild=args.rebuild, log=print)
        print(f"rootfs {rootfs} ({time.monotonic() - t0:.1f}s)")
        if not args.rootfs_only:
            from turngym.sandbox.docker import engine_problem

            why = engine_problem()
            if why:
                print(f"skipping docker import: {why}", file=sys.stderr)
                return 0 if args.allow_no_docker else 1
            tag = ensure_image(rebuild=args.rebuild, log=print)
            print(f"image {tag} ({time.monotonic() - t0:.1f}s)")
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from turngym.sandbox.doctor import report

    rep = report(run_selftest=not args.no_selftest)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        for key, value in rep.facts.items():
            print(f"{key:20s} {value}")
        for backend, checks in rep.selftests.items():
            print(f"\nself-test [{backend}]")
            for c in checks:
                print(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:24s} {c.detail}")
        print("\n" + ("OK: at least one backend isolates correctly" if rep.ok else
                      "NOT OK: no backend passed the isolation self-test; see above "
                      "(start dockerd, `apt-get install bubblewrap`, `turngym sandbox build-image`)"))
    return 0 if (rep.ok or args.no_selftest) else 1


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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"turngym sandbox service on http://{args.host}:{args.port} (backend {args.backend}, "
          f"{'token required' if tokens else 'no token: localhost only'})", flush=True)
    serve(cfg)
    return 0


def _reap(args: argparse.Namespace) -> int:
    from turngym.sandbox.bwrap import reap_bwrap
    from turngym.sandbox.docker import engine_problem, reap

    removed = reap_bwrap()
    if engine_problem() is None:
        removed += reap(max_age_s=args.max_age, spare_live_owners=not args.include_live)
    print("\n".join(removed) if removed else "nothing to reap")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``turngym sandbox``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="turngym sandbox", description="Sandboxes for model-written code.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build-image", help="debootstrap the offline rootfs and `docker import` it (cached)")
    b.add_argument("--rebuild", action="store_true", help="rebuild even if cached")
    b.add_argument("--rootfs-only", action="store_true", help="build the rootfs (bubblewrap) but do not import it")
    b.add_argument("--allow-no-docker", action="store_true", help="exit 0 when no engine is there to import into")
    b.add_argument("--dockerfile", action="store_true", help="build FROM python:3.11-slim instead (needs a registry)")
    b.set_defaults(fn=_build_image)
    d = sub.add_parser("doctor", help="report engine, images, backends; run an isolation self-test")
    d.add_argument("--json", action="store_true")
    d.add_argument("--no-selftest", action="store_true")
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
    s.set_defaults(fn=_serve)
    r = sub.add_parser("reap", help="remove leaked sandboxes (dead owner or older than --max-age)")
    r.add_argument("--max-age", type=float, default=24 * 3600, help="seconds (default one day)")
    r.add_argument("--include-live", action="store_true",
                   help="also remove old containers whose owner process here is still running")
    r.set_defaults(fn=_reap)
    args = parser.parse_args(argv)
    return int(args.fn(args))

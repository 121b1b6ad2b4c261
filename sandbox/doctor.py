"""``turngym sandbox doctor``: what is available here, and does isolation actually hold?

:func:`isolation_selftest` runs a handful of hostile probes in a started sandbox and returns one
:class:`Check` per property (non-root, no capabilities, read-only root, no network, timeout kills,
setsid escapee killed, pids limit). :func:`report` gathers engine / image / rootfs / backend
facts plus the self-test of each usable backend; ``ok`` is true when at least one backend passes
every check.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from typing import Any

from turngym.sandbox.base import Sandbox, SandboxError, SandboxLimits
from turngym.sandbox.bwrap import bwrap_problem
from turngym.sandbox.engine import docker_client, engine_problem
from turngym.sandbox.factory import open_sandbox
from turngym.sandbox.image import cache_dir, image_exists, image_tag, rootfs_path

SELFTEST_LIMITS = SandboxLimits(memory_mb=128, pids=32, disk_mb=16, inodes=1000, exec_timeout_s=5)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    facts: dict[str, Any] = field(default_factory=dict)
    selftests: dict[str, list[Check]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return any(checks and all(c.ok for c in checks) for checks in self.selftests.values())

    def to_dict(self) -> dict:
        return {"ok": self.ok, "facts": self.facts,
                "selftests": {k: [dataclasses.asdict(c) for c in v] for k, v in self.selftests.items()}}


def isolation_selftest(sb: Sandbox) -> list[Check]:
    """Probe ``sb``; every check states what it saw."""
    checks: list[Check] = []

    def probe(name: str, command: str, good, timeout: float = 5.0) -> None:
        try:
            r = sb.exec(command, timeout=timeout)
            ok, detail = good(r)
        except SandboxError as exc:
            ok, detail = False, f"sandbox error: {exc}"
        checks.append(Check(name, bool(ok), detail))

    probe("non-root user", "id -u", lambda r: (r.stdout.strip() not in ("", "0"), f"uid {r.stdout.strip()}"))
    probe("no capabilities", "grep CapEff /proc/self/status",
          lambda r: (r.stdout.split()[-1:] == ["0000000000000000"], r.stdout.strip()))
    probe("read-only root", "touch /usr/turngym-probe 2>&1; echo rc=$?",
          lambda r: ("Read-only" in r.stdout or "Permission denied" in r.stdout, r.stdout.strip()[:120]))
    probe("no network", "python3 -c \"import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
          " print('CONNECTED')\nexcept OSError as e:\n print('blocked', e.errno)\"",
          lambda r: ("blocked" in r.stdout, r.stdout.strip()))
    probe("timeout kills", "sleep 30", lambda r: (r.timed_out and r.duration < 10, f"timed_out={r.timed_out} "
                                                  f"after {r.duration:.2f}s"), timeout=1.0)
    probe("setsid escapee killed", "setsid sleep 300 > /dev/null 2>&1 < /dev/null & sleep 0.1; echo started", lambda r: (True, ""))
    if checks[-1].ok:
        checks.pop()
        probe("setsid escapee killed", "ps -u 10001 -o comm= | grep -c '^sleep$' || true",
              lambda r: (r.stdout.strip() == "0", f"{r.stdout.strip()} sleep process(es) left"))
    probe("pids limit", "python3 -c \"import os\nn=0\ntry:\n while n < 10000:\n  if os.fork()==0:\n"
          "   import time; time.sleep(5); os._exit(0)\n  n+=1\nexcept OSError:\n pass\nprint(n)\"",
          lambda r: (r.stdout.strip().isdigit() and int(r.stdout.strip()) < 1000, f"forked {r.stdout.strip() or '?'}"
                     f" children (limit {sb.limits.pids})"), timeout=8.0)
    return checks


def report(run_selftest: bool = True) -> Report:
    rep = Report()
    f = rep.facts
    f["cache_dir"] = str(cache_dir())
    f["image_tag"] = image_tag()
    f["rootfs"] = str(rootfs_path()) if (rootfs_path() / ".turngym-recipe").is_file() else None
    f["binaries"] = {b: shutil.which(b) for b in ("dockerd", "docker", "bwrap", "debootstrap")}
    why = engine_problem()
    f["docker_engine"] = "ok" if why is None else why
    if why is None:
        client = docker_client()
        ver = client.version()
        f["docker_version"] = ver.get("Version")
        f["docker_security"] = client.info().get("SecurityOptions")
        f["image_present"] = image_exists(client=client)
        f["leaked_containers"] = len(client.api.containers(all=True, filters={"label": "turngym.sandbox=1"}))
    f["bwrap"] = bwrap_problem() or "ok"
    if run_selftest:
        backends = (["docker"] if why is None and f.get("image_present") else []) + \
                   (["bwrap"] if f["bwrap"] == "ok" else [])
        for backend in backends:
            try:
                with open_sandbox(backend=backend, limits=SELFTEST_LIMITS) as sb:
                    if backend == "bwrap":
                        f["bwrap_enforcement"] = getattr(sb, "enforcement", "?")
                    rep.selftests[backend] = isolation_selftest(sb)
            except SandboxError as exc:
                rep.selftests[backend] = [Check("start", False, str(exc))]
    return rep

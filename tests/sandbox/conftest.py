"""Sandbox test fixtures: real Docker engine, real bubblewrap, real HTTP service.

Docker-marked tests skip with the reason when no engine answers (or the image is missing), unless
``TURNGYM_REQUIRE_DOCKER=1`` (set by ``.ci/run``): then they FAIL, so CI cannot silently skip
them. The same variable makes the bubblewrap tests mandatory. After the session no container
labelled by this process and no bubblewrap host dir of this process may remain.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from turngym.sandbox.base import SandboxLimits

REQUIRE = os.environ.get("TURNGYM_REQUIRE_DOCKER") == "1"

SMALL = SandboxLimits(memory_mb=128, pids=64, disk_mb=16, inodes=2000, exec_timeout_s=10,
                      episode_timeout_s=600, output_bytes=4096)
"""Small limits keep the hostile suite fast: memory bomb vs 128 MB, disk fill vs 16 MB."""

_docker_reason: str | None | bool = False
_bwrap_reason: str | None | bool = False


def docker_problem() -> str | None:
    global _docker_reason
    if _docker_reason is False:
        from turngym.sandbox.docker import engine_problem

        why = engine_problem()
        if why is None:
            from turngym.sandbox.image import image_exists, image_tag

            if not image_exists():
                try:  # cheap when the rootfs is cached (docker import, ~3 s); CI builds it beforehand
                    from turngym.sandbox.image import ensure_image, rootfs_path

                    if (rootfs_path() / ".turngym-recipe").is_file():
                        ensure_image()
                    else:
                        why = f"sandbox image {image_tag()} is missing: run `turngym sandbox build-image`"
                except Exception as exc:
                    why = f"sandbox image {image_tag()} could not be imported: {exc}"
        _docker_reason = why
    return _docker_reason  # type: ignore[return-value]


def bwrap_reason() -> str | None:
    global _bwrap_reason
    if _bwrap_reason is False:
        from turngym.sandbox.bwrap import bwrap_problem

        _bwrap_reason = bwrap_problem()
    return _bwrap_reason  # type: ignore[return-value]


def need(backend: str) -> None:
    """Skip (or, under TURNGYM_REQUIRE_DOCKER=1, fail) when ``backend`` cannot run here."""
    why = None
    if backend in ("docker", "remote"):
        why = docker_problem() if backend == "docker" else (docker_problem() and bwrap_reason())
    elif backend == "bwrap":
        why = bwrap_reason()
    if why:
        msg = f"{backend} sandbox backend unavailable: {why}"
        if REQUIRE:
            pytest.fail(msg + " (TURNGYM_REQUIRE_DOCKER=1: sandbox tests must run)")
        pytest.skip(msg)


def backend_params(*names: str) -> list:
    return [pytest.param(n, marks=[pytest.mark.docker] if n == "docker" else [], id=n) for n in names]


@pytest.fixture(scope="session")
def service():
    """A real sandbox service on 127.0.0.1 (Docker backend if an engine answers, else bwrap)."""
    need("remote")
    from turngym.sandbox.base import SandboxConfig
    from turngym.sandbox.server import ServerConfig, ServiceThread

    backend = "docker" if docker_problem() is None else "bwrap"
    cfg = ServerConfig(port=0, tokens=["test-token"], sandbox=SandboxConfig(backend=backend, limits=SMALL),
                       max_request_bytes=4 << 20, max_sandboxes=64, max_concurrent_execs=16)
    with ServiceThread(cfg) as svc:
        yield svc


def open_backend(backend: str, request: pytest.FixtureRequest | None = None, limits: SandboxLimits = SMALL):
    need(backend)
    if backend == "docker":
        from turngym.sandbox.docker import DockerSandbox

        return DockerSandbox(limits=limits)
    if backend == "bwrap":
        from turngym.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(limits=limits)
    if backend == "remote":
        from turngym.sandbox.remote import RemoteSandbox

        svc = request.getfixturevalue("service")
        return RemoteSandbox(svc.url, token="test-token", limits=limits)
    raise ValueError(backend)


@pytest.fixture
def make_sandbox(request):
    """``make_sandbox(backend, **limit_overrides)`` -> started sandbox, closed after the test."""
    made = []

    def make(backend: str, **changes):
        import dataclasses

        sb = open_backend(backend, request, dataclasses.replace(SMALL, **changes))
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.close()


def _bwrap_state() -> tuple[set[str], set[str], set[str]]:
    dirs = {d.name[len("turngym-bwrap-"):] for d in Path(tempfile.gettempdir()).glob("turngym-bwrap-*")}
    mounts = {line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if "/turngym-bwrap-" in line.split()[1]}
    cgroups = {str(c) for c in Path("/sys/fs/cgroup").glob("*/turngym-bwrap/*") if c.is_dir()}
    return dirs, mounts, cgroups


@pytest.fixture(scope="module", autouse=True)
def no_leaks(request):
    """After each test module: no container it created (labelled with the module) is left, and
    no bubblewrap host dir, tmpfs mount or cgroup appeared that is still there — the host is
    unchanged. (Per module, so sandboxes other test directories keep warm in the same pytest
    process are not counted.)"""
    from turngym.sandbox import docker as dk

    tag = request.module.__name__.rsplit(".", 1)[-1]
    dk.EXTRA_LABELS["turngym.sandbox.test"] = tag
    before = _bwrap_state()
    yield
    dk.EXTRA_LABELS.pop("turngym.sandbox.test", None)
    leftovers = []
    if docker_problem() is None:
        leftovers = dk.docker_client().api.containers(
            all=True, filters={"label": [f"turngym.sandbox.run_id={dk.RUN_ID}", f"turngym.sandbox.test={tag}"]})
    after = _bwrap_state()
    new = [sorted(a - b) for a, b in zip(after, before)]
    assert not leftovers, f"sandbox containers leaked by {tag}: {[c['Names'] for c in leftovers]}"
    assert new == [[], [], []], f"bubblewrap leftovers (dirs, mounts, cgroups) of {tag}: {new}"


LEFTOVERS_PY = r"""
import os
anc, p = set(), os.getpid()
while p > 1:
    anc.add(p)
    p = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
out = []
for d in os.listdir("/proc"):
    if not d.isdigit() or int(d) in anc or int(d) == 1:
        continue
    try:
        st = dict(l.split(":", 1) for l in open(f"/proc/{d}/status").read().splitlines() if ":" in l)
    except OSError:
        continue
    if st["Uid"].split()[0] == "10001" or st["State"].split()[0] == "Z":
        out.append(st["Name"].strip() + ":" + st["State"].split()[0])
print(" ".join(out))
"""


@pytest.fixture(scope="session")
def leftovers():
    """``leftovers(sb)`` -> names of sandbox-user processes (or zombies) other than the probe itself."""

    def check(sb) -> list[str]:
        r = sb.exec(["python3", "-c", LEFTOVERS_PY], timeout=10)
        assert r.exit_code == 0, r
        return r.stdout.split()

    return check


@pytest.fixture(scope="module", params=backend_params("docker", "bwrap", "remote"))
def any_sb(request):
    """One sandbox per backend (docker, bwrap, remote) shared by a module's tests, with SMALL limits."""
    sb = open_backend(request.param, request)
    sb.kind = request.param
    yield sb
    sb.close()


@pytest.fixture(params=backend_params("docker", "bwrap"))
def local_backend(request) -> str:
    need(request.param)
    return request.param


@pytest.fixture(scope="session")
def need_backend():
    """``need_backend("docker")`` skips (or fails under TURNGYM_REQUIRE_DOCKER=1) when unavailable."""
    return need


@pytest.fixture(params=backend_params("docker", "bwrap", "remote"))
def backend(request) -> str:
    need(request.param)
    return request.param

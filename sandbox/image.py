"""Offline sandbox images: a debootstrap'ed Debian root filesystem, imported into Docker.

Contract:

- :func:`ensure_rootfs` returns the path of a minimal Debian root filesystem (python3, pytest,
  git, procps, a ``sandbox`` user with uid/gid :data:`SANDBOX_UID`), building it with
  ``debootstrap`` from the host's configured Debian apt mirror if it is not cached. It is cached
  under ``~/.cache/turngym/sandbox/rootfs-<hash>`` where ``<hash>`` is a content hash of the
  recipe (:data:`RECIPE` + the post-processing script), so editing the recipe rebuilds it.
  Both backends use it: bubblewrap binds it read-only as ``/``; Docker imports it.
- :func:`ensure_image` returns a Docker image tag ``turngym-sandbox:py-<hash>``; if the engine
  lacks it, the cached rootfs is tarred into ``docker import`` (building the rootfs first if
  needed). No registry is contacted.
- :func:`build_dockerfile_image` is the alternative for hosts whose registry is reachable
  (``FROM python:3.11-slim``); it is never used implicitly.
- Builds take an exclusive file lock, so concurrent processes build once; a rootfs appears
  atomically (built in a temp dir, then renamed).

Every failure raises :class:`~turngym.sandbox.base.SandboxUnavailable` with the cause and the
fix (e.g. "run as root", "set TURNGYM_DEBIAN_MIRROR").
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from turngym.sandbox.base import SandboxUnavailable
from turngym.sandbox.engine import docker_client

SANDBOX_UID = 10001
"""uid/gid of the unprivileged ``sandbox`` user that runs all model code."""

IMAGE_REPO = "turngym-sandbox"

RECIPE: dict = {
    "suite": "bookworm",
    "variant": "minbase",
    "include": ["python3", "python3-pytest", "git", "ca-certificates", "procps"],
    "user": SANDBOX_UID,
    "env": {"LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
    "recipe_version": 1,
}

# Run on the host against the freshly debootstrapped tree ($1). Part of the content hash.
POSTPROCESS = r"""
set -eu
R="$1"
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* \
       "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/*
grep -q '^sandbox:' "$R/etc/passwd" || echo "sandbox:x:10001:10001:sandbox:/work:/bin/sh" >> "$R/etc/passwd"
grep -q '^sandbox:' "$R/etc/group" || echo "sandbox:x:10001:" >> "$R/etc/group"
grep -q '^sandbox:' "$R/etc/shadow" || echo "sandbox:*:19000:0:99999:7:::" >> "$R/etc/shadow"
mkdir -p "$R/work"
chown 10001:10001 "$R/work"
chmod 0755 "$R/work"
printf '[safe]\n\tdirectory = *\n[user]\n\tname = sandbox\n\temail = sandbox@turngym.invalid\n' > "$R/etc/gitconfig"
"""

DOCKERFILE = """\
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git procps \\
 && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir pytest \\
 && groupadd -g 10001 sandbox && useradd -u 10001 -g 10001 -d /work -M sandbox \\
 && mkdir -p /work && chown 10001:10001 /work
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
CMD ["/bin/sh"]
"""

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def recipe_hash() -> str:
    """12-hex content hash of :data:`RECIPE` and :data:`POSTPROCESS` (not of the mirror)."""
    blob = json.dumps(RECIPE, sort_keys=True) + "\n" + POSTPROCESS
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def image_tag() -> str:
    """The Docker tag of the debootstrap image for the current recipe."""
    return f"{IMAGE_REPO}:py-{recipe_hash()}"


def cache_dir() -> Path:
    """``$TURNGYM_CACHE/sandbox`` (default ``~/.cache/turngym/sandbox``)."""
    root = os.environ.get("TURNGYM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "turngym")
    return Path(root) / "sandbox"


def rootfs_path() -> Path:
    """Where the rootfs for the current recipe lives (whether or not it is built)."""
    return cache_dir() / f"rootfs-{recipe_hash()}"


def debian_mirror() -> str:
    """The Debian mirror URL: ``$TURNGYM_DEBIAN_MIRROR``, else the first non-security ``deb``
    source in ``/etc/apt/sources.list`` or ``/etc/apt/sources.list.d/*``."""
    env = os.environ.get("TURNGYM_DEBIAN_MIRROR")
    if env:
        return env
    candidates: list[str] = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not path.is_file() or path.name.endswith((".disabled", ".save")) or "disabled" in path.name:
            continue
        text = path.read_text(errors="replace")
        candidates += re.findall(r"^\s*URIs:\s*(\S+)", text, flags=re.MULTILINE)  # deb822
        candidates += re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.MULTILINE)  # one-line
    for url in candidates:
        if url.startswith(("http://", "https://", "file:/")) and "security" not in url and "debian" in url:
            return url
    raise SandboxUnavailable(
        "no Debian mirror found in /etc/apt/sources.list(.d); set TURNGYM_DEBIAN_MIRROR, "
        "e.g. TURNGYM_DEBIAN_MIRROR=http://deb.debian.org/debian"
    )


@contextmanager
def _build_lock():
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_rootfs(*, rebuild: bool = False, log: Log = _quiet) -> Path:
    """Return the cached rootfs for the current recipe, building it with debootstrap if missing."""
    target = rootfs_path()
    if target.is_dir() and (target / ".turngym-recipe").is_file() and not rebuild:
        if target.stat().st_mode & 0o777 != 0o755 and os.access(target, os.W_OK):
            target.chmod(0o755)  # rootfs built by an earlier version with mkdtemp's 0700
        return target
    with _build_lock():
        if target.is_dir() and (target / ".turngym-recipe").is_file() and not rebuild:
            return target
        _debootstrap(target, log)
    return target


def _debootstrap(target: Path, log: Log) -> None:
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            f"building the sandbox rootfs needs root (debootstrap); run `sudo turngym sandbox build-image` "
            f"once, or copy a built rootfs to {target}"
        )
    if not shutil.which("debootstrap"):
        raise SandboxUnavailable("debootstrap is not installed; run `apt-get install -y debootstrap`")
    mirror = debian_mirror()
    tmp = Path(tempfile.mkdtemp(prefix="rootfs-build-", dir=cache_dir()))
    tmp.chmod(0o755)  # it becomes "/" of every sandbox: mkdtemp's 0700 would lock the sandbox user out
    cmd = [
        "debootstrap", f"--variant={RECIPE['variant']}", "--include=" + ",".join(RECIPE["include"]),
        RECIPE["suite"], str(tmp), mirror,
    ]
    log(f"+ {' '.join(cmd)}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise SandboxUnavailable(f"debootstrap from {mirror} failed (exit {proc.returncode}):\n{tail}\n"
                                     "check the mirror (TURNGYM_DEBIAN_MIRROR) and network access to it")
        subprocess.run(["sh", "-c", POSTPROCESS, "postprocess", str(tmp)], check=True)
        (tmp / ".turngym-recipe").write_text(json.dumps({"hash": recipe_hash(), "recipe": RECIPE, "mirror": mirror}))
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
        log(f"rootfs ready: {target}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _docker_client(client=None):
    return client if client is not None else docker_client()


def image_exists(tag: str | None = None, client=None) -> bool:
    import docker.errors

    try:
        _docker_client(client).images.get(tag or image_tag())
        return True
    except docker.errors.ImageNotFound:
        return False
    except Exception as exc:  # engine unreachable / API error: typed, with the fix
        raise SandboxUnavailable(f"cannot query the Docker engine for image {tag or image_tag()}: {exc}; "
                                 "is dockerd running (`docker info`)?") from exc


def ensure_image(*, rebuild: bool = False, client=None, log: Log = _quiet) -> str:
    """Return the tag of the debootstrap sandbox image, importing (and building) it if missing."""
    tag = image_tag()
    cli = _docker_client(client)
    if not rebuild and image_exists(tag, cli):
        return tag
    rootfs = ensure_rootfs(rebuild=rebuild, log=log)
    with _build_lock():
        if not rebuild and image_exists(tag, cli):
            return tag
        log(f"+ docker import {rootfs} {tag}")
        changes = [f"ENV {k}={v}" for k, v in RECIPE["env"].items()] + ['CMD ["/bin/sh"]', "WORKDIR /work"]
        with tempfile.TemporaryFile(dir=cache_dir()) as fh:  # streamed, not held in memory
            _tar_dir(rootfs, fh)
            fh.seek(0)
            try:
                cli.api.import_image_from_data(fh, repository=IMAGE_REPO, tag=f"py-{recipe_hash()}", changes=changes)
            except Exception as exc:  # docker.errors.APIError and transport errors
                raise SandboxUnavailable(f"docker import of {rootfs} as {tag} failed: {exc}") from exc
        if not image_exists(tag, cli):
            raise SandboxUnavailable(f"docker import reported success but {tag} is missing")
    log(f"image ready: {tag}")
    return tag


def _tar_dir(root: Path, fileobj) -> None:
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for entry in sorted(os.listdir(root)):
            if entry == ".turngym-recipe":
                continue
            tar.add(root / entry, arcname=entry, recursive=True)


def build_dockerfile_image(*, client=None, log: Log = _quiet) -> str:
    """Build ``turngym-sandbox:slim-<hash>`` from :data:`DOCKERFILE` (needs a reachable registry)."""
    tag = f"{IMAGE_REPO}:slim-{hashlib.sha256(DOCKERFILE.encode()).hexdigest()[:12]}"
    cli = _docker_client(client)
    if image_exists(tag, cli):
        return tag
    log(f"+ docker build -t {tag} (FROM python:3.11-slim)")
    try:
        cli.images.build(fileobj=io.BytesIO(DOCKERFILE.encode()), tag=tag, rm=True, forcerm=True)
    except Exception as exc:
        raise SandboxUnavailable(
            f"docker build of {tag} failed ({exc}); without registry access use "
            "`turngym sandbox build-image` (debootstrap, offline)"
        ) from exc
    return tag

"""Moving files in and out of sandboxes as in-memory tar archives (never touching host paths).

Contract:

- :func:`check_rel_path` accepts only relative paths without ``..`` components, NUL bytes or
  backslash tricks, and returns the normalised form; anything else raises ``ValueError`` quoting
  the path (the *caller* passed it: host-side bug, not sandbox data).
- :func:`files_to_tar` builds an archive of regular files (mode 0644, owned by ``uid``).
- :func:`tar_to_files` parses an archive produced *inside* a sandbox (so hostile) into
  ``{relative path: bytes}``: only regular files are kept; absolute names, ``..`` components,
  symlinks, hard links, devices and FIFOs are dropped, and nothing is ever written to disk.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from collections.abc import Mapping

from turngym.sandbox.base import SandboxError


def check_rel_path(path: str) -> str:
    """Validate and normalise a sandbox-relative path (see module docstring)."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"sandbox path must be a non-empty string without NUL bytes, got {path!r}")
    if path.startswith("/"):
        raise ValueError(f"sandbox path {path!r} is absolute; pass it relative to the work dir, e.g. {path.lstrip('/')!r}")
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../") or ".." in path.split("/"):
        raise ValueError(f"sandbox path {path!r} contains '..'; paths must stay inside the work dir")
    return norm


def files_to_tar(files: Mapping[str, bytes], *, uid: int = 10001) -> bytes:
    """An uncompressed tar of ``files`` (regular files, parents implied)."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            name = check_rel_path(path)
            if isinstance(content, str):
                content = content.encode()
            if not isinstance(content, (bytes, bytearray, memoryview)):
                raise TypeError(f"put_files content for {path!r} must be bytes, got {type(content).__name__}")
            content = bytes(content)
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.uid = info.gid = uid
            info.mtime = now
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def safe_member_name(name: str) -> str | None:
    """The normalised relative name of an archive member, or ``None`` if it would escape."""
    if not name or "\0" in name or name.startswith("/") or "\\" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def tar_to_files(data: bytes) -> dict[str, bytes]:
    """Regular files of an untrusted archive as ``{relative path: bytes}`` (see module docstring)."""
    out: dict[str, bytes] = {}
    if not data:
        return out
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                name = safe_member_name(member.name)
                if name is None:
                    continue
                fh = tar.extractfile(member)
                if fh is not None:
                    out[name] = fh.read()
    except tarfile.TarError as exc:
        raise SandboxError(f"the sandbox returned an unreadable archive: {exc}") from exc
    return out

"""File content hashes (sha256) for reproducibility manifests, cached so big files hash once.

:func:`file_sha256` remembers each file's digest under its resolved path, size and modification
time (ns) in ``$TURNGYM_CACHE/file-hashes.json`` (default ``~/.cache/turngym``): a 500 MB model is
read once, and again only when it changes. A leaf utility: it imports nothing of turngym, so every
layer (envs, agents, training) may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

_LOCK = threading.Lock()
_MEMO: dict[Path, dict[str, dict]] = {}
"""Per cache file: ``{resolved path: {"size", "mtime_ns", "sha256"}}`` as last read or written."""


def cache_file() -> Path:
    """``$TURNGYM_CACHE/file-hashes.json``; ``$TURNGYM_CACHE`` defaults to ``$XDG_CACHE_HOME/turngym``
    or ``~/.cache/turngym``."""
    if os.environ.get("TURNGYM_CACHE"):
        root = Path(os.environ["TURNGYM_CACHE"]).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "turngym"
    return root / "file-hashes.json"


def stream_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of the file at ``path``, read in 1 MiB blocks, uncached."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load(store: Path) -> dict[str, dict]:
    try:
        data = json.loads(store.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of the file at ``path``, from the cache when its size and mtime are unchanged.

    Raises ``FileNotFoundError`` (quoting the path) when there is no such file. A cache that cannot
    be written (read-only home) only costs rehashing next time.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"cannot hash {str(path)!r}: no such file")
    stat = resolved.stat()
    key = str(resolved)
    store = cache_file()
    with _LOCK:
        if store not in _MEMO:
            _MEMO[store] = _load(store)
        entry = _MEMO[store].get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return str(entry["sha256"])
    digest = stream_sha256(resolved)
    with _LOCK:
        merged = {**_load(store), **_MEMO[store]}  # other processes' entries too
        merged[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        _MEMO[store] = merged
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=store.parent, prefix=".file-hashes-")
            with os.fdopen(fd, "w") as f:
                json.dump(merged, f)
            os.replace(tmp, store)
        except OSError:
            pass
    return digest


def tree_sha256(root: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under the folder ``root``, sorted; hidden
    files and folders (``.cache``, ``.git``…) left out."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"cannot hash {str(root)!r}: no such folder")
    out = {}
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = file_sha256(path)
    return out


def text_sha256(text: str) -> str:
    """The sha256 (hex) of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode()).hexdigest()

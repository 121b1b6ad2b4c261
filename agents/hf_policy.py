"""A :class:`~turngym.agents.base.Policy` on a Hugging Face causal LM, with our own decode loop.

:class:`HFPolicy` runs batched generation over ``model(...)`` with a KV cache instead of calling
``model.generate``, because the learner needs, for every sampled token, its exact log-probability
under the model's raw distribution, and the rollout needs per-row stopping (EOS, stop ids, stop
strings) with a per-row ``finish_reason``. Greedy output is token-for-token that of
``model.generate(do_sample=False)`` on the same prompts (left padding, the same position ids);
``bench/policy.py`` measures the throughput of both in one run.

The decode loop, per batch:

1. **Prefill.** Prompts are left-padded into one ``[B, L]`` tensor with an attention mask;
   position ids count real tokens only (``cumsum(mask) - 1``, pads at 0, as ``generate`` does).
   Only the last position's logits are computed (``logits_to_keep=1``).
2. **Step.** From the last logits (cast to float32): ``logsumexp`` once, the next token (arg-max, or
   a draw from the tempered, top-k/top-p-truncated distribution with the call's own seeded
   ``torch.Generator``), and its raw log-prob ``logit[token] - logsumexp``.
3. **Stop.** A row stops at an EOS id, a stop id, a stop string (matched on the decoded tail of its
   generated tokens) or ``max_new_tokens``. Finished rows are **dropped from the batch** (KV cache,
   mask and positions are index-selected), so later steps only pay for rows still running —
   ``generate`` keeps computing finished rows until the longest one ends.
4. Feed the new tokens (one per running row) with the grown mask and the next positions.

**Cross-turn KV reuse.** Inside :meth:`HFPolicy.kv_session` (the rollout engine opens one per
``collect`` call) every row's KV cache is kept when it finishes, and a later prompt that extends a
kept sequence — the next turn of the same episode, or a branch forked from it — resumes from it:
only the new tokens are prefilled (:mod:`turngym.agents.kv_reuse`). Results equal a full prefill up
to float round-off.

:meth:`HFPolicy.score` gives teacher-forced log-probs of given continuations: one forward through
the decoder body for hidden states, then the output projection applied only at the positions that
predict a continuation token, a chunk of positions at a time, so no ``[batch, seq, vocab]`` tensor
is ever built. :func:`~turngym.agents.token_stats.chunked_target_logprobs` is the differentiable core, for learners.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.base import Generation, SamplingParams, TokenizerPolicy, check_prompt_ids
from turngym.agents.kv_reuse import (
    KVReuseStats,
    PrefixKVStore,
    assemble_batch_cache,
    cache_layers,
    extract_row,
)
from turngym.agents.token_stats import chunked_target_logprobs

# Extra decoded tokens kept in front of the longest stop string when matching stop strings on the
# tail of a row (covers tokens that decode to nothing, e.g. skipped special tokens).
_STOP_WINDOW_SLACK = 8


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on a CUDA device that supports it, float32 otherwise (CPU included)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _sample_rows(probs: torch.Tensor, generators: list[torch.Generator | None]) -> torch.Tensor:
    """One token per row of ``probs [B, V]``, row ``b`` drawn with ``generators[b]`` (inverse CDF of one
    uniform). A ``None`` generator (a finished row kept for the batch shape) draws nothing. Tokens of
    probability 0 are never chosen."""
    uniforms = torch.tensor(
        [float(torch.rand((), generator=g, device=g.device)) if g is not None else 0.5 for g in generators],
        dtype=probs.dtype, device=probs.device,
    )
    cdf = probs.cumsum(dim=-1)
    targets = (uniforms * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, targets, right=True).squeeze(1).clamp_max(probs.shape[-1] - 1)


def _filter_top_k_top_p(scores: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to ``-inf``) the tokens outside top-k and outside the top-p nucleus; always keeps the best."""
    vocab = scores.shape[-1]
    if 0 < top_k < vocab:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = sorted_scores.softmax(dim=-1)
        # drop a token when the mass strictly before it already reaches top_p (the first one never)
        drop = (probs.cumsum(dim=-1) - probs) >= top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(1, order, sorted_scores)
    return scores


def cache_kwarg_name(model: Any) -> str:
    """The forward argument that takes a KV cache: ``cache`` where transformers renamed it (the old
    ``past_key_values`` is deprecated for removal in 5.40), else ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT forwards **kwargs
    try:
        parameters = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):  # a forward without an inspectable signature
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix shared by every row, leaving at least one token of each row."""
    if not rows:
        return 0
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows[1:]):
        n += 1
    return n


class HFPolicy(TokenizerPolicy):
    """Batched generation and scoring for a Hugging Face causal LM (see the module docstring).

    Args:
        model: a ``transformers`` causal LM (``AutoModelForCausalLM``). It is moved to ``device`` and
            ``dtype`` **in place** (``nn.Module.to``), so a learner holding the same module trains the
            weights this policy samples from — no weight sync needed on one device.
        tokenizer: its tokenizer. ``pad_token_id`` defaults to the EOS id when unset.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
        dtype: parameter dtype; ``None`` picks bf16 on a CUDA device with bf16 support, else float32.
            Logits are always cast to float32 before log-softmax and sampling.
        max_batch_size: split ``generate``/``score`` calls into micro-batches of at most this many rows.
        score_chunk_size: positions per output-projection chunk in :meth:`score`.
        prune_finished: drop finished rows from the running batch (faster; greedy results do not
            depend on it beyond float round-off).
        share_prefix: prefill identical prompts once, and the prefix common to a batch's prompts
            once (see :meth:`_prefill`), the latter when it is at least ``min_shared_prefix``
            tokens. Results equal the plain prefill up to float round-off.
        kv_reuse: keep finished rows' KV caches inside :meth:`kv_session` and resume later prompts
            from their longest stored prefix.
        kv_reuse_bytes: memory budget of that store (least-recently-used entries are evicted).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        *,
        max_batch_size: int = 64,
        score_chunk_size: int = 1024,
        prune_finished: bool = True,
        share_prefix: bool = True,
        min_shared_prefix: int = 16,
        kv_reuse: bool = True,
        kv_reuse_bytes: int = 4 * 2**30,
    ):
        super().__init__(tokenizer, getattr(model, "generation_config", None))
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        first = next(model.parameters())
        if first.device != self.device or first.dtype != self.dtype:
            model.to(device=self.device, dtype=self.dtype)
        self.model = model
        self.max_batch_size = int(max_batch_size)
        self.score_chunk_size = int(score_chunk_size)
        self.prune_finished = prune_finished
        self.share_prefix, self.min_shared_prefix = share_prefix, max(1, int(min_shared_prefix))
        self.shared_prefix_tokens = 0
        """Prompt tokens whose prefill was saved by prefix sharing (a counter, for benchmarks)."""
        self.prefilled_tokens = 0
        """Prompt tokens actually run through the model (padding excluded; a counter, for benchmarks)."""
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_id
        self._head_checked: bool | None = None  # whether decoder+lm_head reproduces model logits
        self._cache_kwarg: str | None = None  # "cache" or "past_key_values", by transformers version
        if kv_reuse_bytes < 0:
            raise ValueError(f"kv_reuse_bytes must be >= 0, got {kv_reuse_bytes!r}")
        self.kv_reuse, self.kv_reuse_bytes = bool(kv_reuse), int(kv_reuse_bytes)
        self._kv_store: PrefixKVStore | None = None
        self.last_kv_stats = KVReuseStats()
        """Counters of the most recently closed :meth:`kv_session`."""

    @contextlib.contextmanager
    def kv_session(self) -> Iterator[PrefixKVStore | None]:
        """Keep and reuse KV caches across ``generate`` calls until the block exits.

        Open it around calls made with the SAME weights (one rollout collection); cached keys and
        values are stale once the weights change, and the store is emptied on exit. Nested
        sessions share the outer store. Yields the store (``None`` when ``kv_reuse`` is off).
        """
        if not self.kv_reuse or self._kv_store is not None:
            yield self._kv_store
            return
        self._kv_store = PrefixKVStore(self.kv_reuse_bytes, self.min_shared_prefix)
        try:
            yield self._kv_store
        finally:
            self.last_kv_stats = self._kv_store.stats
            self._kv_store.clear()
            self._kv_store = None

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        """Generate one continuation per prompt (token ids in, :class:`Generation` out, same order).

        Rows are processed in micro-batches of ``max_batch_size`` in order; with a seed, the draws of
        micro-batch ``i`` come from ``torch.Generator().manual_seed(seed + i)``. With
        ``params.row_seeds``, each row draws from its own generator instead (inverse-CDF sampling
        with one uniform per token from the row's generator), so its sample does not depend on the
        other rows of the call.
        """
        prompts = [self._check_prompt(i, p) for i, p in enumerate(prompts)]
        params.check_rows(len(prompts))
        if not prompts:
            return []
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(7), "little")
        out: list[Generation] = []
        for i, start in enumerate(range(0, len(prompts), self.max_batch_size)):
            gen: torch.Generator | list[torch.Generator] | None = None
            if params.is_greedy:
                pass
            elif params.row_seeds is not None:
                gen = [torch.Generator(device=self.device).manual_seed(params.row_seeds[row] % 2**63)
                       for row in range(start, min(start + self.max_batch_size, len(prompts)))]
            else:
                gen = torch.Generator(device=self.device).manual_seed(seed + i)
            out.extend(
                self._generate_batch(prompts[start : start + self.max_batch_size], params, gen)
            )
        return out

    def _check_prompt(self, index: int, prompt: Sequence[int]) -> list[int]:
        return check_prompt_ids(index, prompt, self.model.config.vocab_size)

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[b, width - len(r) :] = 1
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Run the prompts through the model; returns last-position logits ``[B, V]``, cache, mask, positions.

        Identical prompts (the ``group_size`` rollouts of one task start from the same prompt) are
        prefilled once and their cache rows repeated (``share_prefix`` governs this too).
        """
        if not self.share_prefix:
            return self._prefill_rows(prompts)
        unique: dict[tuple[int, ...], int] = {}
        inverse = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
        if len(unique) == len(prompts):
            return self._prefill_rows(prompts)
        logits, cache, mask, positions = self._prefill_rows([list(key) for key in unique])
        index = torch.tensor(inverse, device=self.device)
        cache.batch_select_indices(index)
        self.shared_prefix_tokens += sum(len(p) for p in prompts) - sum(len(key) for key in unique)
        return logits[index], cache, mask[index], positions[index]

    def _prefill_rows(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """:meth:`_prefill` for distinct prompts.

        With ``share_prefix``, the longest prefix common to every prompt (the system prompt, the
        task statement…) is computed ONCE, its KV cache is repeated over the batch, and only the
        rows' distinct suffixes are prefilled, left-padded after it (the padding sits between prefix
        and suffix, masked out; positions keep counting real tokens).
        """
        if self._kv_store is not None:
            matches = [self._kv_store.lookup(p) for p in prompts]
            if any(n for _, n in matches):
                return self._prefill_resumed(prompts, matches)
        shared = common_prefix_length(prompts) if self.share_prefix and len(prompts) > 1 else 0
        if shared < self.min_shared_prefix:
            input_ids, mask, positions = self._left_pad(prompts)
            cache = self._new_cache()
            logits = self._forward(input_ids, mask, positions, cache)
            self.prefilled_tokens += sum(len(p) for p in prompts)
            return logits, cache, mask, positions
        prefix = torch.tensor([prompts[0][:shared]], dtype=torch.long, device=self.device)
        cache = self._new_cache()
        self._forward(prefix, None, torch.arange(shared, device=self.device)[None], cache)
        cache.batch_repeat_interleave(len(prompts))
        input_ids, suffix_mask, suffix_positions = self._left_pad([p[shared:] for p in prompts])
        mask = torch.cat([suffix_mask.new_ones((len(prompts), shared)), suffix_mask], dim=-1)
        positions = suffix_positions + shared
        logits = self._forward(input_ids, mask, positions, cache)
        self.shared_prefix_tokens += shared * (len(prompts) - 1)
        self.prefilled_tokens += shared + sum(len(p) - shared for p in prompts)
        return logits, cache, mask, positions

    def _prefill_resumed(
        self, prompts: list[list[int]], matches: list[tuple[Any, int]]
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Prefill only what the KV store does not hold: row ``b`` resumes after its ``n_b`` matched tokens.

        Layout per row: ``[pad | matched prefix (n_b) | pad | suffix]``, pads masked out, positions
        ``0..n_b-1`` for the prefix (as when it was computed) and ``n_b, n_b+1, …`` for the suffix.
        """
        cache = self._new_cache()
        prefix_mask = assemble_batch_cache(cache, matches, self.device)
        input_ids, suffix_mask, suffix_positions = self._left_pad(
            [p[n:] for p, (_, n) in zip(prompts, matches)]
        )
        starts = torch.tensor([n for _, n in matches], dtype=torch.long, device=self.device)
        mask = torch.cat([prefix_mask, suffix_mask], dim=-1)
        positions = suffix_positions + starts[:, None]
        logits = self._forward(input_ids, mask, positions, cache)
        self.prefilled_tokens += sum(len(p) - n for p, (_, n) in zip(prompts, matches))
        return logits, cache, mask, positions

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor,
                 cache: Any) -> torch.Tensor:
        """One forward pass that appends to ``cache`` in place; returns the last position's logits ``[B, V]``."""
        if self._cache_kwarg is None:
            self._cache_kwarg = cache_kwarg_name(self.model)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self._cache_kwarg: cache})
        return out.logits[:, -1, :]

    def _generate_batch(
        self, prompts: list[list[int]], params: SamplingParams,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> list[Generation]:
        n = len(prompts)
        tokens: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        finish: list[tuple[str, str | int | None]] = [("length", None)] * n
        if params.max_new_tokens == 0:
            return [self._finish(t, lp, f) for t, lp, f in zip(tokens, logprobs, finish)]

        stop_ids = set(params.stop_token_ids)
        if not params.ignore_eos:
            stop_ids.update(self.eos_token_ids)
        stops = params.stop
        window = max((len(s) for s in stops), default=0) + _STOP_WINDOW_SLACK
        greedy = params.is_greedy
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                logits, cache, mask, positions = self._prefill(prompts)
                store = self._kv_store
                kv_layers = cache_layers(cache) if store is not None else None
                next_pos = positions[:, -1:] + 1
                running = list(range(n))  # batch slot -> prompt index
                while True:
                    raw = logits.float()
                    lse = torch.logsumexp(raw, dim=-1)
                    if greedy:
                        chosen = raw.argmax(dim=-1)
                    else:
                        scores = raw
                        if params.temperature != 1.0:
                            scores = scores / params.temperature
                        scores = _filter_top_k_top_p(scores, params.top_k, params.top_p)
                        probs = scores.softmax(dim=-1)
                        if isinstance(generator, list):  # one generator per row (row_seeds)
                            chosen = _sample_rows(probs, [generator[row] if row >= 0 else None for row in running])
                        else:
                            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                    chosen_lp = raw.gather(1, chosen[:, None]).squeeze(1) - lse
                    chosen_list = chosen.tolist()
                    lp_list = chosen_lp.tolist()

                    keep: list[int] = []
                    check: list[int] = []
                    for slot, row in enumerate(running):
                        if row < 0:  # finished earlier, kept only to hold the batch shape
                            continue
                        tok = chosen_list[slot]
                        tokens[row].append(tok)
                        logprobs[row].append(lp_list[slot])
                        if tok in stop_ids:
                            finish[row] = ("stop", tok)
                        elif stops:
                            check.append(slot)
                            keep.append(slot)
                        elif len(tokens[row]) >= params.max_new_tokens:
                            finish[row] = ("length", None)
                        else:
                            keep.append(slot)
                    if check:
                        tails = self.tokenizer.batch_decode(
                            [tokens[running[s]][-window:] for s in check], skip_special_tokens=True
                        )
                        for slot, tail in zip(check, tails):
                            row = running[slot]
                            hit = next((s for s in stops if s in tail), None)
                            if hit is not None:
                                finish[row] = ("stop", hit)
                                keep.remove(slot)
                            elif len(tokens[row]) >= params.max_new_tokens:
                                finish[row] = ("length", None)
                                keep.remove(slot)
                    if kv_layers is not None and len(keep) < sum(r >= 0 for r in running):
                        self._store_finished(store, kv_layers, mask, running, keep, prompts, tokens)
                    if not keep:
                        break

                    step_ids = chosen
                    if len(keep) < len(running):
                        if self.prune_finished:
                            index = torch.tensor(keep, device=self.device)
                            cache.batch_select_indices(index)
                            mask, next_pos, step_ids = mask[index], next_pos[index], chosen[index]
                            running = [running[s] for s in keep]
                        else:
                            alive = set(keep)
                            running = [r if s in alive else -1 for s, r in enumerate(running)]
                    mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
                    logits = self._forward(step_ids[:, None], mask, next_pos, cache)
                    next_pos = next_pos + 1
        finally:
            if was_training:
                model.train()
        return [self._finish(t, lp, f) for t, lp, f in zip(tokens, logprobs, finish)]

    @staticmethod
    def _store_finished(
        store: PrefixKVStore,
        layers: list[Any],
        mask: torch.Tensor,
        running: list[int],
        keep: list[int],
        prompts: list[list[int]],
        tokens: list[list[int]],
    ) -> None:
        """Keep the KV cache of every row that finished this step: its prompt and all generated
        tokens but the last (sampled, never fed), at the unmasked positions of its batch row."""
        alive = set(keep)
        real = mask.bool()
        for slot, row in enumerate(running):
            if row < 0 or slot in alive:
                continue
            ids = prompts[row] + tokens[row][:-1]
            if int(real[slot].sum()) != len(ids):  # a layout bug: fail loudly, never store wrong KV
                raise RuntimeError(
                    f"KV reuse: row {row} has {int(real[slot].sum())} cached positions for {len(ids)} ids"
                )
            store.add(extract_row(layers, slot, real[slot], ids))

    def _finish(
        self, ids: list[int], lps: list[float], finish: tuple[str, str | int | None]
    ) -> Generation:
        reason, stop = finish
        return Generation(
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            token_ids=ids,
            logprobs=np.asarray(lps, dtype=np.float32),
            finish_reason=reason,  # type: ignore[arg-type]
            stop=stop,
        )

    # ------------------------------------------------------------------ scoring
    def score(
        self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> list[np.ndarray]:
        """Teacher-forced log-probs: for each pair, ``log p(c_t | prompt, c_<t)`` for every token of the continuation.

        Returns one float32 array per pair, ``len(continuation)`` long (empty for an empty
        continuation), at temperature 1 — the quantity :attr:`Generation.logprobs` reports, so
        ``score(prompts, [g.token_ids for g in gens])`` reproduces the generation's log-probs up to
        float round-off. Batched (``max_batch_size`` rows, left-padded) with the output projection
        applied only at the needed positions, ``score_chunk_size`` at a time.
        """
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        pairs = [
            (self._check_prompt(i, p), [int(t) for t in c])
            for i, (p, c) in enumerate(zip(prompts, continuations))
        ]
        out: list[np.ndarray] = []
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(pairs), self.max_batch_size):
                    out.extend(self._score_batch(pairs[start : start + self.max_batch_size]))
        finally:
            if was_training:
                model.train()
        return out

    def _score_batch(self, pairs: list[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        rows = [p + c for p, c in pairs]
        width = max(len(r) for r in rows)
        batch_idx: list[int] = []
        pos_idx: list[int] = []
        targets: list[int] = []
        for b, ((p, c), r) in enumerate(zip(pairs, rows)):
            offset = width - len(r)
            # hidden state at position (offset + len(p) - 1 + t) predicts c[t]
            first = offset + len(p) - 1
            batch_idx.extend([b] * len(c))
            pos_idx.extend(range(first, first + len(c)))
            targets.extend(c)
        if not targets:
            return [np.zeros(0, dtype=np.float32) for _ in pairs]
        input_ids, mask, positions = self._left_pad(rows)
        bi = torch.tensor(batch_idx, device=self.device)
        pi = torch.tensor(pos_idx, device=self.device)
        tgt = torch.tensor(targets, device=self.device)
        if self._uses_split_head():
            body = self.model.get_decoder()
            hidden = body(
                input_ids=input_ids, attention_mask=mask, position_ids=positions
            ).last_hidden_state
            lp = chunked_target_logprobs(
                hidden[bi, pi],
                self.model.get_output_embeddings(),
                tgt,
                self.score_chunk_size,
                softcap=getattr(self.model.config, "final_logit_softcapping", None),
            )
        else:  # a model whose head is more than a projection: full logits, then gather
            logits = self.model(
                input_ids=input_ids, attention_mask=mask, position_ids=positions
            ).logits
            picked = logits[bi, pi].float()
            lp = picked.gather(1, tgt[:, None]).squeeze(1) - torch.logsumexp(picked, dim=-1)
        flat = lp.float().cpu().numpy()
        out, at = [], 0
        for _, c in pairs:
            out.append(flat[at : at + len(c)].copy())
            at += len(c)
        return out

    def _uses_split_head(self) -> bool:
        """Whether ``lm_head(decoder(x))`` reproduces ``model(x).logits`` (checked once on 4 tokens).

        True for Llama/Qwen/Mistral-style models; False for heads that also scale or cap logits in
        ways this class does not know, which then fall back to full logits per micro-batch.
        """
        if self._head_checked is None:
            try:
                body, head = self.model.get_decoder(), self.model.get_output_embeddings()
                ids = torch.tensor([[self.eos_token_id] * 4], device=self.device)
                hidden = body(input_ids=ids).last_hidden_state
                logits = head(hidden).float()
                cap = getattr(self.model.config, "final_logit_softcapping", None)
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                ref = self.model(input_ids=ids).logits.float()
                self._head_checked = bool(torch.allclose(logits, ref, atol=1e-3, rtol=1e-3))
            except (AttributeError, NotImplementedError, TypeError):
                self._head_checked = False
        return self._head_checked


# ---------------------------------------------------------------------- loading
def _hub_offline() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # older huggingface_hub
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def load_pretrained(spec: str, target: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """``(model, tokenizer)`` by ``from_pretrained``: a local directory, else a hub id from the HF
    cache, else from the hub. ``spec`` is only quoted in errors (the policy spec being loaded;
    :mod:`turngym.agents.factory` parses specs)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(**extra: Any) -> tuple[Any, Any]:
        tokenizer = AutoTokenizer.from_pretrained(target, **extra)
        return AutoModelForCausalLM.from_pretrained(target, dtype=dtype, **extra), tokenizer

    local = Path(target).expanduser()
    if local.exists():
        try:
            model, tokenizer = load()
        except Exception as exc:
            raise ValueError(
                f"cannot load policy {spec!r}: the local directory {str(local)!r} is not a loadable "
                f"transformers causal LM (it needs config.json, weights and tokenizer files): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return model, tokenizer
    try:  # a hub id already in the local HF cache: no network needed
        return load(local_files_only=True)
    except Exception as cached_exc:
        hint = (
            f"{target!r} is not a local path, and as a Hugging Face hub id it is not in the local HF "
            "cache. Hub ids need internet access (or a cache that already holds the model); offline, "
            "pass hf:<local directory with config.json, weights and tokenizer files>, or use "
            "'smollm2-135m', the embedded model"
        )
        if _hub_offline():
            raise ValueError(
                f"cannot load policy {spec!r}: {hint} (HF_HUB_OFFLINE is set)"
            ) from cached_exc
    try:
        return load()
    except Exception as exc:
        raise ValueError(
            f"cannot load policy {spec!r}: {hint}: {type(exc).__name__}: {exc}"
        ) from exc


__all__ = ["HFPolicy", "chunked_target_logprobs", "default_dtype", "load_pretrained"]

"""Learner memory: token-budget micro-batches, gradient checkpointing, no dense attention mask.

Each memory saving must leave the update's numbers unchanged (to float tolerance): the same
gradients with micro-batches formed by tokens or by sequence count, with checkpointing on or off,
and the same log-probs and entropies with the decoder called without a padding mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from turngym.agents.base import SamplingParams
from turngym.agents.factory import load_policy
from turngym.agents.hf_policy import HFPolicy
from turngym.agents.tiny import tiny_char_model
from turngym.training.batching import (
    TrainRow,
    collate,
    decoder_mask,
    is_right_padded,
    policy_token_logprobs,
    policy_token_stats,
)
from turngym.training.config import AlgoSection, OptimSection
from turngym.training.update import (
    activation_checkpointing,
    micro_batches,
    optimize,
    pack_by_tokens,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models: one intra-op thread is faster on a shared machine (and deterministic)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rows(count: int = 10, seed: int = 0, model=None) -> tuple[list[TrainRow], int]:
    """Rows of clearly different lengths (6 to ~40 tokens), the model's own log-probs as old policy."""
    model, tokenizer = (model, None) if model is not None else tiny_char_model(0)
    pad = 0 if tokenizer is None else tokenizer.pad_token_id
    vocab = model.config.vocab_size
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        prompt = rng.integers(4, vocab, size=int(rng.integers(4, 30))).tolist()
        reply = rng.integers(4, vocab, size=int(rng.integers(2, 12))).tolist()
        ids = prompt + reply
        mask = [0] * len(prompt) + [1] * len(reply)
        adv = float(rng.normal()) * 2.0
        rows.append(TrainRow(ids, mask, [-1] * len(prompt) + [0] * len(reply), [0.0] * len(ids),
                             [adv if m else 0.0 for m in mask], [1.0] * len(ids), group=f"g{i // 2}"))
    for row in rows:  # the rollout log-probs: the model's own, each row alone
        with torch.no_grad():
            lp = policy_token_logprobs(model, collate([row], pad))[0]
        row.old_logprobs = [0.0] + lp.tolist()
    return rows, pad


class _Recorder(torch.optim.SGD):
    """An optimizer that takes no step (lr 0) and records the gradients and checkpointing state it sees."""

    def __init__(self, model: torch.nn.Module):
        super().__init__(model.parameters(), lr=0.0)
        self.model = model
        self.grads: list[list[torch.Tensor | None]] = []
        self.checkpointing: list[bool] = []

    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        self.grads.append([None if p.grad is None else p.grad.detach().clone() for p in params])
        self.checkpointing.append(_checkpointing_on(self.model))
        return super().step(closure)


def _checkpointing_on(model: torch.nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def _grads(model, rows, pad, optim: OptimSection, algo: AlgoSection | None = None, entropy_coef: float = 0.0):
    recorder = _Recorder(model)
    stats = optimize(model, recorder, rows, algo or AlgoSection(), optim, pad, entropy_coef=entropy_coef)
    assert stats.updates == 1 and len(recorder.grads) == 1
    return recorder, stats


def _assert_grads_close(a: list[torch.Tensor | None], b: list[torch.Tensor | None], rel: float = 1e-5) -> None:
    assert len(a) == len(b)
    nonzero = 0
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is None:
            continue
        scale = max(float(x.abs().max()), float(y.abs().max()), 1e-12)
        assert float((x - y).abs().max()) <= rel * scale + 1e-9, float((x - y).abs().max()) / scale
        nonzero += bool(x.abs().sum() > 0)
    assert nonzero > 0


# ----------------------------------------------------------------------------- micro-batch formation


def _length_rows(lengths: list[int]) -> list[TrainRow]:
    return [TrainRow([1] * n, [0] * n, [-1] * n, [0.0] * n, [0.0] * n, [1.0] * n, group=str(i))
            for i, n in enumerate(lengths)]


def test_token_budget_packing_respects_the_budget_and_is_deterministic():
    lengths = [30, 5, 12, 12, 7, 100, 5, 40, 1, 12]
    rows = _length_rows(lengths)
    parts = pack_by_tokens(rows, 48)
    flat = [r for part in parts for r in part]
    assert sorted(id(r) for r in flat) == sorted(id(r) for r in rows)  # every row exactly once
    assert [len(r.token_ids) for r in flat] == sorted(lengths)  # sorted by length
    for part in parts:
        longest = max(len(r.token_ids) for r in part)
        assert len(part) * longest <= 48 or len(part) == 1
    assert [[r.group for r in part] for part in parts] == [
        ["8", "1", "6", "4"],  # 1, 5, 5, 7: 4 × 7 = 28 (adding a 12 would make 5 × 12 = 60)
        ["2", "3", "9"],  # ties keep their input order (stable sort): 3 × 12 = 36
        ["0"],  # 30 (+40 would be 80)
        ["7"],
        ["5"],  # longer than the budget: alone
    ]
    assert [[r.group for r in p] for p in pack_by_tokens(list(rows), 48)] == [[r.group for r in p] for p in parts]
    assert [len(p) for p in pack_by_tokens(rows, 1)] == [1] * len(rows)
    with pytest.raises(ValueError, match="got 0"):
        pack_by_tokens(rows, 0)


def test_micro_batch_size_layout_is_the_historical_one():
    rows = _length_rows([30, 5, 12, 12, 7, 100, 5])
    ordered = sorted(rows, key=lambda r: len(r.token_ids))
    assert micro_batches(rows, OptimSection(micro_batch_size=3)) == [ordered[0:3], ordered[3:6], ordered[6:]]
    assert micro_batches(rows, OptimSection(micro_batch_size=3, micro_batch_tokens=24)) == pack_by_tokens(rows, 24)


@pytest.mark.parametrize("bad", [0, -4])
def test_micro_batch_tokens_must_be_positive_and_the_error_quotes_the_value(bad):
    with pytest.raises(ValidationError, match=f"micro_batch_tokens must be >= 1.*got {bad}"):
        OptimSection(micro_batch_tokens=bad)
    assert OptimSection(micro_batch_tokens=4096).micro_batch_tokens == 4096
    assert OptimSection().micro_batch_tokens is None and OptimSection().gradient_checkpointing is False


# ----------------------------------------------------------------------------- the same gradients


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_token_budget_gives_the_sequence_count_gradients(agg):
    rows, pad = _rows()
    algo = AlgoSection(agg=agg)
    base, _ = _grads(tiny_char_model(0)[0], rows, pad, OptimSection(micro_batch_size=1, grad_clip=1e9), algo, 0.1)
    for budget in (40, 96, 10_000):
        optim = OptimSection(micro_batch_size=1, micro_batch_tokens=budget, grad_clip=1e9)
        other, stats = _grads(tiny_char_model(0)[0], rows, pad, optim, algo, 0.1)
        _assert_grads_close(base.grads[0], other.grads[0])
        assert stats.to_metrics()["optim/micro_batches"] == len(pack_by_tokens(rows, budget))
    assert stats.to_metrics()["optim/micro_batches"] == 1  # 10 000 tokens: the whole batch at once


def test_padding_share_and_micro_batch_count_are_logged():
    rows, pad = _rows(count=4)
    _, stats = _grads(tiny_char_model(0)[0], rows, pad, OptimSection(micro_batch_size=16))
    metrics = stats.to_metrics()
    lengths = [len(r.token_ids) for r in rows]
    assert metrics["optim/micro_batches"] == 1
    assert metrics["optim/padding_share"] == pytest.approx(1 - sum(lengths) / (len(rows) * max(lengths)))
    _, alone = _grads(tiny_char_model(0)[0], rows, pad, OptimSection(micro_batch_size=1))
    assert alone.to_metrics()["optim/micro_batches"] == 4 and alone.to_metrics()["optim/padding_share"] == 0.0


def test_checkpointing_gives_the_same_loss_and_gradients_and_recomputes():
    rows, pad = _rows()
    optim = OptimSection(micro_batch_size=4, grad_clip=1e9)
    plain_model, _ = tiny_char_model(0)
    plain, plain_stats = _grads(plain_model, rows, pad, optim, entropy_coef=0.1)

    model, _ = tiny_char_model(0)
    mlp_calls = []
    hook = model.model.layers[0].mlp.register_forward_pre_hook(lambda *_: mlp_calls.append(1))
    checked, checked_stats = _grads(model, rows, pad, optim.model_copy(update={"gradient_checkpointing": True}),
                                    entropy_coef=0.1)
    hook.remove()
    assert checked.checkpointing == [True] and plain.checkpointing == [False]
    assert len(mlp_calls) == 2 * checked_stats.layout.micro_batches  # forward, then the recompute
    assert checked_stats.per_update[0]["loss"] == pytest.approx(plain_stats.per_update[0]["loss"], rel=1e-5)
    _assert_grads_close(plain.grads[0], checked.grads[0])
    assert not _checkpointing_on(model)  # off again after the update
    assert not model.get_input_embeddings()._forward_hooks  # and no input-grad hook left behind


def test_checkpointing_works_on_a_lora_model():
    rows, pad = _rows(count=6)
    optim = OptimSection(micro_batch_size=3, grad_clip=1e9)
    grads = []
    for on in (False, True):
        with torch.random.fork_rng(devices=[]):  # peft draws the A factors from the global RNG
            torch.manual_seed(0)
            model = load_policy("tiny-char", lora={"r": 4, "alpha": 8.0}).model
        with torch.no_grad():  # B starts at zero: make both adapter factors matter
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
        recorder, _ = _grads(model, rows, pad, optim.model_copy(update={"gradient_checkpointing": on}))
        assert recorder.checkpointing == [on]
        assert not _checkpointing_on(model)
        trainable = [g for g, p in zip(recorder.grads[0], model.parameters()) if p.requires_grad]
        assert all(g is not None and g.abs().sum() > 0 for g in trainable)
        grads.append(recorder.grads[0])
    _assert_grads_close(grads[0], grads[1])


def test_generation_keeps_its_kv_cache_with_checkpointing_on():
    model, tokenizer = tiny_char_model(0)
    policy = HFPolicy(model, tokenizer, kv_reuse=False)
    prompts = [tokenizer.encode("hello there"), tokenizer.encode("a")]
    greedy = SamplingParams(max_new_tokens=6, greedy=True, ignore_eos=True)
    expected = [g.token_ids for g in policy.generate(prompts, greedy)]
    ids = torch.tensor([prompts[0]])
    with activation_checkpointing(model):
        assert _checkpointing_on(model)
        for train in (False, True):  # eval mode; train mode without gradients (transformers skips the checkpoint)
            model.train(train)
            with torch.no_grad():
                out = model(input_ids=ids, use_cache=True)
            assert out.past_key_values is not None and out.past_key_values.get_seq_length() == ids.shape[1]
        model.eval()
        assert [g.token_ids for g in policy.generate(prompts, greedy)] == expected
    assert not _checkpointing_on(model)


# ----------------------------------------------------------------------------- no dense mask


def _stats_alone(model, rows, pad):
    out = []
    for row in rows:
        with torch.no_grad():
            lp, ent = policy_token_stats(model, collate([row], pad))
        out.append((lp[0], ent[0]))
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_right_padded_batch_runs_without_a_mask_and_equals_each_row_alone(attn):
    model, tokenizer = tiny_char_model(0)
    model.set_attn_implementation(attn)
    assert model.config._attn_implementation == attn
    rows, pad = _rows(count=6, model=model)
    pad = tokenizer.pad_token_id
    batch = collate(rows, pad)
    assert not bool(batch.attention_mask.all())  # really padded
    seen = []
    decoder = model.get_decoder()
    hook = decoder.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw.get("attention_mask")),
                                             with_kwargs=True)
    with torch.no_grad():
        logp, entropy = policy_token_stats(model, batch, chunk_size=7)
    hook.remove()
    assert seen == [None]
    for i, (lp_alone, ent_alone) in enumerate(_stats_alone(model, rows, pad)):
        n = len(rows[i].token_ids) - 1
        assert torch.allclose(logp[i, :n], lp_alone, atol=1e-5, rtol=0)
        assert torch.allclose(entropy[i, :n], ent_alone, atol=1e-5, rtol=0)
        assert (logp[i, n:] == 0).all() and (entropy[i, n:] == 0).all()


def test_no_mask_path_matches_the_masked_forward():
    """The old call (decoder with the padding mask) gives the same policy-token log-probs."""
    model, tokenizer = tiny_char_model(0)
    rows, pad = _rows(count=5, model=model)
    pad = tokenizer.pad_token_id
    batch = collate(rows, pad)
    with torch.no_grad():
        logp, _ = policy_token_stats(model, batch)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    masked = torch.log_softmax(logits.double(), -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    keep = batch.loss_mask.bool()
    assert torch.allclose(logp[keep].double(), masked[keep], atol=1e-5, rtol=0)


def test_only_right_padding_drops_the_mask():
    right = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    left = torch.tensor([[1, 1, 1], [0, 1, 1]])
    holes = torch.tensor([[1, 0, 1]])
    assert is_right_padded(right) and not is_right_padded(left) and not is_right_padded(holes)
    assert not is_right_padded(torch.tensor([[0, 0, 0]]))
    rows, pad = _rows(count=3)
    batch = collate(rows, pad)
    assert decoder_mask(batch) is None
    batch.attention_mask = torch.flip(batch.attention_mask, dims=[1])  # as if left-padded
    assert decoder_mask(batch) is batch.attention_mask

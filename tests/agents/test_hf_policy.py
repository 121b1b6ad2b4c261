"""HFPolicy: token-in/token-out, parity with model.generate, stopping, seeding, scoring."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.agents.base import Generation, Message, Policy, SamplingParams
from turngym.agents.factory import load_policy
from turngym.agents.hf_policy import HFPolicy, chunked_target_logprobs
from turngym.agents.models import (
    EmbeddedModelMissing,
    cache_status,
    find_smollm2_gguf,
    tiny_random_model,
)

TEXTS = [
    "Hello there, how are you today?",
    "Hi",
    "The capital of France is a city named after",
    "One two three four five six seven eight nine ten eleven twelve",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/agents/conftest.py


@pytest.fixture(scope="module")
def tiny():
    try:
        return tiny_random_model(0)
    except EmbeddedModelMissing as exc:  # the tokenizer comes from the embedded model's package
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def policy(tiny) -> HFPolicy:
    model, tok = tiny
    return HFPolicy(model, tok)


@pytest.fixture(scope="module")
def prompts(policy) -> list[list[int]]:
    return [policy.tokenizer.encode(t) for t in TEXTS]


def hf_generate_greedy(
    policy: HFPolicy, prompts: list[list[int]], max_new_tokens: int
) -> list[list[int]]:
    """``model.generate(do_sample=False)`` on the same left-padded batch; rows cut after their first EOS."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), policy.pad_token_id)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, width - len(p) :] = torch.tensor(p)
        mask[b, width - len(p) :] = 1
    with torch.no_grad():
        out = policy.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=policy.pad_token_id,
            eos_token_id=policy.eos_token_id,
        )
    rows = []
    for row in out[:, width:].tolist():
        if policy.eos_token_id in row:
            row = row[: row.index(policy.eos_token_id) + 1]
        rows.append(row)
    return rows


def test_policy_protocol_and_tokenizer_helpers(policy):
    assert isinstance(policy, Policy)
    assert policy.eos_token_id == policy.tokenizer.eos_token_id == 2  # <|im_end|>
    assert policy.eos_token_id in policy.eos_token_ids
    ids = policy.encode_chat([Message("user", "hi")])
    assert ids[-4:] == policy.tokenizer.encode("<|im_start|>assistant\n")


def test_greedy_matches_model_generate_with_left_padding(policy, prompts):
    assert len({len(p) for p in prompts}) == len(prompts)  # different lengths => real padding
    gens = policy.generate(prompts, SamplingParams(max_new_tokens=16, greedy=True))
    assert [g.token_ids for g in gens] == hf_generate_greedy(policy, prompts, 16)
    assert all(g.finish_reason == "length" and len(g) == 16 for g in gens)


def test_token_in_token_out_and_score_reproduces_logprobs(policy, prompts):
    for params in (
        SamplingParams(max_new_tokens=12, greedy=True),
        SamplingParams(max_new_tokens=12, seed=7),
    ):
        gens = policy.generate(prompts, params)
        for g in gens:
            assert g.logprobs.dtype == np.float32 and g.logprobs.shape == (len(g.token_ids),)
            assert np.all(g.logprobs <= 0)
            assert g.text == policy.tokenizer.decode(g.token_ids, skip_special_tokens=True)
        scored = policy.score(prompts, [g.token_ids for g in gens])
        for g, s in zip(gens, scored):
            np.testing.assert_allclose(s, g.logprobs, atol=1e-4, rtol=0)
        # token-in/token-out: re-feeding prompt + generated ids continues from exactly those ids
        more = policy.generate(
            [p + g.token_ids for p, g in zip(prompts, gens)],
            SamplingParams(max_new_tokens=1, greedy=True),
        )
        whole = policy.score(prompts, [g.token_ids + m.token_ids for g, m in zip(gens, more)])
        for g, m, s in zip(gens, more, whole):
            np.testing.assert_allclose(
                s, np.concatenate([g.logprobs, m.logprobs]), atol=1e-4, rtol=0
            )


def test_logprobs_are_raw_temperature_one(policy, prompts):
    """Sampling at T=0.5 with top-k still reports log p under the untempered, untruncated model."""
    gens = policy.generate(
        prompts, SamplingParams(max_new_tokens=6, temperature=0.5, top_k=5, top_p=0.9, seed=1)
    )
    scored = policy.score(prompts, [g.token_ids for g in gens])
    for g, s in zip(gens, scored):
        np.testing.assert_allclose(g.logprobs, s, atol=1e-4, rtol=0)


def test_score_edge_cases_and_chunking(policy, prompts):
    out = policy.score(prompts[:2], [[], [5, 6, 7]])
    assert out[0].shape == (0,) and out[1].shape == (3,)
    small_chunks = HFPolicy(policy.model, policy.tokenizer, score_chunk_size=2, max_batch_size=3)
    conts = [[11, 12, 13, 14], [15], [16, 17], [18, 19, 20]]
    for a, b in zip(policy.score(prompts, conts), small_chunks.score(prompts, conts)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    # against full logits from a plain forward
    seq = prompts[0] + conts[0]
    with torch.no_grad():
        logits = policy.model(torch.tensor([seq])).logits[0].float()
    ref = (
        torch.log_softmax(logits, -1)[len(prompts[0]) - 1 : -1]
        .gather(1, torch.tensor(conts[0])[:, None])
        .squeeze(1)
    )
    np.testing.assert_allclose(
        policy.score(prompts[:1], conts[:1])[0], ref.numpy(), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="prompts but"):
        policy.score(prompts, conts[:1])


def test_chunked_target_logprobs_is_differentiable():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden = torch.randn(7, 8, requires_grad=True)
    targets = torch.randint(0, 50, (7,))
    lp = chunked_target_logprobs(hidden, head, targets, chunk_size=3)
    ref = torch.log_softmax(head(hidden), -1).gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(lp, ref)
    lp.sum().backward()
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()


def test_top_k_top_p_filter():
    from turngym.agents.hf_policy import _filter_top_k_top_p

    scores = torch.tensor([[0.05, 0.5, 0.15, 0.3]]).log()
    kept = lambda k, p: torch.isfinite(_filter_top_k_top_p(scores, k, p))[0].tolist()
    assert kept(0, 1.0) == [True, True, True, True]
    assert kept(1, 1.0) == [False, True, False, False]
    assert kept(0, 0.7) == [False, True, False, True]  # 0.5 + 0.3 is the smallest set >= 0.7
    assert kept(0, 0.5) == [False, True, False, False]
    assert kept(0, 0.01) == [False, True, False, False]  # the best token always survives
    assert kept(3, 0.9) == [False, True, True, True]


def test_stop_token_ids_and_length(policy, prompts):
    ref = policy.generate(prompts, SamplingParams(max_new_tokens=10, greedy=True))
    # stop at the 4th token of row 0: that row ends there (stop token included), others unaffected
    stop_tok = ref[0].token_ids[3]
    gens = policy.generate(
        prompts, SamplingParams(max_new_tokens=10, greedy=True, stop_token_ids=[stop_tok])
    )
    first = ref[0].token_ids.index(stop_tok)
    assert gens[0].token_ids == ref[0].token_ids[: first + 1]
    assert gens[0].finish_reason == "stop" and gens[0].stop == stop_tok
    np.testing.assert_allclose(gens[0].logprobs, ref[0].logprobs[: first + 1], atol=1e-5)
    for g, r in zip(gens[1:], ref[1:]):
        if stop_tok in r.token_ids:
            assert (
                g.finish_reason == "stop"
                and g.token_ids == r.token_ids[: r.token_ids.index(stop_tok) + 1]
            )
        else:
            assert g.finish_reason == "length" and g.stop is None and g.token_ids == r.token_ids
    short = policy.generate(prompts[:1], SamplingParams(max_new_tokens=3, greedy=True))[0]
    assert short.finish_reason == "length" and short.token_ids == ref[0].token_ids[:3]
    assert policy.generate(prompts[:2], SamplingParams(max_new_tokens=0))[0].token_ids == []


def test_eos_stops_unless_ignored(policy, prompts):
    ref = policy.generate(prompts, SamplingParams(max_new_tokens=8, greedy=True))
    # A tokenizer whose EOS is the 2nd greedy token of row 1 (the random model never emits id 2).
    target = ref[1].token_ids[1]
    tok = copy.deepcopy(policy.tokenizer)
    tok.eos_token = tok.convert_ids_to_tokens(target)
    alt = HFPolicy(policy.model, tok)
    assert alt.eos_token_id == target and 2 in alt.eos_token_ids  # generation_config's EOS kept too
    g = alt.generate(prompts[1:2], SamplingParams(max_new_tokens=8, greedy=True))[0]
    first = ref[1].token_ids.index(target)
    assert (
        g.token_ids == ref[1].token_ids[: first + 1]
        and g.finish_reason == "stop"
        and g.stop == target
    )
    g = alt.generate(prompts[1:2], SamplingParams(max_new_tokens=8, greedy=True, ignore_eos=True))[
        0
    ]
    assert g.token_ids == ref[1].token_ids and g.finish_reason == "length"


def test_stop_strings(policy, prompts):
    decode = policy.tokenizer.decode
    for prompt in prompts:
        row = policy.generate([prompt], SamplingParams(max_new_tokens=10, greedy=True))[0]
        # the first token (from the 2nd on) whose own text has not appeared earlier is our stop string
        for k in range(1, len(row.token_ids)):
            piece = decode(row.token_ids[k : k + 1], skip_special_tokens=True).strip()
            if piece and piece not in decode(row.token_ids[:k], skip_special_tokens=True):
                break
        else:
            continue
        g = policy.generate(
            [prompt], SamplingParams(max_new_tokens=10, greedy=True, stop=["never-there", piece])
        )[0]
        assert g.token_ids == row.token_ids[: k + 1]
        assert g.finish_reason == "stop" and g.stop == piece and piece in g.text
        np.testing.assert_allclose(g.logprobs, row.logprobs[: k + 1], atol=1e-5)
        g = policy.generate(
            [prompt], SamplingParams(max_new_tokens=10, greedy=True, stop="never-there")
        )[0]
        assert g.token_ids == row.token_ids and g.finish_reason == "length"
        return
    pytest.fail("no usable stop string in the greedy outputs")


def test_same_seed_same_samples(policy, prompts):
    batch = prompts * 2
    a = policy.generate(batch, SamplingParams(max_new_tokens=8, seed=123))
    b = policy.generate(batch, SamplingParams(max_new_tokens=8, seed=123))
    c = policy.generate(batch, SamplingParams(max_new_tokens=8, seed=124))
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]
    assert len({tuple(g.token_ids) for g in a}) > 1  # rows of one batch get different draws


def test_batch_composition_does_not_change_greedy_outputs(policy, prompts):
    params = SamplingParams(max_new_tokens=10, greedy=True)
    together = policy.generate(prompts, params)
    alone = [policy.generate([p], params)[0] for p in prompts]
    reordered = policy.generate(prompts[::-1], params)[::-1]
    micro = HFPolicy(policy.model, policy.tokenizer, max_batch_size=3).generate(prompts, params)
    no_prune = HFPolicy(policy.model, policy.tokenizer, prune_finished=False).generate(
        prompts, params
    )
    for variant in (alone, reordered, micro, no_prune):
        assert [g.token_ids for g in variant] == [g.token_ids for g in together]
        for g, t in zip(variant, together):
            np.testing.assert_allclose(g.logprobs, t.logprobs, atol=1e-4)


def test_pruning_finished_rows_keeps_results(policy, prompts):
    """Rows that stop early are dropped from the batch; the others must continue unchanged."""
    ref = policy.generate(prompts, SamplingParams(max_new_tokens=10, greedy=True))
    stops = [ref[0].token_ids[1], ref[3].token_ids[5]]
    params = SamplingParams(max_new_tokens=10, greedy=True, stop_token_ids=stops)
    pruned = policy.generate(prompts, params)
    kept = HFPolicy(policy.model, policy.tokenizer, prune_finished=False).generate(prompts, params)
    assert [g.token_ids for g in pruned] == [g.token_ids for g in kept]
    assert [g.finish_reason for g in pruned] == [g.finish_reason for g in kept]
    assert pruned[0].finish_reason == "stop" and len(pruned[0]) <= 2


def test_generate_chat_applies_template(policy):
    convo = [Message("system", "Be brief."), Message("user", "Say hi")]
    params = SamplingParams(max_new_tokens=4, greedy=True)
    via_chat = policy.generate_chat([convo], params)[0]
    direct = policy.generate([policy.encode_chat(convo)], params)[0]
    assert via_chat.token_ids == direct.token_ids
    assert isinstance(via_chat, Generation)


def test_bad_inputs_are_clear_errors(policy):
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        policy.generate([[1, 2], []], SamplingParams(max_new_tokens=2))
    with pytest.raises(ValueError, match="outside"):
        policy.generate([[10**9]], SamplingParams(max_new_tokens=2))
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    assert policy.generate([], SamplingParams()) == []


def test_training_mode_is_restored(policy, prompts):
    policy.model.train()
    try:
        policy.generate(prompts[:1], SamplingParams(max_new_tokens=2, greedy=True))
        policy.score(prompts[:1], [[5]])
        assert policy.model.training
    finally:
        policy.model.eval()


@pytest.mark.slow
def test_smollm2_end_to_end():
    """The real embedded model: sensible greedy answer, generate parity, score parity (< ~60 s)."""
    if cache_status() == "missing":
        try:
            find_smollm2_gguf()
        except EmbeddedModelMissing as exc:
            pytest.skip(str(exc))
    policy = load_policy("smollm2-135m")
    convos = [
        [Message("user", "What is the capital of France?")],
        [
            Message("system", "Answer with one word."),
            Message("user", "What color is the sky on a clear day?"),
        ],
    ]
    prompts = [policy.encode_chat(c) for c in convos]
    gens = policy.generate(prompts, SamplingParams(max_new_tokens=24, greedy=True))
    assert "Paris" in gens[0].text
    assert [g.token_ids for g in gens] == hf_generate_greedy(policy, prompts, 24)
    for g in gens:
        assert g.finish_reason in ("stop", "length")
        if g.finish_reason == "stop":
            assert g.token_ids[-1] == policy.eos_token_id == 2 and g.stop == 2
    sampled = policy.generate(prompts, SamplingParams(max_new_tokens=16, seed=0))
    for g, s in zip(sampled, policy.score(prompts, [g.token_ids for g in sampled])):
        np.testing.assert_allclose(s, g.logprobs, atol=1e-4, rtol=0)


def test_shared_prefix_prefill_equals_plain_prefill(tiny):
    """A prefix common to the whole batch (a system prompt) is prefilled once; results do not change."""
    from turngym.agents.hf_policy import common_prefix_length

    model, tok = tiny
    system = tok.encode("You are playing tic-tac-toe. Answer with one free cell number in brackets, like [5]. " * 2)
    rows = [system + tok.encode(t) for t in TEXTS]
    assert common_prefix_length(rows) == len(system)
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # every row keeps one token to prefill
    plain = HFPolicy(model, tok, share_prefix=False)
    shared = HFPolicy(model, tok, share_prefix=True, min_shared_prefix=8)
    for params in (SamplingParams(max_new_tokens=12, temperature=0), SamplingParams(max_new_tokens=12, seed=5)):
        want, got = plain.generate(rows, params), shared.generate(rows, params)
        assert [g.token_ids for g in got] == [w.token_ids for w in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.logprobs, w.logprobs, atol=1e-4)
    assert shared.shared_prefix_tokens == 2 * len(system) * (len(rows) - 1)
    assert plain.shared_prefix_tokens == 0
    # and the greedy rows still equal model.generate on the full prompts
    assert [g.token_ids for g in shared.generate(rows, SamplingParams(max_new_tokens=8, temperature=0))] == hf_generate_greedy(
        plain, rows, 8
    )

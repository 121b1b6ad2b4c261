"""Cross-turn KV reuse in HFPolicy: resumed prefill equals full prefill; the store's rules hold."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.agents.base import SamplingParams
from turngym.agents.hf_policy import HFPolicy
from turngym.agents.kv_reuse import KVEntry, PrefixKVStore, common_prefix
from turngym.agents.tiny import tiny_char_model

GREEDY = SamplingParams(max_new_tokens=10, temperature=0, ignore_eos=True)
SAMPLED = SamplingParams(max_new_tokens=10, seed=7, ignore_eos=True)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/agents/conftest.py


@pytest.fixture(scope="module")
def tiny():
    return tiny_char_model(3)


def _enc(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def _two_turns(policy: HFPolicy, tok, firsts: list[str], replies: list[str], params: SamplingParams):
    """Turn 1 on ``firsts``; turn 2 on ``first + generated + reply`` (token-in/token-out)."""
    p1 = [_enc(tok, f) for f in firsts]
    g1 = policy.generate(p1, params)
    p2 = [p + g.token_ids + _enc(tok, r) for p, g, r in zip(p1, g1, replies)]
    return g1, p2, policy.generate(p2, params)


def _same(got, want, atol=1e-4):
    assert [g.token_ids for g in got] == [w.token_ids for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.logprobs, w.logprobs, atol=atol)


FIRSTS = [
    "You play tic-tac-toe. Board: 1 2 3 / 4 5 6 / 7 8 9. Your move:",
    "You play tic-tac-toe. Board: X 2 3 / 4 O 6 / 7 8 9. Pick a free cell, please:",
    "Short one, but long enough to be stored:",
]
REPLIES = ["\nOpponent took 5. Next?", "\nInvalid. Try again with a number:", "\nok"]


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_second_turn_resumes_from_the_first_and_matches_full_prefill(tiny, params):
    model, tok = tiny
    plain = HFPolicy(model, tok, kv_reuse=False)
    reuse = HFPolicy(model, tok)
    want1, p2_want, want2 = _two_turns(plain, tok, FIRSTS, REPLIES, params)
    with reuse.kv_session() as store:
        got1, p2_got, got2 = _two_turns(reuse, tok, FIRSTS, REPLIES, params)
        stats = store.stats
    _same(got1, want1)
    assert p2_got == p2_want
    _same(got2, want2)
    # every row of turn 2 resumed after its whole first turn (prompt + generated ids but the last)
    expected = sum(len(_enc(tok, f)) + len(g.token_ids) - 1 for f, g in zip(FIRSTS, got1))
    assert stats.reused_tokens == expected
    assert stats.hits == len(FIRSTS)
    assert reuse.last_kv_stats is stats


def test_a_batch_mixing_resumed_and_fresh_rows_of_different_lengths(tiny):
    model, tok = tiny
    plain = HFPolicy(model, tok, kv_reuse=False)
    reuse = HFPolicy(model, tok)
    with reuse.kv_session():
        g1 = reuse.generate([_enc(tok, FIRSTS[0])], GREEDY)
        resumed = _enc(tok, FIRSTS[0]) + g1[0].token_ids + _enc(tok, REPLIES[0])
        fresh = _enc(tok, "An unrelated, fresh prompt that nothing in the store matches at all.")
        tiny_fresh = _enc(tok, "Hi")
        batch = [fresh, resumed, tiny_fresh]
        got = reuse.generate(batch, GREEDY)
    _same(got, plain.generate(batch, GREEDY))


def test_a_branch_resumes_from_the_common_trunk_of_a_stored_sequence(tiny):
    """Forked branches share a trunk: a prompt that diverges inside a stored sequence reuses the common part."""
    model, tok = tiny
    plain = HFPolicy(model, tok, kv_reuse=False)
    reuse = HFPolicy(model, tok)
    trunk = _enc(tok, FIRSTS[1])
    with reuse.kv_session() as store:
        reuse.generate([trunk], GREEDY)
        branch = trunk[:-5] + _enc(tok, " -- a different ending")
        got = reuse.generate([branch], GREEDY)
        assert store.stats.reused_tokens == len(trunk) - 5
    _same(got, plain.generate([branch], GREEDY))


def test_nothing_is_kept_outside_a_session_and_a_session_ends_empty(tiny):
    model, tok = tiny
    reuse = HFPolicy(model, tok)
    reuse.generate([_enc(tok, FIRSTS[0])], GREEDY)
    assert reuse._kv_store is None
    with reuse.kv_session() as store:
        reuse.generate([_enc(tok, FIRSTS[0])], GREEDY)
        assert len(store) == 1 and store.nbytes > 0
        with reuse.kv_session() as inner:  # nested: the same store
            assert inner is store
        assert reuse._kv_store is store
    assert reuse._kv_store is None and len(store) == 0 and store.nbytes == 0
    off = HFPolicy(model, tok, kv_reuse=False)
    with off.kv_session() as none:
        assert none is None


def test_finished_rows_are_stored_whether_or_not_the_batch_prunes_them(tiny):
    model, tok = tiny
    for prune in (True, False):
        reuse = HFPolicy(model, tok, prune_finished=prune)
        plain = HFPolicy(model, tok, prune_finished=prune, kv_reuse=False)
        stop = SamplingParams(max_new_tokens=12, temperature=0, stop=("e", "a"))  # rows end at different steps
        with reuse.kv_session() as store:
            got1, _, got2 = _two_turns(reuse, tok, FIRSTS, REPLIES, stop)
            assert store.stats.hits == len(FIRSTS)
        want1, _, want2 = _two_turns(plain, tok, FIRSTS, REPLIES, stop)
        _same(got1, want1)
        _same(got2, want2)


def _entry(ids: list[int], per_token: int = 4) -> KVEntry:
    t = torch.zeros((1, len(ids), per_token))
    return KVEntry(np.asarray(ids, dtype=np.int64), [t], [t.clone()])


def test_store_lookup_supersede_and_lru_budget():
    assert common_prefix(np.array([1, 2, 3]), np.array([1, 2, 4])) == 2
    assert common_prefix(np.array([1, 2]), np.array([1, 2, 3])) == 2
    assert common_prefix(np.array([], dtype=np.int64), np.array([1])) == 0
    size = _entry(list(range(20))).nbytes
    store = PrefixKVStore(max_bytes=int(2.5 * size), min_reuse=4)
    store.add(_entry(list(range(20))))
    # a longer sequence extending it supersedes it (the new entry covers every lookup it served)
    store.add(_entry(list(range(20)) + [99] * 5))
    assert len(store) == 1
    entry, n = store.lookup(list(range(20)) + [99, 99, 7])
    assert n == 22 and len(entry.ids) == 25
    # the last prompt token is always left to prefill
    assert store.lookup(list(range(20)) + [99] * 5)[1] == 24
    # too short a match is ignored
    assert store.lookup([0, 1, 2, 50, 51]) == (None, 0)
    # least recently used goes first when the budget is exceeded
    store.add(_entry([7] * 20))
    store.lookup(list(range(10)) + [5])  # touches the first entry
    store.add(_entry([8] * 20))
    assert store.lookup([7] * 21) == (None, 0) and store.stats.evicted == 1
    assert store.lookup([8] * 21)[1] == 20
    # an entry bigger than the whole budget is not stored; nor one shorter than min_reuse
    tiny_store = PrefixKVStore(max_bytes=size // 2, min_reuse=4)
    tiny_store.add(_entry(list(range(20))))
    tiny_store.add(_entry([1, 2]))
    assert len(tiny_store) == 0
    with pytest.raises(ValueError, match="max_bytes"):
        PrefixKVStore(-1)
    with pytest.raises(ValueError, match="lengths"):
        KVEntry(np.arange(3), [torch.zeros(1, 2, 4)], [torch.zeros(1, 2, 4)])


def test_multi_turn_collect_is_unchanged_by_kv_reuse_and_reports_the_reuse(tiny):
    from turngym.training.rollout import RolloutConfig, Task, collect

    model, tok = tiny
    config = RolloutConfig(group_size=2, max_new_tokens=6, temperature=0, context="full")
    tasks = [Task("turngym/Vowels-v0", s) for s in (0, 1, 2)]  # three turns per episode, always
    plain = collect(tasks, HFPolicy(model, tok, kv_reuse=False), config)
    reuse = collect(tasks, HFPolicy(model, tok), config)
    assert len(reuse.trajectories) == len(plain.trajectories) == 6
    for got, want in zip(reuse.trajectories, plain.trajectories):
        assert [(t.prompt_ids, t.completion_ids) for t in got.turns] == [(t.prompt_ids, t.completion_ids) for t in want.turns]
        np.testing.assert_allclose([lp for t in got.turns for lp in t.logprobs],
                                   [lp for t in want.turns for lp in t.logprobs], atol=1e-4)
    assert plain.metrics.kv_reused_tokens == 0
    assert all(len(t.turns) == 3 for t in reuse.trajectories)
    assert reuse.metrics.kv_reused_tokens > 0
    assert 0 < reuse.metrics.to_dict()["kv_reuse_share"] < 1


def test_identical_prompts_are_prefilled_once_and_sampled_independently(tiny):
    """A GRPO group starts `group_size` rollouts from one prompt: its prefill runs once."""
    model, tok = tiny
    plain = HFPolicy(model, tok, share_prefix=False, kv_reuse=False)
    shared = HFPolicy(model, tok, kv_reuse=False)
    a, b = _enc(tok, FIRSTS[0]), _enc(tok, FIRSTS[2])
    batch = [a, b, a, a, b]
    _same(shared.generate(batch, GREEDY), plain.generate(batch, GREEDY))
    assert shared.prefilled_tokens == len(a) + len(b)
    assert plain.prefilled_tokens == 3 * len(a) + 2 * len(b)
    sampled = shared.generate([a] * 6, SamplingParams(max_new_tokens=10, seed=3, ignore_eos=True))
    assert len({tuple(g.token_ids) for g in sampled}) > 1  # one prefill, six independent draws

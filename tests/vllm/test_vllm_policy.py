"""VLLMPolicy against a real vLLM engine: the policy contract, agreement with HFPolicy, prefix
caching, weight sync (full and LoRA), the rollout engine, the trainer's vLLM backend and the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from turngym.agents.base import SamplingParams
from turngym.agents.hf_policy import HFPolicy

GREEDY = SamplingParams(max_new_tokens=24, greedy=True)


def _chat(policy, text: str) -> list[int]:
    return policy.encode_chat([{"role": "user", "content": text}])


@pytest.fixture(scope="module")
def prompts(engine):
    return [_chat(engine, t) for t in ("Say hello.", "Name a colour.", "What is 2+2?")]


def _assert_matches_hf(generations, prompts, hf, atol=1e-4):
    want = hf.score(prompts, [g.token_ids for g in generations])
    for g, w in zip(generations, want, strict=True):
        np.testing.assert_allclose(g.logprobs, w, atol=atol)


def test_greedy_tokens_and_logprobs_equal_hf_policy(engine, hf, prompts):
    got, want = engine.generate(prompts, GREEDY), hf.generate(prompts, GREEDY)
    for g, w in zip(got, want, strict=True):
        assert g.token_ids == w.token_ids
        assert g.text == w.text and g.finish_reason == w.finish_reason and g.stop == w.stop
        np.testing.assert_allclose(g.logprobs, w.logprobs, atol=1e-4)


def test_sampled_rows_are_seeded_per_row_and_carry_raw_logprobs(engine, hf, prompts):
    params = SamplingParams(max_new_tokens=16, temperature=0.7, top_p=0.9, seed=11)
    batch = [prompts[0]] * 4
    first, again = engine.generate(batch, params), engine.generate(batch, params)
    assert [g.token_ids for g in first] == [g.token_ids for g in again]  # same seed, same samples
    assert len({tuple(g.token_ids) for g in first}) > 1  # rows draw independently (seed + i)
    other = engine.generate(batch, SamplingParams(max_new_tokens=16, temperature=0.7, top_p=0.9, seed=12))
    assert [g.token_ids for g in other] != [g.token_ids for g in first]
    # logprobs are the raw temperature-1 ones, not those of the tempered, truncated sampler
    _assert_matches_hf(first, batch, hf)
    scored = engine.score(batch, [g.token_ids for g in first])
    for g, s in zip(first, scored):
        np.testing.assert_allclose(g.logprobs, s, atol=1e-4)


def test_stop_strings_stop_ids_length_and_ignore_eos(engine, hf, prompts):
    prompt = prompts[0]
    free = engine.generate([prompt], GREEDY)[0]
    word = engine.tokenizer.decode(free.token_ids[1:3], skip_special_tokens=True).strip()
    assert word
    stopped = engine.generate([prompt], SamplingParams(max_new_tokens=24, greedy=True, stop=[word]))[0]
    assert stopped.finish_reason == "stop" and stopped.stop == word
    assert word in stopped.text and stopped.text == engine.decode(stopped.token_ids)  # never cut
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)]
    want = hf.generate([prompt], SamplingParams(max_new_tokens=24, greedy=True, stop=[word]))[0]
    assert stopped.token_ids == want.token_ids

    stop_id = free.token_ids[2]
    by_id = engine.generate([prompt], SamplingParams(max_new_tokens=24, greedy=True, stop_token_ids=[stop_id]))[0]
    assert by_id.token_ids[-1] == stop_id and by_id.stop == stop_id and by_id.finish_reason == "stop"

    short = engine.generate([prompt], SamplingParams(max_new_tokens=2, greedy=True))[0]
    assert short.finish_reason == "length" and short.stop is None and len(short.token_ids) == 2

    eos = engine.generate([prompt], SamplingParams(max_new_tokens=64, greedy=True))[0]
    assert eos.finish_reason == "stop" and eos.token_ids[-1] in engine.eos_token_ids and eos.stop == eos.token_ids[-1]
    forced = engine.generate([prompt], SamplingParams(max_new_tokens=len(eos.token_ids) + 3, greedy=True, ignore_eos=True))[0]
    assert forced.finish_reason == "length" and len(forced.token_ids) == len(eos.token_ids) + 3

    empty = engine.generate([prompt, prompt], SamplingParams(max_new_tokens=0))
    assert [(g.token_ids, g.finish_reason) for g in empty] == [([], "length")] * 2
    assert engine.generate([], GREEDY) == []


def test_bad_prompts_are_refused_with_the_offending_value(engine):
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        engine.generate([[1, 2], []], GREEDY)
    with pytest.raises(ValueError, match=r"outside \[0, 49152\): \[999999\]"):
        engine.generate([[1, 999999]], GREEDY)
    with pytest.raises(ValueError, match="has 1024 tokens, but the engine's max_model_len is 1024"):
        engine.generate([[1] * 1024], GREEDY)
    near = engine.generate([[1] * 1020], SamplingParams(max_new_tokens=50, greedy=True, ignore_eos=True))[0]
    assert near.finish_reason == "length" and len(near.token_ids) == 4  # clipped to the context
    with pytest.raises(ValueError, match="2 prompts but 1 continuations"):
        engine.score([[1], [2]], [[3]])


def test_prefix_cache_serves_a_growing_episode_and_is_counted(engine, prompts):
    history = prompts[1] * 12  # > one KV block (32 tokens on CPU, 16 on GPU)
    engine.llm.reset_prefix_cache()  # other tests cached blocks of these prompts
    with engine.kv_session() as session:
        first = engine.generate([history], GREEDY)[0]
        engine.generate([history + first.token_ids + prompts[2]], GREEDY)
    stats = session.stats
    assert stats.lookups == 2 and stats.hits == 1
    block = engine.llm.llm_engine.vllm_config.cache_config.block_size
    # every full block of the history, and of the reply too (vLLM caches decoded blocks)
    assert len(history) - block < stats.reused_tokens <= len(history) + len(first.token_ids) - 1
    assert stats.reused_tokens + stats.prefilled_tokens == 2 * len(history) + len(first.token_ids) + len(prompts[2])
    assert engine.last_kv_stats is stats


def _perturbed(model: torch.nn.Module, scale: float = 0.02) -> torch.nn.Module:
    other = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in other.named_parameters():
            if "mlp" in name or "self_attn" in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return other


def test_weight_sync_serves_the_new_weights_and_drops_stale_prefixes(engine, hf, prompts):
    before = engine.generate(prompts, GREEDY)
    history = prompts[0] * 12
    with engine.kv_session():
        engine.generate([history], GREEDY)  # cache this prefix under the old weights
    new = HFPolicy(_perturbed(hf.model), hf.tokenizer)
    try:
        sync = engine.sync_weights(new.model)
        assert sync.version == engine.weight_version and sync.tensors == len(new.model.state_dict())
        assert sync.bytes == sum(t.numel() * t.element_size() for t in new.model.state_dict().values())
        with engine.kv_session() as session:  # the history alone: in one batch, the prompts
            after = engine.generate([history], GREEDY)  # could share blocks computed in this pass
        assert session.stats.reused_tokens == 0  # nothing computed by the old weights is reused
        after += engine.generate(prompts, GREEDY)
        _assert_matches_hf(after, [history, *prompts], new)
        assert [g.token_ids for g in after[1:]] == [g.token_ids for g in new.generate(prompts, GREEDY)]
        assert [g.token_ids for g in after[1:]] != [g.token_ids for g in before]
    finally:
        engine.sync_weights(hf.model)
    restored = engine.generate(prompts, GREEDY)
    assert [g.token_ids for g in restored] == [g.token_ids for g in before]


def test_lora_sync_sends_merged_weights_and_leaves_the_adapter_model_unchanged(engine, hf, prompts):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(hf.model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    names_before = {n: p.clone() for n, p in model.named_parameters()}
    lora = HFPolicy(model, hf.tokenizer)
    try:
        engine.sync_weights(model)
        _assert_matches_hf(engine.generate(prompts, GREEDY), prompts, lora)
    finally:
        engine.sync_weights(hf.model)
    for n, p in model.named_parameters():
        assert torch.equal(p, names_before[n]), n  # the adapters were merged into copies only


def test_sync_weights_rejects_what_it_cannot_load(engine):
    with pytest.raises(TypeError, match="got int"):
        engine.sync_weights(3)


def test_collect_plays_multi_turn_games_token_in_token_out_with_prefix_reuse(engine, hf):
    from turngym.training.rollout import RolloutConfig, Task, collect

    config = RolloutConfig(group_size=2, max_new_tokens=6, temperature=0, context="full")
    tasks = [Task("turngym/TicTacToe-v0", s, opponent="random") for s in (0, 1)]
    got = collect(tasks, engine, config)
    want = collect(tasks, hf, config)
    assert len(got.trajectories) == len(want.trajectories) == 4
    for g, w in zip(got.trajectories, want.trajectories, strict=True):
        assert [(t.prompt_ids, t.completion_ids) for t in g.turns] == [(t.prompt_ids, t.completion_ids) for t in w.turns]
        np.testing.assert_allclose([x for t in g.turns for x in t.logprobs], [x for t in w.turns for x in t.logprobs], atol=1e-4)
        assert g.outcome == w.outcome
    assert got.metrics.kv_reused_tokens > 0  # the group's shared first prompt, at least


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_trainer_vllm_backend_stays_on_policy_because_weights_are_synced(tmp_path, monkeypatch):
    """Rollout log-probs come from vLLM, the loss from the learner: with a sync after every step
    the two agree (approx_kl ~ 0); without it the second step is measurably off-policy."""
    from turngym.training import trainer
    from turngym.training.config import load_preset

    overrides = ["steps=2", "checkpoint_every=2", "model.name=tiny-random", "rollout.backend=vllm",
                 "model.tiny_hidden=128", "rollout.tasks_per_step=2", "rollout.group_size=4", "optim.lr=0.01"]
    trainer.train(load_preset("ci-tiny", [f"out_dir={tmp_path / 'synced'}", *overrides]), show_progress=False)
    synced = _metrics(tmp_path / "synced")
    assert [m["step"] for m in synced] == [1, 2]
    for m in synced:
        assert m["time/weight_sync_s"] > 0 and m["grad_norm"] > 0
        assert abs(m["approx_kl"]) < 1e-6, m["approx_kl"]

    monkeypatch.setattr(trainer, "sync_weights", lambda rollouts, model: 0.0)
    trainer.train(load_preset("ci-tiny", [f"out_dir={tmp_path / 'stale'}", *overrides]), show_progress=False)
    stale = _metrics(tmp_path / "stale")
    assert abs(stale[0]["approx_kl"]) < 1e-6  # step 1: nothing trained yet, so nothing is stale
    assert abs(stale[1]["approx_kl"]) > 1e-4  # step 2 sampled from the old weights


def test_eval_cli_runs_a_vllm_agent(tmp_path):
    out = tmp_path / "eval.json"
    run = subprocess.run(
        [sys.executable, "-m", "turngym.cli", "eval", "turngym/TicTacToe-v0", "--agent", "vllm:smollm2-135m",
         "--opponent", "random", "--episodes", "4", "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["episodes"] == 4



def test_a_call_from_another_thread_is_refused_with_the_reason(engine, prompts):
    import threading

    errors = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, engine.generate, prompts, GREEDY)))
    thread.start()
    thread.join()
    assert "thread that created it" in str(errors[0].value)

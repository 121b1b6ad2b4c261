"""agents/factory.py: the one parser of model specs and the policies built from them."""

from __future__ import annotations

import pytest

from turngym.agents.factory import (
    LoraOptions,
    UnknownModelSpec,
    build_rollout_policy,
    discard_snapshot,
    is_model_spec,
    load_policy,
    load_tokenizer,
    parse_spec,
    save_snapshot,
    shared_policy,
    sync_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/agents/conftest.py


@pytest.mark.parametrize(
    "spec, kind, target, base_url, temperature",
    [
        ("smollm2-135m", "embedded", "smollm2-135m", "", None),
        ("smollm2", "embedded", "smollm2", "", None),
        ("smollm2-135m-instruct@0.5", "embedded", "smollm2-135m-instruct", "", 0.5),
        ("hf:runs/q/model", "hf", "runs/q/model", "", None),
        ("hf:runs/q/model@0.7", "hf", "runs/q/model", "", 0.7),
        ("hf:HuggingFaceTB/SmolLM2-135M-Instruct", "hf", "HuggingFaceTB/SmolLM2-135M-Instruct", "", None),
        ("hf:/models/a@b", "hf", "/models/a@b", "", None),  # an '@' not followed by a number is the path's
        ("vllm:smollm2-135m", "vllm", "smollm2-135m", "", None),
        ("openai:tiny@http://127.0.0.1:8000/v1", "openai", "tiny", "http://127.0.0.1:8000/v1", None),
        ("openai:m@https://api.example/v1@1", "openai", "m", "https://api.example/v1", 1.0),
        ("tiny-char", "tiny-char", "tiny-char", "", None),
        (" tiny-random@0 ", "tiny-random", "tiny-random", "", 0.0),
    ],
)
def test_parse_spec_accepts_every_form(spec, kind, target, base_url, temperature):
    parsed = parse_spec(spec)
    assert (parsed.kind, parsed.target, parsed.base_url, parsed.temperature) == (kind, target, base_url, temperature)
    assert is_model_spec(spec)
    assert parsed.model == spec.strip().removesuffix("@0.5").removesuffix("@0.7").removesuffix("@1").removesuffix("@0")


@pytest.mark.parametrize(
    "spec, suggestion",
    [
        ("smollm2-135", "'smollm2-135m'"),
        ("tiny-chr", "'tiny-char'"),
        ("hg:runs/q/model", "'hf:runs/q/model'"),
        ("vlm:path", "'vllm:path'"),
        ("runs/q/model", "'hf:runs/q/model'"),
    ],
)
def test_unknown_specs_say_did_you_mean_and_list_the_forms(spec, suggestion):
    with pytest.raises(UnknownModelSpec) as err:
        parse_spec(spec)
    message = str(err.value)
    assert f"unknown model spec {spec!r}; did you mean {suggestion}?" in message
    for form in ("smollm2-135m", "hf:<local dir or hub id>", "vllm:", "openai:<model>@", "tiny-char", "tiny-random"):
        assert form in message


def test_unknown_specs_without_a_close_match_still_list_the_forms():
    with pytest.raises(UnknownModelSpec, match=r"unknown model spec 'gpt-5'; valid forms: smollm2-135m"):
        load_policy("gpt-5")
    assert not is_model_spec("gpt-5") and not is_model_spec("minimax") and not is_model_spec("alphabeta:6")


def test_malformed_known_forms_quote_the_spec():
    with pytest.raises(ValueError, match=r"empty model in spec 'hf:'; use hf:<local path>"):
        parse_spec("hf:")
    with pytest.raises(ValueError, match=r"empty model in spec 'vllm:'.*vllm:smollm2-135m"):
        parse_spec("vllm:")
    with pytest.raises(ValueError, match="openai:<model>@http"):
        parse_spec("openai:tiny")
    with pytest.raises(ValueError, match="must be >= 0"):
        parse_spec("hf:x@-1")


def test_load_policy_errors(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    # offline (as in CI): a hub id that is not in the HF cache fails fast and says why
    monkeypatch.setattr("turngym.agents.hf_policy._hub_offline", lambda: True)
    with pytest.raises(ValueError, match="internet access.*local directory"):
        load_policy("hf:definitely-not/a-local-model-xyz")
    with pytest.raises(ValueError, match="local directory .* is not a loadable"):
        load_policy(f"hf:{tmp_path}")


def test_tiny_specs_build_seeded_models_of_the_requested_size():
    pytest.importorskip("transformers")
    a = load_policy("tiny-char", seed=1, tiny_layers=1, tiny_hidden=32, max_batch_size=3)
    b = load_policy("tiny-char@0.7", seed=1, tiny_layers=1, tiny_hidden=32)
    assert a.model.config.num_hidden_layers == 1 and a.model.config.hidden_size == 32
    assert a.max_batch_size == 3
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert (x == y).all()


def test_load_policy_hf_local_dir_and_snapshots(tmp_path):
    pytest.importorskip("transformers")
    from turngym.agents.base import SamplingParams

    tiny = load_policy("tiny-char", seed=2)
    spec = save_snapshot(tiny, tmp_path / "snap")
    assert spec == f"hf:{tmp_path / 'snap'}"
    loaded = load_policy(spec)
    prompt = [tiny.tokenizer.encode("Hello")]
    params = SamplingParams(max_new_tokens=5, greedy=True)
    assert loaded.generate(prompt, params)[0].token_ids == tiny.generate(prompt, params)[0].token_ids
    # model agents share one copy of the weights per model, whatever the temperature
    assert shared_policy(spec) is shared_policy(f"{spec}@0.5")
    held = shared_policy(spec)
    discard_snapshot(spec)
    assert not (tmp_path / "snap").exists()
    save_snapshot(tiny, tmp_path / "snap")
    assert shared_policy(spec) is not held  # the discarded snapshot's weights were forgotten
    with pytest.raises(ValueError, match="not a snapshot spec"):
        discard_snapshot("tiny-char")


def test_lora_wraps_the_model_and_only_adapters_train():
    pytest.importorskip("peft")
    policy = load_policy("tiny-char", lora={"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert LoraOptions().target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")


def test_rollouts_on_the_learner_need_no_weight_sync(tmp_path):
    pytest.importorskip("transformers")
    policy = load_policy("tiny-char")
    assert build_rollout_policy("tiny-char", policy, tmp_path) is policy
    assert sync_weights(policy, policy.model) == 0.0
    with pytest.raises(ValueError, match="unknown rollout backend 'tpu'"):
        build_rollout_policy("tiny-char", policy, tmp_path, backend="tpu")


def test_load_tokenizer_of_a_served_model():
    pytest.importorskip("transformers")
    assert load_tokenizer("tiny-char").decode(load_tokenizer("x", "tiny-char").encode("ab")) == "ab"
    with pytest.raises(ValueError, match="pass --tokenizer"):
        load_tokenizer("some-served-name")


def test_every_entry_point_accepts_tiny_char():
    """eval (cli), model opponents (resolve_agent) and serve all go through the factory."""
    pytest.importorskip("transformers")
    from turngym.agents.serve import serve_main
    from turngym.agents.specs import ModelAgent, resolve_agent

    agent = resolve_agent("tiny-char@0.5", "turngym/TicTacToe-v0", seed=0)
    assert isinstance(agent, ModelAgent) and agent.temperature == 0.5
    with pytest.raises(ValueError, match="model agents play games"):
        resolve_agent("tiny-char", "turngym/Vowels-v0")
    assert serve_main(["--model", "tiny-chr"]) == 2  # refused before any server starts
    assert serve_main(["--model", "openai:m@http://127.0.0.1:1/v1"]) == 2

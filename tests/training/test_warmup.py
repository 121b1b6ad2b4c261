"""The behaviour-cloning warm-up: demonstrations in the rollouts' token format, NLL that falls, and a
trainer that evaluates before and after it and never repeats it on resume."""

from __future__ import annotations

import json

import pytest

from turngym.agents.models import load_smollm2_tokenizer
from turngym.agents.specs import resolve_agent
from turngym.agents.text_policy import TextFunctionPolicy
from turngym.training.config import load_preset
from turngym.training.rollout import RolloutConfig, Task, collect, play_scripted
from turngym.training.trainer import train

LOOKUP = "turngym/SearchQA-Fictional-v0"
ENVS = json.dumps([{"id": LOOKUP, "kwargs": {"shape": "lookup", "turns": 3}}])


def test_scripted_episodes_are_recorded_as_the_rollouts_would_have_played_them():
    tokenizer = load_smollm2_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = RolloutConfig(group_size=1, max_new_tokens=64, max_episode_tokens=1536, env_kwargs={LOOKUP: {"shape": "lookup"}})
    tasks = [Task(LOOKUP, s) for s in range(3)]
    demos = play_scripted(tasks, lambda t: resolve_agent("oracle", t.env_id, seed=t.seed), tokenizer, eos, config)
    assert [t.outcome for t in demos] == [1.0, 1.0, 1.0] and all(t.stop_reason == "solved" for t in demos)
    first = demos[0]
    assert first.turns[0].text.startswith("<think>") and "<search>" in first.turns[0].text
    assert first.turns[-1].text.startswith("<answer>")
    for turn in first.turns:  # the reply, tokenized, then the end-of-turn token; log-probs 0
        assert turn.completion_ids == [*tokenizer(turn.text, add_special_tokens=False)["input_ids"], eos]
        assert turn.logprobs == [0.0] * len(turn.completion_ids)

    replies = iter(turn.text for turn in first.turns)
    # a policy replying what the oracle replied: collect must build the identical token sequence
    replayed = collect([Task(LOOKUP, 0)], TextFunctionPolicy(tokenizer, lambda prompt: next(replies)), config).trajectories[0]
    assert replayed.flat().token_ids == first.flat().token_ids


def test_warmup_lowers_the_nll_is_evaluated_before_and_after_and_is_not_repeated_on_resume(tmp_path):
    overrides = [f"out_dir={tmp_path}", f"envs={ENVS}", "steps=2", "checkpoint_every=1", "model.tiny_hidden=64",
                 "rollout.tasks_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=48",
                 "rollout.max_episode_tokens=2048", "warmup.agent=oracle", "warmup.episodes=6", "warmup.epochs=3",
                 "warmup.batch_size=3", "warmup.lr=0.003", "eval.episodes=2", "eval.temperatures=[0.0]"]
    summary = train(load_preset("ci-tiny", overrides), show_progress=False)
    warm = summary["warmup"]
    assert warm["agent"] == "oracle" and warm["demonstrations"] == 6 and warm["kept"] == 6
    assert warm["optimizer_steps"] == 3 * 2 and warm["nll_last_epoch"] < warm["nll_first_epoch"]
    assert set(summary["evals"]) == {"base", "before", "after"}
    assert "comparison_warmup" in summary and "comparison" in summary
    resumed = train(load_preset("ci-tiny", [*overrides, "steps=3"]), resume=True, show_progress=False)
    assert resumed["warmup"] == warm and resumed["steps"] == 3


def test_eval_base_false_skips_only_the_untouched_models_evaluation(tmp_path):
    overrides = [f"out_dir={tmp_path}", f"envs={ENVS}", "steps=1", "model.tiny_hidden=64", "rollout.tasks_per_step=2",
                 "rollout.group_size=2", "rollout.max_new_tokens=48", "rollout.max_episode_tokens=2048",
                 "warmup.agent=oracle", "warmup.episodes=2", "warmup.epochs=1", "warmup.batch_size=2",
                 "eval.episodes=2", "eval.temperatures=[0.0]", "eval.base=false"]
    summary = train(load_preset("ci-tiny", overrides), show_progress=False)
    assert summary["warmup"]["demonstrations"] == 2
    assert set(summary["evals"]) == {"before", "after"}
    assert "comparison" in summary and "comparison_warmup" not in summary


def test_a_warmup_agent_the_env_does_not_have_is_refused_with_its_agents():
    with pytest.raises(ValueError, match=r"warmup.agent 'expert' is not a scripted agent.*theirs: \['no-search', 'oracle'\]"):
        load_preset("ci-tiny", [f"envs={ENVS}", "warmup.agent=expert"])

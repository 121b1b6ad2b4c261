"""``turngym train --dry-run``: every shipped preset validates and resolves; what cannot run is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from turngym.training.config import load_preset, presets
from turngym.training.plan import PlanError, plan


@pytest.mark.parametrize("name", presets())
def test_every_shipped_preset_dry_runs(name):
    run_plan = plan(load_preset(name))
    assert run_plan.rollouts_per_step == run_plan.tasks_per_step * run_plan.group_size
    assert run_plan.envs and all(e.use for e in run_plan.envs)
    assert dict(run_plan.rows())["estimator"].startswith(run_plan.estimator.split()[0])


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "turngym.cli", "train", "--preset", "quickstart", "--dry-run", "--json"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rollouts_per_step"] == 48 and data["estimator"] == "turn_group"
    assert data["envs"][0]["id"] == "turngym/TicTacToe-v0" and data["envs"][0]["delta"] == -1.0
    assert list(tmp_path.iterdir()) == []  # no run folder: nothing was trained, converted or written


def test_an_env_kwarg_its_constructor_does_not_take_is_refused_with_the_accepted_names():
    config = load_preset("ci-tiny", ['envs=[{id: turngym/Vowels-v0, kwargs: {turnz: 3}}]'])
    with pytest.raises(PlanError, match=r"turnz.*its constructor takes \['turns', 'render_mode'\]"):
        plan(config)


def test_wrapper_kwargs_that_make_takes_itself_are_accepted():
    plan(load_preset("ci-tiny", ['envs=[{id: turngym/Vowels-v0, kwargs: {max_turns: 3}}]']))


def test_a_missing_local_model_folder_is_refused_and_a_hub_id_is_a_note(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        plan(load_preset("ci-tiny", [f"model.name=hf:{tmp_path / 'nope'}"]))
    with pytest.raises(PlanError, match="no config.json"):
        plan(load_preset("ci-tiny", [f"model.name=hf:{tmp_path}"]))
    hub = plan(load_preset("ci-tiny", ["model.name=hf:Qwen/Qwen2.5-1.5B-Instruct"]))
    assert hub.model_source == "hub id Qwen/Qwen2.5-1.5B-Instruct" and any("hub id" in n for n in hub.notes)


def test_the_cli_exits_2_with_the_reason_when_the_plan_cannot_run():
    result = subprocess.run([sys.executable, "-m", "turngym.cli", "train", "--preset", "ci-tiny", "--dry-run",
                             "--set", "envs=[{id: turngym/Vowels-v0, kwargs: {turnz: 3}}]"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "turnz" in result.stderr


def test_an_eval_env_with_other_kwargs_than_the_same_training_env_is_refused():
    with pytest.raises(ValueError, match="eval.envs gives 'turngym/Vowels-v0' other kwargs than envs does"):
        load_preset("ci-tiny", ["eval.envs=[{id: turngym/Vowels-v0, kwargs: {turns: 2}}]"])


def test_tokens_per_step_counts_every_turns_prompt_when_each_turn_is_its_own_sequence():
    household = plan(load_preset("household"))  # context: turn, 16 rollouts, 8 turns, 1024 tokens a turn
    assert household.max_tokens_per_step == 16 * 8 * 1024 and "8 turns" in household.tokens_bound
    whole = plan(load_preset("household", ["rollout.context=full"]))
    assert whole.max_tokens_per_step == 16 * 1024 and whole.tokens_bound == "rollouts × max_episode_tokens"

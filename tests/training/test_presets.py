"""Smoke tests of the tool-using presets: each trains 2 steps with a tiny random model (SmolLM2's
tokenizer, so episode lengths are the real ones) substituted, so the
wiring of every family into the learner (its env, kwargs, held-out eval env, estimator, gate, info
gain) can never silently break. The real runs (SmolLM2, 30–45 min each) are in docs/recipes.md."""

from __future__ import annotations

import json
import os

import pytest

from turngym.training.config import load_preset
from turngym.training.trainer import train

TINY = ["model.name=tiny-random", "steps=2", "warmup.episodes=2", "warmup.epochs=1", "time_budget_s=null", "checkpoint_every=2", "tensorboard=false",
        "eval.episodes=2", "eval.temperatures=[0.0]", "eval.also_against=[]", "rollout.tasks_per_step=2",
        "rollout.group_size=2"]


def _sandbox_problem() -> str | None:
    try:
        from turngym.sandbox import choose_backend, resolve_config

        choose_backend(resolve_config())
        return None
    except Exception as exc:  # no docker, no bwrap
        return f"no sandbox backend: {exc}"


@pytest.mark.parametrize("name", ["search", "household", "code"])
def test_each_tool_using_preset_trains_two_steps_with_the_tiny_model(name, tmp_path):
    if name == "code" and (problem := _sandbox_problem()):
        if os.environ.get("TURNGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(problem + " (TURNGYM_REQUIRE_DOCKER=1: code-env tests must run)")
        pytest.skip(problem)
    config = load_preset(name, [*TINY, f"out_dir={tmp_path}"])
    summary = train(config, show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and summary["steps"] == 2
    assert all(r["rollout/trajectories"] == 4 and r["rollout/failed"] == 0 for r in rows)
    if config.warmup.agent:  # the scripted agent's demonstrations were recorded and cloned
        assert summary["warmup"]["kept"] > 0 and summary["warmup"]["optimizer_steps"] > 0
    assert config.eval.envs, "each tool-using preset evaluates on a held-out split"
    assert {e.id for e in config.eval.envs}.isdisjoint({e.id for e in config.envs})
    base = {"base"} if config.warmup.agent and config.eval.base else set()  # the untouched model, when asked for
    assert set(summary["evals"]) == {"before", "after"} | base
    assert (tmp_path / "checkpoint" / "state.pt").exists()

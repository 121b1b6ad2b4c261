"""Episode statistics: the intermediate metrics (dense components per episode) and held-out eval envs."""

from __future__ import annotations

import json

from turngym.envs.types import TurnRecord
from turngym.training.config import load_preset
from turngym.training.evaluate import EvalSummary, summarize_trajectories
from turngym.training.trainer import evaluate_policy
from turngym.training.trajectory import Trajectory, Turn


def _episode(components_per_turn, outcome=0.0, failed=False):
    turns = [Turn([1], [2], [0.0], "x", "stop", TurnRecord(turn=k, seat=0, reward=sum(c.values()), components=c))
             for k, c in enumerate(components_per_turn)]
    return Trajectory("e", 0, "e#0", 0, 0, turns=turns, outcome=None if failed else outcome, failed=failed)


def test_component_rates_count_episodes_where_the_component_was_ever_nonzero():
    episodes = [
        _episode([{"retrieval_hit": 0.1}, {"retrieval_hit": 0.0, "format": -0.2}]),
        _episode([{"retrieval_hit": 0.0}, {"format": 0.0}], outcome=1.0),
        _episode([{"format": -0.2}, {"format": -0.2}]),
        _episode([{"retrieval_hit": 0.1}], failed=True),  # failed: not counted
    ]
    summary = summarize_trajectories(episodes)
    assert summary.episodes == 3
    assert (summary.components["retrieval_hit"].count, summary.components["retrieval_hit"].n) == (1, 3)
    assert (summary.components["format"].count, summary.components["format"].n) == (2, 3)
    low, high = summary.components["format"].low, summary.components["format"].high
    assert 0 < low < 2 / 3 < high < 1  # Wilson interval
    again = EvalSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert again == summary


def test_old_summaries_without_components_still_load():
    data = summarize_trajectories([_episode([{}])]).to_dict()
    del data["components"]
    assert EvalSummary.from_dict(data).components == {}


def test_several_held_out_envs_are_also_reported_one_by_one():
    from turngym.agents.factory import load_policy

    config = load_preset("ci-tiny", ['eval.envs=[{id: turngym/Vowels-v0}, {id: turngym/Arithmetic-v0}]', "eval.temperatures=[0.0]"])
    policy = load_policy(config.model.name, **config.policy_options())
    results = evaluate_policy(policy, config, 6, show_progress=False)
    assert set(results) == {"greedy", "greedy @ Vowels-v0", "greedy @ Arithmetic-v0"}
    assert results["greedy @ Vowels-v0"].episodes == 3 and results["greedy @ Arithmetic-v0"].env_id == "turngym/Arithmetic-v0"
    assert results["greedy"].episodes == 6


def test_eval_progress_shows_no_eta_until_a_quarter_of_the_episodes_ended():
    from turngym.training.run_io import EvalProgress

    progress = EvalProgress("eval greedy", 8, enabled=True)  # enabled: its first line is printed at once
    progress.episode([_episode([{}], outcome=1.0)])
    assert progress.eta() is None  # 1 of 8: lock-step episodes end together; a rate now would mislead
    progress.episode([_episode([{}])])
    assert progress.eta() is not None and progress.successes == 1 and progress.scored == 2


def test_the_step_bar_eta_respects_the_time_budget():
    from turngym.training.run_io import TrainProgress

    plain = TrainProgress(40, 0, enabled=False)
    budgeted = TrainProgress(40, 0, enabled=False, budget_left_s=60.0)
    for progress in (plain, budgeted):
        progress.bar.started -= 10.0  # one step took 10 s
        progress.bar.update(1)
    assert plain.bar.eta() > 300  # 39 more steps at 10 s each
    assert 55 <= budgeted.bar.eta() <= 61  # ~50 s of budget left, then the step running finishes

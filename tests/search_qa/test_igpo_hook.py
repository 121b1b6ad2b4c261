"""The learner's IGPO pass gets the gold answer from the env's reset ``info`` (training side: tiny model)."""

import math

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_rollouts_carry_the_gold_answer_and_get_information_gain(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from turngym.agents.hf_policy import HFPolicy
    from turngym.agents.tiny import tiny_char_model
    from turngym.envs.search_qa import dataset
    from turngym.training.info_gain import information_gain_rewards
    from turngym.training.rollout import RolloutConfig, Task, collect

    policy = HFPolicy(*tiny_char_model(0))
    config = RolloutConfig(group_size=2, max_new_tokens=6, max_episode_tokens=20_000)
    batch = collect([Task("turngym/SearchQA-Fictional-v0", 3)], policy, config)
    gold = dataset.load("fictional").select(None)[3].answer
    assert [t.info["answer"] for t in batch.trajectories] == [gold, gold]
    for t in batch.trajectories:
        assert len(t.turns) == 4 and t.stop_reason == "turn_limit"  # random text: four invalid turns
    gains = information_gain_rewards(policy, batch.trajectories)
    assert all(math.isfinite(g) for t_gains in gains for g in t_gains[:-1])
    assert all(math.isnan(t_gains[-1]) for t_gains in gains)

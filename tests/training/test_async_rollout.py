"""Asynchronous rollouts: bounded staleness, exact synchronous behaviour at staleness 0, learning at 1 and 2,
restarts of a failing producer, and the configurations it refuses."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

from turngym.agents.factory import load_policy
from turngym.training.async_rollout import ProducerFailed, RolloutProducer
from turngym.training.config import load_preset
from turngym.training.rollout import RolloutConfig, Task, collect
from turngym.training.trainer import train


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint" / "state.pt", weights_only=False)["model"]


def test_staleness_zero_is_the_synchronous_run_bit_for_bit(tmp_path):
    sync, async0 = tmp_path / "sync", tmp_path / "async0"
    train(load_preset("ci-tiny", [f"out_dir={sync}", "steps=4"]), show_progress=False)
    train(load_preset("ci-tiny", [f"out_dir={async0}", "steps=4", "rollout.mode=async", "rollout.max_staleness=0"]),
          show_progress=False)
    a, b = _weights(sync), _weights(async0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for r1, r2 in zip(_metrics(sync), _metrics(async0)):
        assert r2["rollout/staleness_max"] == 0
        for key in ("loss", "grad_norm", "reward/mean_outcome", "policy_tokens"):
            assert r1[key] == r2[key], key
        assert not any(k.startswith("offpolicy/") for k in r2)  # fresh batches need no correction


@pytest.mark.parametrize("staleness", [1, 2])
def test_the_ci_learning_test_passes_with_stale_rollouts(tmp_path, staleness):
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=30", "checkpoint_every=30", "rollout.mode=async",
                                     f"rollout.max_staleness={staleness}"])
    train(config, show_progress=False)
    rows = _metrics(tmp_path)
    first = sum(r["reward/mean_outcome"] for r in rows[:3]) / 3
    last = sum(r["reward/mean_outcome"] for r in rows[-3:]) / 3
    assert last >= first + 0.15, f"mean outcome went {first:.3f} -> {last:.3f}"
    assert max(r["rollout/staleness_max"] for r in rows) <= staleness
    assert all(r["rollout/staleness_max"] <= min(r["step"] - 1, staleness) for r in rows)
    stale_rows = [r for r in rows if r["rollout/staleness_max"] > 0]
    assert stale_rows, "the producer never ran ahead"
    for r in stale_rows:  # decoupled PPO: the proximal log-probs were recomputed and weighted
        assert r["offpolicy/rows"] > 0 and 0 < r["offpolicy/weight_mean"] <= 2.0
        assert r["offpolicy/gap_mean"] > 0


def _tiny_play(calls: list[tuple[int, int]], fail_on: dict[int, int] | None = None):
    """A real rollout function (tiny model, Vowels) that records (step, weights version) and can fail."""
    fail_on = dict(fail_on or {})

    def play(step, policy):
        version = int(policy.model.get_input_embeddings().weight[0, 0].item())  # the test writes the version there
        calls.append((step, version))
        if fail_on.get(step, 0) > 0:
            fail_on[step] -= 1
            raise RuntimeError(f"injected engine crash on step {step}")
        return collect([Task("turngym/Vowels-v0", step)], policy, RolloutConfig(group_size=2, max_new_tokens=4,
                                                                               max_episode_tokens=128, seed=step))
    return play


def _stamp(policy, version: int) -> torch.nn.Module:
    with torch.no_grad():
        policy.model.get_input_embeddings().weight[0, 0] = float(version)
    return policy.model


def test_the_producer_runs_at_most_k_steps_ahead_and_stamps_versions():
    policy = load_policy("tiny-char", seed=0)
    _stamp(policy, 0)
    calls: list[tuple[int, int]] = []
    with RolloutProducer(_tiny_play(calls), policy, first_step=0, last_step=5, max_staleness=1) as producer:
        for step in range(5):
            produced = producer.take(step)
            assert step - produced.version <= 1
            assert {t.policy_version for t in produced.batch.trajectories} == {produced.version}
            time.sleep(0.3)  # a slow learner: the producer has time to run ahead
            producer.publish(_stamp(policy, step + 1), version=step + 1)
    assert all(step - version <= 1 for step, version in calls)
    assert any(step - version == 1 for step, version in calls), "with k=1 and a slow learner it should run ahead"


def test_a_failing_step_is_replayed_and_a_broken_producer_fails_the_run_with_the_error():
    policy = load_policy("tiny-char", seed=0)
    _stamp(policy, 0)
    calls: list[tuple[int, int]] = []
    with RolloutProducer(_tiny_play(calls, fail_on={1: 2}), policy, first_step=0, last_step=3, max_staleness=1) as producer:
        taken = []
        for step in range(3):
            taken.append(producer.take(step).step)
            producer.publish(_stamp(policy, step + 1), version=step + 1)
        assert taken == [0, 1, 2] and producer.restarts == 2
    assert [s for s, _ in calls].count(1) == 3  # two crashes, then played; no batch lost or played twice

    with RolloutProducer(_tiny_play([], fail_on={0: 99}), policy, first_step=0, last_step=2, max_staleness=1,
                         max_restarts=1) as broken:
        with pytest.raises(ProducerFailed, match="failed 2 times in a row on step 0.*injected engine crash"):
            broken.take(0)


def test_close_stops_a_waiting_producer():
    policy = load_policy("tiny-char", seed=0)
    producer = RolloutProducer(_tiny_play([]), policy, first_step=0, last_step=10, max_staleness=0)
    producer.take(0)  # it now waits for version 1, which never comes
    closer = threading.Thread(target=producer.close)
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive()


def test_configurations_async_cannot_run_are_refused():
    with pytest.raises(ValueError, match="async.*vLLM engine"):
        load_preset("ci-tiny", ["rollout.mode=async", "rollout.backend=vllm"])
    with pytest.raises(ValueError, match="opponent pool"):
        load_preset("selfplay", ["rollout.mode=async"])

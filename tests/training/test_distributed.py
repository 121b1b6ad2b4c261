"""Rollouts on Ray (training/distributed.py) against a real local Ray cluster: head + one worker node.

One cluster is shared by the module (Ray start-up is slow) and shut down at the end. Exactness
claims are bit-for-bit (``==`` on token ids, log-probs and logged metrics), not approximate.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace

import numpy as np
import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from turngym.agents.factory import load_policy
from turngym.training.config import load_preset
from turngym.training.distributed import (
    ClusterUnreachable,
    DistributedRolloutMetrics,
    RayCollector,
    UnitResult,
    WorkersLost,
    connect,
    group_seed,
    load_weights_payload,
    merge_results,
    plan_units,
    weights_payload,
)
from turngym.training.rollout import RolloutConfig, RolloutMetrics, Task, collect
from turngym.training.trainer import rollout_config, sample_tasks, train

MB = 2**20


def _signature(batch) -> list:
    """Everything sampled, per trajectory, in order: ids, exact log-probs, texts, outcomes."""
    return [
        (t.group_id, t.sample_index, t.seat, t.outcome, t.failed,
         [(tuple(x.prompt_ids), tuple(x.completion_ids), tuple(x.logprobs), x.text) for x in t.turns])
        for t in batch.trajectories
    ]


def _config(*overrides: str):
    return load_preset("ci-tiny", ["model.threads=1", *overrides])


@pytest.fixture(scope="module")
def cluster():
    """A head node (no CPUs: nothing is scheduled there) and one worker node, 100 MB object store each."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": 100 * MB})
    c.add_node(num_cpus=4, object_store_memory=100 * MB)  # logical CPUs: 2 shared workers + 2 per test
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def two_workers(cluster):
    config = _config()
    collector = RayCollector(config, 2, address=cluster.address, split="group")
    try:
        yield config, collector
    finally:
        collector.close()


# ------------------------------------------------------------------ pure parts (no cluster)
def test_group_split_seeds_depend_on_task_and_collect_seed_only():
    tasks = [Task("turngym/Vowels-v0", s) for s in (5, 9, 5)]
    config = RolloutConfig(group_size=4, seed=123)
    one, three = plan_units(tasks, config, 1, "group"), plan_units(tasks, config, 3, "group")
    assert [(u.tasks, u.config.seed) for u in one] == [(u.tasks, u.config.seed) for u in three]
    assert len({u.config.seed for u in one}) == 3  # a repeated task still gets its own samples
    assert one[0].config.seed == group_seed(123, 0, tasks[0]) != group_seed(124, 0, tasks[0])
    assert all(u.config.group_size == 4 for u in one)


def test_worker_split_keeps_the_collect_seed_for_the_first_chunk():
    tasks = [Task("turngym/Vowels-v0", s) for s in range(5)]
    units = plan_units(tasks, RolloutConfig(seed=7), 2, "worker")
    assert [len(u.tasks) for u in units] == [2, 3] or [len(u.tasks) for u in units] == [3, 2]
    assert sum((u.tasks for u in units), ()) == tuple(tasks)
    assert units[0].config.seed == 7 and units[1].config.seed != 7
    assert [u.config.seed for u in plan_units(tasks, RolloutConfig(seed=7), 1, "worker")] == [7]
    with pytest.raises(ValueError, match="split must be one of .* got 'rows'"):
        plan_units(tasks, RolloutConfig(), 2, "rows")


def test_merge_orders_like_collect_and_sums_metrics_once_per_unit():
    from turngym.training.trajectory import Trajectory

    def traj(seed: int, k: int) -> Trajectory:
        return Trajectory("turngym/Vowels-v0", seed, f"turngym/Vowels-v0#{seed}", k, 0)

    a = UnitResult(1, [traj(1, 0), traj(1, 1)], RolloutMetrics(episodes=2, trajectories=2, turns=6, generate_seconds=0.5), 1, 0)
    b = UnitResult(0, [traj(3, 0), traj(3, 1)], RolloutMetrics(episodes=2, trajectories=2, turns=5, generate_seconds=0.25), 2, 0)
    metrics = DistributedRolloutMetrics()
    merged = merge_results([a, b], metrics)
    assert [(t.seed, t.sample_index) for t in merged] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert (metrics.episodes, metrics.trajectories, metrics.turns, metrics.generate_seconds) == (4, 4, 11, 0.75)


def test_weights_payload_round_trips_float32_and_bfloat16_exactly():
    from turngym.agents.tiny import tiny_char_model

    for dtype in (torch.float32, torch.bfloat16):
        source = tiny_char_model(1)[0].to(dtype)
        target = tiny_char_model(2)[0].to(dtype)
        load_weights_payload(target, weights_payload(source))
        for (name, x), y in zip(source.state_dict().items(), target.state_dict().values()):
            assert x.dtype == y.dtype == dtype and torch.equal(x, y), name


def test_an_unreachable_cluster_raises_a_typed_error_quoting_the_address():
    with pytest.raises(ClusterUnreachable, match=r"'127\.0\.0\.1:1'.*ray start --head"):
        connect("127.0.0.1:1", connect_timeout_s=2)
    with pytest.raises(ClusterUnreachable, match=r"'ray://127\.0\.0\.1:1'"):
        RayCollector(_config(), 1, address="ray://127.0.0.1:1", connect_timeout_s=2)
    with pytest.raises(ClusterUnreachable, match=r"'headnode'.*expected 'host:port'"):
        connect("headnode")


# ------------------------------------------------------------------ on the cluster
@pytest.mark.slow
def test_training_on_ray_matches_the_single_process_run_exactly(cluster, tmp_path):
    """The must-show: ci-tiny, 3 steps, one Ray rollout worker on the worker node vs in-process.

    Tolerance: none. With one worker and ``ray_split: worker`` the worker plays the same lock-step
    batch with the same seed as the in-process collector, from weights synced every step, so every
    logged rollout and learner metric is equal (==), and so are the final weights.
    """
    steps = ["steps=3", "checkpoint_every=3"]
    local = _config(*steps, f"out_dir={tmp_path / 'local'}")
    on_ray = _config(*steps, f"out_dir={tmp_path / 'ray'}", "rollout.ray_workers=1", "rollout.ray_split=worker",
                     f"rollout.ray_address={cluster.address}")
    train(local, show_progress=False)
    train(on_ray, show_progress=False)

    def rows(name: str) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    keys = ["reward/mean_outcome", "reward/success_rate", "reward/mean_turn_reward", "episode/mean_turns",
            "rollout/episodes", "rollout/trajectories", "rollout/turns", "rollout/generated_tokens",
            "rollout/length_finishes", "rollout/failed", "loss", "grad_norm", "clip_frac", "approx_kl",
            "policy_tokens", "kept_trajectories"]
    a, b = rows("local"), rows("ray")
    assert [r["step"] for r in b] == [1, 2, 3]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert all(r["rollout/workers"] == 1 and r["rollout/rerun_groups"] == 0 for r in b)
    assert len({r["loss"] for r in a}) == 3  # the weights moved between steps: the sync was exercised
    wa = torch.load(tmp_path / "local" / "checkpoint" / "state.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "ray" / "checkpoint" / "state.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_group_split_training_is_identical_on_one_and_two_workers(cluster, tmp_path):
    """``ray_split: group``: each group's samples depend on (seed, step, task) only, so the worker count
    changes nothing: 2 training steps on 1 and on 2 workers log equal (==) metrics."""
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"w{n}"
        train(_config("steps=2", "checkpoint_every=2", f"out_dir={out}", f"rollout.ray_workers={n}",
                      f"rollout.ray_address={cluster.address}"), show_progress=False)
        runs[n] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keys = ["reward/mean_outcome", "rollout/generated_tokens", "rollout/turns", "loss", "grad_norm", "policy_tokens"]
    assert [[r[k] for k in keys] for r in runs[1]] == [[r[k] for k in keys] for r in runs[2]]
    assert [r["rollout/workers"] for r in runs[2]] == [2, 2] and runs[2][0]["rollout/units"] == 4


def _group_split_reference(config, policy, tasks, rc):
    """What the group split means, computed in this process: each task alone, seeded by group_seed."""
    trajectories = []
    for i, task in enumerate(tasks):
        trajectories += collect([task], policy, replace(rc, seed=group_seed(rc.seed, i, task))).trajectories
    trajectories.sort(key=lambda t: (t.env_id, t.seed, t.sample_index))
    return type("Batch", (), {"trajectories": trajectories})()


@pytest.mark.slow
def test_group_split_on_two_workers_equals_the_in_process_groups_and_syncs_weights(two_workers):
    config, collector = two_workers
    policy = load_policy(config.model.name, **config.policy_options())
    with torch.no_grad():  # weights the workers cannot have built themselves: only the sync gives them
        for p in policy.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
    tasks, rc = sample_tasks(config, 1), rollout_config(config, 1)
    batch = collector.collect(tasks, policy, rc)
    assert _signature(batch) == _signature(_group_split_reference(config, policy, tasks, rc))
    m = batch.metrics
    assert (m.workers, m.units, m.rerun_groups, m.trajectories) == (2, len(tasks), 0, len(tasks) * rc.group_size)


@pytest.mark.slow
def test_a_worker_killed_mid_collection_loses_no_group(two_workers, collect_killing_worker):
    """SIGKILL worker 0 when it is handed its third group (it has finished one, is playing the next, and
    has one queued): the lost groups are re-run elsewhere (or on the restarted worker), every group
    arrives complete, and the batch equals an undisturbed one."""
    config, collector = two_workers
    policy = load_policy(config.model.name, **config.policy_options())
    tasks, rc = sample_tasks(config, 2) * 2, rollout_config(config, 2)  # 8 groups
    before = collector.pids()
    batch, sent = collect_killing_worker(collector, tasks, policy, rc, at=3)
    m = batch.metrics
    print(f"killed worker 0 (pid {before[0]}) at its group #3: worker_failures={m.worker_failures} "
          f"rerun_groups={m.rerun_groups} units={m.units} trajectories={m.trajectories}")
    assert sent.count(0) >= 3, "worker 0 never got a third group; the kill did not happen"
    assert m.worker_failures >= 1 and m.rerun_groups >= 1
    by_group: dict[str, list[int]] = {}
    for t in batch.trajectories:
        by_group.setdefault(t.group_id, []).append(t.sample_index)
        assert not t.failed and len(t.turns) == 3 and t.outcome is not None
    # 4 distinct tasks, each sampled twice (two groups per task id): 2 x group_size rollouts per id
    assert {g: sorted(ks) for g, ks in by_group.items()} == {
        t.group_id: sorted(list(range(rc.group_size)) * 2) for t in tasks
    }
    assert (m.episodes, m.trajectories) == (len(tasks) * rc.group_size,) * 2  # counted once each
    assert _signature(batch) == _signature(_group_split_reference(config, policy, tasks, rc))

    after = collector.pids()  # the actor was restarted by Ray: a new process, and it still works
    assert after[0] != before[0] and after[1] == before[1]
    again = collector.collect(tasks[:2], policy, rc)
    assert again.metrics.rerun_groups == 0 and again.metrics.trajectories == 2 * rc.group_size
    assert np.isfinite([t.outcome for t in again.trajectories]).all()


@pytest.mark.slow
def test_a_worker_past_its_restarts_is_dropped_and_the_error_says_what_was_lost(cluster):
    config = _config()
    policy = load_policy(config.model.name, **config.policy_options())
    collector = RayCollector(config, 1, address=cluster.address, max_restarts=0)
    try:
        pid = collector.pids()[0]
        kills: list[int] = []

        def kill_once(worker: int, unit) -> None:
            if not kills:
                kills.append(worker)
                os.kill(pid, signal.SIGKILL)

        collector.on_dispatch = kill_once
        with pytest.raises(WorkersLost, match=r"all 1 rollout workers died .* 0 restarts; 4 groups were not played"):
            collector.collect(sample_tasks(config, 0), policy, rollout_config(config, 0))
        assert collector.live_workers() == []
    finally:
        collector.close()


@pytest.mark.slow
def test_workers_that_cannot_build_the_policy_fail_at_construction_with_the_cause(cluster):
    config = _config("model.name=hf:/nonexistent/model")
    with pytest.raises(WorkersLost, match=r"could not start: ActorDiedError: ValueError: cannot load policy 'hf:/nonexistent/model'"):
        RayCollector(config, 1, address=cluster.address)


def test_the_documented_accelerate_config_is_valid(tmp_path):
    """docs/distributed.md's accelerate config (a plain multi-GPU launch; turngym shards by itself)
    loads with accelerate's config class, and every key is a launch option."""
    import re
    from pathlib import Path

    accelerate = pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    doc = (Path(__file__).resolve().parents[2] / "docs" / "distributed.md").read_text()
    block = re.search(r"### Multi-node, multi-GPU recipe.*?```yaml\n(.*?)```", doc, re.DOTALL).group(1)
    path = tmp_path / "multi_gpu.yaml"
    path.write_text(block)
    config = ClusterConfig.from_yaml_file(str(path))
    assert str(config.distributed_type).endswith("MULTI_GPU") and config.num_processes == 8
    options = {a.dest for a in launch_command_parser()._actions}
    unknown = [k for k in ("num_machines", "machine_rank", "num_processes", "rdzv_backend", "same_network", "mixed_precision")
               if k not in options]
    assert not unknown, f"not accelerate launch options ({accelerate.__version__}): {unknown}"

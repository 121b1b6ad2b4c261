"""Data-parallel learning on gloo (CPU): N ranks reproduce one rank, resume across rank counts, fail fast.

The end-to-end tests launch real ``torchrun`` processes (``python -m torch.distributed.run``) on the
``ci-tiny`` preset; the unit tests run :func:`~turngym.training.update.optimize` on two gloo ranks
spawned here, against the same update in one process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from turngym.agents.factory import load_policy
from turngym.training.batching import TrainRow
from turngym.training.config import AlgoSection, OptimSection, load_preset
from turngym.training.data_parallel import (
    Ranks,
    RankSetupError,
    check_layout,
    launched_ranks,
    shard,
)
from turngym.training.rollout import RolloutConfig, Task, collect
from turngym.training.sharding import full_state, shard_model
from turngym.training.update import optimize

TINY = ["steps=3", "rollout.seeding=episode", "checkpoint_every=1"]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint" / "state.pt", weights_only=False)["model"]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _train_cmd(out: Path, overrides: list[str], ranks: int, resume: bool = False) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] if ranks > 1 else [sys.executable]
    sets = [x for o in overrides for x in ("--set", o)]
    return launcher + ["-m", "turngym.cli", "train", "--preset", "ci-tiny", *sets, "--out", str(out)] + (["--resume"] if resume else [])


def _run(out: Path, overrides: list[str], ranks: int, resume: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(_train_cmd(out, overrides, ranks, resume), capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# --------------------------------------------------------------------------------------- layout
def test_tasks_are_split_into_contiguous_whole_groups():
    for world in (1, 2, 3, 4):
        parts = [list(shard(10, Ranks(r, world))) for r in range(world)]
        assert sum(parts, []) == list(range(10))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_layouts_that_cannot_run_are_refused_with_the_reason():
    config = load_preset("ci-tiny", ["rollout.tasks_per_step=2"])
    with pytest.raises(RankSetupError, match=r"tasks_per_step is 2.*>= 3"):
        check_layout(3, config)
    check_layout(2, config)
    with pytest.raises(RankSetupError, match="ray_workers=2"):
        check_layout(2, load_preset("ci-tiny", ["rollout.ray_workers=2"]))
    with pytest.raises(RankSetupError, match="'fsdp' with LoRA"):
        check_layout(2, load_preset("ci-tiny", ["learner.strategy=fsdp", "model.lora.r=4"]))
    with pytest.raises(RankSetupError, match="inconsistent"):
        launched_ranks({"RANK": "2", "WORLD_SIZE": "2"})
    assert launched_ranks({}) == (0, 1)


def test_episode_seeding_samples_the_same_rollouts_whatever_the_batch():
    """With ``seeding: episode`` a task's rollouts do not depend on the other tasks of the call."""
    policy = load_policy("tiny-char", seed=0)
    tasks = [Task("turngym/Vowels-v0", s) for s in (3, 5, 8, 13)]
    config = RolloutConfig(group_size=4, max_new_tokens=8, max_episode_tokens=256, seed=11, seeding="episode")
    whole = collect(tasks, policy, config).trajectories
    halves = collect(tasks[:2], policy, config).trajectories + collect(tasks[2:], policy, config).trajectories

    def samples(trajectories):
        return [[turn.completion_ids for turn in t.turns] for t in trajectories]

    assert samples(whole) == samples(halves)
    for a, b in zip(whole, halves):
        for ta, tb in zip(a.turns, b.turns):
            np.testing.assert_allclose(ta.logprobs, tb.logprobs, atol=1e-5)
    batch_seeded = collect(tasks, policy, RolloutConfig(group_size=4, max_new_tokens=8, max_episode_tokens=256, seed=11))
    assert samples(batch_seeded.trajectories) != samples(whole)


# --------------------------------------------------------------------------------- the update
def _rows(count: int, seed: int) -> list[TrainRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        length = int(rng.integers(6, 20))
        mask = [0] * 3 + [1] * (length - 3)
        rows.append(TrainRow(
            token_ids=[int(x) for x in rng.integers(3, 60, size=length)], loss_mask=mask,
            turn_ids=[0] * length, old_logprobs=[float(x) for x in -rng.uniform(3.5, 4.5, size=length)],
            advantages=[float(rng.normal())] * length, clip_scale=[1.0] * length, group=f"g{i // 4}",
        ))
    return rows


def _sgd_update(rank: int, world: int, port: int, out_dir: str, sharded: bool = False) -> None:
    """One SGD update of the tiny model on fixed rows, on ``world`` gloo ranks (or one process); with
    ``sharded`` the model is FSDP2-sharded and the ranks have different numbers of micro-batches."""
    torch.set_num_threads(1)
    ranks = Ranks(rank, world, sharded=sharded)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model = load_policy("tiny-char", seed=0).model
    if sharded:
        shard_model(model)
    rows = _rows(20, seed=1)  # 5 groups: 3 on rank 0, 2 on rank 1
    groups = sorted({r.group for r in rows})
    local = frozenset(groups[i] for i in shard(len(groups), ranks)) if world > 1 else None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    stats = optimize(model, optimizer, rows, AlgoSection(), OptimSection(micro_batch_size=3, grad_clip=1e9), pad_id=0,
                     ranks=ranks, local_groups=local)
    weights = full_state(model, optimizer)[0]
    if rank == 0:
        torch.save({"weights": weights, "metrics": stats.to_metrics()}, Path(out_dir) / f"world{world}{'fsdp' if sharded else ''}.pt")
    if world > 1:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sharded", [False, True], ids=["ddp", "fsdp"])
def test_two_ranks_take_the_one_process_step_with_global_normalisers(tmp_path, sharded):
    """Loss token-mean over both ranks' tokens and summed gradients: the SGD step equals one process's.
    FSDP: rank 1 has fewer micro-batches and runs empty passes so the collective forwards match."""
    _sgd_update(0, 1, 0, str(tmp_path))
    mp.start_processes(_sgd_update, args=(2, _free_port(), str(tmp_path), sharded), nprocs=2, start_method="spawn")
    one, two = torch.load(tmp_path / "world1.pt"), torch.load(tmp_path / f"world2{'fsdp' if sharded else ''}.pt")
    assert _max_diff(one["weights"], two["weights"]) < 1e-6
    for name in ("loss", "grad_norm", "entropy", "policy_tokens", "ratio_mean",
                 "mismatch/gap_mean", "mismatch/gap_max", "mismatch/seq_kl", "mismatch/tokens"):  # every rank's rows
        assert two["metrics"][name] == pytest.approx(one["metrics"][name], rel=1e-5), name
    assert two["metrics"]["optim/micro_batches"] >= one["metrics"]["optim/micro_batches"]  # summed over ranks


# ---------------------------------------------------------------------------------- end to end
def test_torchrun_with_two_ranks_reproduces_one_rank(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run(one, TINY, ranks=1)
    done = _run(two, TINY, ranks=2)
    assert done.stdout.count("train time") == 1  # rank 0 alone reports
    rows1, rows2 = _metrics(one), _metrics(two)
    assert len(rows1) == len(rows2) == 3
    exact = ("reward/mean_outcome", "reward/success_rate", "policy_tokens", "train_sequences", "rollout/generated_tokens",
             "rollout/episodes", "kept_trajectories")
    for r1, r2 in zip(rows1, rows2):
        for key in exact:
            assert r1[key] == r2[key], key
        for key in ("loss", "grad_norm", "entropy"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-6), key
    # Adam divides by sqrt(v): on gradients near its eps (|g| ~ 1e-9) float summation order shows up
    # as ~1e-5 in a weight after the first step; the gradients themselves agree to ~1e-10.
    assert _max_diff(_weights(one), _weights(two)) < 5e-5
    assert not (two / "config.yaml").read_text() == ""  # rank 0 wrote the run's files once


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_fsdp_and_ddp_reproduce_one_rank_and_resume_on_one_rank(tmp_path, strategy):
    """2 ranks (replicated or FSDP2-sharded) train as one rank does; their checkpoint (the whole model
    and optimizer) resumes on one rank and ends where the one-rank run ends."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    _run(reference, TINY, ranks=1)
    _run(resumed, ["steps=2", *TINY[1:], f"learner.strategy={strategy}"], ranks=2)
    for r1, r2 in zip(_metrics(reference), _metrics(resumed)):
        assert r1["reward/mean_outcome"] == r2["reward/mean_outcome"]
        assert r2["grad_norm"] == pytest.approx(r1["grad_norm"], rel=1e-5)
    _run(resumed, TINY, ranks=1, resume=True)
    rows_ref, rows = _metrics(reference), _metrics(resumed)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[-1]["reward/mean_outcome"] == rows_ref[-1]["reward/mean_outcome"]
    assert rows[-1]["policy_tokens"] == rows_ref[-1]["policy_tokens"]
    assert _max_diff(_weights(reference), _weights(resumed)) < 5e-5


def _rank_pids(launcher: int) -> dict[int, int]:
    """``{rank: pid}`` of the worker processes under a torchrun launcher (from their environment)."""
    found = {}
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(child)
    return found


def test_a_killed_rank_stops_the_run_and_resume_reaches_the_same_result(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    overrides = ["steps=14", "rollout.seeding=episode", "checkpoint_every=2"]
    _run(reference, overrides, ranks=2)

    proc = subprocess.Popen(_train_cmd(killed, overrides, ranks=2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    state = killed / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["step"] >= 4):
        time.sleep(0.02)
    pids = _rank_pids(proc.pid)
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.time()
    proc.wait(timeout=120)
    assert time.time() - killed_at < 60
    assert proc.returncode != 0
    step_at_kill = json.loads(state.read_text())["step"]
    assert step_at_kill < 14, "the run finished before it could be killed; make it longer"
    torch.load(killed / "checkpoint" / "state.pt", weights_only=False)  # the last complete checkpoint is intact

    _run(killed, overrides, ranks=2, resume=True)
    final, expected = _metrics(killed)[-1], _metrics(reference)[-1]
    assert final["step"] == expected["step"] == 14
    for key in ("reward/mean_outcome", "policy_tokens", "rollout/generated_tokens"):
        assert final[key] == expected[key], key
    assert _max_diff(_weights(reference), _weights(killed)) < 1e-6  # same rank count: the same sums


def test_the_dry_run_plan_shows_the_ranks_and_refuses_a_layout_that_cannot_run(monkeypatch):
    from turngym.training.plan import PlanError, plan

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    shown = dict(plan(load_preset("ci-tiny", ["learner.strategy=fsdp", "rollout.mode=async"])).rows())
    assert "2 ranks (fsdp" in shown["learner"] and "asynchronous (≤ 1 steps stale" in shown["rollouts"]
    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(PlanError, match="8 learner ranks but rollout.tasks_per_step is 4"):
        plan(load_preset("ci-tiny"))


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_runs_asynchronous_rollouts_with_bounded_staleness(tmp_path, strategy):
    """Each rank's producer plays its share ahead; the gathered batch is at most one step stale and
    every rank's stale rows get the behaviour correction (counted over all ranks)."""
    _run(tmp_path, ["steps=4", "rollout.mode=async", "rollout.max_staleness=1", f"learner.strategy={strategy}"], ranks=2)
    rows = _metrics(tmp_path)
    assert [r["rollout/staleness_max"] for r in rows] == [0.0, 1.0, 1.0, 1.0]
    assert all(r["offpolicy/rows"] == r["train_sequences"] for r in rows[1:])
    assert all(r["rollout/episodes"] == 32 for r in rows)

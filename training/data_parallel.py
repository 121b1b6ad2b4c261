"""Data-parallel learning on ``torch.distributed``: N learner ranks, each with a full copy of the weights.

Launch ``turngym train`` under ``torchrun --nproc-per-node N`` (or ``accelerate launch``; anything that
sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``). :func:`start_ranks` joins the process
group — gloo on CPU, nccl on CUDA (``learner.backend: auto``) — and returns the :class:`Ranks` of this
process; without those variables it returns the one-process :data:`SINGLE` and nothing here talks
to anyone. One step with N ranks:

1. every rank draws the SAME tasks (a function of ``(seed, step)``) and plays only its share:
   contiguous blocks of whole tasks (:func:`shard`), so **a GRPO group is never split**;
2. the trajectories (and IGPO gains) are gathered to every rank (:meth:`Ranks.gather`) in the global
   task order, so rewards, advantages, the RAE baselines, dropped groups, the self-play pool and the
   metrics are computed on the whole batch, identically everywhere;
3. each rank back-propagates only the rows of the groups it played, with the loss normalised by
   the **global** counts (token-mean over every rank's tokens, not a mean of per-rank means), and the
   gradients are summed across ranks (:meth:`Ranks.sum_gradients`, one flat buffer per optimizer
   step) before clipping and the optimizer step — so the ranks stay equal and the update is the
   one-process update up to float summation order (``learner.strategy: fsdp`` shards the weights
   instead and the reduce-scatter sums: ``training/sharding.py``);
4. rank 0 alone writes logs, checkpoints, evaluations, plots and the summary.

Why not the ``DistributedDataParallel`` wrapper: DDP reduces inside ``backward`` and needs every rank
to run matching forward/backward calls, but here ranks run different numbers of micro-batches (their
groups have different lengths, and a rank whose groups were all dropped has none). Summing the
accumulated gradients once per optimizer step is what DDP computes, without that constraint.

With ``rollout.seeding: episode`` each episode's samples depend only on the step, its task and turn,
so N ranks play exactly the rollouts one rank would and the run reproduces the one-rank run: the same
rollouts and rewards, the loss and gradient norm to 1e-6 relative, one SGD step's weights to 1e-6;
with Adam, float summation order on gradients near Adam's ε shows as ~1e-5 in a few weights
(1.3e-5 on ``ci-tiny``, 2.6e-5 on a 4-layer model; see docs/distributed.md). A checkpoint holds the full weights and optimizer state (the
ranks are replicas), so ``--resume`` works with any rank count. A rank that dies makes ``torchrun``
stop the others (non-zero exit); outside ``torchrun`` a collective that waits longer than
``learner.timeout_s`` raises on the survivors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from turngym.training.config import TrainConfig
from turngym.training.rollout import RolloutBatch, RolloutMetrics, collect_order

T = TypeVar("T")


class RankSetupError(ValueError):
    """A configuration that cannot run with this many ranks; the message says why and what to change."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the learner ranks (``world_size == 1``: no process group)."""

    rank: int = 0
    world_size: int = 1
    sharded: bool = False
    """``learner.strategy: fsdp``: the learner's weights, gradients and optimizer state are sharded
    (FSDP2); forwards are collective, so every rank runs the same number (:meth:`lockstep`)."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -------------------------------------------------------------------------- collectives
    def gather(self, items: list[T]) -> list[list[T]]:
        """Every rank's ``items`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [items]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, items)
        return out

    def sum_values(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (same length everywhere)."""
        return self._all_reduce(values, dist.ReduceOp.SUM)

    def max_values(self, values: list[float]) -> list[float]:
        """Element-wise maximum over the ranks (use ``-x`` for a minimum)."""
        return self._all_reduce(values, dist.ReduceOp.MAX)

    def _all_reduce(self, values: list[float], op: Any) -> list[float]:
        if not self.distributed or not values:
            return list(values)
        buffer = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(buffer, op=op)
        return buffer.tolist()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (picklable) on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @property
    def loss_scale(self) -> float:
        """What a loss normalised by global counts is multiplied by before ``backward``: FSDP's
        reduce-scatter averages over the ranks (gloo has no pre-multiplied sum), so ×N makes it the
        sum; with ``ddp`` :meth:`sum_gradients` sums."""
        return float(self.world_size) if self.sharded else 1.0

    def lockstep(self, count: int) -> int:
        """The most of ``count`` over the ranks: how many forwards each must run when they are collective
        (sharded); ``count`` itself otherwise."""
        if not (self.distributed and self.sharded):
            return count
        return int(self.max_values([float(count)])[0])

    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Sum every trainable parameter's gradient over the ranks, in one flat buffer (``ddp``; with
        FSDP the reduce-scatter in ``backward`` has done it).

        A parameter with no gradient on this rank (it ran no micro-batch) contributes zeros; after
        the call every rank holds the same summed gradients (``None`` ones become tensors).
        """
        if not self.distributed or self.sharded:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Make every rank's weights rank 0's (buffers too), as DDP does at construction."""
        if not self.distributed or self.sharded:  # sharding splits the weights every rank loaded (seeded alike)
            return
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


SINGLE = Ranks()


def launched_ranks(environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` from the launcher's environment (``torchrun``, ``accelerate``); ``(0, 1)`` without one."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    rank = int(env.get("RANK", "0") or 0)
    if world < 1 or not 0 <= rank < world:
        raise RankSetupError(f"RANK={rank!r} and WORLD_SIZE={world!r} are inconsistent; launch with torchrun")
    return rank, world


def check_layout(world_size: int, config: TrainConfig) -> None:
    """Refuse a configuration that cannot run on ``world_size`` ranks, with the reason and the fix."""
    if config.learner.strategy == "fsdp" and config.model.lora is not None:
        raise RankSetupError("learner.strategy 'fsdp' with LoRA adapters (model.lora) is not supported; train LoRA "
                             "with learner.strategy: ddp (only the small adapters are trained, so replicas fit)")
    if world_size <= 1:
        return
    tasks_per_step, ray_workers = config.rollout.tasks_per_step, config.rollout.ray_workers
    if tasks_per_step < world_size:
        raise RankSetupError(
            f"{world_size} learner ranks but rollout.tasks_per_step is {tasks_per_step}: every rank needs at "
            f"least one whole GRPO group per step (groups are never split); set rollout.tasks_per_step >= "
            f"{world_size} or launch fewer ranks"
        )
    if ray_workers:
        raise RankSetupError(
            f"rollout.ray_workers={ray_workers} with {world_size} learner ranks: Ray rollouts feed one learner "
            "process; set rollout.ray_workers: 0 (every rank then plays its own share) or launch one rank"
        )


def start_ranks(backend: str = "auto", timeout_s: float = 1800.0, device: str = "cpu", *, sharded: bool = False) -> Ranks:
    """Join the launcher's process group (once per process) and return this rank; :data:`SINGLE` when
    not launched with several ranks. ``backend="auto"``: nccl when the model lives on CUDA, else gloo.
    ``sharded``: the learner will be FSDP-sharded (``learner.strategy: fsdp``)."""
    rank, world = launched_ranks()
    if world == 1:
        return SINGLE
    if not dist.is_initialized():
        chosen = backend if backend != "auto" else ("nccl" if device.startswith("cuda") else "gloo")
        if chosen == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(chosen, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    return Ranks(rank=rank, world_size=world, sharded=sharded)


def stop_ranks(ranks: Ranks) -> None:
    """Leave the process group (after a last barrier, so no rank exits while another still writes)."""
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(count: int, ranks: Ranks) -> range:
    """The indices of ``count`` tasks that ``ranks.rank`` plays: contiguous blocks, sizes differing by ≤ 1."""
    base, extra = divmod(count, ranks.world_size)  # np.array_split's layout: the first `extra` get one more
    start_at = ranks.rank * base + min(ranks.rank, extra)
    return range(start_at, start_at + base + (ranks.rank < extra))


def gather_rollouts(
    batch: RolloutBatch, gains: list[np.ndarray] | None, ranks: Ranks
) -> tuple[RolloutBatch, list[np.ndarray] | None, frozenset[str] | None]:
    """Every rank's rollouts of this step, merged in :func:`~turngym.training.rollout.collect`'s order.

    Returns ``(whole batch, its IGPO gains aligned with it or None, the group keys this rank played)``;
    the metrics are summed (the wall time is the slowest rank's). One process: ``(batch, gains, None)``.
    """
    if not ranks.distributed:
        return batch, gains, None
    local_groups = frozenset(t.group_key for t in batch.trajectories)
    pairs = list(zip(batch.trajectories, gains if gains is not None else [None] * len(batch.trajectories), strict=True))
    parts = ranks.gather([(pairs, batch.metrics)])
    merged: list[tuple[Any, Any]] = []
    metrics = RolloutMetrics()
    for (rank_pairs, rank_metrics), in parts:
        merged.extend(rank_pairs)
        metrics.add(rank_metrics)
    merged.sort(key=lambda pair: collect_order(pair[0]))  # stable: the seats of an episode keep their order
    trajectories = [t for t, _ in merged]
    return RolloutBatch(trajectories, metrics), ([g for _, g in merged] if gains is not None else None), local_groups

"""Asynchronous rollouts: a background producer plays the next steps while the learner trains this one.

:class:`RolloutProducer` owns a copy of the policy and a thread. For every step ``s`` from the first
to the last it (1) waits until the learner has published weights at most ``max_staleness`` steps
older than ``s`` (version ``≥ s − k``; version ``v`` = the weights after ``v`` learner steps), (2) loads
the newest published weights, (3) plays step ``s``'s rollouts with them (the same ``play(step, policy)``
the synchronous trainer calls — in this process, or on Ray rollout workers), stamps every
trajectory with its ``policy_version`` and hands the batch to the learner. The learner
:meth:`~RolloutProducer.take`\\ s batch ``s``, trains on it, and :meth:`~RolloutProducer.publish`\\ es
its new weights. So the producer runs at most ``k`` steps ahead and a batch is at most ``k`` versions
stale; with ``k = 0`` it waits for every update and plays exactly what the synchronous trainer would
(the same weights, seeds and tasks), with no overlap: tested bit for bit. (The producer's copy must
keep ``requires_grad``: freezing it makes CPU kernels take another path, with another round-off.)

Why a thread and not a process: the producer needs the newest weights every step, and a thread
takes them as one in-memory copy (``publish`` clones the state dict; nothing is serialised),
while torch releases the GIL inside its kernels, so generation and the learner's forward/backward
run on different cores. Environment stepping is Python and does hold the GIL; on a large machine,
put the rollouts on Ray workers (``rollout.ray_workers``) and the producer only drives them.

Memory: one more copy of the weights for the producer and one for the pending published version.

Faults: an exception while playing a step (a crashed engine, a lost worker pool) restarts that
step with the newest weights, up to ``max_restarts`` times in a row, counted in
:attr:`RolloutProducer.restarts`; a batch already taken is never replayed or lost. Past the limit,
:meth:`take` raises :class:`ProducerFailed` quoting the last error. Environment errors inside a
rollout are data (``failed`` trajectories), as in synchronous mode, and never restart anything.
Resuming a run restarts the producer at the checkpoint's step with the checkpoint's weights; the
batches it had played ahead are played again (with those weights), so an asynchronous run resumes
to the same kind of run, not bit for bit the uninterrupted one.
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from turngym.training.rollout import RolloutBatch
from turngym.training.trajectory import Trajectory


class ProducerFailed(RuntimeError):
    """The rollout producer failed more than ``max_restarts`` times in a row on one step."""


@dataclass
class ProducedBatch:
    """One step's rollouts as the producer played them."""

    step: int
    version: int
    """Learner steps taken by the weights that played it."""
    batch: RolloutBatch
    seconds: float
    """Time the producer spent playing it."""


class RolloutProducer:
    """The background producer (see the module docstring). Use it as a context manager, or call
    :meth:`close`; ``play(step, policy) -> RolloutBatch`` plays one step with the given policy."""

    def __init__(
        self,
        play: Callable[[int, Any], RolloutBatch],
        policy: Any,
        *,
        first_step: int,
        last_step: int,
        max_staleness: int,
        max_restarts: int = 3,
    ):
        if max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0, got {max_staleness!r}")
        self._play = play
        self._policy = copy.deepcopy(policy)  # the producer's own weights; the learner's keep changing
        self._policy.model.eval()  # (not requires_grad_(False): that changes which CPU kernels run, and the round-off)
        self._loaded = first_step  # the version the producer's copy holds
        self._published: tuple[int, dict[str, torch.Tensor] | None] = (first_step, None)
        self._next, self._last, self._k = first_step, last_step, max_staleness
        self._max_restarts = max_restarts
        self._ready: dict[int, ProducedBatch] = {}
        self._error: str | None = None
        self._stopping = False
        self._cond = threading.Condition()
        self.restarts = 0
        self._threads = torch.get_num_threads()  # OpenMP's setting is per thread: give the producer the learner's
        self._thread = threading.Thread(target=self._run, name="turngym-rollout-producer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------ learner side
    def publish(self, model: torch.nn.Module, version: int) -> None:
        """Offer the learner's weights after ``version`` steps (copied now; the model may change after)."""
        state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        with self._cond:
            self._published = (version, state)
            self._cond.notify_all()

    def take(self, step: int) -> ProducedBatch:
        """Block until step ``step``'s batch is played and return it (raises :class:`ProducerFailed`)."""
        with self._cond:
            while step not in self._ready and self._error is None:
                self._cond.wait(timeout=1.0)
            if step in self._ready:
                return self._ready.pop(step)
            raise ProducerFailed(self._error)

    def close(self) -> None:
        """Stop the producer (a batch it is playing is finished, then dropped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> RolloutProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- producer side
    def _run(self) -> None:
        torch.set_num_threads(self._threads)
        while True:
            with self._cond:
                step = self._next
                while not self._stopping and step < self._last and self._published[0] < step - self._k:
                    self._cond.wait()
                if self._stopping or step >= self._last:
                    return
            try:
                produced = self._play_step(step)
            except ProducerFailed as exc:
                with self._cond:
                    self._error = str(exc)
                    self._cond.notify_all()
                return
            with self._cond:
                self._ready[step] = produced
                self._next = step + 1
                self._cond.notify_all()

    def _play_step(self, step: int) -> ProducedBatch:
        """Play ``step`` with the newest published weights, replaying it after an infrastructure error."""
        failures = 0
        while True:
            with self._cond:
                version, state = self._published
            if state is not None and version != self._loaded:
                self._policy.model.load_state_dict(state)
                self._loaded = version
            started = time.perf_counter()
            try:
                batch = self._play(step, self._policy)
            except Exception as exc:  # infrastructure: replay this step with the newest weights
                failures += 1
                with self._cond:
                    self.restarts += 1
                if failures > self._max_restarts:
                    raise ProducerFailed(f"the rollout producer failed {failures} times in a row on step {step}; last "
                                         f"error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}") from exc
                time.sleep(0.5)
                continue
            for trajectory in batch.trajectories:
                trajectory.policy_version = self._loaded
            return ProducedBatch(step, self._loaded, batch, time.perf_counter() - started)


def staleness_metrics(trajectories: list[Trajectory], step: int, producer: RolloutProducer | None) -> dict[str, float]:
    """``rollout/staleness_mean|max`` (learner steps between the weights that played and this step's)
    and the producer's restarts; empty in synchronous mode."""
    if producer is None:
        return {}
    lags = [step - t.policy_version for t in trajectories if t.policy_version is not None] or [0]
    return {"rollout/staleness_mean": float(np.mean(lags)), "rollout/staleness_max": float(max(lags)),
            "rollout/producer_restarts": float(producer.restarts)}

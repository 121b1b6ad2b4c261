"""Rollouts on a Ray cluster: rollout workers as actors, the same ``collect`` contract as in-process.

:class:`RayCollector` is a drop-in for :func:`turngym.training.rollout.collect`::

    collector = RayCollector(config, num_workers=4, address="auto")   # or None: a local cluster
    batch = collector.collect(tasks, policy, rollout_config)           # -> RolloutBatch
    collector.close()

**Workers.** Each worker is a Ray actor (:class:`RolloutWorker`) that builds its own
:class:`~turngym.agents.hf_policy.HFPolicy` from the same policy spec as the learner (a
:class:`~turngym.training.config.TrainConfig`'s ``model.name`` and options, built with
:func:`turngym.agents.factory.load_policy` on the worker's device, CPU by default) and creates its
own environments (``collect`` makes them), so envs, sandboxes and models live where the actor
runs. A worker plays *work units* with the plain in-process :func:`collect`; a unit is a list of
whole groups (every one of the ``group_size`` rollouts of its tasks), so a group is never split
across workers.

**Weights.** At the start of each :meth:`RayCollector.collect`, the learner's current weights
(``policy.model.state_dict()``, as numpy arrays) are put into the Ray object store ONCE and every
unit carries the reference and a version number; a worker loads the weights when its version
differs — once per step, and again after a restart. Workers therefore sample from exactly the
weights ``policy`` holds when ``collect`` is called, as the in-process collector does.

**vLLM workers.** When the config's ``rollout.backend`` is ``vllm``, each worker runs a
:class:`~turngym.agents.vllm_policy.VLLMPolicy` (vLLM's offline engine, in the actor's process)
instead of an ``HFPolicy``, loaded from the same model source the learner uses
(:func:`~turngym.agents.factory.build_rollout_policy`: the embedded model's folder, an ``hf:``
directory, or a ``save_pretrained`` copy of a generated model in a temporary folder). The weights
travel the same way, but as the learner's *merged* weights in checkpoint naming
(:func:`~turngym.agents.vllm_policy.trainer_weights`: a LoRA learner sends ``W + BA``), and a stale
worker loads them with the engine's in-place reload, which also resets its prefix cache
(:meth:`VLLMPolicy.sync_weights`) — so no key or value computed by old weights is reused. The
worker's fetch + load time is ``load_seconds`` in the metrics. Where the driver's environment has
no vLLM (vLLM pins its own torch; on CPU it lives in the venv of ``.ci/vllm-venv``), ``python``
(``rollout.ray_python``) runs the workers under another interpreter through Ray's
``runtime_env={"py_executable": ...}``: it must have the same Python and Ray versions as the
driver and import turngym. The seeds and the split rules below are the same; the samples are
vLLM's (equal to ``HFPolicy``'s in distribution and log-probs to ~1e-4, not bit for bit).

**Splits and sampling seeds** (``split``):

``"group"`` (default)
    one unit per task; its sampling seed is a hash of ``(rollout_config.seed, task index, task)``.
    The trainer's ``rollout_config.seed`` is a function of ``(run seed, step)``, so every group's
    samples depend only on the run seed, the step and the task — **the results are identical for any
    number of workers, any scheduling, and after a worker is restarted mid-step**; the balance is
    dynamic (an idle worker takes the next group). Each group is one lock-step batch of
    ``group_size`` rows; they are not the samples of the in-process :func:`collect`, which batches
    all tasks into one generate call with one seed per round.
``"worker"``
    one contiguous chunk of tasks per worker, each chunk one lock-step batch (bigger generate
    batches). Chunk 0 keeps ``rollout_config.seed``, so **with one worker the rollouts are bit-for-bit
    those of the in-process** :func:`collect`; with more workers the samples depend on the split.

**Scheduling.** Units go to the worker with the fewest in flight; each worker holds up to
``units_in_flight`` (2) so it starts its next unit without waiting for the driver.

**Fault tolerance.** Actors are created with ``max_restarts``; a unit whose worker died (the call
raises :class:`ray.exceptions.RayActorError`: the unit it was playing and the one queued behind it)
goes back to the front of the queue and is re-run on the next free worker (the restarted one
included, after a 0.5 s cool-down and a reload of the weights). Its partial results
never arrive, so a group is never lost and never half-counted; the re-runs are counted in
:class:`DistributedRolloutMetrics` (``rerun_groups``, ``worker_failures``). A worker that keeps dying
past ``max_restarts`` is dropped; :class:`WorkersLost` is raised when none is left. Environment
errors inside a rollout stay data (``failed`` trajectories), exactly as in-process.

**Connecting.** ``address=None`` joins the Ray runtime already initialised in this process, or starts
a local one; ``"auto"`` joins the cluster of this node (``ray start``/``RAY_ADDRESS``);
``"host:port"`` joins that head's GCS; ``"ray://host:10001"`` uses Ray Client. Unreachable
addresses raise :class:`ClusterUnreachable` quoting the address within ``connect_timeout_s``
(a TCP probe first, because ``ray.init`` itself retries for minutes).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np

from turngym.agents.base import Policy
from turngym.agents.factory import load_policy
from turngym.training.config import TrainConfig
from turngym.training.rollout import (
    RolloutBatch,
    RolloutConfig,
    RolloutMetrics,
    Task,
    collect,
    collect_order,
)

SPLITS = ("group", "worker")


class ClusterUnreachable(ConnectionError):
    """The Ray cluster at the given address could not be reached (the message quotes the address)."""


class WorkersLost(RuntimeError):
    """Every rollout worker died and exhausted its restarts; the message lists what was left undone."""


@dataclass
class DistributedRolloutMetrics(RolloutMetrics):
    """:class:`RolloutMetrics` summed over the workers' units, plus the distributed accounting.

    ``generate_seconds`` is summed over workers (worker-seconds); ``wall_seconds`` is the driver's
    wall time of the whole ``collect`` (weight sync included).
    """

    workers: int = 0
    units: int = 0
    rerun_groups: int = 0
    """Groups sent again because their worker died or was restarting (each re-send counted)."""
    worker_failures: int = 0
    """Worker deaths seen during this collect (a restarting worker answering several calls counts once)."""
    sync_seconds: float = 0.0
    """Time to put the weights into the object store."""
    load_seconds: float = 0.0
    """Worker-seconds spent fetching the weights from the object store and loading them (for a vLLM
    worker: the engine's in-place reload and prefix-cache reset), summed over the units that loaded."""


@dataclass(frozen=True)
class WorkUnit:
    """Whole groups played by one worker in one :func:`collect` call."""

    index: int
    tasks: tuple[Task, ...]
    config: RolloutConfig


@dataclass
class UnitResult:
    index: int
    trajectories: list[Any]
    metrics: RolloutMetrics
    worker_pid: int
    weights_version: int
    load_seconds: float = 0.0
    """Time this unit's worker spent fetching and loading new weights before playing it (0: current)."""


# ------------------------------------------------------------------ pure planning and merging
def group_seed(base_seed: int, index: int, task: Task) -> int:
    """The sampling seed of group ``index`` (a task) given the collect seed: a 32-bit hash of all three.

    Independent of the number of workers and of which worker plays the group.
    """
    key = f"{base_seed}/{index}/{task.env_id}/{task.seed}/{task.opponent}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


def plan_units(tasks: Sequence[Task], config: RolloutConfig, num_workers: int, split: str) -> list[WorkUnit]:
    """Split ``tasks`` into work units (see the module docstring for the two splits and their seeds)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers!r}")
    tasks = list(tasks)
    if split == "group":
        return [
            WorkUnit(i, (task,), replace(config, seed=group_seed(config.seed, i, task)))
            for i, task in enumerate(tasks)
        ]
    chunks = min(num_workers, len(tasks))
    bounds = np.linspace(0, len(tasks), chunks + 1).round().astype(int) if chunks else [0]
    units = []
    for j in range(chunks):
        seed = config.seed if j == 0 else group_seed(config.seed, -j, tasks[bounds[j]])
        units.append(WorkUnit(j, tuple(tasks[bounds[j] : bounds[j + 1]]), replace(config, seed=seed)))
    return units


def merge_results(results: Sequence[UnitResult], metrics: DistributedRolloutMetrics) -> list[Any]:
    """Trajectories of all units in the in-process order; sums the units' metrics into ``metrics``.

    Units are concatenated by index, then stably sorted by ``(env_id, seed, sample_index)`` — the
    order :func:`collect` returns (seats of one episode stay in their order).
    """
    trajectories: list[Any] = []
    wall_seconds = metrics.wall_seconds
    for result in sorted(results, key=lambda r: r.index):
        trajectories.extend(result.trajectories)
        metrics.add(result.metrics)
    metrics.wall_seconds = wall_seconds  # the driver measures its own
    trajectories.sort(key=collect_order)
    return trajectories


# ------------------------------------------------------------------ weights
def weights_payload(model: Any, merged: bool = False) -> dict[str, tuple[str, np.ndarray]]:
    """``model.state_dict()`` as ``{name: (dtype name, numpy array)}`` (zero-copy in the object store).

    bfloat16 tensors travel as their int16 bit patterns (numpy has no bfloat16), so every dtype
    round-trips exactly. ``merged``: the weights a rollout engine loads instead —
    :func:`~turngym.agents.vllm_policy.trainer_weights` (checkpoint naming; a ``peft`` model's
    adapters merged into its base weights).
    """
    import torch

    if merged:
        from turngym.agents.vllm_policy import trainer_weights

        pairs = trainer_weights(model)
    else:
        pairs = iter(model.state_dict().items())
    out = {}
    for name, tensor in pairs:
        t = tensor.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            out[name] = ("bfloat16", t.view(torch.int16).numpy())
        else:
            out[name] = (str(t.dtype).removeprefix("torch."), t.numpy())
    return out


def payload_tensors(payload: dict[str, tuple[str, np.ndarray]]) -> dict[str, Any]:
    """A :func:`weights_payload` as ``{name: torch tensor}``, sharing the arrays' memory (read-only
    arrays from the object store: whoever takes them must copy, as ``load_state_dict`` and vLLM's
    weight loaders do)."""
    import torch

    state = {}
    with warnings.catch_warnings():  # torch warns about read-only arrays
        warnings.simplefilter("ignore", UserWarning)
        for name, (dtype, array) in payload.items():
            t = torch.from_numpy(array)
            state[name] = t.view(torch.bfloat16) if dtype == "bfloat16" else t
    return state


def load_weights_payload(model: Any, payload: dict[str, tuple[str, np.ndarray]]) -> None:
    """Copy a :func:`weights_payload` into ``model`` (strict: the same parameter names)."""
    model.load_state_dict(payload_tensors(payload), strict=True)


# ------------------------------------------------------------------ the worker (a Ray actor class)
class RolloutWorker:
    """One rollout worker: its own policy (built from the spec) and its own environments.

    Args:
        policy_source: a :class:`TrainConfig` (the policy is the learner's, built by
            :func:`~turngym.agents.factory.load_policy` on ``device``; with ``rollout.backend: vllm``
            a :class:`~turngym.agents.vllm_policy.VLLMPolicy` of the same model, see
            :func:`build_worker_engine`) or a picklable zero-argument callable returning a policy
            (a policy with ``sync_weights`` is loaded through it, like an engine).
        device: where the worker's model runs.
        threads: torch intra-op threads in this worker.
        setup: a picklable callable run first (e.g. to register environments defined outside
            entry points).
    """

    def __init__(self, policy_source: Any, device: str = "cpu", threads: int = 1,
                 setup: Callable[[], None] | None = None):
        import torch

        torch.set_num_threads(threads)
        if setup is not None:
            setup()
        self.policy = _build_policy(policy_source, device)
        self.engine = callable(getattr(self.policy, "sync_weights", None))
        """Whether new weights go through the policy's ``sync_weights`` (a vLLM engine) rather than
        ``load_state_dict`` into ``policy.model``."""
        self.version = -1

    def pid(self) -> int:
        return os.getpid()

    def run(self, unit: WorkUnit, version: int, weights: list[Any]) -> UnitResult:
        """Play one unit with the weights of ``version`` (loaded from ``weights[0]`` if not current).

        ``weights`` is a one-element list so that Ray passes the object reference, not its value:
        the payload is only fetched when this worker's weights are stale.
        """
        load_seconds = 0.0
        if version != self.version and weights:
            import ray

            t0 = time.perf_counter()
            payload = ray.get(weights[0])
            if self.engine:  # in-place reload; VLLMPolicy also drops every cached prefix
                self.policy.sync_weights(payload_tensors(payload))
            else:
                load_weights_payload(self.policy.model, payload)
            self.version = version
            load_seconds = time.perf_counter() - t0
        batch = collect(list(unit.tasks), self.policy, unit.config)
        return UnitResult(unit.index, batch.trajectories, batch.metrics, os.getpid(), self.version, load_seconds)

    def score(self, prompts: list[list[int]], continuations: list[list[int]]) -> list[np.ndarray]:
        """The worker policy's teacher-forced log-probs (``Policy.score``), e.g. to check a sync."""
        return self.policy.score(prompts, continuations)


def uses_engine(source: Any) -> bool:
    """Whether workers built from ``source`` run a vLLM engine (a config with ``rollout.backend: vllm``)."""
    return isinstance(source, TrainConfig) and source.rollout.backend == "vllm"


def build_worker_engine(config: TrainConfig) -> Any:
    """A worker's :class:`~turngym.agents.vllm_policy.VLLMPolicy` of ``config.model.name``.

    Loaded as the learner's process would load it (:func:`~turngym.agents.factory.build_rollout_policy`
    with :meth:`TrainConfig.vllm_engine_options`): the embedded model's prepared folder or an ``hf:``
    directory directly; any other model (generated ``tiny-random``, a hub id) is built here on CPU
    and saved to a temporary folder first (removed when the worker exits normally). Its initial
    weights do not matter for training: the learner's are loaded before the first unit.
    """
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from turngym.agents.factory import build_rollout_policy, parse_spec

    parsed = parse_spec(config.model.name)
    direct = parsed.kind == "embedded" or (parsed.kind == "hf" and Path(parsed.target).expanduser().is_dir())
    learner = None
    workdir = tempfile.mkdtemp(prefix="turngym-vllm-worker-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    if not direct:
        learner = load_policy(config.model.name, **{**config.policy_options(), "device": "cpu", "lora": None})
    engine = build_rollout_policy(config.model.name, learner, workdir, backend="vllm", **config.vllm_engine_options())
    del learner
    return engine


def _build_policy(source: Any, device: str) -> Any:
    if uses_engine(source):
        return build_worker_engine(source)
    if isinstance(source, TrainConfig):
        return load_policy(source.model.name, **{**source.policy_options("rollout"), "device": device})
    if callable(source):
        return source()
    raise TypeError(f"policy_source must be a TrainConfig or a zero-argument callable, got {type(source).__name__}")


def error_summary(exc: BaseException) -> str:
    """One line for a Ray error: its type and the final exception line of the remote traceback."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    final = next((line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line)), None)
    head = lines[0] if lines else ""
    if final and final != head:
        return f"{type(exc).__name__}: {final}"
    return f"{type(exc).__name__}: {head[:500]}"


# ------------------------------------------------------------------ connecting
def connect(address: str | None, *, connect_timeout_s: float = 5.0, **init_kwargs: Any) -> bool:
    """Initialise Ray for this process; returns whether this call started it (then it owns shutdown).

    ``address=None``: reuse an initialised runtime, join ``$RAY_ADDRESS`` when set, or start a local one with ``init_kwargs``
    (``num_cpus``, ``object_store_memory``…; the dashboard is off unless asked for). An explicit
    ``host:port`` is always probed first, even when a runtime is already initialised (then reused).
    Raises :class:`ClusterUnreachable` quoting the address when the cluster cannot be reached.
    """
    import ray

    if address is None and not ray.is_initialized() and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]  # what a bare ray.init() would join: probe it too
    if address not in (None, "auto"):
        _probe(address, connect_timeout_s)
    if ray.is_initialized():
        return False
    if address is None:
        init_kwargs.setdefault("include_dashboard", False)
        ray.init(**init_kwargs)
        return True
    try:
        ray.init(address=address, **{k: v for k, v in init_kwargs.items() if k in ("runtime_env", "namespace", "logging_level", "log_to_driver")})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterUnreachable(
            f"cannot connect to the Ray cluster at {address!r}: {type(exc).__name__}: {exc}. "
            "Start a head with `ray start --head --port=6379` and pass its address "
            "(host:6379, or ray://host:10001 for Ray Client), 'auto' on a cluster node, or leave the "
            "address empty to start a local cluster"
        ) from exc
    return True


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast with :class:`ClusterUnreachable` when nothing listens at ``host:port``."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()):
        raise ClusterUnreachable(
            f"cannot connect to the Ray cluster at {address!r}: expected 'host:port', 'ray://host:port' "
            "or 'auto'"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnreachable(
            f"cannot reach the Ray cluster at {address!r}: nothing answered at {host}:{port} within "
            f"{timeout_s:g}s ({exc}). Is the head running (`ray start --head --port={port}`), and is "
            "the port open from this machine? Leave the address empty to start a local cluster"
        ) from exc


# ------------------------------------------------------------------ the driver
class RayCollector:
    """Collect rollouts on Ray workers with the :func:`collect` contract (see the module docstring).

    Args:
        policy_source: the policy spec the workers build (a ``TrainConfig`` or a picklable factory).
        num_workers: rollout worker actors.
        address: the cluster (``None``: the running/a new local runtime; ``"auto"``; ``host:port``;
            ``ray://host:port``).
        split: ``"group"`` (reproducible for any worker count) or ``"worker"`` (one batch per worker).
        device: the workers' model device (``"cpu"``; ``"cuda"`` with ``num_gpus_per_worker``).
        num_cpus_per_worker, num_gpus_per_worker: Ray resources of each actor.
        threads_per_worker: torch threads in each worker.
        max_restarts: restarts Ray grants each actor after it dies.
        setup: picklable callable each worker runs before building its policy.
        init_kwargs: extra ``ray.init`` arguments when a local runtime is started.
        on_dispatch: ``callback(worker_index, unit)`` called after a unit is sent (observability and
            fault-injection tests).
        connect_timeout_s: TCP probe timeout of an explicit address.
        wait_ready: block until every worker has built its policy, so a broken policy spec or a node
            without the packages fails here (:class:`WorkersLost` with the workers' error).
        units_in_flight: units queued on a worker at once; 2 lets a worker start its next unit
            without waiting for the driver to see the last result (a worker still plays one at a time).
        python: the workers' Python interpreter (Ray ``runtime_env`` ``py_executable``), e.g. the
            vLLM venv's when the driver's environment has no vLLM; default: a ``TrainConfig``'s
            ``rollout.ray_python``, else the driver's. Same Python and Ray versions as the driver.
    """

    def __init__(
        self,
        policy_source: Any,
        num_workers: int,
        address: str | None = None,
        *,
        split: str = "group",
        device: str = "cpu",
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float = 0,
        threads_per_worker: int | None = None,
        max_restarts: int = 3,
        setup: Callable[[], None] | None = None,
        init_kwargs: dict[str, Any] | None = None,
        on_dispatch: Callable[[int, WorkUnit], None] | None = None,
        connect_timeout_s: float = 5.0,
        wait_ready: bool = True,
        units_in_flight: int = 2,
        python: str | None = None,
    ):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if units_in_flight < 1:
            raise ValueError(f"units_in_flight must be >= 1, got {units_in_flight!r}")
        try:
            import ray
        except ImportError as exc:
            raise ImportError(
                f"rollouts on {num_workers} Ray workers need Ray: pip install 'turngym[ray]' "
                "(or set rollout.ray_workers: 0 to collect in this process)"
            ) from exc

        kwargs = dict(init_kwargs or {})
        if address is None:
            kwargs.setdefault("num_cpus", max(int(num_workers * num_cpus_per_worker + 0.999), os.cpu_count() or 1))
        self.address = address
        self._owns_runtime = connect(address, connect_timeout_s=connect_timeout_s, **kwargs)
        if threads_per_worker is None:
            threads = getattr(getattr(policy_source, "model", None), "threads", None)
            threads_per_worker = int(threads or max(1, int(num_cpus_per_worker)))
        self.split = split
        self.max_restarts = max_restarts
        self.on_dispatch = on_dispatch
        self.units_in_flight = units_in_flight
        self.engine = uses_engine(policy_source)
        """Workers run vLLM engines: the weights are sent merged, in checkpoint naming."""
        if python is None and isinstance(policy_source, TrainConfig):
            python = policy_source.rollout.ray_python
        self.python = python
        options: dict[str, Any] = {}
        if python:
            options["runtime_env"] = {"py_executable": python}
        actor = ray.remote(RolloutWorker).options(
            num_cpus=num_cpus_per_worker,
            num_gpus=num_gpus_per_worker,
            max_restarts=max_restarts,
            max_task_retries=0,  # the driver re-runs lost units itself, so it can count them
            **options,
        )
        self.workers = [actor.remote(policy_source, device, threads_per_worker, setup) for _ in range(num_workers)]
        self._failures = [0] * num_workers  # deaths seen per worker
        self._failing = [False] * num_workers  # failed since its last successful unit
        self._cooldown = [0.0] * num_workers  # perf_counter time before which it gets no work
        self._dead: set[int] = set()
        self._last_error = ""
        self._version = -1
        self._weights: list[Any] = []
        self._closed = False
        if wait_ready:
            self._wait_ready()

    def _wait_ready(self) -> None:
        from ray.exceptions import RayActorError

        try:
            self.pids()
        except RayActorError as exc:
            self.close()
            hint = "every node needs turngym with the run's extras, and the model where the spec points"
            if self.engine:
                hint += (f"; vLLM workers need vLLM in {self.python or sys.executable}"
                         " (rollout.ray_python: the python of an environment with vLLM, e.g. `.ci/vllm-venv`'s)")
            raise WorkersLost(f"the {len(self.workers)} rollout workers could not start: {error_summary(exc)} ({hint})") from exc

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    def live_workers(self) -> list[int]:
        return [i for i in range(len(self.workers)) if i not in self._dead]

    def pids(self, timeout_s: float = 120.0) -> list[int]:
        """Process ids of the live workers (waits, up to ``timeout_s``, for restarting ones)."""
        import ray
        from ray.exceptions import ActorUnavailableError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return ray.get([self.workers[i].pid.remote() for i in self.live_workers()])
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def sync_weights(self, model: Any) -> float:
        """Put ``model``'s weights into the object store once; workers load them on their next unit."""
        import ray

        t0 = time.perf_counter()
        self._weights = [ray.put(weights_payload(model, merged=self.engine))]
        self._version += 1
        return time.perf_counter() - t0

    def collect(self, tasks: Sequence[Task], policy: Policy, config: RolloutConfig) -> RolloutBatch:
        """``group_size`` rollouts of every task on the workers, sampled from ``policy``'s current weights.

        ``policy=None`` keeps the weights of the last sync (or the workers' own initial weights).
        Returns the trajectories in :func:`collect`'s order and :class:`DistributedRolloutMetrics`.
        """
        import ray
        from ray.exceptions import ActorDiedError, RayActorError

        if self._closed:
            raise RuntimeError("this RayCollector was closed; create a new one")
        started = time.perf_counter()
        metrics = DistributedRolloutMetrics()
        if policy is not None:
            metrics.sync_seconds = self.sync_weights(policy.model)
        units = plan_units(tasks, config, len(self.live_workers()) or 1, self.split)
        pending: deque[WorkUnit] = deque(units)
        in_flight: dict[Any, tuple[int, WorkUnit]] = {}
        load = [0] * len(self.workers)  # units in flight per worker
        results: list[UnitResult] = []
        last_exc: BaseException | None = None
        while pending or in_flight:
            while pending and (w := self._next_worker(load)) is not None:
                unit = pending.popleft()
                ref = self.workers[w].run.remote(unit, self._version, self._weights)
                in_flight[ref] = (w, unit)
                load[w] += 1
                if self.on_dispatch is not None:
                    self.on_dispatch(w, unit)
            if not self.live_workers():
                undone = sum(len(u.tasks) for u in pending) + sum(len(u.tasks) for _, u in in_flight.values())
                raise WorkersLost(
                    f"all {len(self.workers)} rollout workers died and used their {self.max_restarts} "
                    f"restarts; {undone} groups were not played. Last error: {self._last_error}"
                ) from last_exc
            now = time.perf_counter()
            wake = [c for w, c in enumerate(self._cooldown) if c > now and w not in self._dead]
            timeout = max(0.0, min(wake) - now) if pending and wake else None
            if not in_flight:
                time.sleep(timeout or 0.0)  # every live worker is restarting: wait for the first
                continue
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=timeout)
            for ref in ready:
                w, unit = in_flight.pop(ref)
                load[w] -= 1
                try:
                    results.append(ray.get(ref))
                    self._failing[w] = False
                except RayActorError as exc:
                    # the worker died (or is restarting) with this unit in flight: nothing of the unit
                    # arrived, so it is played again in full, first in line
                    pending.appendleft(unit)
                    self._last_error = error_summary(exc)
                    last_exc = exc
                    metrics.rerun_groups += len(unit.tasks)
                    if not self._failing[w]:
                        self._failing[w] = True
                        self._failures[w] += 1
                        metrics.worker_failures += 1
                    if isinstance(exc, ActorDiedError):  # Ray will not restart it any more
                        self._dead.add(w)
                    else:  # restarting: give it time before sending it work again
                        self._cooldown[w] = time.perf_counter() + 0.5
        metrics.workers = len(self.live_workers())
        metrics.units = len(units)
        metrics.load_seconds = sum(r.load_seconds for r in results)
        trajectories = merge_results(results, metrics)
        metrics.wall_seconds = time.perf_counter() - started
        return RolloutBatch(trajectories, metrics)

    def _next_worker(self, load: list[int]) -> int | None:
        """The live worker, out of its restart cool-down and below ``units_in_flight``, with the
        fewest units in flight (then the fewest failures); ``None`` when every worker is full."""
        now = time.perf_counter()
        free = [w for w in self.live_workers() if load[w] < self.units_in_flight and self._cooldown[w] <= now]
        return min(free, key=lambda w: (load[w], self._failures[w], w), default=None)

    def close(self) -> None:
        """Kill the workers; shut Ray down if this collector started it."""
        if self._closed:
            return
        import ray

        self._closed = True
        if ray.is_initialized():
            for worker in self.workers:
                try:
                    ray.kill(worker, no_restart=True)
                except Exception:  # noqa: BLE001, S110 — the actor is already gone
                    pass
            if self._owns_runtime:
                ray.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "ClusterUnreachable",
    "DistributedRolloutMetrics",
    "RayCollector",
    "RolloutWorker",
    "WorkUnit",
    "WorkersLost",
    "connect",
    "group_seed",
    "load_weights_payload",
    "build_worker_engine",
    "merge_results",
    "payload_tensors",
    "plan_units",
    "uses_engine",
    "weights_payload",
]

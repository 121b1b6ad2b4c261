"""The turn-reward source protocol, its registry, and the runner the trainer calls once per step.

A **turn-reward source** turns a batch of trajectories into one dense value per policy turn::

    source.rewards(trajectories) -> N arrays [n_i]      (nan = absent for that turn)

The runner (:class:`TurnRewards`) writes ``weight × value`` into each turn's record as the named
component ``source.name`` (``oprl``, ``spa``, ``judge``, ``rlvmr``, ``info_gain``…), where the value
is finite; an absent value adds no component. From there on a source is just another dense term:
G-RA gates it (``algo.gate``; list the name in ``algo.ungated_components`` to exempt it), every
advantage estimator reads it through :func:`~turngym.training.rewards.assemble`, and the rollout
metrics show it. ``failed`` trajectories are never scored (all ``nan``).

Sources that learn (OPRL's PRM, SPA's progress estimator) do so in :meth:`TurnRewardSource.learn`,
called on the step's whole batch right before :meth:`~TurnRewardSource.rewards` — alternating with
the policy, which learns from the rewards afterwards. Their weights and optimizer state are
``state_dict()`` / ``load_state_dict()`` and travel with the trainer's checkpoint
(``checkpoint/turn_rewards.pt``), so a resumed run continues exactly.

``local = True`` marks a stateless source that scores trajectories one by one with the rollout
policy (IGPO's information gain): under data parallelism each rank scores its own share before the
batches are gathered. Every other source runs on the gathered batch, identically on every rank.
"""

from __future__ import annotations

import abc
import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.training.trajectory import Trajectory

STATE_FILE = "turn_rewards.pt"


class TurnRewardSource(abc.ABC):
    """One source of dense per-turn rewards (module docstring). Subclasses set :attr:`name`."""

    name: str = ""
    local: bool = False

    @abc.abstractmethod
    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        """``N`` float arrays ``[n_i]`` (``n_i`` = the trajectory's turns), ``nan`` = absent."""

    def learn(self, trajectories: Sequence[Trajectory], step: int) -> dict[str, float]:
        """Update the source on the step's batch (learned sources); returns metrics. Default: nothing."""
        return {}

    def metrics(self) -> dict[str, float]:
        """What the source reports after scoring a batch (e.g. a judge's call counts). Default: nothing."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint must hold to resume this source exactly (``None``: stateless)."""
        return None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        raise ValueError(f"turn-reward source {self.name!r} is stateless; its checkpoint holds nothing to load")


@dataclass
class SourceContext:
    """What a source may build itself from: the policy (rollout weights), the run's seed and device, and
    the learner's memory settings (``optim.micro_batch_tokens``, ``optim.gradient_checkpointing``) for
    sources that run forwards and backwards of their own."""

    policy: Any
    seed: int = 0
    device: str = "cpu"
    micro_batch_tokens: int | None = None
    gradient_checkpointing: bool = False


SourceFactory = Callable[[Mapping[str, Any], SourceContext], TurnRewardSource]
SOURCES: dict[str, SourceFactory] = {}


def register_source(name: str, factory: SourceFactory) -> None:
    """Make ``name`` selectable as ``algo.turn_rewards: [{source: name}]``."""
    if name in SOURCES:
        raise ValueError(f"turn-reward source {name!r} is already registered")
    SOURCES[name] = factory


def check_source_name(name: str) -> str:
    """``name`` if registered; else a ``ValueError`` listing the sources with a suggestion."""
    if name not in SOURCES:
        close = difflib.get_close_matches(name, list(SOURCES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown turn-reward source {name!r}; registered: {', '.join(sorted(SOURCES))}{hint}")
    return name


def options_of(cls: type, options: Mapping[str, Any], source: str) -> Any:
    """Build the options dataclass ``cls`` from a config mapping; unknown keys are errors naming the known ones."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"turn-reward source {source!r} has no option(s) {unknown}; its options: {sorted(known)}")
    return cls(**dict(options))


def check_shapes(name: str, trajectories: Sequence[Trajectory], values: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The source's output as float arrays, checked one per trajectory and one value per turn."""
    if len(values) != len(trajectories):
        raise ValueError(f"turn-reward source {name!r} returned {len(values)} arrays for {len(trajectories)} trajectories")
    out = []
    for i, (t, v) in enumerate(zip(trajectories, values)):
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape != (len(t.turns),):
            raise ValueError(f"turn-reward source {name!r} gave trajectory {i} values of shape {arr.shape}; "
                             f"it has {len(t.turns)} turns")
        out.append(np.full(arr.shape, np.nan) if t.failed else arr)
    return out


def add_component(trajectories: Sequence[Trajectory], name: str, weight: float, values: Sequence[np.ndarray]) -> None:
    """Write ``weight × value`` as component ``name`` into each turn's record where the value is finite
    (the record's ``reward`` grows by the same amount, keeping ``reward = Σ components + outcome``)."""
    for t, v in zip(trajectories, values):
        for turn, value in zip(t.turns, v):
            if np.isfinite(value):
                added = float(weight * value)
                turn.record.components[name] = turn.record.components.get(name, 0.0) + added
                turn.record.reward += added


@dataclass
class ActiveSource:
    """One configured source: the instance, its weight and component name."""

    source: TurnRewardSource
    weight: float
    component: str


@dataclass
class TurnRewards:
    """The configured sources of a run, applied in config order (module docstring)."""

    sources: list[ActiveSource] = field(default_factory=list)
    _metrics: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.sources)

    def apply(self, trajectories: Sequence[Trajectory], step: int, *, local: bool) -> None:
        """Score the batch with the sources whose ``local`` flag equals ``local`` (learning first)."""
        if not local:
            self._metrics = {}
        for active in self.sources:
            if active.source.local != local:
                continue
            start = time.perf_counter()
            prefix = f"turn_rewards/{active.component}"
            learned = active.source.learn(trajectories, step) if not local else {}
            values = check_shapes(active.component, trajectories, active.source.rewards(trajectories))
            add_component(trajectories, active.component, active.weight, values)
            flat = np.concatenate(values) if values else np.zeros(0)
            finite = flat[np.isfinite(flat)]
            self._metrics.update({f"{prefix}/{k}": v for k, v in {**learned, **active.source.metrics()}.items()})
            self._metrics[f"{prefix}/mean"] = float(finite.mean()) if finite.size else float("nan")
            self._metrics[f"{prefix}/coverage"] = float(finite.size / flat.size) if flat.size else 0.0
            self._metrics[f"{prefix}/time_s"] = self._metrics.get(f"{prefix}/time_s", 0.0) + time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        """The last step's per-source metrics: ``turn_rewards/<name>/{mean,coverage,time_s,…}``."""
        return dict(self._metrics)

    def state_dict(self) -> dict[str, Any]:
        return {a.component: s for a in self.sources if (s := a.source.state_dict()) is not None}

    def save(self, out: Path, checkpoint_dir: str = "checkpoint") -> None:
        """Write the learned sources' state next to the trainer checkpoint (nothing when none learn)."""
        state = self.state_dict()
        if state:
            torch.save(state, Path(out) / checkpoint_dir / STATE_FILE)

    def load(self, out: Path, checkpoint_dir: str = "checkpoint", step: int | None = None) -> None:
        """Restore the learned sources from a checkpoint; an error names a source whose state is missing.

        ``step`` is the checkpoint's training step: one saved at step 0 (right after a warm-up) precedes
        any learning by the sources, holds none of their state, and leaves them as built."""
        if step == 0:
            return
        wanted = [a for a in self.sources if a.source.state_dict() is not None]
        if not wanted:
            return
        path = Path(out) / checkpoint_dir / STATE_FILE
        blob = torch.load(path, weights_only=False) if path.exists() else {}
        for a in wanted:
            if a.component not in blob:
                raise FileNotFoundError(f"the checkpoint in {path.parent} holds no state for turn-reward source "
                                        f"{a.component!r}; it was saved by a run without it — resume with the same "
                                        "algo.turn_rewards, or start fresh")
            a.source.load_state_dict(blob[a.component])

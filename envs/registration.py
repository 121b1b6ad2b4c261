"""Environment ids, specs and ``make`` — on top of Gymnasium's own registry.

``register`` puts an id into :data:`gymnasium.envs.registry` (so ``gymnasium.make(id)`` works after
``import turngym``) and records a :class:`TurnSpec` with the multi-turn metadata Gymnasium has no
field for. :func:`make` builds the env and adds the standard wrappers:

    VsOpponent (if ``opponent`` is given)  →  InvalidActionLimit (if the spec allows k invalid actions)
    →  TurnLimit (spec ``max_turns``; the final reward is still computed on truncation)

Third-party packages register environments through the entry-point group ``turngym.envs``; each
entry point names a callable (called with no arguments) or a module (imported) that calls
:func:`register`. Plugins load the first time the registry is read.

Example::

    import turngym
    env = turngym.make("turngym/TicTacToe-v0", opponent=my_opponent)
    obs, info = env.reset(seed=0)
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from turngym.envs.core import TurnEnv

ENTRY_POINT_GROUP = "turngym.envs"

FAMILIES = ("game", "search", "household", "code", "toy", "other")


class UnknownEnvironment(KeyError):
    """No environment is registered under the requested id."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class TurnSpec:
    """Multi-turn metadata of a registered id.

    Attributes:
        id: ``namespace/Name-vN``.
        entry_point: ``"module:Class"`` or a callable returning a :class:`TurnEnv`.
        family: one of ``game, search, household, code, toy, other``.
        description: one line for ``turngym list``.
        kwargs: constructor defaults.
        max_turns: default turn limit applied by :func:`make` (``None``: no limit).
        invalid_action_allowance: invalid actions tolerated per episode before
            :class:`~turngym.envs.wrappers.InvalidActionLimit` ends it (``None``: env decides).
        reward_bounds: every per-step ``reward`` must lie in this closed interval (checked).
        gate_threshold: default G-RA gate δ on the outcome for gated reward accumulation.
        num_seats: seats in the game (1 for single-agent tasks).
        tags: free-form labels (``"openspiel"``, ``"imperfect-information"``…).
        agents: env-specific scripted agents for ``turngym eval --agent NAME``: name →
            ``"module:factory"``, where ``factory(seed=...)`` returns a direct agent (a callable
            ``agent(env.unwrapped) -> str``, optionally with ``reset(seed)``). Imported lazily.
    """

    id: str
    entry_point: str | Callable[..., TurnEnv]
    family: str = "other"
    description: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_turns: int | None = None
    invalid_action_allowance: int | None = None
    reward_bounds: tuple[float, float] = (-1.0, 1.0)
    gate_threshold: float | None = None
    num_seats: int = 1
    tags: tuple[str, ...] = ()
    agents: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entry_point": self.entry_point if isinstance(self.entry_point, str) else repr(self.entry_point),
            "family": self.family,
            "description": self.description,
            "kwargs": dict(self.kwargs),
            "max_turns": self.max_turns,
            "invalid_action_allowance": self.invalid_action_allowance,
            "reward_bounds": list(self.reward_bounds),
            "gate_threshold": self.gate_threshold,
            "num_seats": self.num_seats,
            "tags": list(self.tags),
            "agents": dict(self.agents),
        }


_SPECS: dict[str, TurnSpec] = {}
_plugins_loaded = False
_plugin_errors: dict[str, str] = {}


def register(
    id: str,
    entry_point: str | Callable[..., TurnEnv],
    *,
    family: str = "other",
    description: str = "",
    kwargs: dict[str, Any] | None = None,
    max_turns: int | None = None,
    invalid_action_allowance: int | None = None,
    reward_bounds: tuple[float, float] = (-1.0, 1.0),
    gate_threshold: float | None = None,
    num_seats: int = 1,
    tags: tuple[str, ...] = (),
    agents: dict[str, str] | None = None,
) -> TurnSpec:
    """Register ``id`` with turngym and with Gymnasium's registry. Re-registering an id replaces it."""
    if "/" not in id or "-v" not in id:
        raise ValueError(f"environment id must look like 'namespace/Name-vN', got {id!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    low, high = reward_bounds
    if not low <= high:
        raise ValueError(f"reward_bounds must be (low, high) with low <= high, got {reward_bounds!r}")
    spec = TurnSpec(
        id=id,
        entry_point=entry_point,
        family=family,
        description=description,
        kwargs=dict(kwargs or {}),
        max_turns=max_turns,
        invalid_action_allowance=invalid_action_allowance,
        reward_bounds=(float(low), float(high)),
        gate_threshold=gate_threshold,
        num_seats=num_seats,
        tags=tuple(tags),
        agents=dict(agents or {}),
    )
    if id in gymnasium.envs.registry:
        del gymnasium.envs.registry[id]
    gymnasium.register(id=id, entry_point=entry_point, kwargs=dict(spec.kwargs))
    _SPECS[id] = spec
    return spec


def load_plugins() -> dict[str, str]:
    """Load every ``turngym.envs`` entry point once; return ``{plugin: error}`` for those that failed.

    A broken plugin never breaks turngym: its error is kept, shown by ``turngym list`` and warned about.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return dict(_plugin_errors)
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
            if callable(target):
                target()
        except Exception as exc:  # a third-party plugin may fail in any way; report, don't crash
            _plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"turngym plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
            )
    return dict(_plugin_errors)


def registry() -> dict[str, TurnSpec]:
    """All registered turngym ids (built-in and plugins), sorted by id."""
    load_plugins()
    return dict(sorted(_SPECS.items()))


def spec(id: str) -> TurnSpec:
    """The :class:`TurnSpec` of ``id``; unknown ids raise :class:`UnknownEnvironment` with suggestions."""
    specs = registry()
    if id in specs:
        return specs[id]
    known = list(specs)
    close = difflib.get_close_matches(id, known, n=3, cutoff=0.75)
    if not close:
        lowered = {k.lower(): k for k in known}
        close = [lowered[m] for m in difflib.get_close_matches(id.lower(), list(lowered), n=3, cutoff=0.6)]
    hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownEnvironment(
        f"No turngym environment {id!r}.{hint} Run `turngym list` to see all {len(known)} ids."
    )


def data_fingerprint(id: str, **kwargs: Any) -> dict[str, str]:
    """Hashes of the data ``id`` plays on when built with ``kwargs`` (merged over the spec's
    defaults): its entry point's :meth:`~turngym.envs.core.TurnEnv.data_fingerprint`, ``{}`` for an
    entry point without one (a plain factory function). Loads the entry point's module."""
    turn_spec = spec(id)
    target = turn_spec.entry_point
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
    hook = getattr(target, "data_fingerprint", None)
    return {str(k): str(v) for k, v in hook(**{**turn_spec.kwargs, **kwargs}).items()} if callable(hook) else {}


def make(
    id: str,
    *,
    opponent: Callable[..., str] | None = None,
    agent_seat: int | None = None,
    max_turns: int | None | str = "default",
    invalid_action_allowance: int | None | str = "default",
    **kwargs: Any,
) -> gymnasium.Env:
    """Build ``id`` with the standard wrappers (see the module docstring).

    Args:
        opponent: for games, a callable ``opponent(game) -> str`` playing every seat but the agent's;
            the result is the single-agent :class:`~turngym.envs.multiagent.VsOpponent` view.
        agent_seat: the agent's seat in that view (default: ``seed % num_seats`` at each reset).
        max_turns: overrides the spec's turn limit (``None`` disables it).
        invalid_action_allowance: overrides the spec's allowance (``None`` disables the wrapper).
        kwargs: constructor arguments, overriding the spec's.
    """
    from turngym.envs.multiagent import TurnGame, VsOpponent
    from turngym.envs.wrappers import InvalidActionLimit, TurnLimit

    turn_spec = spec(id)
    try:
        env: gymnasium.Env = gymnasium.make(id, disable_env_checker=True, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{exc} (while making {id!r} with kwargs {kwargs!r})") from exc
    base = env.unwrapped
    if opponent is not None:
        if not isinstance(base, TurnGame):
            raise ValueError(f"{id!r} is a single-agent environment; it takes no opponent")
        env = VsOpponent(base, opponent, agent_seat=agent_seat)
    limit = turn_spec.max_turns if max_turns == "default" else max_turns
    allowance = (
        turn_spec.invalid_action_allowance
        if invalid_action_allowance == "default"
        else invalid_action_allowance
    )
    if allowance is not None:
        env = InvalidActionLimit(env, allowance)
    if limit is not None:
        env = TurnLimit(env, limit)
    return env

"""ALFWorld's text engine as one object per environment, plus optional caches of pure engine steps.

:class:`Engine` is exactly what ALFWorld's own ``AlfredTWEnv`` builds for a game — TextWorld's PDDL
backend (``PddlEnv``, one private copy of fast-downward's library) wrapped in ALFWorld's
``AlfredDemangler`` — requesting only ``admissible_commands`` and ``won``.

Two pure functions dominate the engine's time, and :func:`install_caches` memoizes both:

* every step re-derives the text of every admissible command from ALFWorld's grammar, and TextWorld
  re-parses each template string with its tatsu parser every time (about half a step). The cache
  keys on the template string and hands out deep copies (derivation mutates the symbols).
* every ``reset`` (and ``load``) translates the PDDL domain + problem to SAS twice with
  fast-downward's Python translator (about 0.25 s). The cache keys on the texts and the flags.

Observations, admissible commands and outcomes stay byte-identical (tested). The caches are
process-wide; :func:`uninstall_caches` restores TextWorld's functions.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

_ORIGINALS: dict[str, Any] = {}
_CACHED: dict[str, Any] = {}  # built once, so uninstall/install keeps the caches warm


def _build_cached(parse, translate, maxsize: int, sas_maxsize: int) -> None:
    @functools.lru_cache(maxsize=maxsize)
    def parsed(text: str, rule_name: str | None) -> Any:
        return parse(text, rule_name=rule_name)

    def cached_parse(text, rule_name=None, trace=False, **kwargs):
        if trace or kwargs or not isinstance(text, str):
            return parse(text, rule_name=rule_name, trace=trace, **kwargs)
        return copy.deepcopy(parsed(text, rule_name))

    @functools.lru_cache(maxsize=sas_maxsize)
    def cached_translate(domain: str, problem: str, verbose: bool = False, optimize: bool = False):
        return translate(domain, problem, verbose=verbose, optimize=optimize)

    _CACHED.update(parse=cached_parse, pddl2sas=cached_translate)


def install_caches(maxsize: int = 8192, sas_maxsize: int = 64) -> None:
    """Memoize TextWorld's template parsing and fast-downward's PDDL→SAS translation (idempotent)."""
    import textworld.envs.pddl.logic as pddl_logic
    from textworld.envs.pddl import textgen

    if _ORIGINALS:
        return
    _ORIGINALS["parse"] = textgen._parse_and_convert
    _ORIGINALS["pddl2sas"] = pddl_logic.fast_downward.pddl2sas
    if not _CACHED:
        _build_cached(_ORIGINALS["parse"], _ORIGINALS["pddl2sas"], maxsize, sas_maxsize)
    textgen._parse_and_convert = _CACHED["parse"]
    pddl_logic.fast_downward.pddl2sas = _CACHED["pddl2sas"]


def uninstall_caches() -> None:
    """Restore TextWorld's and fast-downward's uncached functions (the caches stay warm for later)."""
    import textworld.envs.pddl.logic as pddl_logic
    from textworld.envs.pddl import textgen

    if "parse" in _ORIGINALS:
        textgen._parse_and_convert = _ORIGINALS.pop("parse")
    if "pddl2sas" in _ORIGINALS:
        pddl_logic.fast_downward.pddl2sas = _ORIGINALS.pop("pddl2sas")


class Engine:
    """ALFWorld's engine for one environment instance; ``start`` loads a game (once) and resets it."""

    def __init__(self, caches: bool = True) -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        if caches:
            install_caches()
        self.raw = PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True))
        self.env = AlfredDemangler()(self.raw)
        self.loaded: str | None = None

    def start(self, game_file: str):
        """Load ``game_file`` unless it is already loaded, reset it, return TextWorld's game state."""
        if self.loaded != game_file:
            self.env.load(game_file)
            self.loaded = game_file
        return self.env.reset()

    def step(self, command: str):
        state, _, _ = self.env.step(command)
        return state

    def replan(self) -> list[str]:
        """fast-downward's plan from the current state, in the game's command names."""
        return list(self.raw._pddl_state.replan(self.raw._entity_infos) or [])


# ---- engine pool ---------------------------------------------------------------------------------
# Each Engine holds a private ~34 MB copy of fast-downward's library that is never unloaded, so
# environments return their engine here when they are closed or garbage-collected, and new ones
# reuse it (an engine keeps its loaded game: re-playing the same game skips the load).
_POOL: list[Engine] = []
POOL_SIZE = 8


def acquire(caches: bool = True) -> Engine:
    """A free engine from the pool, or a new one."""
    if caches:
        install_caches()
    return _POOL.pop() if _POOL else Engine(caches=caches)


def release(engine: Engine) -> None:
    """Give an engine back (kept if the pool has room)."""
    if len(_POOL) < POOL_SIZE and all(e is not engine for e in _POOL):
        _POOL.append(engine)

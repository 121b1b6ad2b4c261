"""ALFWorld's text engine as one object per environment, plus an optional parse cache.

:class:`Engine` is exactly what ALFWorld's own ``AlfredTWEnv`` builds for a game — TextWorld's PDDL
backend (``PddlEnv``, one private copy of fast-downward's library) wrapped in ALFWorld's
``AlfredDemangler`` — requesting only ``admissible_commands`` and ``won``.

Every engine step re-derives the text of every admissible command from ALFWorld's grammar, and
TextWorld re-parses each template string with its tatsu parser every time (about half the time of
a step). :func:`install_parse_cache` memoizes that parse (a pure function of the template string;
callers get a deep copy, since derivation mutates the symbols), leaving every observation and
command byte-identical (tested). It is process-wide; :func:`uninstall_parse_cache` restores
TextWorld's function.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

_ORIGINAL = None


def install_parse_cache(maxsize: int = 8192) -> None:
    """Memoize TextWorld's grammar-template parsing (idempotent)."""
    global _ORIGINAL
    import textworld.envs.pddl.textgen as textgen

    if _ORIGINAL is not None:
        return
    _ORIGINAL = textgen._parse_and_convert
    original = _ORIGINAL

    @functools.lru_cache(maxsize=maxsize)
    def parsed(text: str, rule_name: str | None) -> Any:
        return original(text, rule_name=rule_name)

    def cached_parse(text, rule_name=None, trace=False, **kwargs):
        if trace or kwargs or not isinstance(text, str):
            return original(text, rule_name=rule_name, trace=trace, **kwargs)
        return copy.deepcopy(parsed(text, rule_name))

    textgen._parse_and_convert = cached_parse


def uninstall_parse_cache() -> None:
    """Restore TextWorld's uncached parser."""
    global _ORIGINAL
    import textworld.envs.pddl.textgen as textgen

    if _ORIGINAL is not None:
        textgen._parse_and_convert = _ORIGINAL
        _ORIGINAL = None


def parse_cache_installed() -> bool:
    return _ORIGINAL is not None


class Engine:
    """ALFWorld's engine for one environment instance; ``start`` loads a game (once) and resets it."""

    def __init__(self, parse_cache: bool = True) -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        if parse_cache:
            install_parse_cache()
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

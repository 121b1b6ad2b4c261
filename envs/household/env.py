"""Household environments on ALFWorld's engine: ``turngym/Household-v0`` and ``turngym/ALFWorld-v0``.

Both run ALFWorld's own text engine (TextWorld's PDDL backend with ``alfred.pddl`` and
``alfred.twl2``, names demangled by ALFWorld's ``AlfredDemangler``) and differ only in where games
come from: :class:`HouseholdEnv` uses problems from our generator
(:class:`~turngym.envs.household.generator.ProblemStore`), :class:`ALFWorldEnv` the official game
files a user has (``$ALFWORLD_DATA``).

Episode contract:

* ``reset(seed=s)`` picks a game deterministically from ``s`` (Household: task type
  ``task_types[s % k]``, problem ``(s // k) % pool_size``); ``options={"task_type": t, "index": i}``
  or ``options={"game": i}`` (ALFWorld) pick one explicitly. The observation is ALFWorld's intro
  (room, task) followed, unless ``show_admissible=False``, by ``Admissible commands: …``.
* The action is one text command. ``<action>…</action>`` is honoured; otherwise the last non-empty
  line counts; case, surrounding quotes, a leading ``>`` and a final period are ignored, and
  ``put X in/on R`` is read as ALFWorld's ``move X to R``.
* A command that is not admissible changes nothing and is answered ``Nothing happens.`` plus a hint
  (and :attr:`action_format`); its record has ``valid_action=False`` and component ``invalid``.
* Components are the milestones of :mod:`~turngym.envs.household.milestones` (each paid once);
  the outcome is 1.0 when the engine reports ``won`` (terminated, ``solved``), else 0.0 when the
  episode is stopped from outside (turn limit 50 by default, applied by ``turngym.make``).
* ``engine_caches=True`` (default) memoizes two pure engine functions (:mod:`.engine`; output
  unchanged, steps about twice and resets about 2.5 times as fast).
* ``history=k`` (default 0) makes every observation after the first restate the task and the last
  ``k`` exchanges (command → what happened) before the newest one: with ``context: turn`` rollouts,
  which show the policy only the current observation, the goal and a short memory stay in view.
* ``fork()`` builds a fresh engine and replays the episode's actions (the engine's state lives in a
  C library and cannot be copied).
* ``info["anchor"]`` (after ``reset`` and every step of a running episode) is the world state as
  text: the engine's facts, one ``predicate(arg, …)`` per line, sorted (:meth:`anchor_state`). Equal
  anchors are the same world state however it was reached; GiGPO groups turns by them.
"""

from __future__ import annotations

import json
import os
import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.household import engine as engine_pool
from turngym.envs.household import milestones
from turngym.envs.household.engine import Engine
from turngym.envs.household.layouts import TASK_FROM_ALFRED, TASK_TYPES
from turngym.envs.types import StopReason, TurnRecord
from turngym.hashing import file_sha256, text_sha256

SYSTEM_PROMPT = (
    "You are an agent in a household. Each turn you read what you observe and reply with exactly one "
    "command to carry out the task. Commands: go to (receptacle), open (receptacle), close (receptacle), "
    "take (object) from (receptacle), move (object) to (receptacle), examine (something), use (object), "
    "heat (object) with (receptacle), clean (object) with (receptacle), cool (object) with (receptacle), "
    "inventory, look."
)
ACTION_FORMAT = "Reply with one admissible command, e.g. `go to countertop 1` (optionally inside <action>…</action>)."
INVALID_PENALTY = 0.05
MILESTONE_WEIGHT = 0.1
_INTRO_BANNER = "-= Welcome to TextWorld, ALFRED! =-\n\n"
_ACTION_TAG = re.compile(r"<action>(.*?)</action>", re.IGNORECASE | re.DOTALL)
_PUT = re.compile(r"^put (.+?) (?:in|on|into|onto|in/on) (.+)$")


def parse_command(text: str) -> str:
    """Normalize a reply into a command (see the module docstring); may return ``""``."""
    tagged = _ACTION_TAG.findall(text)
    if tagged:
        text = tagged[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    command = lines[-1] if lines else ""
    command = command.strip().lstrip(">").strip().strip("`'\"").strip().rstrip(".").strip()
    command = " ".join(command.lower().split())
    m = _PUT.match(command)
    if m:
        command = f"move {m.group(1)} to {m.group(2)}"
    return command


@dataclass(frozen=True)
class GameRef:
    """A game to play: its ``game.tw-pddl`` file, its goal, and how it was chosen (for ``fork``)."""

    game_file: str
    goal: milestones.Goal
    description: str
    options: dict[str, Any]
    walkthrough: tuple[str, ...] = ()


class _AlfredTextEnv(TurnEnv):
    """Shared episode logic; subclasses implement :meth:`_choose` (seed/options → :class:`GameRef`)."""

    system_prompt = SYSTEM_PROMPT
    action_format = ACTION_FORMAT
    provides_anchors = True
    """``info["anchor"]`` holds the world state (see the module docstring)."""

    def __init__(
        self,
        show_admissible: bool = True,
        milestone_weight: float = MILESTONE_WEIGHT,
        invalid_penalty: float = INVALID_PENALTY,
        render_mode: str | None = None,
        engine_caches: bool = True,
        history: int = 0,
    ):
        super().__init__(render_mode=render_mode)
        self.engine_caches = bool(engine_caches)
        if history < 0:
            raise ValueError(f"history must be >= 0 (exchanges restated in each observation), got {history!r}")
        self.history = int(history)
        self._exchanges: list[tuple[str, str]] = []  # (reply as read, feedback) of every step, for `history`
        if milestone_weight < 0 or invalid_penalty < 0:
            raise ValueError(
                f"milestone_weight and invalid_penalty must be >= 0, got {milestone_weight!r}, {invalid_penalty!r}"
            )
        self.show_admissible = bool(show_admissible)
        self.milestone_weight = float(milestone_weight)
        self.invalid_penalty = float(invalid_penalty)
        self._engine: Engine | None = None
        self._game: GameRef | None = None
        self._state = None
        self._tracker: milestones.MilestoneTracker | None = None
        self._actions: list[Any] = []  # raw actions of this episode, for fork()
        self._executed: list[str] = []  # admissible commands run in the engine
        self._turn = 0
        self._over = True
        self._won = False
        self._last_obs = ""
        self._plan: tuple[int, list[str]] = (0, [])

    # ---- subclass hook ---------------------------------------------------------------------
    def _choose(self, seed_value: int, options: dict[str, Any]) -> GameRef:
        raise NotImplementedError

    # ---- episode -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        seed_value = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        self._game = self._choose(seed_value, dict(options or {}))
        if self._engine is None:
            self._engine = engine_pool.acquire(self.engine_caches)
            self._finalizer = weakref.finalize(self, engine_pool.release, self._engine)
        self._state = self._engine.start(self._game.game_file)
        self._tracker = milestones.MilestoneTracker(
            self._game.goal, milestones.observe(self._state["_facts"], self._game.goal), self.milestone_weight
        )
        self._actions, self._executed, self._exchanges = [], [], []
        self._plan: tuple[int, list[str]] = (0, list(self._game.walkthrough))  # (commands run when planned, plan)
        self._turn, self._over, self._won = 0, False, False
        intro = self._state.feedback
        intro = intro.removeprefix(_INTRO_BANNER)
        self._last_obs = self._with_commands(intro.strip())
        return self._last_obs, {
            "system_prompt": self.system_prompt,
            "seat": 0,
            "task": self._game.description,
            "task_type": self._game.goal.task_type,
            "admissible_commands": self.admissible_commands,
            "anchor": self.anchor_state(),
        }

    def anchor_state(self) -> str:
        """The engine's current facts as sorted ``predicate(arg, …)`` lines: the world state (GiGPO anchor)."""
        if self._state is None:
            raise RuntimeError("anchor_state() needs a started episode; call reset() first")
        facts = (f"{f.name}({', '.join(a.name for a in f.arguments)})" for f in self._state["_facts"])
        return "\n".join(sorted(facts))

    @property
    def admissible_commands(self) -> list[str]:
        """The commands the engine accepts now (sorted)."""
        return list(self._state["admissible_commands"]) if self._state is not None else []

    def _with_history(self, feedback: str) -> str:
        """With ``history`` > 0, the observation restates the task and the last ``history`` exchanges
        before ``feedback``, so a policy that sees only the current observation (``context: turn``)
        keeps its goal and short-term memory — verl-agent's bounded history for ALFWorld."""
        if not self.history:
            return feedback
        earlier = self._exchanges[:-1][-self.history:]
        lines = [f"Your task is to: {self._game.description.rstrip('.')}."]
        if earlier:
            lines.append(f"Your last {len(earlier)} command(s), each followed by what happened:")
            lines += [f"> {command}\n{text}" for command, text in earlier]
        lines.append(f"Now (step {len(self._exchanges)}): > {self._exchanges[-1][0]}\n{feedback}")
        return "\n".join(lines)

    def _with_commands(self, text: str) -> str:
        if not self.show_admissible:
            return text
        return f"{text}\n\nAdmissible commands: {', '.join(self.admissible_commands)}."

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._over:
            raise EpisodeOver("the episode is over; call reset()")
        self._actions.append(action)
        text, problem = action_text(action)
        command = parse_command(text) if problem is None else ""
        record = TurnRecord(turn=self._turn, seat=0, reward=0.0)
        self._turn += 1
        if problem is not None or command not in self._state["admissible_commands"]:
            if problem is None:
                shown = command if len(command) <= 80 else command[:77] + "..."
                problem = f'"{shown}" is not a command you can use here' if command else "your reply held no command"
            record.valid_action = False
            if self.invalid_penalty:
                record.components["invalid"] = -self.invalid_penalty
            feedback = f"Nothing happens. ({problem}. {self.action_format})"
        else:
            self._state = self._engine.step(command)
            self._executed.append(command)
            record.components.update(self._tracker.update(milestones.observe(self._state["_facts"], self._game.goal)))
            feedback = self._state.feedback.strip()
            if self._state["won"]:
                self._won, self._over = True, True
                record.outcome, record.terminated, record.stop_reason = 1.0, True, StopReason.SOLVED
        self._exchanges.append((command or "(no command)", feedback))
        obs = self._with_commands(self._with_history(feedback))
        record.reward = record.turn_reward + (record.outcome or 0.0)
        self._last_obs = obs
        info = {"turn": record, "seat": 0, "won": self._won, "admissible_commands": self.admissible_commands,
                "milestones": self._tracker.achieved}
        if not self._over:
            info["anchor"] = self.anchor_state()
        return obs, record.reward, record.terminated, False, info

    def stop(self, reason: StopReason) -> dict[int, float]:
        if self._over:
            raise EpisodeOver("the episode is already over")
        self._over = True
        return {0: 1.0 if self._won else 0.0}

    # ---- optional hooks ------------------------------------------------------------------------
    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        if self._over or self._state is None:
            return None
        commands = self._state["admissible_commands"]
        return str(commands[int(rng.integers(len(commands)))]) if commands else None

    def expert_plan(self) -> list[str]:
        """The planner expert's remaining commands from the current state.

        While the episode follows the current plan — at first the walkthrough the planner computed at
        generation time — its remainder is returned; otherwise fast-downward replans from the current
        state and that plan is followed next.
        """
        if self._game is None or self._over:
            return []
        start, plan = self._plan
        done = self._executed[start:]
        if plan and done == plan[: len(done)] and len(done) < len(plan):
            return plan[len(done):]
        self._plan = (len(self._executed), self._engine.replan())
        return list(self._plan[1])

    def fork(self) -> _AlfredTextEnv:
        twin = self._twin()
        if self._game is not None:
            twin.reset(seed=0, options=self._game.options)
            for action in self._actions:
                twin.step(action)
            twin._over = self._over
        twin.np_random = np.random.Generator(np.random.PCG64())
        twin.np_random.bit_generator.state = self.np_random.bit_generator.state
        return twin

    def _twin(self) -> _AlfredTextEnv:
        raise NotImplementedError

    def render(self) -> str:
        return self._last_obs

    def close(self) -> None:
        """Return the engine to the pool (the environment can be reset again afterwards)."""
        if self._engine is not None:
            self._finalizer()
            self._engine = None
        self._over = True
        super().close()

    @property
    def game(self) -> GameRef | None:
        return self._game

    @property
    def won(self) -> bool:
        return self._won


class HouseholdEnv(_AlfredTextEnv):
    """``turngym/Household-v0`` and its per-task-type variants: generated problems (see module docstring).

    Args:
        task_types: task types to draw from (default: all six).
        split: ``seen`` or ``unseen`` (held-out floor plans and object types).
        pool_size: problems per task type (default 500); seeds wrap around.
        cache_dir: problem cache (default ``~/.cache/turngym/household/<hash>``).
        show_admissible, milestone_weight, invalid_penalty: see :class:`_AlfredTextEnv`.
    """

    def __init__(
        self,
        task_types: str | tuple[str, ...] | list[str] = TASK_TYPES,
        split: str = "seen",
        pool_size: int = 500,
        cache_dir: str | None = None,
        show_admissible: bool = True,
        milestone_weight: float = MILESTONE_WEIGHT,
        invalid_penalty: float = INVALID_PENALTY,
        render_mode: str | None = None,
        engine_caches: bool = True,
        history: int = 0,
    ):
        from turngym.envs.household.generator import SPLITS, ProblemStore

        super().__init__(show_admissible, milestone_weight, invalid_penalty, render_mode, engine_caches, history)
        types = (task_types,) if isinstance(task_types, str) else tuple(task_types)
        bad = [t for t in types if t not in TASK_TYPES]
        if not types or bad:
            raise ValueError(f"task_types must be a non-empty subset of {TASK_TYPES}, got {task_types!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size!r}")
        self.task_types, self.split, self.pool_size = types, split, int(pool_size)
        self.cache_dir = cache_dir
        self.store = ProblemStore(cache_dir)
        self._kwargs = {"task_types": types, "split": split, "pool_size": pool_size, "cache_dir": cache_dir,
                        "show_admissible": show_admissible, "milestone_weight": milestone_weight,
                        "invalid_penalty": invalid_penalty, "render_mode": render_mode,
                        "engine_caches": engine_caches, "history": history}

    @classmethod
    def data_fingerprint(cls, **kwargs: Any) -> dict[str, str]:
        """The problem generator's content hash (its version, the planner settings, the installed
        alfworld and the domain, grammar and layouts it reads): generated problems are a function of
        it and the seed (:meth:`TurnEnv.data_fingerprint`)."""
        from turngym.envs.household.generator import content_hash

        return {"generator": content_hash()}

    def _choose(self, seed_value: int, options: dict[str, Any]) -> GameRef:
        task = options.get("task_type", self.task_types[seed_value % len(self.task_types)])
        index = int(options.get("index", (seed_value // len(self.task_types)) % self.pool_size))
        if task not in TASK_TYPES:
            raise ValueError(f"options['task_type'] must be one of {TASK_TYPES}, got {task!r}")
        problem = self.store.get(self.split, task, index)
        spec = problem.spec
        goal = milestones.Goal(spec.task_type, spec.target, spec.parent, spec.toggle)
        return GameRef(str(problem.game_file), goal, spec.description, {"task_type": task, "index": index},
                       problem.walkthrough)

    def _twin(self) -> HouseholdEnv:
        return HouseholdEnv(**self._kwargs)


ALFWORLD_SPLITS = ("train", "valid_seen", "valid_unseen")


def find_alfworld_games(data_path: str | os.PathLike, split: str) -> list[Path]:
    """Solvable ``game.tw-pddl`` files of an ALFWorld data directory, sorted, as ALFWorld collects them.

    Accepts ``$ALFWORLD_DATA`` (holding ``json_2.1.1/<split>``) or the split directory's parent.
    Skips games without ``traj_data.json``, 'movable'/'Sliced' games and games not marked solvable.
    """
    if split not in ALFWORLD_SPLITS:
        raise ValueError(f"split must be one of {ALFWORLD_SPLITS}, got {split!r}")
    root = Path(os.path.expandvars(os.path.expanduser(str(data_path))))
    candidates = [root / "json_2.1.1" / split, root / split]
    base = next((c for c in candidates if c.is_dir()), None)
    if base is None:
        raise FileNotFoundError(
            f"no ALFWorld game files for split {split!r} under {str(root)!r} (looked for "
            f"{', '.join(repr(str(c)) for c in candidates)}). Set ALFWORLD_DATA (or pass data_path=) to the "
            "directory that `alfworld-download` filled, or generate problems instead with turngym/Household-v0."
        )
    games = []
    for game in sorted(base.rglob("game.tw-pddl")):
        if "movable" in str(game) or "Sliced" in str(game) or not (game.parent / "traj_data.json").exists():
            continue
        if not json.loads(game.read_text()).get("solvable", False):
            continue
        games.append(game)
    if not games:
        raise FileNotFoundError(f"{str(base)!r} holds no solvable ALFWorld games (game.tw-pddl + traj_data.json)")
    return games


class ALFWorldEnv(_AlfredTextEnv):
    """``turngym/ALFWorld-v0``: ALFWorld's official game files, same engine, wrappers and rewards.

    Args:
        data_path: ALFWorld data directory (default: ``$ALFWORLD_DATA``).
        split: ``train``, ``valid_seen`` or ``valid_unseen``.
        task_types: keep only these task types (default: all six).
    Seed ``s`` plays game ``s % number_of_games``; ``options={"game": i}`` picks game ``i``.
    """

    def __init__(
        self,
        data_path: str | None = None,
        split: str = "train",
        task_types: str | tuple[str, ...] | list[str] = TASK_TYPES,
        show_admissible: bool = True,
        milestone_weight: float = MILESTONE_WEIGHT,
        invalid_penalty: float = INVALID_PENALTY,
        render_mode: str | None = None,
        engine_caches: bool = True,
        history: int = 0,
    ):
        super().__init__(show_admissible, milestone_weight, invalid_penalty, render_mode, engine_caches, history)
        path = data_path or os.environ.get("ALFWORLD_DATA")
        if not path:
            raise FileNotFoundError(
                "turngym/ALFWorld-v0 needs ALFWorld's game files: set ALFWORLD_DATA=/path/to/alfworld/data "
                "or pass data_path=... (`turngym household export --out DIR` writes generated games in the "
                "same layout)"
            )
        types = (task_types,) if isinstance(task_types, str) else tuple(task_types)
        self.games: list[tuple[Path, dict[str, Any]]] = []
        for game in find_alfworld_games(path, split):
            traj = json.loads((game.parent / "traj_data.json").read_text())
            task = TASK_FROM_ALFRED.get(traj.get("task_type", ""))
            if task in types:
                self.games.append((game, traj))
        if not self.games:
            raise FileNotFoundError(f"no games of task types {types} in split {split!r} under {str(path)!r}")
        self._kwargs = {"data_path": path, "split": split, "task_types": types,
                        "show_admissible": show_admissible, "milestone_weight": milestone_weight,
                        "invalid_penalty": invalid_penalty, "render_mode": render_mode,
                        "engine_caches": engine_caches, "history": history}

    @classmethod
    def data_fingerprint(cls, **kwargs: Any) -> dict[str, str]:
        """The sha256 over the split's game files (paths relative to the data folder and each file's
        sha256, cached by size and mtime), e.g. to notice an ALFWorld data update."""
        path = kwargs.get("data_path") or os.environ.get("ALFWORLD_DATA")
        if not path:
            return {}
        games = find_alfworld_games(path, kwargs.get("split", "train"))
        root = Path(os.path.expandvars(os.path.expanduser(str(path))))
        listing = [(str(g.relative_to(root)), file_sha256(g), file_sha256(g.parent / "traj_data.json")) for g in games]
        return {"games": text_sha256(json.dumps(listing))}

    def _choose(self, seed_value: int, options: dict[str, Any]) -> GameRef:
        i = int(options.get("game", seed_value % len(self.games)))
        if not 0 <= i < len(self.games):
            raise ValueError(f"options['game'] must be in [0, {len(self.games)}), got {i!r}")
        game, traj = self.games[i]
        params = traj.get("pddl_params", {})
        task = TASK_FROM_ALFRED[traj["task_type"]]
        goal = milestones.Goal(task, params.get("object_target", ""), params.get("parent_target") or None,
                               params.get("toggle_target") or None)
        data = json.loads(game.read_text())
        match = re.search(r"Your task is to: (.*?)\.?\"", data.get("grammar", ""))
        description = match.group(1) if match else task
        return GameRef(str(game), goal, description, {"game": i}, tuple(data.get("walkthrough") or ()))

    def _twin(self) -> ALFWorldEnv:
        return ALFWorldEnv(**self._kwargs)

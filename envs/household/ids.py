"""Registration of the ``turngym/…`` ids of this family. Imported by :mod:`turngym.envs.builtin`.

Keep this module import-light: entry points are ``"module:Class"`` strings, loaded on ``make``.

* ``turngym/Household-v0`` — all six task types, seen split (``split="unseen"`` for held-out floor
  plans and object types); ``turngym/HouseholdUnseen-v0`` is the unseen split.
* ``turngym/Household-<TaskType>-v0`` — one task type each (``PickAndPlace``, ``LookAtObjInLight``,
  ``PickCleanThenPlace``, ``PickHeatThenPlace``, ``PickCoolThenPlace``, ``PickTwoObjAndPlace``).
* ``turngym/ALFWorld-v0`` — ALFWorld's official game files from ``$ALFWORLD_DATA`` (or ``data_path=``).
  Registered only when ``ALFWORLD_DATA`` is set, so ``turngym check --all`` and the registry-wide
  tests never meet an id whose data is absent; ``ALFWorldEnv(data_path=...)`` works regardless.
"""

from __future__ import annotations

import os

from turngym.envs.registration import register

TASK_IDS = {
    "pick_and_place": "PickAndPlace",
    "look_at_obj_in_light": "LookAtObjInLight",
    "pick_clean_then_place": "PickCleanThenPlace",
    "pick_heat_then_place": "PickHeatThenPlace",
    "pick_cool_then_place": "PickCoolThenPlace",
    "pick_two_obj_and_place": "PickTwoObjAndPlace",
}
_ENV = "turngym.envs.household.env:HouseholdEnv"
_AGENTS = {"expert": "turngym.envs.household.agents:expert",
           "explorer": "turngym.envs.household.agents:explorer"}
_EXPERT_ONLY = {"expert": _AGENTS["expert"]}  # ids without pick-and-place tasks: the explorer plays none
# Per step: the outcome (1) plus at most two milestones of 0.1, or the invalid penalty of -0.05.
_BOUNDS = (-0.05, 1.2)
_COMMON = {"family": "household", "max_turns": 50, "reward_bounds": _BOUNDS, "gate_threshold": 1.0,
           "agents": _AGENTS, "tags": ("alfworld", "textworld", "pddl")}


def register_ids() -> None:
    """Register the household ids (see the module docstring)."""
    register(
        "turngym/Household-v0", _ENV,
        description="ALFWorld household tasks (6 types) on generated floor-plan problems, seen split",
        **_COMMON,
    )
    register(
        "turngym/HouseholdUnseen-v0", _ENV, kwargs={"split": "unseen"},
        description="ALFWorld household tasks, unseen split: held-out floor plans and object types",
        **_COMMON,
    )
    for task, name in TASK_IDS.items():
        register(
            f"turngym/Household-{name}-v0", _ENV, kwargs={"task_types": (task,)},
            description=f"ALFWorld household task {task} on generated problems, seen split",
            **{**_COMMON, "agents": _AGENTS if task == "pick_and_place" else _EXPERT_ONLY},
        )
    if not os.environ.get("ALFWORLD_DATA"):
        return
    register(
        "turngym/ALFWorld-v0", "turngym.envs.household.env:ALFWorldEnv",
        description="ALFWorld's official game files ($ALFWORLD_DATA), same engine, wrappers and rewards",
        **_COMMON,
    )

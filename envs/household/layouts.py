"""The floor plans and object/receptacle rules shipped inside the ``alfworld`` wheel, as typed records.

Reads ``alfworld/gen/layouts/FloorPlan<N>-objects.json`` (the object types present in the scene) and
``FloorPlan<N>-openable.json`` (every static receptacle with its navigation point ``[x, z, rotation,
horizon]``), and the rules of ``alfworld/gen/constants.py`` (which receptacle type can hold which
object type, which objects can be cleaned/heated/cooled, which rooms each task type lives in).
Nothing here downloads anything; everything is cached per process.

Receptacle ids keep ALFRED's spelling (``Cabinet|+00.68|+00.50|-02.20``; basins are
``Sink|…|SinkBasin``), so ALFWorld's demangler turns them into the names its games use
(``cabinet 1``, ``sinkbasin 1``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

ROOMS = ("Kitchen", "LivingRoom", "Bedroom", "Bathroom")

TASK_TYPES = (
    "pick_and_place",
    "look_at_obj_in_light",
    "pick_clean_then_place",
    "pick_heat_then_place",
    "pick_cool_then_place",
    "pick_two_obj_and_place",
)
"""Our short names of ALFWorld's six task types (ALFRED names in :data:`ALFRED_TASK_NAMES`)."""

ALFRED_TASK_NAMES = {
    "pick_and_place": "pick_and_place_simple",
    "look_at_obj_in_light": "look_at_obj_in_light",
    "pick_clean_then_place": "pick_clean_then_place_in_recep",
    "pick_heat_then_place": "pick_heat_then_place_in_recep",
    "pick_cool_then_place": "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place": "pick_two_obj_and_place",
}
TASK_FROM_ALFRED = {v: k for k, v in ALFRED_TASK_NAMES.items()}

TOGGLE_TYPES = ("DeskLamp", "FloorLamp")
"""Light sources of ``look_at_obj_in_light``: fixtures that sit on a receptacle and are never picked up."""

TRANSFORM_APPLIANCE = {
    "pick_clean_then_place": "SinkBasin",
    "pick_heat_then_place": "Microwave",
    "pick_cool_then_place": "Fridge",
}
TRANSFORM_PROPERTY = {
    "pick_clean_then_place": "Cleanable",
    "pick_heat_then_place": "Heatable",
    "pick_cool_then_place": "Coolable",
}


@dataclass(frozen=True)
class Receptacle:
    """A static receptacle of a floor plan: ALFRED id, type (``SinkBasin`` for sinks) and grid point."""

    id: str
    rtype: str
    point: tuple[int, int, int, int]

    @property
    def location(self) -> str:
        """ALFRED's location name ``loc|x|z|rotation|horizon`` (grid units of 0.25 m)."""
        return "loc|{}|{}|{}|{}".format(*self.point)


@dataclass(frozen=True)
class FloorPlan:
    """One shipped floor plan: its number, room type, static receptacles and the object types in it."""

    number: int
    room: str
    receptacles: tuple[Receptacle, ...]
    object_types: frozenset[str]

    @property
    def name(self) -> str:
        return f"FloorPlan{self.number}"

    @property
    def receptacle_types(self) -> frozenset[str]:
        return frozenset(r.rtype for r in self.receptacles)


def alfworld_root() -> Path:
    """Directory of the installed ``alfworld`` package; a clear error when the extra is missing."""
    try:
        import alfworld
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the household environments need the 'alfworld' package: pip install 'turngym[household]'"
        ) from exc
    return Path(os.path.dirname(alfworld.__file__))


def domain_text() -> str:
    """ALFWorld's PDDL domain (``alfworld/data/alfred.pddl``)."""
    return _read(alfworld_root() / "data" / "alfred.pddl")


def grammar_text() -> str:
    """ALFWorld's text grammar (``alfworld/data/alfred.twl2``), with the ``UNKNOWN GOAL`` placeholder."""
    return _read(alfworld_root() / "data" / "alfred.twl2")


@functools.cache
def _read(path: Path) -> str:
    return path.read_text()


def room_of(number: int) -> str:
    """Room type of a floor plan number (ALFRED: 1-30 kitchens, 201-230 living rooms, 301-330 bedrooms, 401-430 bathrooms)."""
    for room, first in zip(ROOMS, (1, 201, 301, 401)):
        if first <= number < first + 30:
            return room
    raise ValueError(f"floor plan number {number!r} is not an ALFRED scene (1-30, 201-230, 301-330, 401-430)")


def _receptacle_type(alfred_id: str) -> str:
    head = alfred_id.split("|", 1)[0]
    return {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}.get(head, head)


@functools.cache
def floor_plans() -> dict[int, FloorPlan]:
    """Every shipped floor plan, by number (120 of them)."""
    rules = constants()
    layouts = alfworld_root() / "gen" / "layouts"
    plans: dict[int, FloorPlan] = {}
    for objects_file in sorted(layouts.glob("FloorPlan*-objects.json")):
        number = int(objects_file.name[len("FloorPlan") : -len("-objects.json")])
        openable = json.loads((layouts / f"FloorPlan{number}-openable.json").read_text())
        receptacles = []
        for rid, (x, z, rotation, horizon) in sorted(openable.items()):
            rtype = _receptacle_type(rid)
            if rtype not in rules.can_contain:
                continue
            point = (round(x / 0.25), round(z / 0.25), int(rotation), int(horizon))
            receptacles.append(Receptacle(rid, rtype, point))
        plans[number] = FloorPlan(
            number=number,
            room=room_of(number),
            receptacles=tuple(receptacles),
            object_types=frozenset(json.loads(objects_file.read_text())),
        )
    return plans


@dataclass(frozen=True)
class Rules:
    """The object rules of ``alfworld/gen/constants.py`` that the generator needs."""

    can_contain: dict[str, frozenset[str]]  # receptacle type -> object types it can hold
    action_objects: dict[str, frozenset[str]]  # Cleanable/Heatable/Coolable/Toggleable/Sliceable -> types
    openable: frozenset[str]  # openable receptacle types
    task_rooms: dict[str, frozenset[str]]  # our task name -> rooms it is posed in
    train_scenes: tuple[int, ...]  # ALFRED's training floor plans
    test_scenes: tuple[int, ...]  # ALFRED's held-out floor plans
    goals: dict[str, dict]  # ALFRED task name -> {'pddl': goal template, 'templates': [...]}

    @property
    def pickupable(self) -> frozenset[str]:
        """Object types that some receptacle can hold, minus receptacle-only and sliced types."""
        held = frozenset().union(*self.can_contain.values())
        return frozenset(t for t in held if not t.endswith("Sliced") and t not in self.can_contain)


@functools.cache
def constants() -> Rules:
    """Load the rules from the shipped ``alfworld.gen.constants`` and ``goal_library``."""
    alfworld_root()
    from alfworld.gen import constants as c
    from alfworld.gen import goal_library

    can_contain = {k: frozenset(v) for k, v in c.VAL_RECEPTACLE_OBJECTS.items()}
    # Movable receptacles (Bowl, Mug, Plate…) are plain objects in our problems, as in ALFWorld's text games.
    for movable in c.MOVABLE_RECEPTACLES:
        can_contain.pop(movable, None)
    return Rules(
        can_contain=can_contain,
        action_objects={k: frozenset(v) for k, v in c.VAL_ACTION_OBJECTS.items()},
        openable=frozenset(c.OPENABLE_CLASS_LIST),
        task_rooms={ours: frozenset(c.GOALS_VALID[alfred]) for ours, alfred in ALFRED_TASK_NAMES.items()},
        train_scenes=tuple(c.TRAIN_SCENE_NUMBERS),
        test_scenes=tuple(c.TEST_SCENE_NUMBERS),
        goals={name: goal_library.gdict[name] for name in ALFRED_TASK_NAMES.values()},
    )

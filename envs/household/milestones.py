"""Verifiable progress of a household episode, read from the engine's PDDL facts (pure functions).

The engine's state is a set of ground facts (``inreceptacle(o, r)``, ``holds(agent1, o)``,
``ishot(o)``…; names lowercased by fast-downward). :func:`observe` reads what the goal cares about
into a :class:`Snapshot`; :func:`milestone_rewards` pays each milestone once:

* ``seen`` — an object of the target type is visible: in a receptacle at the agent's location that
  is open or not openable (or already in hand).
* ``picked`` — the agent holds an object of the target type.
* ``transformed`` — clean/heat/cool tasks: a target-type object is clean/hot/cool;
  look_at_obj_in_light: a lamp of the requested type was switched on.
* ``placed`` — a target-type object (clean/hot/cool where the task asks) is in a receptacle of the
  goal type and was not there at the start; pick_two pays half per distinct object, up to two.

Every milestone is a fact the engine holds, not a guess, and the sum of milestone rewards over an
episode is at most ``weight`` × the number of milestones of the task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from turngym.envs.household.layouts import TASK_TYPES

MILESTONES = {
    "pick_and_place": ("seen", "picked", "placed"),
    "look_at_obj_in_light": ("seen", "picked", "transformed"),
    "pick_clean_then_place": ("seen", "picked", "transformed", "placed"),
    "pick_heat_then_place": ("seen", "picked", "transformed", "placed"),
    "pick_cool_then_place": ("seen", "picked", "transformed", "placed"),
    "pick_two_obj_and_place": ("seen", "picked", "placed"),
}
_TRANSFORM_FACT = {
    "pick_clean_then_place": "isclean",
    "pick_heat_then_place": "ishot",
    "pick_cool_then_place": "iscool",
}


@dataclass(frozen=True)
class Goal:
    """What a task asks for: task type (our short name), target object type, goal receptacle type, lamp type."""

    task_type: str
    target: str
    parent: str | None = None
    toggle: str | None = None

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {TASK_TYPES}, got {self.task_type!r}")


@dataclass(frozen=True)
class Snapshot:
    """The goal-relevant part of one engine state."""

    seen: bool
    picked: bool
    transformed: bool
    placed: frozenset[str]  # ids of target objects in a goal receptacle, meeting the transform condition


def observe(facts: Iterable, goal: Goal) -> Snapshot:
    """Read a :class:`Snapshot` from TextWorld :class:`~textworld.logic.Proposition` facts."""
    target_t = goal.target.lower() + "type"
    parent_t = (goal.parent or "").lower() + "type"
    toggle_t = (goal.toggle or "").lower() + "type"
    otype: dict[str, str] = {}
    rtype: dict[str, str] = {}
    recep_loc: dict[str, str] = {}
    inside: list[tuple[str, str]] = []
    openable, opened, held, agent_loc = set(), set(), set(), None
    flags: dict[str, set[str]] = {"isclean": set(), "ishot": set(), "iscool": set(), "istoggled": set()}
    for fact in facts:
        name, args = fact.name, fact.arguments
        if name == "objecttype":
            otype[args[0].name] = args[1].name
        elif name == "receptacletype":
            rtype[args[0].name] = args[1].name
        elif name == "receptacleatlocation":
            recep_loc[args[0].name] = args[1].name
        elif name == "inreceptacle":
            inside.append((args[0].name, args[1].name))
        elif name == "atlocation":
            agent_loc = args[1].name
        elif name == "holds":
            held.add(args[1].name)
        elif name == "openable":
            openable.add(args[0].name)
        elif name == "opened":
            opened.add(args[0].name)
        elif name in flags:
            flags[name].add(args[0].name)

    def is_target(o: str) -> bool:
        return otype.get(o, "").lower() == target_t

    visible = any(
        is_target(o) and recep_loc.get(r) == agent_loc and (r not in openable or r in opened) for o, r in inside
    )
    picked = any(is_target(o) for o in held)
    transform = _TRANSFORM_FACT.get(goal.task_type)
    if transform:
        transformed = any(is_target(o) for o in flags[transform])
    elif goal.task_type == "look_at_obj_in_light":
        transformed = any(otype.get(o, "").lower() == toggle_t for o in flags["istoggled"])
    else:
        transformed = False
    placed = frozenset(
        o for o, r in inside
        if is_target(o) and rtype.get(r, "").lower() == parent_t and (not transform or o in flags[transform])
    ) if goal.parent else frozenset()
    return Snapshot(seen=visible or picked, picked=picked, transformed=transformed, placed=placed)


@dataclass
class MilestoneTracker:
    """Pays each milestone of ``goal`` once per episode. Start it with the initial snapshot."""

    goal: Goal
    initial: Snapshot
    weight: float = 0.1
    paid: set[str] = field(default_factory=set)
    placed_paid: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # A fact true at the start is no progress: never pay it.
        for name in ("seen", "picked", "transformed"):
            if getattr(self.initial, name):
                self.paid.add(name)

    def update(self, now: Snapshot) -> dict[str, float]:
        """Reward components earned by moving to ``now`` (empty when nothing new)."""
        out: dict[str, float] = {}
        wanted = MILESTONES[self.goal.task_type]
        for name in ("seen", "picked", "transformed"):
            if name in wanted and name not in self.paid and getattr(now, name):
                self.paid.add(name)
                out[name] = self.weight
        if "placed" in wanted:
            needed = 2 if self.goal.task_type == "pick_two_obj_and_place" else 1
            fresh = sorted(now.placed - self.initial.placed - self.placed_paid)
            for obj in fresh[: needed - len(self.placed_paid)]:
                self.placed_paid.add(obj)
                out["placed"] = out.get("placed", 0.0) + self.weight / needed
        return out

    @property
    def achieved(self) -> dict[str, bool]:
        wanted = MILESTONES[self.goal.task_type]
        needed = 2 if self.goal.task_type == "pick_two_obj_and_place" else 1
        state = {name: name in self.paid for name in wanted if name != "placed"}
        if "placed" in wanted:
            state["placed"] = len(self.placed_paid) >= needed
        return state

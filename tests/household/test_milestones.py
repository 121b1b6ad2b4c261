"""Milestones read from PDDL facts: pure-function tests on hand-written states."""

from __future__ import annotations

from textworld.logic import Proposition, Variable

from turngym.envs.household.milestones import Goal, MilestoneTracker, observe


def _facts(*extra: tuple[str, ...]) -> list[Proposition]:
    types = {"agent1": "agent", "apple1": "object", "apple2": "object", "lamp1": "object", "fridge1": "receptacle",
             "table1": "receptacle", "l1": "location", "l2": "location", "appletype": "otype",
             "desklamptype": "otype", "fridgetype": "rtype", "tabletype": "rtype"}
    base = [
        ("objecttype", "apple1", "appletype"), ("objecttype", "apple2", "appletype"),
        ("objecttype", "lamp1", "desklamptype"),
        ("receptacletype", "fridge1", "fridgetype"), ("receptacletype", "table1", "tabletype"),
        ("receptacleatlocation", "fridge1", "l1"), ("receptacleatlocation", "table1", "l2"),
        ("openable", "fridge1"),
    ]
    return [Proposition(name, [Variable(a, types[a]) for a in args]) for name, *args in base + list(extra)]


def test_seen_needs_an_open_receptacle_at_the_agents_location():
    goal = Goal("pick_and_place", "Apple", "Table")
    closed = observe(_facts(("inreceptacle", "apple1", "fridge1"), ("atlocation", "agent1", "l1")), goal)
    assert not closed.seen
    opened = observe(_facts(("inreceptacle", "apple1", "fridge1"), ("atlocation", "agent1", "l1"),
                            ("opened", "fridge1")), goal)
    assert opened.seen and not opened.picked
    elsewhere = observe(_facts(("inreceptacle", "apple1", "fridge1"), ("atlocation", "agent1", "l2"),
                               ("opened", "fridge1")), goal)
    assert not elsewhere.seen


def test_placed_requires_the_transform_and_is_paid_once():
    goal = Goal("pick_heat_then_place", "Apple", "Table")
    start = observe(_facts(("inreceptacle", "apple1", "fridge1"), ("atlocation", "agent1", "l2")), goal)
    tracker = MilestoneTracker(goal, start, weight=0.1)
    cold = observe(_facts(("inreceptacle", "apple1", "table1"), ("atlocation", "agent1", "l2")), goal)
    assert tracker.update(cold) == {"seen": 0.1}  # on the table, but not hot: not placed
    hot = observe(_facts(("inreceptacle", "apple1", "table1"), ("ishot", "apple1"), ("atlocation", "agent1", "l2")), goal)
    assert tracker.update(hot) == {"transformed": 0.1, "placed": 0.1}
    assert tracker.update(hot) == {}


def test_facts_true_at_the_start_are_never_paid():
    goal = Goal("pick_two_obj_and_place", "Apple", "Table")
    start = observe(_facts(("inreceptacle", "apple1", "table1"), ("atlocation", "agent1", "l2")), goal)
    tracker = MilestoneTracker(goal, start, weight=0.1)
    assert tracker.update(start) == {}  # already visible and already on the table: no progress
    both = observe(_facts(("inreceptacle", "apple1", "table1"), ("inreceptacle", "apple2", "table1"),
                          ("atlocation", "agent1", "l2")), goal)
    assert tracker.update(both) == {"placed": 0.05}
    assert not tracker.achieved["placed"]


def test_lamp_switched_on_is_the_look_task_transform():
    goal = Goal("look_at_obj_in_light", "Apple", None, "DeskLamp")
    state = observe(_facts(("inreceptacle", "lamp1", "table1"), ("istoggled", "lamp1"), ("holds", "agent1", "apple1"),
                           ("atlocation", "agent1", "l2")), goal)
    assert state.transformed and state.picked and state.seen and state.placed == frozenset()

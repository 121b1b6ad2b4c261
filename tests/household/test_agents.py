"""The household scripted agents: the observable explorer's rules (pure) and its play on the engine."""

from __future__ import annotations

import pytest

import turngym
from turngym.envs.household.agents import explore_command, explorer
from turngym.envs.household.env import HouseholdEnv

PLACES = ["cabinet 1", "cabinet 2", "countertop 1", "countertop 2", "drawer 1", "sinkbasin 1"]


def _admissible(here: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """Commands as the env lists them (sorted): a `go to` for every receptacle but the one stood at."""
    commands = [f"go to {p}" for p in PLACES if p != here] + ["help", "inventory", "look", *extra]
    if here is not None:
        commands.append(f"examine {here}")
    return sorted(commands)


def test_the_explorer_searches_surfaces_first_then_openables_skipping_the_goal_type():
    assert explore_command("potato", "sinkbasin", _admissible()) == "go to countertop 1"
    assert explore_command("potato", "sinkbasin", _admissible("countertop 1")) == "go to countertop 2"
    # after the last surface come the openable receptacles; the goal type (sinkbasin) is never searched
    assert explore_command("potato", "sinkbasin", _admissible("countertop 2")) == "go to cabinet 1"
    closed = _admissible("cabinet 1", ("open cabinet 1",))
    assert explore_command("potato", "sinkbasin", closed) == "open cabinet 1"
    opened = _admissible("cabinet 1", ("close cabinet 1", "take egg 1 from cabinet 1"))
    assert explore_command("potato", "sinkbasin", opened) == "go to cabinet 2"  # an egg is not a potato
    assert explore_command("potato", "sinkbasin", _admissible("drawer 1")) == "look"  # nothing left to search


def test_the_explorer_takes_a_target_then_puts_it_in_the_goal_receptacle():
    seen = _admissible("countertop 2", ("take egg 1 from countertop 2", "take potato 3 from countertop 2"))
    assert explore_command("potato", "sinkbasin", seen) == "take potato 3 from countertop 2"
    held = _admissible("countertop 2", ("examine potato 3", "move potato 3 to countertop 2"))
    assert explore_command("potato", "sinkbasin", held) == "go to sinkbasin 1"
    at_goal = _admissible("sinkbasin 1", ("examine potato 3", "move potato 3 to sinkbasin 1"))
    assert explore_command("potato", "sinkbasin", at_goal) == "move potato 3 to sinkbasin 1"
    # a closed goal receptacle: the held object shows only as `examine`; open the goal first
    closed_goal = _admissible("drawer 1", ("examine potato 3", "open drawer 1"))
    assert explore_command("potato", "drawer", closed_goal) == "open drawer 1"


def test_the_explorer_opens_every_receptacle_at_a_shared_spot_and_goes_on_from_its_destination():
    # drawer 1 shares a spot with cabinet 1: arriving at either leaves both without a `go to`
    def at_shared_spot(*extra: str) -> list[str]:
        return sorted([c for c in _admissible("drawer 1") if c != "go to cabinet 1"] + ["examine cabinet 1", *extra])

    closed = at_shared_spot("open cabinet 1", "open drawer 1")
    assert explore_command("potato", "sinkbasin", closed, arrived="drawer 1") == "open cabinet 1"
    assert explore_command("potato", "sinkbasin", at_shared_spot("open drawer 1"), arrived="drawer 1") == "open drawer 1"
    searched = at_shared_spot()
    # reached as cabinet 1: on to cabinet 2; reached as drawer 1, the last in the order: nothing is left
    # (the admissible commands alone would say cabinet 1 and send the search back to cabinet 2: a loop)
    assert explore_command("potato", "sinkbasin", searched, arrived="cabinet 1") == "go to cabinet 2"
    assert explore_command("potato", "sinkbasin", searched, arrived="drawer 1") == "look"
    # a destination that is not where the agent stands is ignored: the first receptacle here counts
    assert explore_command("potato", "sinkbasin", searched, arrived="countertop 1") == "go to cabinet 2"


def test_the_explorer_wins_on_the_engine_with_only_admissible_commands(store):
    env = HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root))
    agent = explorer()
    env.reset(seed=0, options={"index": 0})
    records = []
    for _ in range(50):
        command = agent(env)
        assert command in env.admissible_commands
        _, _, terminated, _, info = env.step(command)
        records.append(info["turn"])
        if terminated:
            break
    assert env.won and records[-1].outcome == 1.0
    assert all(r.valid_action for r in records)


def test_the_explorer_refuses_task_types_it_does_not_play(store):
    env = HouseholdEnv(task_types=("pick_heat_then_place",), cache_dir=str(store.root))
    env.reset(seed=0, options={"index": 0})
    with pytest.raises(ValueError, match="pick_heat_then_place.*planner `expert`"):
        explorer()(env)


def test_the_explorer_is_offered_only_on_ids_with_pick_and_place_tasks():
    assert set(turngym.spec("turngym/Household-PickAndPlace-v0").agents) == {"expert", "explorer"}
    assert set(turngym.spec("turngym/HouseholdUnseen-v0").agents) == {"expert", "explorer"}
    assert set(turngym.spec("turngym/Household-PickHeatThenPlace-v0").agents) == {"expert"}

"""The problem generator: determinism, splits, distractors, closed receptacles, planner verification."""

from __future__ import annotations

import json

import pytest

from turngym.envs.household import generator as gen
from turngym.envs.household import layouts
from turngym.envs.household.generator import SPLITS, TASK_TYPES


def test_shipped_floor_plans_are_read():
    plans = layouts.floor_plans()
    assert len(plans) == 120
    assert {p.room for p in plans.values()} == set(layouts.ROOMS)
    kitchen = plans[1]
    assert {"Fridge", "Microwave", "SinkBasin"} <= kitchen.receptacle_types
    assert "Apple" in kitchen.object_types


@pytest.mark.parametrize("task", TASK_TYPES)
@pytest.mark.parametrize("split", SPLITS)
def test_every_task_type_is_posed_in_both_splits(split, task):
    assert len(gen.task_choices(split, task)) > 0


def test_spec_is_deterministic_and_varies_with_index():
    a = gen.sample_spec("seen", "pick_clean_then_place", 7)
    assert a == gen.sample_spec("seen", "pick_clean_then_place", 7)
    assert a.to_pddl() == gen.sample_spec("seen", "pick_clean_then_place", 7).to_pddl()
    others = {gen.sample_spec("seen", "pick_clean_then_place", i).to_pddl() for i in range(8, 20)}
    assert a.to_pddl() not in others and len(others) == 12


def test_unseen_shares_no_floor_plan_or_object_type_with_seen():
    assert not set(gen.split_floor_plans("seen")) & set(gen.split_floor_plans("unseen"))
    assert not gen.split_object_types("seen") & gen.split_object_types("unseen")
    used = {split: (set(), set()) for split in SPLITS}
    for split in SPLITS:
        for task in TASK_TYPES:
            for index in range(60):
                spec = gen.sample_spec(split, task, index)
                used[split][0].add(spec.floor_plan)
                used[split][1].update(spec.object_types)
                assert spec.floor_plan in gen.split_floor_plans(split)
                assert spec.object_types <= gen.split_object_types(split)
    (seen_plans, seen_types), (unseen_plans, unseen_types) = used["seen"], used["unseen"]
    assert not seen_plans & unseen_plans
    assert not seen_types & unseen_types
    assert len(unseen_plans) >= 10 and len(unseen_types) >= 8  # the held-out split is really used


@pytest.mark.parametrize("task", TASK_TYPES)
def test_problems_have_distractors_and_closed_receptacles(task):
    for index in range(10):
        spec = gen.sample_spec("seen", task, index)
        targets = [o for o in spec.objects if o.otype == spec.target]
        assert len(targets) >= (2 if task == "pick_two_obj_and_place" else 1)
        pddl = spec.to_pddl()
        assert "(opened " not in pddl  # every openable receptacle starts closed
        goal_types = {spec.parent, layouts.TRANSFORM_APPLIANCE.get(task)}
        for o in targets:  # never already in the goal receptacle type or the appliance
            rtype = next(r.rtype for r in spec.plan().receptacles if r.id == o.receptacle)
            assert rtype not in goal_types
    distractors = sum(
        len([o for o in gen.sample_spec("seen", task, i).objects if o.otype not in (gen.sample_spec("seen", task, i).target,)])
        for i in range(10)
    )
    assert distractors >= 10
    assert any("(openable " in gen.sample_spec("seen", task, i).to_pddl() for i in range(10))


def test_pddl_names_follow_alfred_mangling():
    assert gen.pddl_name("Sink|+00.05|-00.90|-00.65|SinkBasin") == "Sink_bar__plus_00_dot_05_bar__minus_00_dot_90_bar__minus_00_dot_65_bar_SinkBasin"


def test_relevance_pruned_problem_keeps_what_a_plan_needs():
    spec = gen.sample_spec("seen", "pick_heat_then_place", 3)
    full, pruned = spec.to_pddl(), gen.render_pddl(spec, relevant_only=True)
    assert len(pruned) < len(full)
    for o in spec.objects:
        assert (gen.pddl_name(o.id) in pruned) == (o.otype == spec.target)
    assert "MicrowaveType)" in pruned


def test_stored_problems_are_planner_verified(store):
    for task in TASK_TYPES:
        problem = store.get("seen", task, 0)
        game = json.loads(problem.game_file.read_text())
        traj = json.loads((problem.directory / "traj_data.json").read_text())
        assert game["solvable"] is True and game["walkthrough"] == list(problem.walkthrough)
        assert 1 <= len(problem.walkthrough) <= gen.MAX_PLAN_LENGTH
        assert traj["task_type"] == layouts.ALFRED_TASK_NAMES[task]
        assert problem.spec == gen.sample_spec("seen", task, 0, problem.spec.attempt)
        # the cache answers without regenerating
        assert store.get("seen", task, 0) == problem


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split must be one of"):
        gen.sample_spec("test", "pick_and_place", 0)
    with pytest.raises(ValueError, match="task_type must be one of"):
        gen.sample_spec("seen", "pick_and_throw", 0)
    with pytest.raises(ValueError, match="index must be >= 0"):
        gen.sample_spec("seen", "pick_and_place", -1)

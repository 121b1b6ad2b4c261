"""RLVMR meta-reasoning rules on hand-written transcripts, and the env wrapper on a real game."""

from __future__ import annotations

import pytest

import turngym
from turngym.agents.specs import resolve_agent
from turngym.envs.meta_reasoning import (
    MetaReasoning,
    MetaRewards,
    MetaStep,
    meta_components,
    parse_reply,
)


def test_parse_reply_takes_one_leading_tag_and_the_action_after_it():
    r = parse_reply("<plan>find the mug, then heat it</plan> go to countertop 1")
    assert (r.tag, r.thought, r.action, r.well_formed) == ("plan", "find the mug, then heat it", "go to countertop 1", True)
    assert parse_reply("go to countertop 1").tag is None  # no tag
    two = parse_reply("<plan>a</plan><explore>b</explore> look")
    assert two.tag is None and two.action == "look"  # two tags: malformed, tags stripped for the env
    assert not parse_reply("<monitor>on track</monitor>").well_formed  # no action
    assert parse_reply("first <reflect>x</reflect> look").tag is None  # the tag must lead


def test_rules_on_a_hand_written_household_transcript():
    steps = [
        MetaStep("<plan>mug → microwave</plan> go to cabinet 1", False, "at cabinet 1"),
        MetaStep("<explore>try the drawer</explore> open drawer 1", False, "drawer 1 open"),
        MetaStep("<explore>again</explore> go to cabinet 1", False, "at cabinet 1"),  # a state seen before: no reward
        MetaStep("<monitor>ok</monitor> take mug from drawer 9", True, "at cabinet 1"),  # fails
        MetaStep("<reflect>no drawer 9; the mug is in drawer 1</reflect> take mug from drawer 1", False, "holding mug"),
        MetaStep("<reflect>pointless</reflect> go to microwave 1", False, "at microwave 1"),  # previous did not fail
        MetaStep("heat mug with microwave 1", False, "mug hot"),  # untagged: format penalty
    ]
    rewards = MetaRewards()
    won = meta_components(steps, "start", outcome=1.0, rewards=rewards)
    assert won == [{"mr_plan": rewards.plan}, {"mr_explore": rewards.explore}, {}, {}, {"mr_reflect": rewards.reflect}, {},
                   {"mr_format": rewards.format}]
    lost = meta_components(steps, "start", outcome=0.0, rewards=rewards)
    assert lost[0] == {}  # planning pays only when the episode succeeds
    unfinished = meta_components(steps, "start", outcome=None)
    assert unfinished[0] == {}


def test_reflection_that_repeats_the_failed_action_earns_nothing():
    steps = [MetaStep("<monitor>m</monitor> take mug from drawer 9", True, None),
             MetaStep("<reflect>hmm</reflect>  Take  mug from drawer 9 ", True, None),
             MetaStep("<reflect>change</reflect> take mug from drawer 1", False, None)]
    assert meta_components(steps, None, None) == [{}, {}, {"mr_reflect": MetaRewards().reflect}]


def test_wrapper_strips_tags_adds_components_and_pays_plans_at_the_end():
    env_id = "turngym/TicTacToe-v0"
    env = MetaReasoning(turngym.make(env_id, opponent=resolve_agent("random", env_id, seed=0), agent_seat=0))
    _, info = env.reset(seed=0)
    assert "<plan>" in info["system_prompt"]
    _, _, done, _, info = env.step("<plan>take the centre, then a corner</plan> [5]")
    assert info["turn"].valid_action and info["meta_tag"] == "plan" and not done
    assert "mr_plan" not in info["turn"].components  # not known before the end
    _, _, done, _, info = env.step("<explore>a corner</explore> [1]")
    assert info["turn"].components.get("mr_explore") == pytest.approx(MetaRewards().explore)  # a new board
    record = info["turn"]
    assert record.reward == pytest.approx(record.turn_reward + (record.outcome or 0.0))
    while not done:
        free = [c for c in info["legal_actions"]] if info.get("legal_actions") else ["[9]"]
        _, _, done, trunc, info = env.step(f"[{str(free[0]).strip('[]')}]")  # untagged: format penalty
        done = done or trunc
        assert info["turn"].components.get("mr_format") == pytest.approx(MetaRewards().format)
    record = info["turn"]
    assert ("mr_plan" in record.components) == (record.outcome >= 1.0)

"""HouseholdEnv / ALFWorldEnv on ALFWorld's engine: expert wins, milestones, invalid commands, determinism."""

from __future__ import annotations

import numpy as np
import pytest

import turngym
from turngym.envs.household import engine as engine_mod
from turngym.envs.household.agents import expert
from turngym.envs.household.env import ACTION_FORMAT, ALFWorldEnv, HouseholdEnv, parse_command
from turngym.envs.household.generator import TASK_TYPES, export_alfworld
from turngym.envs.household.milestones import MILESTONES
from turngym.envs.types import StopReason


def _play(env, agent, max_steps=50):
    rewards, records = [], []
    for _ in range(max_steps):
        _, reward, terminated, truncated, info = env.step(agent(env))
        rewards.append(reward)
        records.append(info["turn"])
        if terminated or truncated:
            break
    return rewards, records


@pytest.mark.parametrize("task", TASK_TYPES)
def test_expert_wins_and_collects_every_milestone_once(store, task):
    env = HouseholdEnv(task_types=(task,), cache_dir=str(store.root))
    obs, info = env.reset(seed=0, options={"index": 0})
    assert "Your task is to:" in obs and "Admissible commands:" in obs
    assert info["task_type"] == task
    rewards, records = _play(env, expert())
    last = records[-1]
    assert last.terminated and last.outcome == 1.0 and last.stop_reason == StopReason.SOLVED
    paid = [name for r in records for name in r.components]
    assert sorted(set(paid)) == sorted(MILESTONES[task])
    assert sum(rewards) == pytest.approx(1.0 + 0.1 * len(MILESTONES[task]))
    assert all(r.reward_consistent() and r.valid_action for r in records)
    assert list(env.game.walkthrough) == [r for r in env._executed]


def test_invalid_command_changes_nothing_and_hints(store):
    env = HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root))
    env.reset(seed=0)
    before = env.admissible_commands
    obs, reward, terminated, truncated, info = env.step("fly to the moon")
    record = info["turn"]
    assert obs.startswith("Nothing happens.") and '"fly to the moon"' in obs and ACTION_FORMAT in obs
    assert not record.valid_action and record.components == {"invalid": -0.05} and reward == -0.05
    assert env.admissible_commands == before and not (terminated or truncated)
    obs, *_ = env.step(b"\xff\xfe")
    assert "not valid UTF-8" in obs and ACTION_FORMAT in obs


def test_anchor_state_is_the_world_state_however_it_was_reached(store):
    env = HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root))
    _, info = env.reset(seed=0)
    start = info["anchor"]
    assert start == env.anchor_state() and "atlocation(" in start and start.splitlines() == sorted(start.splitlines())
    _, _, _, _, info = env.step("fly to the moon")  # an invalid command changes nothing
    assert info["anchor"] == start
    go = next(c for c in info["admissible_commands"] if c.startswith("go to "))
    _, _, _, _, info = env.step(go)
    assert info["anchor"] != start
    _, again = env.reset(seed=0)
    assert again["anchor"] == start


def test_admissible_commands_can_be_hidden(store):
    env = HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root), show_admissible=False)
    obs, info = env.reset(seed=0)
    assert "Admissible commands" not in obs and info["admissible_commands"]
    obs, *_ = env.step(info["admissible_commands"][0])
    assert "Admissible commands" not in obs


def test_history_restates_the_task_and_the_last_exchanges(store):
    env = HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root), history=1)
    obs, info = env.reset(seed=0)
    assert "Your task is to:" in obs and "Your last" not in obs  # the intro already states the task
    go = [c for c in info["admissible_commands"] if c.startswith("go to ")]
    env.step(go[0])
    env.step("fly to the moon")
    obs, *_ = env.step(go[1])
    task_line, rest = obs.split("\n", 1)
    assert task_line == f"Your task is to: {env.game.description.rstrip('.')}."
    assert f"> {go[0]}" not in rest  # only the last exchange before the newest one
    assert rest.index("> fly to the moon") < rest.index(f"Now (step 3): > {go[1]}") < rest.index("Admissible commands:")
    plain = HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root))
    plain.reset(seed=0)
    plain.step(go[0])
    plain.step("fly to the moon")
    plain_obs, *_ = plain.step(go[1])
    assert obs.endswith(plain_obs)  # the newest feedback and commands are unchanged
    with pytest.raises(ValueError, match="history must be >= 0.*-1"):
        HouseholdEnv(task_types=("pick_and_place",), cache_dir=str(store.root), history=-1)


def test_parse_command_normalizes_replies():
    assert parse_command("Go to Fridge 1.") == "go to fridge 1"
    assert parse_command("I think so.\n> take apple 1 from countertop 2") == "take apple 1 from countertop 2"
    assert parse_command("think...<action>open drawer 3</action> done") == "open drawer 3"
    assert parse_command("put mug 1 in/on coffeemachine 1") == "move mug 1 to coffeemachine 1"
    assert parse_command("`look`") == "look"
    assert parse_command("   \n ") == ""


def test_turn_limit_truncates_with_outcome(store):
    env = turngym.make("turngym/Household-PickAndPlace-v0", cache_dir=str(store.root), max_turns=2)
    env.reset(seed=0)
    env.step("look")
    _, _, terminated, truncated, info = env.step("look")
    record = info["turn"]
    assert truncated and not terminated and record.outcome == 0.0
    assert record.stop_reason == StopReason.TURN_LIMIT
    assert turngym.spec("turngym/Household-v0").max_turns == 50


def test_same_seed_same_episode_and_fork_continues_identically(store):
    a = HouseholdEnv(cache_dir=str(store.root), pool_size=1)
    b = HouseholdEnv(cache_dir=str(store.root), pool_size=1)
    assert a.reset(seed=7)[0] == b.reset(seed=7)[0]
    rng = np.random.default_rng(3)
    for _ in range(3):
        action = a.sample_valid_action(rng)
        assert a.step(action)[:2] == b.step(action)[:2]
    twin = a.fork()
    rng_a, rng_t = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):
        out_a, out_t = a.step(a.sample_valid_action(rng_a)), twin.step(twin.sample_valid_action(rng_t))
        assert out_a[:4] == out_t[:4]
        if out_a[2]:
            break


def test_seed_selects_task_type_and_problem(store):
    env = HouseholdEnv(cache_dir=str(store.root), pool_size=1)
    seen = {env.reset(seed=s)[1]["task_type"] for s in range(6)}
    assert seen == set(TASK_TYPES)
    with pytest.raises(ValueError, match="task_types must be a non-empty subset"):
        HouseholdEnv(task_types=("cook_dinner",))
    with pytest.raises(ValueError, match="split must be one of"):
        HouseholdEnv(split="test")


def test_engine_caches_leave_the_game_unchanged(store):
    def transcript(caches: bool) -> list:
        if not caches:
            engine_mod.uninstall_caches()
        env = HouseholdEnv(task_types=("pick_clean_then_place",), cache_dir=str(store.root), engine_caches=caches)
        out = [env.reset(seed=1)[0]]
        rng = np.random.default_rng(0)
        for _ in range(6):
            obs, reward, terminated, _, _ = env.step(env.sample_valid_action(rng))
            out.append((obs, reward))
            if terminated:
                break
        out.append(env.reset(seed=1)[0])  # a second reset of the same game
        return out

    try:
        assert transcript(False) == transcript(True)
    finally:
        engine_mod.install_caches()


def test_alfworld_env_loads_official_layout(store, tmp_path, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="ALFWORLD_DATA"):
        ALFWorldEnv()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        ALFWorldEnv(data_path=str(tmp_path / "nowhere"))
    export_alfworld(store, "seen", 1, tmp_path / "data", "valid_seen")
    env = ALFWorldEnv(data_path=str(tmp_path / "data"), split="valid_seen")
    assert len(env.games) == len(TASK_TYPES)
    for game in range(len(env.games)):
        obs, info = env.reset(options={"game": game})
        assert "Your task is to:" in obs
        rewards, records = _play(env, expert())
        assert records[-1].outcome == 1.0
        assert sum(rewards) == pytest.approx(1.0 + 0.1 * len(MILESTONES[info["task_type"]]))


def test_expert_replans_after_a_detour(store):
    env = HouseholdEnv(task_types=("look_at_obj_in_light",), cache_dir=str(store.root))
    env.reset(seed=0)
    walkthrough = env.expert_plan()
    detour = next(c for c in env.admissible_commands if c.startswith("go to") and c != walkthrough[0])
    env.step(detour)
    assert env.expert_plan() != walkthrough[1:]  # a fresh plan from the new state
    _, records = _play(env, expert())
    assert records[-1].outcome == 1.0


def test_alfworld_data_fingerprint_changes_with_a_game_file(store, tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path / "cache"))  # the file-hash cache
    export_alfworld(store, "seen", 1, tmp_path / "data", "valid_seen")
    before = ALFWorldEnv.data_fingerprint(data_path=str(tmp_path / "data"), split="valid_seen")
    assert set(before) == {"games"}
    assert ALFWorldEnv.data_fingerprint(data_path=str(tmp_path / "data"), split="valid_seen") == before
    traj = sorted((tmp_path / "data").rglob("traj_data.json"))[0]
    traj.write_text(traj.read_text() + " ")  # an updated data release: the manifest sees it
    assert ALFWorldEnv.data_fingerprint(data_path=str(tmp_path / "data"), split="valid_seen") != before

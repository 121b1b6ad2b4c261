"""Agent programs through the gateway: sessions → trajectories (append-only joined, edited history split),
failures masked and counted, the command-line form, the config's refusals, and the CI learning test."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from turngym.agents.gateway import CallRecord, SessionRecord
from turngym.agents.hf_policy import HFPolicy
from turngym.agents.tiny import tiny_char_model
from turngym.training.agent_program import collect_programs, parse_reward
from turngym.training.config import AgentProgramSection, TrainConfig
from turngym.training.rollout import RolloutConfig, Task
from turngym.training.sessions import is_append_only, session_trajectory
from turngym.training.trainer import train

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "openai-agent" / "agent.py"
PROGRAMS = '''
import json, time, urllib.request
from openai import OpenAI

def run(task, base_url, api_key):
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    kind = task["kind"]
    if kind == "raises":
        raise RuntimeError("the agent crashed")
    if kind == "hangs":
        time.sleep(300)
    if kind == "silent":
        client.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}])
        return None
    messages = [{"role": "user", "content": "Write."}]
    first = client.chat.completions.create(model="any", messages=messages).choices[0].message.content
    if kind == "append":
        messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "Again."}]
    else:  # "edits": the program rewrites its history before the second call
        messages = [{"role": "user", "content": "Summary: " + first[:2]}, {"role": "user", "content": "Again."}]
    client.chat.completions.create(model="any", messages=messages)
    if kind == "http":  # report through the gateway's endpoint instead of returning
        root, session = base_url.split("/s/")[0], base_url.split("/s/")[1].split("/")[0]
        request = urllib.request.Request(f"{root}/sessions/{session}/reward", data=json.dumps({"reward": 0.25}).encode(),
                                         headers={"Authorization": f"Bearer {api_key}"}, method="POST")
        urllib.request.urlopen(request, timeout=30).read()
        return None
    return {"reward": 1.0, "call_rewards": [0.1, 0.2]} if kind == "append" else 0.5
'''


@pytest.fixture(scope="module")
def policy():
    model, tokenizer = tiny_char_model(0)
    return HFPolicy(model, tokenizer, max_batch_size=32)


def _setup(tmp_path: Path, kinds: list[str]) -> tuple[Path, Path]:
    program = tmp_path / "programs.py"
    program.write_text(textwrap.dedent(PROGRAMS))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"kind": k}) + "\n" for k in kinds))
    return program, tasks


def test_sessions_become_trajectories_and_failures_are_masked_and_counted(policy, tmp_path):
    kinds = ["append", "edits", "http", "raises", "hangs", "silent"]
    program, tasks = _setup(tmp_path, kinds)
    section = AgentProgramSection(callable=f"{program}:run", tasks=str(tasks), name="prog", timeout_s=20)
    # greedy: the tiny model's replies then hold no special tokens, which its text would drop (a
    # reply with one cannot be sent back token-exactly, and that session is split, rightly)
    config = RolloutConfig(group_size=2, max_new_tokens=6, temperature=0.0)
    batch = collect_programs([Task("prog", i) for i in range(len(kinds))], policy, config, section)
    by_kind = {kind: [t for t in batch.trajectories if t.seed == i] for i, kind in enumerate(kinds)}
    assert [len(v) for v in by_kind.values()] == [2] * len(kinds)  # groups never shrink
    for t in by_kind["append"]:  # append-only: one sequence, only what each call added as its prompt
        assert not t.failed and t.context == "full" and not t.info["split"] and len(t.turns) == 2
        assert t.outcome == 1.0 and [turn.record.components for turn in t.turns] == [{"call_reward": 0.1}, {"call_reward": 0.2}]
        assert all(1 <= len(turn.completion_ids) <= 6 for turn in t.turns)  # capped by rollout.max_new_tokens
    for t in by_kind["edits"]:  # edited history: one sequence per call, never merged
        assert not t.failed and t.context == "turn" and t.info["split"]
        assert len(t.sequences()) == 2 and t.outcome == 0.5
    assert [t.outcome for t in by_kind["http"]] == [0.25, 0.25]
    for kind, why in [("raises", "raised RuntimeError"), ("hangs", "still running"), ("silent", "no reward")]:
        assert all(t.failed and t.outcome is None and why in t.error for t in by_kind[kind]), kind
    assert batch.metrics.failed == 6 and batch.metrics.trajectories == 12


def test_recorded_ids_are_the_generated_ids_in_one_sequence(policy, tmp_path):
    program, tasks = _setup(tmp_path, ["append"])
    section = AgentProgramSection(callable=f"{program}:run", tasks=str(tasks), timeout_s=60)
    batch = collect_programs([Task("agent-program", 0)], policy, RolloutConfig(group_size=1, max_new_tokens=5, temperature=0.0), section)
    (t,) = batch.trajectories
    flat = t.flat()
    first, second = t.turns
    assert flat.token_ids == first.prompt_ids + first.completion_ids + second.prompt_ids + second.completion_ids
    # the second call's whole prompt is the first call's prompt + its generated ids + what the program added
    prompt = first.prompt_ids + first.completion_ids + second.prompt_ids
    scored = policy.score([prompt], [second.completion_ids])[0]
    assert scored == pytest.approx(second.logprobs, abs=1e-3)  # log-probs of exactly these ids under the policy


def test_split_and_join_rules_on_records():
    a = CallRecord([1, 2], [3, 4], [-0.1, -0.2], "x", "stop")
    b = CallRecord([1, 2, 3, 4, 5], [6], [-0.3], "y", "stop")
    edited = CallRecord([1, 9, 5], [6], [-0.3], "y", "stop")
    assert is_append_only([a, b]) and not is_append_only([a, edited])
    joined = session_trajectory(SessionRecord("s", [a, b], reward=1.0), env_id="p", seed=3, sample_index=1)
    assert joined.flat().token_ids == [1, 2, 3, 4, 5, 6] and joined.flat().loss_mask == [0, 0, 1, 1, 0, 1]
    assert joined.group_id == "p#3" and joined.turns[-1].record.outcome == 1.0 and joined.turns[0].record.outcome is None
    split = session_trajectory(SessionRecord("s", [a, edited], reward=0.0), env_id="p", seed=3, sample_index=1)
    assert [s.token_ids for s in split.sequences()] == [[1, 2, 3, 4], [1, 9, 5, 6]]
    assert split.stop_reason == "failed" and not split.failed
    empty = session_trajectory(SessionRecord("s", [], reward=1.0), env_id="p", seed=0, sample_index=0)
    assert empty.failed and "no model calls" in empty.error


def test_a_command_line_program_gets_the_task_on_stdin(policy, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    section = AgentProgramSection(command=[sys.executable, str(EXAMPLE), "--stdin"], tasks=str(tasks), timeout_s=120)
    batch = collect_programs([Task("agent-program", 0)], policy, RolloutConfig(group_size=2, max_new_tokens=4), section)
    assert [t.failed for t in batch.trajectories] == [False, False], [t.error for t in batch.trajectories]
    assert all(0.0 <= t.outcome <= 1.0 and t.turns for t in batch.trajectories)


def test_rewards_parse_and_the_config_refuses_what_does_not_combine():
    assert parse_reward("log line\n0.5\n") == (0.5, None)
    assert parse_reward({"reward": 1, "call_rewards": [0, 1]}) == (1.0, [0.0, 1.0])
    assert parse_reward("") == (None, None)
    with pytest.raises(ValueError, match="not a reward"):
        parse_reward("done!")
    with pytest.raises(ValueError, match="exactly one of callable"):
        AgentProgramSection(tasks="t.jsonl")
    base = {"agent_program": {"callable": "m:f", "tasks": "t.jsonl"}, "eval": {"episodes": 0},
            "algo": {"gate_threshold": None}}
    TrainConfig.model_validate(base)
    with pytest.raises(ValueError, match="gate_threshold 'spec'"):
        TrainConfig.model_validate({**base, "algo": {}})
    with pytest.raises(ValueError, match=r"envs.*eval.episodes"):
        TrainConfig.model_validate({**base, "envs": [{"id": "turngym/Vowels-v0"}], "eval": {"episodes": 10}})


@pytest.mark.slow
def test_an_openai_sdk_agent_with_tools_learns_through_the_gateway(tmp_path):
    """The gateway's CI learning test: the tiny model, driven by the unmodified example agent, raises
    its mean reward (the answer format: digits) by at least 0.08 in 16 steps. It does not learn
    arithmetic or tool calls — see docs/gateway.md."""
    config = TrainConfig.model_validate({
        "out_dir": str(tmp_path), "seed": 0, "steps": 16, "checkpoint_every": 16, "tensorboard": False,
        "agent_program": {"callable": f"{EXAMPLE}:run", "tasks": f"{EXAMPLE}:tasks", "timeout_s": 120},
        "model": {"name": "tiny-char", "threads": 1},
        "rollout": {"tasks_per_step": 3, "group_size": 8, "max_new_tokens": 8, "max_episode_tokens": 2048},
        "algo": {"estimator": "grpo", "gate_threshold": None}, "optim": {"lr": 0.003, "micro_batch_size": 16},
        "eval": {"episodes": 0}})
    train(config, show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["reward/mean_outcome"] for r in rows[:3]) / 3
    last = sum(r["reward/mean_outcome"] for r in rows[-3:]) / 3
    assert last >= first + 0.08, f"mean reward went {first:.3f} -> {last:.3f}"
    assert all(r["rollout/failed"] == 0 for r in rows)


@pytest.mark.parametrize("name", ["tiny.yaml", "smollm2.yaml"])
def test_the_example_configs_load(name):
    config = TrainConfig.load(EXAMPLE.parent / name)
    assert config.agent_program is not None and config.agent_program.callable.endswith("agent.py:run")


def test_every_estimator_but_gigpo_takes_session_trajectories():
    """Joined, split and failed sessions in two groups go through every registered estimator
    (GiGPO needs anchor states, which programs do not report; the config refuses it)."""
    from turngym.training.advantages import ESTIMATORS, compute
    from turngym.training.batching import training_rows
    from turngym.training.config import AlgoSection

    a = CallRecord([1, 2], [3, 4], [-0.1, -0.2], "x", "stop")
    joined = CallRecord([1, 2, 3, 4, 5], [6], [-0.3], "y", "stop")
    edited = CallRecord([1, 9], [6, 7], [-0.3, -0.4], "y", "stop")
    records = [SessionRecord("s0", [a, joined], reward=1.0, call_rewards=[0.2, 0.0]), SessionRecord("s1", [a, edited], reward=0.0),
               SessionRecord("s2", [a], reward=None, error="timed out"), SessionRecord("s3", [a], reward=0.5)]
    trajectories = [session_trajectory(r, env_id="prog", seed=i // 2, sample_index=i % 2) for i, r in enumerate(records)]
    for name in sorted(set(ESTIMATORS) - {"gigpo"}):
        algo = AlgoSection(estimator=name, gate_threshold=None)
        advantages, keep, _ = compute(trajectories, algo)
        assert [len(x) for x in advantages.per_turn] == [2, 2, 0, 1], name
        assert not advantages.valid[2], name  # the session without a reward is masked
        rows, _ = training_rows(trajectories, advantages.per_turn, advantages.clip_scale, keep,
                                [t.group_key for t in trajectories], False, version=0)
        assert sum(len(t.sequences()) for t, k in zip(trajectories, keep) if k and not t.failed) == len(rows), name

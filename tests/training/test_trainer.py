"""The trainer end to end on CPU: it learns, it checkpoints, and a killed run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from turngym.training.config import TrainConfig, load_preset
from turngym.training.run_io import TrainerState, resident_peak_gib, write_summary
from turngym.training.trainer import train


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _metrics(out: Path) -> list[dict]:
    return _lines(out / "metrics.jsonl")


def test_a_tiny_random_model_learns_the_toy_task(tmp_path):
    """The CI learning test: mean outcome on turngym/Vowels-v0 must rise by at least 0.15 in 30 steps."""
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=30", "checkpoint_every=30"])
    summary = train(config, show_progress=False)
    rows = _metrics(tmp_path)
    first = sum(r["reward/mean_outcome"] for r in rows[:3]) / 3
    last = sum(r["reward/mean_outcome"] for r in rows[-3:]) / 3
    assert last >= first + 0.15, f"mean outcome went {first:.3f} -> {last:.3f}"
    assert summary["steps"] == 30
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (tmp_path / "model" / "config.json").exists()
    assert (tmp_path / "checkpoint" / "state.pt").exists()

    # the exported model is an agent spec: it plays a (tiny) tournament against a scripted anchor
    from turngym.training.tournament import run_tournament

    result = run_tournament("turngym/TicTacToe-v0", [f"hf:{tmp_path / 'model'}", "random"], 4, tmp_path / "tour", plots=False)
    games = (tmp_path / "tour" / "games.jsonl").read_text().splitlines()
    assert len(games) == 4 and result is not None


def test_resume_after_sigkill_continues_with_identical_metrics(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    overrides = ["steps=8", "checkpoint_every=2"]
    cmd = [sys.executable, "-m", "turngym.cli", "train", "--preset", "ci-tiny"] + [x for o in overrides for x in ("--set", o)]
    subprocess.run(cmd + ["--out", str(reference)], check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(cmd + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["step"] >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_at_kill = json.loads(state.read_text())["step"]
    assert step_at_kill < 8, "the run finished before it could be killed; make it longer"

    subprocess.run(cmd + ["--out", str(killed), "--resume"], check=True, capture_output=True, timeout=600)
    ref_rows, resumed_rows = _metrics(reference), _metrics(killed)
    assert [r["step"] for r in resumed_rows] == list(range(1, 9))
    for a, b in zip(ref_rows, resumed_rows):
        for key in ("reward/mean_outcome", "loss", "grad_norm", "policy_tokens"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["step"], key)
    # the trajectory log too: what the killed run logged past its checkpoint was dropped, then replayed
    ref_log, resumed_log = (_lines(run / "trajectories.jsonl") for run in (reference, killed))
    assert [(e["step"], e["group_key"], e["sample_index"]) for e in resumed_log] == \
           [(e["step"], e["group_key"], e["sample_index"]) for e in ref_log]
    assert {e["step"] for e in ref_log} == set(range(1, 9))
    for a, b in zip(ref_log, resumed_log):
        assert [t["action"] for t in a["turns"]] == [t["action"] for t in b["turns"]]
        assert [t["advantage"] for t in a["turns"]] == pytest.approx([t["advantage"] for t in b["turns"]], rel=1e-6, abs=1e-9)


def test_config_errors_quote_the_bad_value():
    with pytest.raises(ValueError, match=r"unknown estimator 'grpoo'.*did you mean 'grpo'"):
        TrainConfig.model_validate({"algo": {"estimator": "grpoo"}})
    with pytest.raises(ValueError, match="Did you mean: 'turngym/TicTacToe-v0'"):
        TrainConfig.model_validate({"envs": [{"id": "turngym/TicTacToo-v0"}]})
    with pytest.raises(ValueError, match=r"input_value=-1"):
        TrainConfig.model_validate({"optim": {"lr": -1}})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        TrainConfig.model_validate({"optim": {"learning_rate": 1e-5}})
    with pytest.raises(ValueError, match=r"unknown preset 'quickstrat'.*did you mean 'quickstart'"):
        load_preset("quickstrat")


def test_resume_without_a_checkpoint_says_what_to_do(tmp_path):
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="run without --resume to start fresh"):
        train(config, resume=True, show_progress=False)


def test_quickstart_preset_is_valid():
    config = load_preset("quickstart")
    assert config.model.name == "smollm2-135m" and config.eval.episodes >= 200


def test_lora_trains_only_adapters_and_exports_a_merged_model(tmp_path):
    pytest.importorskip("peft")
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=2", "model.lora={r: 4, alpha: 8}"])
    train(config, show_progress=False)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_information_gain_is_the_change_in_gold_answer_logprob(tmp_path):
    import numpy as np

    from turngym.agents.hf_policy import HFPolicy
    from turngym.agents.tiny import tiny_char_model
    from turngym.envs.types import TurnRecord
    from turngym.training.info_gain import information_gain_rewards, turn_contexts
    from turngym.training.trajectory import Trajectory, Turn

    policy = HFPolicy(*tiny_char_model(0))
    tok = policy.tokenizer
    enc = lambda s: list(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    turns = [
        Turn(enc(f"<q{k}>"), enc(f"a{k}"), [0.0] * len(enc(f"a{k}")), f"a{k}", "stop", TurnRecord(turn=k, seat=0, reward=0.0))
        for k in range(3)
    ]
    traj = Trajectory("turngym/Arithmetic-v0", 0, "g", 0, 0, turns=turns, outcome=1.0, info={"answer": "42"})
    gains = information_gain_rewards(policy, [traj])[0]
    ells = [float(np.mean(s)) for s in policy.score(turn_contexts(traj), [enc("42")] * 3)]
    assert np.allclose(gains[:2], np.diff(ells)) and np.isnan(gains[2])
    no_answer = Trajectory("x/Y-v0", 0, "g", 0, 0, turns=turns, outcome=0.0)
    assert np.isnan(information_gain_rewards(policy, [no_answer])[0]).all()


def test_a_ray_address_without_workers_is_an_error():
    with pytest.raises(ValueError, match="ray_workers is 0"):
        TrainConfig.model_validate({"rollout": {"ray_address": "auto"}})


def test_cross_turn_kv_reuse_leaves_training_unchanged(tmp_path):
    """`rollout.kv_reuse` only saves prefill: the same seed trains to the same metrics with it on or off."""
    runs = {}
    for reuse in (True, False):
        config = load_preset("ci-tiny", [f"out_dir={tmp_path / str(reuse)}", "steps=2", "checkpoint_every=2",
                                         f"rollout.kv_reuse={str(reuse).lower()}"])
        train(config, show_progress=False)
        runs[reuse] = _metrics(tmp_path / str(reuse))
    for on, off in zip(runs[True], runs[False]):
        for key in ("reward/mean_outcome", "loss", "policy_tokens"):
            assert on[key] == pytest.approx(off[key], rel=1e-4, abs=1e-6), (on["step"], key)
        assert on["rollout/kv_reuse_share"] > 0.3 and off["rollout/kv_reuse_share"] == 0


def test_gigpo_trains_a_game_end_to_end_on_its_anchor_states(tmp_path):
    """GiGPO needs the env's anchor states (info["anchor"] → Turn.anchor → RewardBatch.anchors);
    two self-play steps on TicTacToe take real gradient steps with it."""
    import torch
    from transformers import AutoModelForCausalLM

    from turngym.agents.tiny import tiny_char_model

    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=2", "checkpoint_every=2",
                                     "envs=[{id: turngym/TicTacToe-v0}]", "algo.estimator=gigpo",
                                     "rollout.self_play=true", "rollout.context=turn",
                                     "rollout.max_new_tokens=1", "rollout.max_episode_tokens=2048"])
    train(config, show_progress=False)
    rows = _metrics(tmp_path)
    assert len(rows) == 2
    assert all(r["kept_trajectories"] > 0 and r["policy_tokens"] > 0 and r["grad_norm"] > 0 for r in rows)
    initial, _ = tiny_char_model(config.seed, num_layers=config.model.tiny_layers, hidden_size=config.model.tiny_hidden)
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    before, after = initial.state_dict(), trained.state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_gigpo_on_an_env_without_anchor_states_is_refused_by_the_config():
    with pytest.raises(ValueError, match=r"gigpo.*\['turngym/Vowels-v0'\] report none.*grpo, turn_group or rae"):
        TrainConfig.model_validate({"algo": {"estimator": "gigpo"}, "envs": [{"id": "turngym/Vowels-v0"}]})
    TrainConfig.model_validate({"algo": {"estimator": "gigpo"}, "envs": [{"id": "turngym/KuhnPoker-v0"}]})


def test_the_summary_peak_memory_covers_what_ran_after_the_last_step(tmp_path):
    """The final evaluation runs after the last step's metrics: the summary's peak must include it."""
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}"])
    rows = [{"step": 1, "memory/peak_rss_gib": 1e-6}]
    summary = write_summary(tmp_path, config, TrainerState(step=1), rows)
    assert summary["peak_rss_gib"] == pytest.approx(resident_peak_gib(), rel=0.05) and summary["peak_rss_gib"] > 1e-3
    rows = [{"step": 1, "memory/peak_rss_gib": 1e6}]  # an earlier process of a resumed run peaked higher
    assert write_summary(tmp_path, config, TrainerState(step=1), rows)["peak_rss_gib"] == 1e6

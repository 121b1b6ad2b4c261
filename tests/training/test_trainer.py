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
from turngym.training.trainer import train


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]


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

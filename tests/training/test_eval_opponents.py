"""The trainer's held-out evaluation against further opponents (``eval.also_against``)."""

from __future__ import annotations

import json

from turngym.training.config import load_preset
from turngym.training.trainer import train


def test_also_against_minimax_is_reported_greedy_and_minimax_never_loses(tmp_path):
    config = load_preset("ci-tiny", [
        f"out_dir={tmp_path}", "steps=1", "envs=[{id: turngym/TicTacToe-v0}]", "eval.episodes=6",
        "rollout.max_episode_tokens=2048",  # the character tokenizer spends a token per character
        "eval.temperatures=[0.0]", "eval.also_against=[minimax]",
    ])
    summary = train(config, show_progress=False)
    after = summary["evals"]["after"]
    assert set(after) == {"greedy", "greedy vs minimax"}
    vs_minimax = after["greedy vs minimax"]
    assert vs_minimax["opponent"] == "minimax" and vs_minimax["episodes"] == 6
    assert vs_minimax["win"]["count"] == 0  # a perfect player never loses
    assert vs_minimax["draw"]["count"] + vs_minimax["loss"]["count"] == 6
    assert "draw" in summary["comparison"]["greedy vs minimax"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["evals"]["before"]["greedy vs minimax"]["episodes"] == 6

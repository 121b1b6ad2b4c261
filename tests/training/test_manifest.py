"""The reproducibility manifest: what a run and an eval record, the cached file hashes, each family's
data fingerprint, and ``turngym eval --against`` warning about the fields that differ."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from turngym.envs.registration import data_fingerprint
from turngym.hashing import file_sha256, tree_sha256
from turngym.sandbox.image import image_tag
from turngym.training.config import load_preset
from turngym.training.manifest import (
    Manifest,
    build_manifest,
    compare,
    model_fingerprint,
    package_versions,
)
from turngym.training.trainer import train


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_training_run_writes_its_manifest(tmp_path):
    config = load_preset("ci-tiny", [f"out_dir={tmp_path}", "steps=1", "checkpoint_every=1", "rollout.tasks_per_step=1",
                                     "rollout.group_size=2", "log.trajectory_groups=0"])
    train(config, show_progress=False)
    manifest = Manifest.read(tmp_path)  # a run folder is read as its manifest.json
    assert manifest.kind == "train" and manifest.turngym_version
    assert manifest.packages["torch"] == torch.__version__ and "vllm" in manifest.packages
    assert package_versions(["definitely-not-installed-pkg"]) == {"definitely-not-installed-pkg": None}
    assert [(e.id, e.spec_version) for e in manifest.envs] == [("turngym/Vowels-v0", "v0")]
    assert manifest.model.kind == "tiny-char" and '"seed": 0' in manifest.model.note
    assert manifest.seeds == {"seed": 0, "eval_seed_offset": 1_000_000}
    assert manifest.config["name"] == "ci-tiny" and manifest.config["rollout"]["group_size"] == 2
    assert manifest.precision == {"rollout": "fp32", "learner": "fp32"}  # what the numerics resolved to
    assert manifest.command and manifest.cwd == os.getcwd()
    exported = tmp_path / "model" / "model.safetensors"
    assert manifest.trained_model.files["model.safetensors"] == sha256(exported)
    if (Path(__file__).resolve().parents[2] / ".git").exists():  # run from a checkout: its commit
        head = subprocess.run(["git", "-C", str(Path(__file__).parents[2]), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert manifest.git_commit == head.stdout.strip() and manifest.git_dirty in (True, False)

    resumed = config.model_copy(update={"steps": 2})
    train(resumed, resume=True, show_progress=False)  # a resumed run keeps the earlier session's manifest
    again = Manifest.read(tmp_path / "manifest.json")
    assert len(again.history) == 1 and again.history[0]["config"]["steps"] == 1 and again.config["steps"] == 2
    assert again.history[0]["trained_model"]["files"]["model.safetensors"] == manifest.trained_model.files["model.safetensors"]


def test_file_hashes_are_cached_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"a" * 1000)
    first = file_sha256(weights)
    assert first == sha256(weights) and (tmp_path / "cache" / "file-hashes.json").exists()
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)  # same size; put the old mtime back: the cached digest is served
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_sha256(weights) == first
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: hashed again
    assert file_sha256(weights) == sha256(weights) != first
    (tmp_path / "folder" / ".cache").mkdir(parents=True)
    (tmp_path / "folder" / "config.json").write_text("{}")
    (tmp_path / "folder" / ".cache" / "lock").write_text("x")
    assert list(tree_sha256(tmp_path / "folder")) == ["config.json"]


def test_each_family_fingerprints_its_data():
    train_pool = data_fingerprint("turngym/SearchQA-Fictional-v0", split="train")
    dev_pool = data_fingerprint("turngym/SearchQA-Fictional-v0", split="dev")
    assert train_pool["questions"] == dev_pool["questions"] and train_pool["corpus"] == dev_pool["corpus"]
    assert train_pool["pool"] != dev_pool["pool"] and train_pool["dataset"].startswith("fictional-")
    assert len(data_fingerprint("turngym/Household-v0")["generator"]) == 16
    assert data_fingerprint("turngym/CodeRepair-v0")["sandbox_image"] == image_tag()
    assert data_fingerprint("turngym/CodeRepair-v0", sandbox={"image": "mine:1"})["sandbox_image"] == "mine:1"
    assert data_fingerprint("turngym/TicTacToe-v0") == {}  # a game is its code


def test_compare_names_every_field_that_differs(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"layers": 2}')
    current = build_manifest("eval", [("turngym/SearchQA-Fictional-v0", {}), ("turngym/CodeRepair-v0", {})],
                             model=f"hf:{folder}")
    assert current.sandbox_image == image_tag()
    assert compare(current, Manifest.from_dict(json.loads(json.dumps(current.to_dict())))) == []
    other = copy.deepcopy(current)
    other.packages["torch"] = "1.0.0"
    other.envs[0].data["pool"] = "0" * 64
    other.sandbox_image = "turngym-sandbox:py-000000000000"
    other.model.files["config.json"] = "f" * 64
    other.git_commit = "0" * 40
    lines = compare(current, other)
    assert any(line.startswith(f"packages.torch: {torch.__version__} here, 1.0.0 in the manifest") for line in lines)
    assert any(line.startswith("envs.turngym/SearchQA-Fictional-v0.data.pool:") for line in lines)
    assert any(line.startswith("sandbox_image:") for line in lines)
    assert any(line.startswith("model:") and "config.json" in line for line in lines)
    assert any(line.startswith("git_commit:") for line in lines)
    assert len(lines) == 5, lines
    other.envs = other.envs[1:]
    assert any("SearchQA-Fictional-v0: not in the manifest" in line for line in compare(current, other))


def test_compare_names_a_different_resolved_precision_only_when_both_record_one():
    run = build_manifest("train", [("turngym/Vowels-v0", {})], precision={"rollout": "bf16", "learner": "bf16-autocast"})
    older = copy.deepcopy(run)
    older.precision = {}  # a manifest written before precision was recorded
    assert compare(run, older) == [] and compare(older, run) == []
    fp32 = copy.deepcopy(run)
    fp32.precision = {"rollout": "fp32", "learner": "fp32"}
    assert [line for line in compare(run, fp32) if line.startswith("precision:")] == [
        'precision: {"learner": "bf16-autocast", "rollout": "bf16"} here, {"learner": "fp32", "rollout": "fp32"} in the manifest']
    assert Manifest.from_dict(json.loads(json.dumps(run.to_dict()))).precision == run.precision


def test_eval_against_a_manifest_warns_per_difference_then_evaluates(tmp_path):
    def turngym(*args):
        return subprocess.run([sys.executable, "-m", "turngym.cli", *args], capture_output=True, text=True, timeout=300)

    common = ["eval", "turngym/KuhnPoker-v0", "--agent", "random", "--opponent", "random", "--episodes", "4"]
    first = turngym(*common, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"summary.json", "manifest.json", "trajectories.jsonl"}
    data = json.loads((tmp_path / "a" / "manifest.json").read_text())
    data["packages"]["numpy"] = "0.1"
    data["envs"][0]["spec"] = "0" * 64
    (tmp_path / "old.json").write_text(json.dumps(data))
    result = turngym(*common, "--against", str(tmp_path / "old.json"), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["episodes"] == 4  # evaluated as usual
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.stderr
    assert "packages.numpy" in warnings[0] and "0.1 in the manifest" in warnings[0]
    assert "envs.turngym/KuhnPoker-v0.spec:" in warnings[1]
    same = turngym(*common, "--against", str(tmp_path / "a"))
    assert same.returncode == 0 and "warning" not in same.stderr and "match" in same.stderr
    missing = turngym(*common, "--against", str(tmp_path / "nowhere.json"))
    assert missing.returncode == 2 and "no manifest at" in missing.stderr


def test_model_fingerprints_say_why_they_have_no_files():
    assert "random weights" in model_fingerprint("tiny-char", seed=3).note
    assert "not a local folder" in model_fingerprint("hf:someone/some-model").note
    assert "served by http://127.0.0.1:9/v1" in model_fingerprint("openai:m@http://127.0.0.1:9/v1").note

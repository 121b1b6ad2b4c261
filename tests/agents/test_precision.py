"""The bf16 probe (``agents/precision.py``): a real child process that crashes, disagrees or is slower
makes ``auto`` pick fp32; the verdict is cached per machine; explicit choices never probe."""

from __future__ import annotations

import json

import pytest

from turngym.agents.precision import (
    Precision,
    ProbeVerdict,
    cpu_verdict,
    machine_key,
    resolve_precision,
    run_probe,
)

SMALL = ["--shape", "256", "128", "256", "--repeats", "2"]  # a quick child: the shape does not matter here


def test_a_probe_that_dies_of_an_illegal_instruction_selects_fp32():
    verdict = run_probe([*SMALL, "--crash"])
    assert not verdict.use_bf16
    assert "SIGILL" in verdict.reason


def test_a_probe_whose_bf16_result_disagrees_with_fp32_selects_fp32():
    verdict = run_probe([*SMALL, "--perturb", "1.0"])
    assert not verdict.use_bf16
    assert "disagrees" in verdict.reason and verdict.rel_error > 0.5


def test_a_probe_whose_bf16_matmul_is_slower_selects_fp32():
    verdict = run_probe([*SMALL, "--slowdown", "40"])
    assert not verdict.use_bf16
    assert "not faster" in verdict.reason and verdict.speedup < 1.5


def test_the_verdict_is_cached_per_machine_and_reused(tmp_path):
    cache = tmp_path / "precision-probe.json"
    first = cpu_verdict(cache=cache, probe_args=[*SMALL, "--crash"])
    assert not first.use_bf16
    entries = json.loads(cache.read_text())
    assert list(entries) == [machine_key()] and entries[machine_key()]["use_bf16"] is False
    again = cpu_verdict(cache=cache, probe_args=SMALL, min_speedup=0.0)  # would pass, but is not re-run
    assert again == first
    fresh = cpu_verdict(cache=cache, probe_args=SMALL, min_speedup=0.0, refresh=True)  # unaltered: agrees
    assert fresh.use_bf16 and fresh.rel_error < 2e-2 and json.loads(cache.read_text())[machine_key()]["use_bf16"] is True


def test_a_damaged_cache_is_probed_again(tmp_path):
    cache = tmp_path / "precision-probe.json"
    cache.write_text("{not json")
    verdict = cpu_verdict(cache=cache, probe_args=[*SMALL, "--crash"])
    assert not verdict.use_bf16 and machine_key() in json.loads(cache.read_text())


def test_explicit_choices_resolve_without_probing_and_accept_torch_names():
    assert resolve_precision("fp32", "fp32") == Precision("fp32", "fp32")
    assert resolve_precision("bfloat16", "bf16-autocast") == Precision("bf16", "bf16-autocast")
    assert resolve_precision("float32", "bf16").learner_torch_name == "bfloat16"
    with pytest.raises(ValueError, match="learner.precision"):
        resolve_precision("fp32", "fp16")


def test_auto_follows_the_verdict(monkeypatch, capsys):
    import turngym.agents.precision as precision

    resolve_precision.cache_clear()
    monkeypatch.setattr(precision, "bf16_verdict", lambda device: ProbeVerdict(False, "bf16 is not faster (0.9×)"))
    assert resolve_precision("auto", "auto") == Precision("fp32", "fp32")
    assert "running fp32 (bf16 is not faster" in capsys.readouterr().err
    resolve_precision.cache_clear()
    monkeypatch.setattr(precision, "bf16_verdict", lambda device: ProbeVerdict(True, "fast"))
    assert resolve_precision("auto", "auto") == Precision("bf16", "bf16-autocast")
    assert resolve_precision("auto", "fp32") == Precision("bf16", "fp32")
    resolve_precision.cache_clear()  # later tests see the machine's own verdict


@pytest.mark.parametrize(("rollout", "learner", "differ"), [
    ("fp32", "fp32", False), ("bf16", "bf16", False), ("bf16", "fp32", True),
    ("bf16", "bf16-autocast", True), ("fp32", "bf16-autocast", True), ("fp32", "bf16", True),
])
def test_which_precision_pairs_differ(rollout, learner, differ):
    assert Precision(rollout, learner).differ is differ

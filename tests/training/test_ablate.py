"""``turngym ablate``: the registry, the across-seed statistics, and a 1-seed smoke run of every study
(wiring and files only; the full studies are run by hand, see docs/ablations.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from turngym.cli import main
from turngym.training.ablations import STUDIES, get_study, run_study
from turngym.training.ablations.analysis import curve, measure, t_interval, verdict, window_mean
from turngym.training.ablations.run import run_specs
from turngym.training.ablations.studies import Arm, Effect, Study


def test_the_studies_have_matched_valid_arms(tmp_path):
    assert list(STUDIES) == ["gating", "turn-credit", "info-gain", "role-baseline", "failures", "turn-rewards"]
    for study in STUDIES.values():
        assert study.seeds >= 5 and len(study.arms) >= 2 and study.primary.expected
        specs = run_specs(study, seeds=2, steps=3, out_dir=tmp_path)  # validates every arm's config
        by_seed = {}
        for spec in specs:
            by_seed.setdefault(spec.seed, []).append(spec.config)
        for configs in by_seed.values():  # arms of one seed differ only in their switch and folder
            strip = [{k: v for k, v in c.items() if k not in ("algo", "out_dir", "name")} for c in configs]
            assert all(s == strip[0] for s in strip)


def test_unknown_study_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'gating'"):
        get_study("gatng")


def test_bad_effect_arm_is_refused():
    with pytest.raises(ValueError, match="unknown arm"):
        Study("x", "t", "c", "turngym/Vowels-v0", {}, (Arm("a", (), ""), Arm("b", (), "")),
              (Effect("e", "", "m", "a", "zz", 1),), ())


def test_t_interval_and_verdicts():
    mean, low, high = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert (mean, low, high) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    assert t_interval([2.0]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(x) for x in t_interval([]))
    assert verdict(0.1, 0.5, +1, 5) == "reproduced"
    assert verdict(-0.5, -0.1, +1, 5) == "not reproduced"
    assert verdict(-0.1, 0.5, -1, 5) == "inconclusive"
    assert verdict(0.1, 0.5, 0, 5) == "measured"
    assert verdict(0.1, 0.1, +1, 1) == "inconclusive"


def test_effects_pair_seeds_and_windows():
    def rows(values):
        return [{"step": k + 1, "m": v} for k, v in enumerate(values)]

    runs = {"a": [rows([0, 0, 0, 1.0]), rows([0, 0, 0, 3.0])], "b": [rows([0, 0, 0, 0.5]), rows([0, 0, 0, 0.5])]}
    assert curve(runs["a"], "m", 4).shape == (2, 4)
    assert window_mean(curve(runs["a"], "m", 4), "all").tolist() == [0.25, 0.75]
    res = measure(Effect("e", "", "m", "a", "b", +1), runs, steps=4)
    assert res.per_seed == [0.5, 2.5] and res.estimate == pytest.approx(1.5) and res.n_seeds == 2
    res = measure(Effect("e", "", "m", "a", "a", +1, "last", "first"), runs, steps=4)
    assert res.per_seed == [1.0, 3.0]
    assert np.isnan(curve([rows([1.0])], "missing", 1)).all()


def test_list_command(capsys):
    assert main(["ablate", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in STUDIES)


@pytest.mark.parametrize("name", list(STUDIES))
def test_smoke_run_writes_every_file(name, tmp_path):
    study = STUDIES[name]
    result = run_study(study, seeds=1, steps=1, out=tmp_path, workers=1, show_progress=False)
    folder = tmp_path / name
    assert (folder / "curves.png").stat().st_size > 0
    data = json.loads((folder / "result.json").read_text())
    assert data["study"] == name and data["seeds"] == 1 and data["claim"] == study.claim
    assert [e["name"] for e in data["effects"]] == [e.name for e in study.effects]
    assert result.verdict == "inconclusive"  # one seed never decides
    for arm in study.arms:
        assert (folder / arm.name / "seed-0" / "metrics.jsonl").exists()
        curves = json.loads((folder / arm.name / "curves.json").read_text())
        assert curves["seeds"] == 1 and study.effects[0].metric in curves
    again = run_study(study, seeds=1, steps=1, out=tmp_path, workers=1, show_progress=False, train=False)
    assert again.wall_s == result.wall_s
    assert json.dumps([e.estimate for e in again.effects]) == json.dumps([e.estimate for e in result.effects])  # nan-safe

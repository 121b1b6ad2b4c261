"""``turngym view`` in a real headless Chromium (Debian's chromium + chromium-driver via selenium):
a real tiny training run is opened, its curves drawn, a trajectory opened, and every per-turn number
the page shows is checked against trajectories.jsonl. Screenshots land in the test's tmp folder
(``docs/img/viewer/make_screenshots.py`` regenerates the ones the docs use)."""

from __future__ import annotations

import json
import os

import pytest

from turngym.training.config import load_preset
from turngym.training.trainer import train
from turngym.training.viewer.browser import chromium_driver, find_chromium, wait_for
from turngym.training.viewer.server import ViewerThread

NUMERIC_FIELDS = ("prompt_tokens", "completion_tokens", "reward", "gated_reward", "advantage", "clip_scale")


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")
    driver = chromium_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewer") / "tiny"
    config = load_preset("ci-tiny", [f"out_dir={out}", "steps=2", "checkpoint_every=2", "log.trajectory_groups=2",
                                     "algo.adaptive_clip=true", "eval.episodes=2", "eval.temperatures=[0.0]"])
    train(config, show_progress=False)
    return out


def _shown_matches(element, value) -> None:
    """The page shows ``value``: its data-value is the file's number exactly, its text that number rounded."""
    raw = element.get_attribute("data-value")
    if value is None:
        assert raw == "null" and element.text == "—"
        return
    assert float(raw) == value
    assert abs(float(element.text) - value) <= 5e-5, (element.text, value)


def test_open_a_run_see_its_curves_and_a_trajectorys_credit(browser, run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    episodes = [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    other = tmp_path / "other"  # a second run to overlay: three metric rows
    other.mkdir()
    (other / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward/mean_outcome": s / 4}) + "\n" for s in (1, 2, 3)))
    with ViewerThread([run, other]) as viewer:
        browser.get(viewer.url)
        [series] = wait_for(browser, "[id='curve-reward_mean_outcome'] path.series")
        assert series.get_attribute("data-points") == str(len(metrics)) and series.get_attribute("d").count("L") == 1
        assert wait_for(browser, "#runs li.active")[0].get_attribute("data-run") == "tiny"
        browser.find_element(By.CSS_SELECTOR, "input[data-overlay=other]").click()
        overlaid = wait_for(browser, "[id='curve-reward_mean_outcome'] path.series", count=2)
        assert [p.get_attribute("data-run") for p in overlaid] == ["tiny", "other"]
        assert overlaid[1].get_attribute("data-points") == "3"
        browser.save_screenshot(str(tmp_path / "curves.png"))

        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=eval]").click()
        [table] = wait_for(browser, "#evals table[data-mode=greedy]")
        assert "before" in table.text and "after" in table.text and "success" in table.text

        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=trajectories]").click()
        rows = wait_for(browser, "#episodes tr.episode", count=20)
        assert len(rows) == 20  # one page of the 2 steps × 2 groups × 8 rollouts
        rows[3].click()
        cards = wait_for(browser, "#episode-detail .turn")
        shown, logged = episodes[3], episodes[3]["turns"]
        assert browser.find_element(By.CSS_SELECTOR, "#episode-detail").get_attribute("data-sample") == str(shown["sample_index"])
        assert len(cards) == len(logged)
        for card, turn in zip(cards, logged):
            assert card.find_element(By.CSS_SELECTOR, "pre.observation").text == turn["observation"].strip()
            assert card.find_element(By.CSS_SELECTOR, "pre.action").text == turn["action"].strip()
            for field in NUMERIC_FIELDS:
                _shown_matches(card.find_element(By.CSS_SELECTOR, f"[data-field={field}]"), turn[field])
            for name, value in turn["components"].items():
                _shown_matches(card.find_element(By.CSS_SELECTOR, f"[data-field='component:{name}']"), value)
            gate = card.find_element(By.CSS_SELECTOR, "[data-field=gate_open]")
            assert gate.text == ("open" if turn["gate_open"] else "closed")
            assert turn["clip_scale"] is not None  # the adaptive clip is on: a number is shown
        browser.save_screenshot(str(tmp_path / "trajectory.png"))

        rows[3].find_element(By.CSS_SELECTOR, "button.compare").click()
        columns = wait_for(browser, "#group-compare .col", count=8)
        group = [e for e in episodes if e["step"] == shown["step"] and e["group_key"] == shown["group_key"]]
        assert len(columns) == len(group) == 8
        for column, member in zip(columns, group):
            advantages = column.find_elements(By.CSS_SELECTOR, "[data-field=advantage]")
            assert [float(a.get_attribute("data-value")) for a in advantages] == [t["advantage"] for t in member["turns"]]

        Select(browser.find_element(By.ID, "f-outcome")).select_by_value("no_success")
        step = browser.find_element(By.ID, "f-step")
        step.send_keys("2")
        step.send_keys(Keys.TAB)  # a change event
        expected = [e for e in episodes if e["step"] == 2 and not e["outcome"] > 0]
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "page-info").text.strip().endswith(f"of {len(expected)}")
                                         or (not expected and "no episodes" in d.find_element(By.ID, "page-info").text))
        shown_outcomes = [float(c.get_attribute("data-value")) for c in browser.find_elements(By.CSS_SELECTOR, "#episodes [data-field=outcome]")]
        assert shown_outcomes == [e["outcome"] for e in expected][:20]

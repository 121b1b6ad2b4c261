"""Regenerate the screenshots of docs/viewer.md: a tiny real run, a tiny tournament, headless Chromium.

    python docs/img/viewer/make_screenshots.py [--out docs/img/viewer] [--steps 12]

Needs the [test] extra (selenium) and Debian's chromium + chromium-driver. Trains ci-tiny for a few
steps (CPU, about a minute), plays minimax vs random on TicTacToe, opens both in ``turngym view`` and
saves curves.png, evaluation.png, trajectory.png, group.png and tournament.png (PNG, 1280 px wide).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from turngym.training.config import load_preset
from turngym.training.tournament import run_tournament
from turngym.training.trainer import train
from turngym.training.viewer.browser import chromium_driver, wait_for
from turngym.training.viewer.server import ViewerThread


def shoot(driver, path: Path, css: str | None = None) -> None:
    time.sleep(0.5)  # let the SVG settle
    if css:
        driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", css)
    else:
        driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    print("wrote", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        config = load_preset("ci-tiny", [f"out_dir={runs / 'ci-tiny'}", f"steps={args.steps}", f"checkpoint_every={args.steps}",
                                         "algo.adaptive_clip=true", "eval.episodes=16", "eval.temperatures=[0.0]"])
        train(config, show_progress=False)
        run_tournament("turngym/TicTacToe-v0", ["minimax", "random", "first"], 8, runs / "tictactoe-tournament", plots=False)
        driver = chromium_driver(1280, 860)
        try:
            with ViewerThread([runs]) as viewer:
                driver.get(viewer.url + "#run=ci-tiny")
                wait_for(driver, "#curves path.series")
                shoot(driver, args.out / "curves.png")
                driver.find_element("css selector", "#tabs button[data-tab=eval]").click()
                wait_for(driver, "#evals table")
                shoot(driver, args.out / "evaluation.png")
                driver.find_element("css selector", "#tabs button[data-tab=trajectories]").click()
                rows = wait_for(driver, "#episodes tr.episode")
                rows[1].click()
                wait_for(driver, "#episode-detail .turn")
                shoot(driver, args.out / "trajectory.png", "#episode-detail")
                rows[1].find_element("css selector", "button.compare").click()
                wait_for(driver, "#group-compare .col")
                shoot(driver, args.out / "group.png", "#episode-detail")
                driver.find_element("css selector", "#runs li[data-run=tictactoe-tournament]").click()
                wait_for(driver, "#payoff-heatmap rect")
                shoot(driver, args.out / "tournament.png")
                driver.find_element("css selector", "#games button.replay").click()
                wait_for(driver, "#replay .move")
                shoot(driver, args.out / "replay.png", "#replay")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()

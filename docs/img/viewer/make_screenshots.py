"""Regenerate the screenshots of docs/viewer.md: a tiny real run, a tiny tournament, headless Chromium.

    python docs/img/viewer/make_screenshots.py [--out docs/img/viewer] [--steps 12]
    python docs/img/viewer/make_screenshots.py --run runs/quickstart   # an existing run instead


Needs the [test] extra (selenium) and Debian's chromium + chromium-driver. Trains ci-tiny for a few
steps (CPU, about a minute), plays minimax vs random on TicTacToe, opens both in ``turngym view`` and
saves curves.png, evaluation.png, trajectory.png, group.png and tournament.png (PNG, 1280 px wide).
With ``--run DIR`` it trains nothing and shoots that run's panels as ``<run name>-*.png``.
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
    parser.add_argument("--run", type=Path, help="shoot this existing run folder's panels instead")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.run is not None:
        shoot_run(args.run, args.out, f"{args.run.name}-")
        return
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        config = load_preset("ci-tiny", [f"out_dir={runs / 'ci-tiny'}", f"steps={args.steps}", f"checkpoint_every={args.steps}",
                                         "algo.adaptive_clip=true", "eval.episodes=16", "eval.temperatures=[0.0]"])
        train(config, show_progress=False)
        run_tournament("turngym/TicTacToe-v0", ["minimax", "random", "first"], 8, runs / "tictactoe-tournament", plots=False)
        driver = chromium_driver(1280, 860)
        try:
            with ViewerThread([runs]) as viewer:
                shoot_run_panels(driver, viewer.url, "ci-tiny", args.out, "")
                driver.find_element("css selector", "#runs li[data-run=tictactoe-tournament]").click()
                wait_for(driver, "#payoff-heatmap rect")
                shoot(driver, args.out / "tournament.png")
                driver.find_element("css selector", "#games button.replay").click()
                wait_for(driver, "#replay .move")
                shoot(driver, args.out / "replay.png", "#replay")
        finally:
            driver.quit()


def shoot_run_panels(driver, url: str, run: str, out: Path, prefix: str) -> None:
    """Curves, evaluation, one trajectory and its group compared, of run ``run`` at viewer ``url``."""
    driver.get(url + f"#run={run}")
    wait_for(driver, "#curves path.series")
    shoot(driver, out / f"{prefix}curves.png")
    driver.find_element("css selector", "#tabs button[data-tab=eval]").click()
    wait_for(driver, "#evals table")
    shoot(driver, out / f"{prefix}evaluation.png")
    driver.find_element("css selector", "#tabs button[data-tab=trajectories]").click()
    rows = wait_for(driver, "#episodes tr.episode")
    rows[1].click()
    wait_for(driver, "#episode-detail .turn")
    shoot(driver, out / f"{prefix}trajectory.png", "#episode-detail")
    rows[1].find_element("css selector", "button.compare").click()
    wait_for(driver, "#group-compare .col")
    shoot(driver, out / f"{prefix}group.png", "#episode-detail")


def shoot_run(run_dir: Path, out: Path, prefix: str) -> None:
    """Open an existing run folder in the viewer and shoot its panels."""
    driver = chromium_driver(1280, 860)
    try:
        with ViewerThread([run_dir.parent]) as viewer:
            shoot_run_panels(driver, viewer.url, run_dir.name, out, prefix)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()

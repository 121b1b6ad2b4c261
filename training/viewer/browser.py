"""Headless Chromium for the viewer's browser tests and its documentation screenshots.

Uses Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``)
through ``selenium`` (the ``[test]`` extra); both are imported and looked up only when called.
"""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> tuple[str, str] | None:
    """``(browser, driver)`` executables on PATH, or ``None`` when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_driver(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium WebDriver with a ``width`` × ``height`` window; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("no chromium / chromedriver on PATH: apt-get install chromium chromium-driver")
    browser, driver = found
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.binary_location = browser
    return webdriver.Chrome(options=options, service=Service(driver))


def wait_for(driver: Any, css: str, timeout: float = 20.0, count: int = 1) -> list[Any]:
    """Wait until at least ``count`` elements match ``css``; returns them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, css)) >= count)
    return driver.find_elements(By.CSS_SELECTOR, css)


__all__ = ["chromium_driver", "find_chromium", "wait_for"]

"""A headless Chromium driven by selenium (Debian's chromium and chromium-driver): for the
console's browser tests and scripts/screenshots.py."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("CONEA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CONEA_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """What is not installed (None: both are)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            return path
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium; skips (a failure in CI, tests/conftest.py) when it is missing."""
    absent = missing()
    if absent is not None:
        pytest.skip(f"{absent} is not installed (Debian chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_window_size(width, height)
        yield driver
    finally:
        driver.quit()

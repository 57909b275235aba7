"""Headless Chromium for the browser tests (Debian's chromium + chromedriver, via Selenium).

A missing browser skips the tests, except under CI (``CI`` set), where it is a failure: CI
installs them (``apt-get install chromium chromium-driver``; ``selenium`` is in the test
extra). Selenium calls block, so :func:`in_browser` runs them in a thread while the reactor
keeps serving.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from typing import Any

import pytest
from twisted.internet.threads import deferToThread

from .waiting import within

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if _chromium() is None:
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def open_browser(page_load_strategy: str = "normal") -> Generator[Any, None, None]:
    """Yield a headless Chromium session (for a module-scoped fixture); skip or fail as
    above when there is none. ``"none"`` makes ``get`` return at once, so a test can watch
    a page that is still streaming."""
    why = missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.TemporaryDirectory(prefix="twisted-stream-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(_chromium())
    options.page_load_strategy = page_load_strategy
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
        f"--user-data-dir={profile.name}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=Service(executable_path=str(shutil.which("chromedriver"))), options=options
    )
    driver.set_script_timeout(20)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


async def in_browser(call: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking Selenium call in a thread; the reactor keeps running."""
    return await within(deferToThread(call, *args), timeout=30)

"""A real headless Chromium for the console tests, driven by Selenium.

Debian's ``chromium`` and ``chromium-driver`` (``scripts/bootstrap.sh test`` installs
them where apt-get runs as root); Selenium is pointed at that chromedriver, so nothing is
downloaded at run time. Selenium blocks: the tests call it through
``asyncio.to_thread``, so the in-process worker keeps running while the browser waits.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

NO_CHROMIUM: Final = (
    "Chromium is not installed: `make test` installs the Debian packages `chromium` and "
    "`chromium-driver` through scripts/bootstrap.sh where apt-get runs as root; install "
    "them (apt-get install chromium chromium-driver) to run the console tests"
)
WAIT: Final = 20.0
"""Seconds a condition may take in the browser (an agent cycle is well under one)."""
_FLAGS: Final = [
    "--headless=new",
    "--no-sandbox",  # tests may run as root, where Chromium's own sandbox will not start
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    # Nothing leaves the machine: no updates, sync or first-run pages.
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


def binaries() -> tuple[str, str] | None:
    """Chromium and its chromedriver, when both are installed."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def start_browser(chromium: str, driver: str) -> WebDriver:
    """A headless Chromium, driven through the given chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in _FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


class Console:
    """The console in a browser: what a person does, and waits on what they would see.

    Args:
        browser: The driver.
        shots: Where screenshots go.
    """

    def __init__(self, browser: WebDriver, shots: Path) -> None:
        self.browser = browser
        self.shots = shots

    def until(self, found: Callable[[WebDriver], Any], what: str) -> Any:
        """Wait for ``found`` to return something truthy; fail naming ``what``."""
        # The console redraws what changes (a status, a drawing): an element found a
        # moment ago may be gone, and the next poll looks again.
        waiting = WebDriverWait(
            self.browser,
            WAIT,
            poll_frequency=0.05,
            ignored_exceptions=[NoSuchElementException, StaleElementReferenceException],
        )
        return waiting.until(found, f"{what} not seen within {WAIT} s")

    def element(self, css: str, *, text: str = "") -> WebElement:
        """Wait for an element matching ``css`` (and holding ``text``), and return it."""

        def find(browser: WebDriver) -> WebElement | None:
            for element in browser.find_elements(By.CSS_SELECTOR, css):
                if text in element.text:
                    return element
            return None

        found: WebElement = self.until(find, f"{css} with {text!r}")
        return found

    def texts(self, css: str) -> list[str]:
        """The text of every element matching ``css`` now (read at once, in the page)."""
        found: list[str] = self.browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)", css
        )
        return found

    def shot(self, name: str) -> Path:
        """Save a screenshot of the page as ``NAME.png``."""
        path = self.shots / f"{name}.png"
        assert self.browser.save_screenshot(str(path)), path
        return path

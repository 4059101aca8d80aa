"""Driving the dashboard in Debian's Chromium with Playwright: launch, sign in, screenshots.

Screenshots go to $SHIPYARD_SCREENSHOTS when set (docs/screenshots/ keeps the committed ones), else to a
temporary directory.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser, base_url: str) -> Iterator[Page]:
    # The controller's certificate comes from a throwaway CA that Chromium was not told about.
    context = browser.new_context(
        base_url=base_url, ignore_https_errors=True, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, token: str) -> None:
    page.goto("/ui/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui$"))


def csrf_of(page: Page) -> str:
    found = CSRF.search(page.content())
    assert found, "the page carries no CSRF token"
    return found.group(1)


def screenshot_dir() -> Path:
    configured = os.environ.get("SHIPYARD_SCREENSHOTS")
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / "shipyard-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Page, name: str) -> Path:
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

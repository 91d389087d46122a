"""The portal in a real headless Chromium (Debian's, driven by Playwright; no browser download).

Both panels show data; with weather stopped the stocks panel still shows data
and the weather panel shows its "unavailable" state. Screenshots go to
build/screenshots/. CI installs chromium (.ci/run): if it is missing the test
fails, it does not skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.procs import REPO_ROOT, child_env

SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
# Flags these sandboxed machines need: no sandbox as root, no GPU, and no background
# traffic to Google's hosts that the closed network would refuse.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


def chromium_path() -> str:
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    for candidate in ("/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if Path(candidate).exists():
            return candidate
    pytest.fail("Chromium is not installed: apt-get install chromium (or `make sysdeps`)", pytrace=False)


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements-dev.txt", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            env=child_env(),  # not the test run's proxies and credentials
            timeout=30_000,
        )
        yield chromium
        chromium.close()


@pytest.mark.browser
def test_portal_in_chromium_with_weather_up_then_down(apps, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    weather = apps.start("apps.weather")
    stocks = apps.start("apps.stocks")
    portal = apps.start("apps.portal", env={"WEATHER_URL": weather.url, "STOCKS_URL": stocks.url})
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    messages = []
    page.on("console", lambda message: messages.append(message.text))

    page.goto(portal.url, wait_until="load")
    stocks_panel, weather_panel = page.locator("#stocks"), page.locator("#weather")
    assert stocks_panel.get_attribute("data-state") == "ok"
    assert weather_panel.get_attribute("data-state") == "ok"
    assert stocks_panel.locator("tr.item.ok").count() == 3
    assert "Amazon.com, Inc." in stocks_panel.inner_text()
    assert weather_panel.locator("tr.item.ok").count() == 3
    assert "Tokyo" in weather_panel.inner_text() and "°C" in weather_panel.inner_text()
    # The stylesheet loaded under the page's Content-Security-Policy (no violation in the console).
    assert page.evaluate("getComputedStyle(document.querySelector('.panel')).borderTopStyle") == "solid"
    page.screenshot(path=SCREENSHOTS / "portal-ok.png", full_page=True)

    weather.stop()
    page.reload(wait_until="load")
    assert stocks_panel.get_attribute("data-state") == "ok"
    assert stocks_panel.locator("tr.item.ok").count() == 3
    assert weather_panel.get_attribute("data-state") == "unavailable"
    alert = weather_panel.get_by_role("alert")
    assert alert.is_visible() and "Weather unavailable" in alert.inner_text()
    assert weather_panel.locator("tr.item.ok").count() == 0
    page.screenshot(path=SCREENSHOTS / "portal-weather-down.png", full_page=True)
    assert not [m for m in messages if "Content Security Policy" in m], messages

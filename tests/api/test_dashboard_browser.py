"""The dashboard at ``/`` in a real headless Chromium, against the API over the real captures.

Every request to anything but 127.0.0.1 is aborted and recorded, and each test asserts that there
was none, nor any console error or uncaught exception: the page works offline. The page reports
what it drew on ``#chart`` (``data-bars``, ``data-spread-bars``, ``data-markers``, ...); the
canvases' pixels show it was really painted. The browser is Debian's ``chromium`` (CI's test
script installs it with apt); without it these tests fail and say how to install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Route, sync_playwright

from tasks.core.keys import iso_time
from tasks.core.models import Interval
from tests.api.conftest import ALERT_MINUTE, Served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 720}
REPO = Path(__file__).parents[2]
SCREENSHOT = REPO / "tests" / "artifacts" / "dashboard.png"
WAIT_MS = 10_000
UP_RGB = (46, 189, 133)  # the candle colours of api/static/config.js
DOWN_RGB = (246, 70, 93)

# Counts the candle-coloured pixels of every canvas under #chart, and the distinct colours.
PAINTED_JS = """([up, down]) => {
  const same = (d, i, c) => d[i] === c[0] && d[i + 1] === c[1] && d[i + 2] === c[2];
  const out = {up: 0, down: 0, colours: 0};
  const seen = new Set();
  for (const canvas of document.querySelectorAll('#chart canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      if (same(d, i, up)) out.up += 1;
      if (same(d, i, down)) out.down += 1;
      seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
  }
  out.colours = seen.size;
  return out;
}"""

# Resolves once #chart reports the wanted view drawn, or an error.
DRAWN_JS = """([market, interval]) => {
  const d = document.querySelector('#chart').dataset;
  return d.state === 'error' || (d.state === 'ready' && d.market === market && d.interval === interval);
}"""


@dataclass
class Dashboard:
    """One browser tab on the served dashboard, and what went wrong in it."""

    page: Page
    url: str
    problems: list[str] = field(default_factory=list)

    def open(self, query: str = "") -> None:
        self.page.goto(f"{self.url}/{query}")

    def drawn(self, market: str, interval: str) -> dict[str, str]:
        """Wait until ``#chart`` shows ``market``/``interval``; its data attributes."""
        self.page.wait_for_function(DRAWN_JS, arg=[market, interval], timeout=WAIT_MS)
        data: dict[str, str] = self.page.eval_on_selector("#chart", "e => ({...e.dataset})")
        banner = self.page.text_content("#banner-text")
        assert data["state"] == "ready", f"the chart failed to draw: {banner}"
        return data

    def painted(self) -> dict[str, int]:
        counts: dict[str, int] = self.page.evaluate(PAINTED_JS, [UP_RGB, DOWN_RGB])
        return counts

    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.page.url).query)

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the dashboard tests need Debian's Chromium; "
            "run `apt-get install chromium` (CI's test script does)",
            pytrace=False,
        )
    # `launch` gives every run a fresh temporary profile (user-data-dir) and deletes it after.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tab(browser: Browser, api_server: Served) -> Iterator[Dashboard]:
    # Reduced motion stills the "live" pulse, so the screenshot is the same on every run.
    context = browser.new_context(
        viewport=VIEWPORT,
        locale="en-US",
        timezone_id="Australia/Sydney",
        reduced_motion="reduce",
    )
    page = context.new_page()
    dashboard = Dashboard(page, api_server.url)

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            dashboard.problems.append(f"request off this machine: {route.request.url}")
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            dashboard.problems.append(f"console error: {message.text} ({message.location})")

    def on_page_error(error: Error) -> None:
        dashboard.problems.append(f"uncaught: {error.message}\n{error.stack}")

    context.route("**/*", only_loopback)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    yield dashboard
    context.close()


@pytest.fixture
def dashboard(tab: Dashboard) -> Dashboard:
    tab.problems.clear()
    return tab


def test_default_view_draws_the_first_binance_market_with_volume_spread_gap_and_alert(
    dashboard: Dashboard, api_server: Served
) -> None:
    dashboard.open()
    drawn = dashboard.drawn("BTCUSDT", "1m")

    assert drawn["kind"] == "trades"
    assert int(drawn["bars"]) == api_server.expected["BTCUSDT"]["1m"]
    assert int(drawn["spreadBars"]) > 0
    assert int(drawn["markers"]) >= 1
    assert int(drawn["incompleteBars"]) == 1  # the minute under the open gap
    assert dashboard.query() == {"market": ["BTCUSDT"], "interval": ["1m"]}
    painted = dashboard.painted()
    assert painted["up"] > 200 and painted["down"] > 200, painted
    assert painted["colours"] > 50, painted
    page = dashboard.page
    assert page.is_enabled("#interval-1h") and page.is_enabled("#interval-1d")
    assert page.get_attribute("#interval-1m", "aria-pressed") == "true"
    page.wait_for_function(
        "['ok', 'degraded'].includes(document.querySelector('#health').dataset.status)",
        timeout=WAIT_MS,
    )
    assert page.locator("#alerts li").count() >= 1
    # The legend shows the newest candle in UTC, although the browser's zone is Sydney's.
    newest = api_server.world.candles[("BTCUSDT", Interval.M1)][-1].open_time
    assert page.text_content("#legend-time") == f"{iso_time(newest)[:16].replace('T', ' ')} UTC"
    dashboard.assert_clean()

    # Clicking the alert puts the crosshair on its candle: the README's picture.
    page.click('#alerts li[data-kind="alert"]')
    alert_minute = f"{iso_time(ALERT_MINUTE)[:16].replace('T', ' ')} UTC"
    legend_is = "t => document.querySelector('#legend-time').textContent === t"
    page.wait_for_function(legend_is, arg=alert_minute, timeout=WAIT_MS)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    # The test artefact; docs/dashboard.png (README) is a copy of it, refreshed by hand.
    page.screenshot(path=SCREENSHOT, animations="disabled")
    dashboard.assert_clean()


def test_choosing_another_market_in_the_selector_redraws_with_its_candles(
    dashboard: Dashboard, api_server: Served
) -> None:
    dashboard.open()
    dashboard.drawn("BTCUSDT", "1m")

    dashboard.page.select_option("#market", "ETHUSDT")
    drawn = dashboard.drawn("ETHUSDT", "1m")

    assert int(drawn["bars"]) == api_server.expected["ETHUSDT"]["1m"]
    assert drawn["spreadBars"] == "0" and drawn["incompleteBars"] == "0"
    assert dashboard.query() == {"market": ["ETHUSDT"], "interval": ["1m"]}
    assert dashboard.painted()["colours"] > 50
    dashboard.assert_clean()


def test_the_1h_button_draws_the_hourly_rollup(dashboard: Dashboard, api_server: Served) -> None:
    dashboard.open("?market=ETHUSDT")
    dashboard.drawn("ETHUSDT", "1m")

    dashboard.page.click("#interval-1h")
    drawn = dashboard.drawn("ETHUSDT", "1h")

    assert int(drawn["bars"]) == api_server.expected["ETHUSDT"]["1h"] == 2
    assert dashboard.page.get_attribute("#interval-1h", "aria-pressed") == "true"
    assert dashboard.query() == {"market": ["ETHUSDT"], "interval": ["1h"]}
    dashboard.page.go_back()  # the previous view is one history step away
    assert int(dashboard.drawn("ETHUSDT", "1m")["bars"]) == api_server.expected["ETHUSDT"]["1m"]
    dashboard.assert_clean()


def test_a_spread_only_market_draws_mid_price_candles_and_its_spread(
    dashboard: Dashboard, api_server: Served
) -> None:
    dashboard.open("?market=BTC-AUD&interval=1m")
    drawn = dashboard.drawn("BTC-AUD", "1m")

    assert drawn["kind"] == "mid"
    assert int(drawn["bars"]) == api_server.expected["BTC-AUD"]["1m"]
    assert drawn["spreadBars"] == drawn["bars"]
    assert drawn["markers"] == "0"
    painted = dashboard.painted()
    assert painted["up"] + painted["down"] > 200, painted
    assert dashboard.page.is_visible("#kind-badge")
    for interval in ("1h", "1d"):
        has_it = interval in api_server.expected["BTC-AUD"]
        assert dashboard.page.is_enabled(f"#interval-{interval}") == has_it
    dashboard.assert_clean()


def test_an_unknown_market_in_the_link_shows_the_default_with_a_note(
    dashboard: Dashboard, api_server: Served
) -> None:
    dashboard.open("?market=NOPE&interval=1h")
    drawn = dashboard.drawn("BTCUSDT", "1h")

    assert int(drawn["bars"]) == api_server.expected["BTCUSDT"]["1h"]
    assert 'no market "NOPE"' in (dashboard.page.text_content("#banner-text") or "")
    dashboard.assert_clean()

"""The teaching app in a real browser: Debian's chromium, driven by Playwright.

The tests start ``peersim app`` once on a free 127.0.0.1 port (stopped whatever
happens) and, each in a new browser page:

- play a lesson to the end: change a site, reset (the earlier run stays, faded),
  step, play at 12 weeks a step until delivery is over, with no console error,
  page error or failed request all the while;
- build a planner what-if in the page (a group of sites, coordinator hours x2),
  compare it with the baseline, and validate its downloaded TOML with
  ``peersim validate``;
- lay the page out at 1024x768 (a projector) and check by bounding boxes that
  no card or chart overlaps another and nothing leaves the window sideways.

Screenshots go to ``tests/artifacts/``.

Without chromium (or Playwright) the test is skipped, except on CI (``CI`` set),
where ``.ci/run`` installs chromium and a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# A server process and a browser: run with `-m browser`, left out of `-m "not slow"`.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 90
ACTION_TIMEOUT_MS = 30_000


def _need_browser() -> None:
    problems = []
    if not Path(CHROMIUM).exists():
        problems.append("chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("Playwright for Python is not installed (uv sync)")
    if not problems:
        return
    reason = "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run on CI: {reason}")
    pytest.skip(f"browser test skipped: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and anything it started: its whole process group."""
    if server.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``peersim app`` serving on a free local port; stopped whatever happens."""
    _need_browser()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path_factory.mktemp("app") / "server.log"
    peersim = Path(sys.executable).parent / "peersim"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(peersim), "app", "--port", str(port)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so _stop reaches all of it
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while True:
                if server.poll() is not None:
                    pytest.fail(
                        f"peersim app exited with {server.returncode}:\n{log_path.read_text()}"
                    )
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"peersim app did not answer on {url} within "
                        f"{SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()}"
                    )
                time.sleep(0.25)
            yield url
        finally:
            _stop(server)


def _page(browser, width: int = 1280, height: int = 900):
    """A new page that records every console error, page error and failed request."""
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"),
    )
    return page, problems


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _week(page) -> int:
    text = page.locator(".peersim-status").inner_text()
    match = re.search(r"Week (\d+) of (\d+)", text)
    assert match, f"the run panel should say which week it is: {text!r}"
    return int(match.group(1))


def _series_length(page, chart_class: str) -> int:
    """Weeks drawn in a chart for the current run: the length of its first site's
    series (earlier runs' series come first), read from the ECharts instance."""
    return page.evaluate(
        """(cls) => {
            const el = document.querySelector(`.${cls}`);
            const chart = el && el.__vue__ && el.__vue__.chart;
            if (!chart) return -1;
            const current = chart.getOption().series.filter(
                (s) => !s.name.startsWith("earlier") && s.name !== "recruitment ends");
            return current[0].data.length;
        }""",
        chart_class,
    )


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_lesson_played_to_the_end_with_a_clean_console(app_url, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    page, problems = _page(browser)
    page.goto(app_url + "?lesson=supervision")
    expect(page.locator(".peersim-status")).to_contain_text("Week 0 of 72")
    expect(page.get_by_text("Sites B and C now differ")).to_be_visible()

    # Step twice: the week and the chart's data move together.
    step = page.locator(".peersim-step")
    for week in (1, 2):
        step.click()
        expect(page.locator(".peersim-status")).to_contain_text(f"Week {week} of 72")
    page.wait_for_function(
        "() => { const el = document.querySelector('.peersim-delivery');"
        " const c = el && el.__vue__ && el.__vue__.chart;"
        " return c && c.getOption().series[0].data.length === 2; }"
    )
    assert _series_length(page, "peersim-delivery") == 2, "two weeks drawn"

    # Site C's coordinator hours 4 -> 6, then Reset: the run starts again with them,
    # and the run before is listed as an earlier run, drawn faded behind.
    hours = page.locator(".peersim-slider-coordinator-hours-per-week")
    expect(hours).to_contain_text("Coordinator hours per week: 4")
    slider = hours.locator("[role=slider]")
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    expect(hours).to_contain_text("Coordinator hours per week: 6")
    expect(page.get_by_text("Settings changed: press Reset")).to_be_visible()
    page.locator(".peersim-reset").click()
    expect(page.locator(".peersim-status")).to_contain_text("Week 0 of 72")
    expect(page.locator(".peersim-earlier")).to_contain_text("the lesson's settings")
    # The address follows the page's state (pushed after the reset's render).
    page.wait_for_url(re.compile(r"C\.supervisor_h_per_week:6"))

    # Twelve weeks a step, then play to the end.
    weeks = page.locator(".peersim-slider-weeks-per-step [role=slider]")
    weeks.focus()
    for _ in range(11):
        weeks.press("ArrowRight")
    expect(page.locator(".peersim-slider-weeks-per-step")).to_contain_text("Weeks per step: 12")
    page.locator(".peersim-play").click()
    expect(page.locator(".peersim-status")).to_contain_text("delivery is over", timeout=120_000)
    assert _series_length(page, "peersim-delivery") == 72, "all 72 weeks drawn"
    expect(page.locator(".peersim-trial")).to_contain_text("After 12 months' follow-up")
    expect(page.locator(".peersim-step")).to_be_disabled()

    # A reload restores the lesson and its change from the address.
    page.reload()
    expect(page.locator(".peersim-status")).to_contain_text("Week 0 of 72")
    expect(hours).to_contain_text("Coordinator hours per week: 6")
    _shot(page, "app_lesson.png")
    assert problems == [], f"the console should stay clean over a full play: {problems}"


def test_a_planner_what_if_compared_and_downloaded(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    page, problems = _page(browser, height=1400)
    page.goto(app_url + "?view=plan")
    page.get_by_role("button", name="not-for-profit sites").click()
    page.locator(".peersim-x2").click()
    expect(page.locator(".peersim-changes")).to_have_text("F, G: coordinator hours 10 -> 20")
    page.locator(".peersim-run-compare").click()
    headline = page.locator(".peersim-headline")
    expect(headline).to_contain_text("coordinator hours, paid (h)", timeout=120_000)
    expect(headline).to_contain_text("engaged with peer support")
    expect(page.locator(".peersim-difference-chart")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the what-if (TOML)").click()
    path = tmp_path / "whatif.toml"
    download.value.save_as(path)
    peersim = Path(sys.executable).parent / "peersim"
    done = subprocess.run(
        [str(peersim), "validate", str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, f"peersim validate should accept the download: {done.stderr}"
    assert "supervisor_h_per_week = 20.0" in path.read_text(), "the change is in the file"

    with page.expect_download() as download:
        page.get_by_role("button", name="Comparison (CSV)").click()
    csv = tmp_path / "comparison.csv"
    download.value.save_as(csv)
    header = csv.read_text().splitlines()[0]
    assert header.startswith("whatif,outcome,scope"), f"the comparison's columns: {header}"
    _shot(page, "app_planner.png")
    assert problems == [], f"no console errors in the planner: {problems}"


def _overlaps(boxes: dict[str, dict[str, float]]) -> list[str]:
    found = []
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p, q = boxes[a], boxes[b]
            dx = min(p["x"] + p["width"], q["x"] + q["width"]) - max(p["x"], q["x"])
            dy = min(p["y"] + p["height"], q["y"] + q["height"]) - max(p["y"], q["y"])
            if dx > 1 and dy > 1:
                found.append(f"{a} overlaps {b} by {dx:.0f}x{dy:.0f} px")
    return found


@pytest.mark.parametrize("address", ["?lesson=rural", "?view=plan"])
def test_layout_at_1024x768_has_no_overlaps(app_url, browser, address):
    from playwright.sync_api import expect

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    page, problems = _page(browser, width=1024, height=768)
    page.goto(app_url + address)
    page.locator(".peersim-side").wait_for()
    page.wait_for_timeout(800)  # let the charts size themselves
    cards = page.locator(".peersim-side > .v-card, .peersim-main > .v-card, .peersim-header")
    boxes = {}
    for k in range(cards.count()):
        box = cards.nth(k).bounding_box()
        assert box, f"card {k} should be laid out"
        title = cards.nth(k).inner_text().split("\n")[0][:40]
        boxes[f"{k}: {title}"] = box
    assert len(boxes) >= 4, f"the page's cards: {list(boxes)}"
    assert _overlaps(boxes) == [], "no card overlaps another at 1024x768"
    for name, box in boxes.items():
        assert box["x"] >= 0, f"{name} should start inside the window: {box}"
        assert box["x"] + box["width"] <= 1024 + 0.5, f"{name} should fit the window's width: {box}"
    widest = page.evaluate("() => document.documentElement.scrollWidth")
    assert widest <= 1024, f"no sideways scrolling at 1024 px (page is {widest} px wide)"
    _shot(page, f"app_1024_{'plan' if 'plan' in address else 'lesson'}.png")
    assert problems == [], f"no console errors: {problems}"

"""The teaching app in a real browser: Debian's chromium, driven by Playwright.

The test starts ``peersim app`` on a free 127.0.0.1 port, loads the page,
loads a lesson, changes a site's slider and resets (the run then uses the new
setting), changes the weeks-per-step slider, steps and plays the model, and checks that the
charts and the trial's numbers change. It saves a screenshot to
``tests/artifacts/app.png``. The server is stopped whatever happens.

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


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """``peersim app`` serving on a free local port; stopped whatever happens."""
    _need_browser()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "server.log"
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


def _week(page) -> int:
    text = page.locator(".peersim-trial").inner_text()
    match = re.search(r"Week (\d+) of (\d+)", text)
    assert match, f"the trial panel should say which week it is: {text!r}"
    return int(match.group(1))


def _randomised(page) -> tuple[int, int]:
    text = page.locator(".peersim-trial").inner_text()
    match = re.search(r"Randomised so far\s+(\d+)\s+(\d+)", text)
    assert match, f"the trial panel should count those randomised: {text!r}"
    return int(match.group(1)), int(match.group(2))


def _press(page, slider_class: str, key: str, times: int) -> None:
    slider = page.locator(f".{slider_class} [role=slider]")
    slider.focus()
    for _ in range(times):
        slider.press(key)


def test_app_in_a_browser(app_url, record_property):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.set_default_timeout(ACTION_TIMEOUT_MS)
            expect.set_options(timeout=ACTION_TIMEOUT_MS)
            page.goto(app_url)
            trial = page.locator(".peersim-trial")
            trajectories = page.locator(".peersim-trajectories img")
            network = page.locator(".peersim-network img")
            expect(trial).to_contain_text("Week 0 of 72")
            expect(trajectories).to_be_visible()
            expect(network).to_be_visible()
            start = {
                "numbers": trial.inner_text(),
                "trajectories": trajectories.screenshot(),
                "network": network.screenshot(),
            }
            assert _randomised(page) == (0, 0)

            # A lesson: its text shows, and the site controls show its focus site.
            page.get_by_label("Choose a lesson").click(force=True)
            page.get_by_role("option", name="Why the not-for-profit site struggles").click()
            expect(page.get_by_text("Sites B and F now differ")).to_be_visible()
            host = page.get_by_role("button", name=re.compile(r"^Peer workers employed by"))
            expect(host).to_contain_text("a not-for-profit organisation")

            # A site's slider: site F's coordinator hours, 10 -> 15. The run keeps
            # its settings until Reset; then the warning goes, since the model's
            # conditions equal the page's.
            hours = page.locator(".peersim-slider-coordinator-hours-per-week")
            expect(hours).to_contain_text("Coordinator hours per week: 10")
            _press(page, "peersim-slider-coordinator-hours-per-week", "ArrowRight", 5)
            expect(hours).to_contain_text("Coordinator hours per week: 15")
            changed = page.get_by_text("Settings changed: press Reset")
            expect(changed).to_be_visible()
            page.get_by_role("button", name="Reset").click()
            expect(changed).to_have_count(0)

            # Four weeks per step, then three steps.
            _press(page, "peersim-slider-weeks-per-step", "ArrowRight", 3)
            expect(page.locator(".peersim-slider-weeks-per-step")).to_contain_text(
                "Weeks per step: 4"
            )
            step = page.get_by_role("button", name="Step")
            for week in (4, 8, 12):
                step.click()
                expect(trial).to_contain_text(f"Week {week} of 72")
            ps, uc = _randomised(page)
            assert min(ps, uc) > 0, "after 12 weeks both arms should have participants"
            assert trial.inner_text() != start["numbers"]
            expect(trajectories).to_be_visible()
            assert trajectories.screenshot() != start["trajectories"], (
                "the trajectories chart should change as the weeks go by"
            )
            assert network.screenshot() != start["network"], (
                "the contact network should change as peer workers take on clients"
            )

            # Play, then pause.
            page.get_by_role("button", name="▶").click()
            pause = page.get_by_role("button", name="❚❚")
            expect(pause).to_be_visible()
            expect(trial).not_to_contain_text("Week 12 of 72")
            pause.click()
            expect(page.get_by_role("button", name="▶")).to_be_visible()
            assert _week(page) > 12, "playing should advance the weeks"
            assert _randomised(page)[0] >= ps

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "app.png"
            page.wait_for_timeout(500)  # let the last render land
            page.screenshot(path=str(shot), full_page=True)
            record_property("screenshot", str(shot))
            print(f"screenshot: {shot}")
        finally:
            browser.close()

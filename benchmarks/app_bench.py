"""Browser benchmark of the teaching app (issue 14): how long a click takes to show.

Starts ``peersim app`` on a free port and drives Debian's chromium with Playwright:

- step: Step clicked -> the week shown and the chart's data one week longer;
- lesson: another lesson chosen -> its text and a fresh week 0 shown;
- compare: Compare clicked in the planner (F and G coordinator hours x2, 20
  replicates) -> the comparison table shown.

``--browsers 3`` runs that many browsers stepping at once (one process each).
Times are medians in seconds; the machine is noisy, so run it on an idle one.

    uv run python benchmarks/app_bench.py [--browsers 3] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from test_app_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _stop  # noqa: E402

CURRENT = """(cls) => { const el = document.querySelector(`.${cls}`);
  const c = el && el.__vue__ && el.__vue__.chart; if (!c) return -1;
  const s = c.getOption().series.filter(
    (s) => !s.name.startsWith("earlier") && s.name !== "recruitment ends");
  return s[0].data.length; }"""


def drive(url: str, steps: int, planner: bool) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.locator(".peersim-status").wait_for()
        page.wait_for_function(f"() => ({CURRENT})('peersim-delivery') === 0")
        step_s = []
        for week in range(1, steps + 1):
            started = time.perf_counter()
            page.locator(".peersim-step").click()
            page.wait_for_function(f"() => ({CURRENT})('peersim-delivery') === {week}")
            step_s.append(time.perf_counter() - started)
        out = {"step_s": statistics.median(step_s), "step_max_s": max(step_s)}
        if planner:
            lesson_s = []
            for title, text in (
                ("What supervision buys", "Sites B and C now differ"),
                ("Rural travel", "Sites B and E now differ"),
                ("Why the not-for-profit site struggles", "Sites B and F now differ"),
            ):
                page.get_by_label("Choose a lesson").click(force=True)
                started = time.perf_counter()
                page.get_by_role("option", name=title).click()
                page.get_by_text(text).wait_for()
                page.wait_for_function(f"() => ({CURRENT})('peersim-delivery') === 0")
                lesson_s.append(time.perf_counter() - started)
            out["lesson_s"] = statistics.median(lesson_s)
            page.goto(url + "?view=plan")
            page.get_by_role("button", name="not-for-profit sites").click()
            page.locator(".peersim-x2").click()
            page.get_by_text("F, G: coordinator hours 10 -> 20").first.wait_for()
            started = time.perf_counter()
            page.locator(".peersim-run-compare").click()
            page.locator(".peersim-headline").wait_for()
            out["compare_20_s"] = time.perf_counter() - started
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browsers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--url", help=argparse.SUPPRESS)  # a worker of --browsers
    args = parser.parse_args()
    if args.url:
        print(drive(args.url, args.steps, planner=False), flush=True)
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "peersim"), "app", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import urllib.request

        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.25)
        if args.browsers == 1:
            print(drive(url, args.steps, planner=True))
        else:
            workers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--url", url, "--steps", str(args.steps)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(args.browsers)
            ]
            for w in workers:
                print(w.communicate()[0].strip())
    finally:
        _stop(server)


if __name__ == "__main__":
    main()

"""A real headless Chromium (Debian's, driven by Playwright) loads the page, uploads an image, clicks Compare,
waits for every panel and saves a screenshot to artifacts/page.png."""

import os
import shutil

import pytest

from explorer.ui import FIGURES
from tests.server import ROOT, app_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "artifacts")
PANELS = len(FIGURES)
EXAMPLE_QUESTION = "where is the red circle ?"  # assets/examples.txt: scene_205.png


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    )


def test_page_runs_an_example_in_a_real_browser():
    """The page as a visitor meets it: the embedded model, one click on an example, one on Compare."""
    assert os.path.exists(CHROMIUM), "tests/run.sh installs Debian's chromium"
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "page.png")
    with app_server() as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="load")
        page.get_by_role("button", name="Compare").wait_for(timeout=60_000)
        page.get_by_text(EXAMPLE_QUESTION).first.click()  # the example fills the image and the question
        page.wait_for_function(
            f"Array.from(document.querySelectorAll('textarea, input')).some(e => e.value === '{EXAMPLE_QUESTION}')",
            timeout=30_000)
        page.locator("img[src*='scene_205']").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Compare").click()
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {PANELS}",
                               timeout=120_000)
        assert page.locator(".js-plotly-plot").count() >= PANELS
        text = page.locator("body").inner_text()
        assert "Error" not in text
        for name in ("clse", "fastv", "Object sweep"):
            assert name in text
        page.screenshot(path=shot, full_page=True)
        browser.close()
    assert os.path.getsize(shot) > 10_000

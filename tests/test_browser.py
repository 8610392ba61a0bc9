"""A real headless Chromium (Debian's, driven by Playwright) loads the page, uploads an image, clicks Compare,
waits for every panel and saves a screenshot to artifacts/page.png."""

import os
import shutil

import pytest

from tests.conftest import random_image
from tests.server import ROOT, app_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "artifacts")
PANELS = 16


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    )


def test_page_runs_a_comparison_in_a_real_browser(page_model, tmp_path):
    assert os.path.exists(CHROMIUM), "tests/run.sh installs Debian's chromium"
    from playwright.sync_api import sync_playwright

    image = tmp_path / "upload.png"
    random_image(3, size=(160, 120)).save(image)
    os.makedirs(ARTIFACTS, exist_ok=True)
    with app_server(model=page_model) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="load")
        page.get_by_role("button", name="Compare").wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(image))
        page.get_by_label("Question").fill("what color is the circle ?")
        page.get_by_role("button", name="Compare").click()
        plots = page.locator(".js-plotly-plot")
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {PANELS}", timeout=120_000)
        assert plots.count() >= PANELS
        assert page.locator(".toast-body.error").count() == 0
        text = page.locator("body").inner_text()
        assert "clse" in text and "fastv" in text
        page.screenshot(path=os.path.join(ARTIFACTS, "page.png"), full_page=True)
        browser.close()
    assert os.path.getsize(os.path.join(ARTIFACTS, "page.png")) > 10_000

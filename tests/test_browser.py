"""A real headless Chromium (Debian's, driven by Playwright) loads the page, clicks an example and Compare, opens
every tab, sees every panel drawn at its tab's width, and saves screenshots to artifacts/ (page.png: the
answers and the first tab; page-<tab>.png for the others); on a clip, the frame slider (counted from 1, as the
figures count) redraws the frame panels; the lesson's five steps each set, run, open and explain
(lesson-<step>.png: the step's text over the panels it reads); on a phone (390 px) nothing is wider than the
screen (page-phone.png)."""

import io
import os
import shutil

import pytest

from explorer.page import lesson, panels
from explorer.bench.page import OPEN_TAB_PLOTS, drawn_in_open_tab
from tests.conftest import ROOT, app_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "artifacts")
PANELS = len(panels.PANELS)
TABS = panels.SECTIONS[1:]  # the first section (the answers) sits above the tabs
EXAMPLE_QUESTION = "where is the red circle ?"  # assets/examples.txt: scene_205.png
SECOND_QUESTION = "how many circles are there ?"  # assets/examples.txt: scene_333.png
VIDEO_QUESTION = "which way does the green circle move ?"  # assets/examples.txt: clip_7.webm
# [drawn width of the plot, width of its block] for every plot of the open tab
WIDTHS = f"{OPEN_TAB_PLOTS}.map(e => [Number(e.querySelector('.main-svg').getAttribute('width')), " \
         "e.parentElement.getBoundingClientRect().width])"


@pytest.fixture(scope="module")
def url():
    """The real page; its log kept in artifacts/server.log (what a failed browser test's server said)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    with app_server(log_path=os.path.join(ARTIFACTS, "server.log")) as address:
        yield address


def wait_or_show(page, expression, timeout, name):
    """page.wait_for_function, and where it times out a full-page screenshot (artifacts/failed-<name>.png) and the
    request's status line in the error, so that a failure says what the page showed."""
    try:
        page.wait_for_function(expression, timeout=timeout)
    except Exception as error:
        page.screenshot(path=os.path.join(ARTIFACTS, f"failed-{name}.png"), full_page=True)
        status = page.evaluate("() => Array.from(document.querySelectorAll('.prose, .toast-body, .error'))"
                               ".map(e => e.innerText).filter(t => t).slice(0, 8).join(' | ')")
        raise AssertionError(f"{name}: {error}; the page said: {status[:2000]}") from error


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    )


def pick_example(page, question):
    page.get_by_text(question).first.click()  # the example fills the image and the question
    page.wait_for_function(
        f"Array.from(document.querySelectorAll('textarea, input')).some(e => e.value === '{question}')",
        timeout=30_000)


def compare_example(browser, url, question, media):
    """A new page at url: the example with this question picked (its media, a CSS selector, shown), Compare
    clicked, and the first tab's panels drawn. Returns the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="load")
    page.get_by_role("button", name="Compare").wait_for(timeout=60_000)
    pick_example(page, question)
    page.locator(media).first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Compare").click()
    drawn_in_open_tab(page, len(panels.panels_of(TABS[0].name)))
    settled(page)
    return page


def settled(page):
    """Waits until no panel shows Gradio's progress (drawn panels stay faded until their event has ended)."""
    page.wait_for_function("Array.from(document.querySelectorAll('.progress-text')).every(e => e.offsetParent === "
                           "null)", timeout=60_000)


def open_every_tab(page, shots=None):
    """Opens each tab in turn: all of its panels are drawn, each as wide as its block (a plot drawn while its
    tab was hidden must take the width when the tab opens). Returns the page's text seen in all tabs."""
    seen = []
    for section in TABS:
        page.get_by_role("tab", name=section.label).click()
        expected = panels.panels_of(section.name)
        drawn_in_open_tab(page, len(expected))
        for panel in expected:
            assert page.get_by_text(panel.label, exact=True).first.is_visible(), panel.label
        page.wait_for_function(f"{WIDTHS}.every(([svg, block]) => Math.abs(svg - block) < 8)", timeout=10_000)
        seen.append(page.locator("body").inner_text())
        if shots is not None:
            page.screenshot(path=os.path.join(ARTIFACTS, f"page-{section.name}.png"), full_page=True)
    return "\n".join(seen)


def test_page_runs_an_example_in_a_real_browser(url):
    """The page as a visitor meets it: the embedded model, one click on an example, one on Compare, then every
    tab; then a second example while the other tabs hold the first one's panels."""
    assert os.path.exists(CHROMIUM), "tests/run.sh installs Debian's chromium"
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "page.png")
    with sync_playwright() as p:
        browser = launch(p)
        page = compare_example(browser, url, EXAMPLE_QUESTION, "img[src*='scene_205']")  # the last panels come last
        assert page.locator(".js-plotly-plot .main-svg").count() >= 1 + len(panels.panels_of(TABS[0].name))
        # Compare scrolled the page to the answers; the examples sit above the button
        answers = page.locator("#answers").bounding_box()
        # (within a pixel: the browser scrolls by whole pixels, the layout has fractions of one)
        assert page.evaluate("window.scrollY") > 0 and -1 < answers["y"] < 300, answers
        compare = page.get_by_role("button", name="Compare").bounding_box()
        assert page.get_by_text("Photos: these need a hub model").bounding_box()["y"] < compare["y"]
        page.screenshot(path=shot, full_page=True)
        text = open_every_tab(page, shots=True)
        assert "Error" not in text
        # Plotly wraps a table cell's text into lines without the space: compare without white space
        words = "".join(text.split())
        for name in ("clse", "fastv", "Object sweep", "follows content", "nominal budget", "CLSE's factors"):
            assert "".join(name.split()) in words, name
        assert page.locator(".js-plotly-plot .main-svg").count() >= PANELS  # every tab has been opened

        page.get_by_role("tab", name=TABS[0].label).click()
        pick_example(page, SECOND_QUESTION)
        page.get_by_role("button", name="Compare").click()
        # the answers come first: the tab's panels are emptied until the rest is drawn
        page.wait_for_function(f"{OPEN_TAB_PLOTS}.filter(e => e.querySelector('.main-svg')).length === 0",
                               timeout=60_000)
        drawn_in_open_tab(page, len(panels.panels_of(TABS[0].name)))
        assert "Error" not in open_every_tab(page)
        browser.close()
    assert os.path.getsize(shot) > 10_000


def test_the_frame_slider_redraws_a_clip_frame_by_frame(url):
    from playwright.sync_api import sync_playwright

    titles = "Array.from(document.querySelectorAll('.gtitle')).map(e => e.textContent)"
    with sync_playwright() as p:
        browser = launch(p)
        page = compare_example(browser, url, VIDEO_QUESTION, "video")
        assert any("(frame 1 of 4)" in t for t in page.evaluate(titles))
        frame = page.locator("input[type=number][aria-label*='Frame']").first
        assert frame.input_value() == "1"  # counted as the figures count: frame 1 of 4
        frame.fill("3")
        frame.press("Enter")
        # Plotly redraws each panel as its update lands: wait until every per-frame title has moved on (a panel
        # left at frame 1 times this out)
        page.wait_for_function(f"{titles}.filter(t => t.includes('(frame 3 of 4)')).length >= 2 && "
                               f"!{titles}.some(t => t.includes('(frame 1 of 4)'))", timeout=30_000)
        browser.close()


def test_a_visitor_asks_a_follow_up_and_sees_three_conversations(url):
    """The issue's visitor: "Where is the red circle?", then "What color is the square?" in the follow-up box:
    the answers table holds both turns for the three methods."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = compare_example(browser, url, EXAMPLE_QUESTION, "img")
        page.get_by_label("Follow-up question").fill("What color is the square?")
        page.get_by_role("button", name="Ask a follow-up").click()
        # Plotly wraps a table cell's text into lines without the space: compare without white space
        wait_or_show(page, "Array.from(document.querySelectorAll('.js-plotly-plot')).some(e => "
                     "e.textContent.replace(/\\s/g, '').includes('2:Whatcoloristhesquare?'))", 120_000, "follow-up")
        table = "".join(page.locator(".js-plotly-plot").first.text_content().split())
        # unpruned, then method A and method B each on the first question's pruned cache and pruned again: the two
        # follow-up modes side by side (the page's default)
        assert table.count("2:Whatcoloristhesquare?") == 5
        assert table.count("1:" + "".join(EXAMPLE_QUESTION.split())) == 3
        assert "clse(keep)" in table and "clse(reprune)" in table
        page.screenshot(path=os.path.join(ARTIFACTS, "page-conversation.png"), full_page=False)
        browser.close()



# What each lesson step's screenshot shows under its text: the panels it asks the reader to look at.
LESSON_SHOWS = [["#panel-position_scatter", "#panel-row_profile"], ["#panel-flip"], ["#panel-factors", "#panel-flip"],
                ["#panel-sweep"], ["#report-spearman-shapes", "#report-rows-shapes"]]


def stitched(page, selectors, path):
    """One screenshot of the elements, one under the other (the lesson's text over the panels it reads)."""
    from PIL import Image

    shots = [Image.open(io.BytesIO(page.locator(selector).first.screenshot())) for selector in selectors]
    width = max(shot.width for shot in shots)
    canvas = Image.new("RGB", (width, sum(shot.height for shot in shots)), "white")
    y = 0
    for shot in shots:
        canvas.paste(shot, (0, y))
        y += shot.height
    canvas.save(path)


def test_the_lesson_walks_its_five_steps(url):
    """Each step, one click: its inputs set, its comparison run, its tab open with the panel it reads in view, and
    its text with what this run measured; a screenshot of each (artifacts/lesson-<step>.png)."""
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    note = "document.getElementById('lesson-note').innerText"
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="load")
        page.get_by_role("button", name="Compare").wait_for(timeout=60_000)
        for i, step in enumerate(lesson.STEPS):
            page.get_by_role("button", name=step.title).click()
            found = "Measured in this run" if i < 4 else "In the shipped report"
            page.wait_for_function(f"{note}.includes('step {i + 1} of 5') && {note}.includes('{found}')",
                                   timeout=120_000)
            label = next(section.label for section in panels.SECTIONS if section.name == step.tab)
            assert page.get_by_role("tab", name=label, selected=True).is_visible()
            for selector in LESSON_SHOWS[i]:
                page.locator(f"{selector} .main-svg").first.wait_for(timeout=60_000)
            if i < 4:  # the run's own numbers are the panels' numbers
                text = page.locator("#lesson-note").inner_text()
                question = lesson.STEPS[i].inputs["question"]
                assert page.locator("textarea").first.input_value() == question
                assert "Error" not in text
            settled(page)
            wait_or_show(page, f"document.getElementById('{step.panel}').getBoundingClientRect().bottom > 0 && "
                         f"document.getElementById('{step.panel}').getBoundingClientRect().top < 1000", 10_000,
                         f"lesson-{i + 1}")  # the panel it reads is in view
            stitched(page, ["#lesson-note", *LESSON_SHOWS[i]], os.path.join(ARTIFACTS, f"lesson-{i + 1}.png"))
        browser.close()


def test_the_page_reads_on_a_phone(url):
    """390 px wide: the page is no wider than the screen, the lesson's buttons and the examples fit, and every plot
    keeps a readable width inside a block that scrolls sideways."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(url, wait_until="load")
        page.get_by_role("button", name="Compare").wait_for(timeout=60_000)
        pick_example(page, EXAMPLE_QUESTION)
        page.get_by_role("button", name="Compare").click()
        drawn_in_open_tab(page, len(panels.panels_of(TABS[0].name)))
        assert page.evaluate("document.documentElement.scrollWidth") <= 392
        widths = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot .main-svg')).map(e => "
                               "Number(e.getAttribute('width')))")
        assert widths and min(widths) >= 600, widths
        scrolls = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(e => "
                                "getComputedStyle(e.parentElement).overflowX)")
        assert set(scrolls) == {"auto"}, scrolls
        page.screenshot(path=os.path.join(ARTIFACTS, "page-phone.png"), full_page=False)
        browser.close()

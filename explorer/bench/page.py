"""Page benchmark: python -m explorer.bench.page [--runs 3] [--model ID_OR_DIR] [--sized]

1. In a real headless Chromium (Debian's, through Playwright) against `python app.py`: the time from the click
   on Compare to the answers drawn (they come first), and to every panel of the open tab drawn (the end of
   the request), for an example image and an example clip (the page is reloaded before each run, so
   "drawn" means drawn again).
2. In process, on the same inputs: the explorer's own overhead (per-layer diagnostics, figures, JSON) as a
   share of the model's compute for the three answers, with the flip test and the object sweep (extra model
   runs the page makes for its diagnostics) listed beside it. The overhead is nearly fixed while the model's
   compute grows with its size, so it is also measured (with --sized) on a random-weight LLaVA of realistic
   shape (explorer.bench.engine's deep narrow one: 576 visual tokens, a 125M 32-layer decoder), saved with
   save_pretrained and loaded through the page's own path for a model directory.
Timings are medians over --runs, measured in this one run on this machine.
"""

import argparse
import json
import os
import shutil
import statistics
import time

from explorer.page import panels, service
from explorer.serve.launch import ROOT, app_server

EXAMPLES = [("image", os.path.join(ROOT, "assets", "scene_205.png"), "where is the red circle ?"),
            ("video", os.path.join(ROOT, "assets", "clip_7.webm"), "which way does the green circle move ?")]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


# The Plotly plots of the open tab (a hidden tab's panel has no offsetParent)
OPEN_TAB_PLOTS = ("Array.from(document.querySelectorAll('[role=tabpanel]')).filter(e => e.offsetParent !== null)"
                  ".flatMap(e => Array.from(e.querySelectorAll('.js-plotly-plot')))")


def drawn_in_open_tab(page, count):
    """Waits until `count` Plotly panels of the open tab are drawn."""
    page.wait_for_function(f"{OPEN_TAB_PLOTS}.filter(e => e.querySelector('.main-svg')).length >= {count}",
                           timeout=120_000)


def drawn_answers(page):
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=120_000)


def browser_times(url, runs):
    from playwright.sync_api import sync_playwright

    first_tab = len(panels.panels_of(panels.SECTIONS[1].name))
    times = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for kind, path, question in EXAMPLES:
            samples = []
            for _ in range(runs + 1):  # the first run warms the model and the page up; not counted
                page.goto(url, wait_until="load")
                page.get_by_role("button", name="Compare").wait_for()
                upload = page.locator("input[type=file]").nth(0 if kind == "image" else 1)
                upload.set_input_files(path)
                if kind == "video":
                    page.locator("video").first.wait_for(timeout=30_000)
                else:
                    page.locator("img").first.wait_for(timeout=30_000)
                # by its placeholder: the label "Question" also matches the follow-up box's
                page.get_by_placeholder("e.g. what color is the circle").fill(question)
                start = time.perf_counter()
                page.get_by_role("button", name="Compare").click()
                drawn_answers(page)
                answers = time.perf_counter() - start
                drawn_in_open_tab(page, first_tab)
                samples.append((answers, time.perf_counter() - start))
            times[kind] = samples[1:]
        browser.close()
    return times


def overhead(model_id, runs, examples=EXAMPLES):
    rows = {}
    for kind, path, question in examples:
        image, video = (path, None) if kind == "image" else (None, path)
        samples = []
        for _ in range(runs + 1):
            payload, view, analysis = service.run_comparison(image=image, video=video, question=question,
                                                             method_a="clse", method_b="fastv", keep=1 / 9,
                                                             model_id=model_id)
            start = time.perf_counter()
            for fig in panels.draw(analysis, view).values():
                fig.to_json()  # what gr.Plot sends to the page
            json.dumps(payload)
            figures_ms = (time.perf_counter() - start) * 1e3
            results = payload["results"].values()
            diagnostics = sum(r["timings_ms"]["diagnostics"] for r in results)
            model = sum(r["timings_ms"]["total"] for r in results) - payload["results"]["none"]["timings_ms"][
                "vision_encoder"] * (len(payload["results"]) - 1)  # the image is encoded once
            page = payload["page_timings_ms"]
            samples.append({"model_compute_ms": model, "diagnostics_ms": diagnostics, "figures_json_ms": figures_ms,
                            "overhead_share": (diagnostics + figures_ms) / model,
                            "flip_test_ms": page["flip_test"], "view_and_sweep_ms": page["view_and_sweep"]})
        rows[kind] = {key: statistics.median(s[key] for s in samples[1:]) for key in samples[1]}
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--sized", action="store_true",
                        help="also measure the overhead on a random-weight LLaVA of realistic shape")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores; model: {args.model or 'embedded'}; medians of {args.runs} runs")
    if args.model:  # the deployment's default model is allowed (the in-process overhead runs ask for it too)
        os.environ["EXPLORER_MODEL"] = args.model
    with app_server(model=args.model) as url:
        clicks = browser_times(url, args.runs)
    for kind, samples in clicks.items():
        answers, done = statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)
        print(f"click -> answers drawn ({kind}): {answers:.2f} s; -> every panel of the open tab drawn: {done:.2f} s "
              f"(runs: {', '.join(f'{s[0]:.2f}/{s[1]:.2f}' for s in samples)})")
    for kind, row in overhead(args.model, args.runs).items():
        print(f"{kind}: model compute for the three answers {row['model_compute_ms']:.0f} ms; explorer overhead "
              f"(diagnostics {row['diagnostics_ms']:.0f} ms + figures and JSON {row['figures_json_ms']:.0f} ms) "
              f"= {100 * row['overhead_share']:.0f}% of it; extra diagnostic runs: flip test "
              f"{row['flip_test_ms']:.0f} ms, model view and object sweep {row['view_and_sweep_ms']:.0f} ms")
    if args.sized:
        sized_overhead(args.runs)


def sized_overhead(runs):
    import tempfile

    from explorer.bench import engine as bench

    name, shape = list(bench.SHAPES.items())[-1]
    with tempfile.TemporaryDirectory() as directory:
        model, processor = bench.build(**shape)
        model.save_pretrained(directory)
        processor.save_pretrained(directory)
        del model
        # the page only serves allowed models (explorer/access.py): this deployment allows its own folder
        os.environ["EXPLORER_MODEL_DIRS"] = os.pathsep.join(filter(None, [os.environ.get("EXPLORER_MODEL_DIRS"),
                                                                         directory]))
        # random weights never say </s>: every answer decodes the page's 20 new tokens
        for kind, row in overhead(directory, runs, EXAMPLES[:1]).items():
            print(f"{kind} on {name} (random weights): model compute for the three answers "
                  f"{row['model_compute_ms']:.0f} ms; explorer overhead (diagnostics {row['diagnostics_ms']:.0f} ms "
                  f"+ figures and JSON {row['figures_json_ms']:.0f} ms) = {100 * row['overhead_share']:.1f}% of it")


if __name__ == "__main__":
    main()

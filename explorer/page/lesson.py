"""The page's lesson: positional bias against spectral scoring in five steps, one click each. A step sets the
request's inputs and methods (inputs_for), runs the comparison where it needs one (runs), opens the tab to read
(STEPS[i].tab) and says what to look at and why (intro, before the run) and what this run measured
(findings, from the run's analysis or the shipped report: every number the text gives is the one the panels
show). The embedded model's texts make claims (which method leans on position); tests/test_lesson.py runs every
step on the shipped model and checks each claim. On any other model the steps that need ground truth (the object
sweep) say so and run nothing, and the others give the numbers without claiming who wins.
"""

import os
from dataclasses import dataclass, field

import numpy as np

import models
from explorer.analysis.stats import rank_correlation
from explorer.page.api import COMPARE_ARGUMENTS
from explorer.page import service
from explorer.page.service import ASSETS

SCENE = os.path.join(ASSETS, "scene_205.png")  # two circles, one low and one high: vivid for steps 1-3
SCENE_QUESTION = "where is the red circle ?"
COUNT_SCENE = os.path.join(ASSETS, "scene_333.png")  # the sweep counts circles: a counting example beside it
COUNT_QUESTION = "how many circles are there ?"
REPORT = service.SHIPPED_REPORT  # python -m explorer.eval.shipped
shipped_report = service.shipped_report
KEEP = COMPARE_ARGUMENTS["keep"]  # the page's default budget: 28 of the embedded model's 256 tokens


@dataclass(frozen=True)
class Step:
    title: str  # the button's label
    tab: str  # the tab to open (a panels.SECTIONS name)
    inputs: dict = field(default_factory=dict)  # COMPARE_ARGUMENTS' names -> values; {} for a step without a run
    ground_truth: bool = False  # needs the embedded model's known scenes (skipped elsewhere, saying so)
    panel: str = "lesson-note"  # the element the page scrolls to once the step ran (a panel: "panel-<name>")


STEPS = [
    Step("1 · Attention vs position", "bias",
         dict(image=SCENE, question=SCENE_QUESTION, method_a="clse_spectral", method_b="fastv"),
         panel="panel-row_profile"),
    Step("2 · The flip test", "bias", dict(image=SCENE, question=SCENE_QUESTION, method_a="clse_spectral",
                                          method_b="fastv"), panel="panel-flip"),
    Step("3 · CLSE's two factors", "bias", dict(image=SCENE, question=SCENE_QUESTION, method_a="clse",
                                               method_b="fastv"), panel="panel-factors"),
    Step("4 · The object sweep", "bias", dict(image=COUNT_SCENE, question=COUNT_QUESTION,
                                             method_a="clse_spectral", method_b="fastv"), ground_truth=True,
         panel="panel-sweep"),
    Step("5 · Over 200 scenes", "benchmark", panel="report-spearman-shapes"),
]
TITLE = "Positional bias: a five-step lesson"
ABOUT = ("Each step sets the inputs and the methods, runs, opens the tab to read and says what to look at. "
         "Steps 1-4 run on the embedded model in about a second each; step 5 reads the report shipped with the app.")


def embedded(model_id):
    return model_id in (None, "", models.EMBEDDED_ID)


def runs(step, model_id):
    """Whether step `step` (0-based) runs a comparison on this model."""
    s = STEPS[step]
    return bool(s.inputs) and (embedded(model_id) or not s.ground_truth)


def inputs_for(step, model_id=None):
    """{COMPARE_ARGUMENTS name: value} the step sets: its own inputs over the page's defaults (the model kept)."""
    s = STEPS[step]
    if not runs(step, model_id):
        return {}
    values = {name: default for name, default in COMPARE_ARGUMENTS.items()
              if name not in ("model_id", "follow_up_mode")}
    values.update(keep=KEEP, **s.inputs)
    return values


def _name(model_id):
    return models.EMBEDDED_ID if embedded(model_id) else os.path.basename(str(model_id).rstrip("/"))


def heading(step):
    return f"### {TITLE}: step {step + 1} of {len(STEPS)}, {STEPS[step].title.split('·', 1)[1].strip()}\n\n"


INTROS = [
    # 1: attention against position
    ("Look at *Score against position* and *Mean score by row* in the Positional bias tab. FastV (method B) ranks "
     "the tokens by the last prompt token's attention; a score whose percentiles climb towards the bottom rows, "
     "whatever those rows show, keeps the bottom of every image: that is positional bias. CLSE's spectral factor "
     "(method A) is drawn beside it for contrast."),
    # 2: the flip test
    ("Look at *Flip test*: the same question on the image turned upside down. A score that follows the content "
     "keeps the same objects (its kept set, mapped back, overlaps the original's: *follows content*); a score that "
     "follows the position keeps the same rows (*stays in place*). The dashed line is what a random set of the same "
     "size scores: read both numbers against it."),
    # 3: CLSE's factors
    ("The published CLSE (method A now, the page's default) multiplies its spectral factor by the same attention "
     "FastV uses. Look at *CLSE's factors*: the spectral factor, the attention and their product on the same image, "
     "each with its correlation with the position, then at the flip test of `clse`."),
    # 4: the object sweep
    ("Look at *Object sweep*: eight identical circles at eight heights (two scenes, about 12 tokens each) compete "
     "for 28 of 256 tokens, and counting them needs every one, so the budget forces a choice. A score biased "
     "towards late tokens would keep the lower circles: read whether a curve rises to the right, and how far above "
     "the grey line (the share of all tokens kept: a position-blind spread) each one sits."),
    # 5: the dataset
    ("The Benchmark tab shows the report shipped with the app: the embedded model on 200 held-out scenes, at the "
     "budgets 85, 57 and 28 of 256. Look at *Spearman(score, raster position)* (one scene can mislead; 200 cannot "
     "much), at *share of tokens kept by image row*, and at *queried object's tokens kept*: what each choice costs."),
]


def intro(step, model_id=None):
    """The step's text before its run: what it sets, what to look at and why (and, on a model without ground
    truth, what is skipped)."""
    s = STEPS[step]
    text = heading(step) + INTROS[step]
    if s.ground_truth and not embedded(model_id):
        return heading(step) + (
            f"**Skipped on {_name(model_id)}**: the object sweep needs ground truth (where each circle's tokens "
            f"are), which only the embedded model's generated scenes give. Choose `{models.EMBEDDED_ID}` in the "
            "Model menu and click this step again to see it; the other steps run on any model.")
    if step == len(STEPS) - 1 and not embedded(model_id):
        text += (f"\n\nThis report is the embedded model's ({models.EMBEDDED_ID}), not {_name(model_id)}'s: for "
                 "your model, run a benchmark (docs/evaluation.md) and upload its report here.")
    if s.inputs and runs(step, model_id):
        text += "\n\n*Running...*"
    return text


# ------------------------------------------------------------------------------------------------ findings


def _rho(value):
    return "n/a" if value is None or np.isnan(value) else f"{value:+.2f}"


def lean(rho, threshold=0.2):
    """A score's correlation with the position in words."""
    if rho is None or np.isnan(rho):
        return "have no correlation with the position to measure"
    if rho > threshold:
        return "climb towards the bottom rows"
    if rho < -threshold:
        return "fall towards the bottom rows (a lean towards the top)"
    return "show no steady trend with the row"


def _band(means, rows=4):
    """(mean percentile of the top `rows` rows, of the bottom `rows`)."""
    means = np.asarray(means, dtype=float)
    return float(np.nanmean(means[:rows])), float(np.nanmean(means[-rows:]))


def trend(positions, values):
    """How a sweep curve moves with the height: a Spearman with it beyond +-0.5 is a steady rise or fall."""
    rho = rank_correlation(values, positions)
    if np.isnan(rho):
        return "flat", rho
    return ("rises towards the bottom" if rho > 0.5 else "falls towards the bottom" if rho < -0.5
            else "has no steady trend with the height"), rho


def findings(step, analysis, model_id=None):
    """What this run measured, in the words of the step: a markdown paragraph (the numbers the panels show)."""
    a = analysis
    emb = embedded(model_id)
    if step in (0, 1, 2) and a is None:
        return ""
    if step == 0:
        lines = [f"`{m}`'s percentiles {lean(a.spearman.get(m))} (Spearman with the position "
                 f"{_rho(a.spearman.get(m))}; mean percentile of the top four rows {_band(a.row_means[m])[0]:.0f}, of "
                 f"the bottom four {_band(a.row_means[m])[1]:.0f})" for m in a.pair if m in a.spearman]
        text = "**Measured in this run**: " + "; ".join(lines) + "."
        if emb and _leans(a, "fastv") and not _leans(a, "clse_spectral"):
            text += (" FastV's attention favours the late tokens on this scene whatever they show; the spectral "
                     "factor does not.")
        return text
    if step == 1:
        flips = [f"`{m}`: follows content {n['follows_content']:.2f}, stays in place {n['stays_in_place']:.2f}"
                 for m, n in a.flip.items()]
        chance = next(iter(a.flip.values()))["chance"] if a.flip else float("nan")
        claim = ""
        if emb and _follows(a, "clse_spectral") and _stays(a, "fastv"):
            claim = (" The spectral factor's kept set moves with the objects; FastV's stays on the same rows, far "
                     "above chance: it chose positions, not content.")
        return "**Measured in this run**: " + "; ".join(flips) + f"; chance about {chance:.2f}." + claim
    if step == 2:
        factors = a.factors or {}
        parts = [f"{label} {_rho(f['spearman'])}" for label, f in factors.items()]
        text = "**Measured in this run**: Spearman with the position: " + ", ".join(parts) + "."
        if "clse" in a.flip:
            n = a.flip["clse"]
            text += (f" Flip test of `clse`: follows content {n['follows_content']:.2f}, stays in place "
                     f"{n['stays_in_place']:.2f} (chance {n['chance']:.2f}).")
        spectral, attention, product = (factors.get(k, {}).get("spearman") for k in
                                        ("spectral factor", "attention", "product (clse)"))
        if emb and None not in (spectral, attention, product) and product > spectral and attention > spectral:
            text += (" The product's correlation sits between its factors': the multiplication by attention brings "
                     "attention's lean towards late tokens into CLSE; the spectral factor alone does not have it.")
            if "clse" in a.flip and _stays(a, "clse"):
                text += " That is why, with the default A = `clse`, the flip test looks position-biased too."
        return text
    if step == 3:
        if not emb:
            return ""
        sweep = a.sweep if a is not None else None
        if not sweep:
            return ""
        share = sweep.get("kept_share") or float("nan")
        parts = []
        for m, recall in sweep["recall"].items():
            words, rho = trend(sweep["positions"], recall)
            parts.append(f"`{m}` {words} (Spearman with the height {_rho(rho)}; top circle {recall[0]:.2f}, bottom "
                         f"circle {recall[-1]:.2f}) and keeps on average {np.mean(recall):.2f} of each circle")
        text = "**Measured in this run**: " + "; ".join(parts) + f", against {share:.2f} for a position-blind spread."
        if all("no steady" in trend(sweep["positions"], r)[0] for r in sweep["recall"].values()):
            text += (" So on this model the sweep shows no preference for the lower circles; what the forced choice "
                     "shows is how much of the budget each score spends on the circles. FastV's positional lean "
                     "shows on real scenes instead (steps 1-2, and the rows it keeps over 200 scenes: step 5).")
        return text
    if step == 4:
        return report_findings()
    return ""


def _leans(a, m, threshold=0.2):
    return m in a.spearman and a.spearman[m] > threshold


def _follows(a, m):
    n = a.flip.get(m)
    return bool(n) and n["follows_content"] > n["stays_in_place"] and n["follows_content"] > 2 * n["chance"]


def _stays(a, m):
    n = a.flip.get(m)
    return bool(n) and n["stays_in_place"] > n["follows_content"] and n["stays_in_place"] > 2 * n["chance"]


def report_numbers(report=None, keep=28):
    """{method: {"spearman", "interval", "rows" (share kept by row), "recall", "accuracy"}} of the report's runs at
    this budget."""
    report = report or shipped_report()
    if not report:
        return {}
    return {r["method"]: {"spearman": r.get("score_position_spearman"), "interval": r.get("score_position_interval"),
                          "rows": (r.get("density") or {}).get("rows"), "recall": r.get("target_recall"),
                          "accuracy": r.get("accuracy"), "samples": r.get("samples")}
            for r in report["runs"] if r.get("keep") == keep}


def densest_band(rows, width=6):
    """(first row, last row, share of everything kept) of the `width` consecutive rows that hold the most of what a
    method keeps (every row has as many tokens, so a position-blind method's band holds width / rows of it)."""
    rows = np.nan_to_num(np.asarray(rows, dtype=float))
    total = rows.sum()
    if not total or len(rows) < width:
        return None
    sums = [rows[i:i + width].sum() for i in range(len(rows) - width + 1)]
    start = int(np.argmax(sums))
    return start, start + width - 1, float(sums[start] / total)


def report_findings(report=None):
    numbers = report_numbers(report)
    if not numbers:
        return "**The shipped report is missing**: build it with `python -m explorer.eval.shipped`."
    parts = []
    for m in ("fastv", "clse_spectral", "clse"):
        n = numbers.get(m)
        if not n or n["spearman"] is None:
            continue
        interval = f" [{n['interval'][0]:+.2f}, {n['interval'][1]:+.2f}]" if n.get("interval") else ""
        band = densest_band(n["rows"]) if n.get("rows") else None
        where = (f"; its densest six rows, {band[0]}-{band[1]}, hold {band[2]:.0%} of what it keeps" if band else "")
        parts.append(f"`{m}` Spearman {n['spearman']:+.2f}{interval}{where}; it keeps {n['recall']:.2f} of the asked "
                     f"object's tokens and answers {n['accuracy']:.2f}")
    rows = len(next((n["rows"] for n in numbers.values() if n.get("rows")), []) or [16])
    text = (f"**In the shipped report, at 28 of 256 tokens** (a position-blind method's densest six rows hold about "
            f"{6 / rows:.0%}): " + "; ".join(parts) + ".")
    fastv, spectral = numbers.get("fastv"), numbers.get("clse_spectral")
    if fastv and spectral and fastv["spearman"] is not None and spectral["spearman"] is not None \
            and fastv["spearman"] > 0.2 and abs(spectral["spearman"]) < fastv["spearman"]:
        band = densest_band(fastv["rows"]) if fastv.get("rows") else None
        lower = bool(band) and band[0] >= rows // 2 - 2 and band[2] > 1.3 * 6 / rows
        side = "towards the top" if spectral["spearman"] < 0 else "towards the bottom"
        text += (f" Over {fastv['samples']} scenes FastV's scores climb with the position"
                 + (" and what it keeps crowds into a band of lower rows" if lower else "")
                 + f"; the spectral factor's correlation is smaller ({spectral['spearman']:+.2f}: a weaker lean, "
                 f"{side})" + (", and it keeps more of the asked object" if spectral["recall"] > fastv["recall"]
                                else "") + ". The published `clse` multiplies by the same attention.")
    return text

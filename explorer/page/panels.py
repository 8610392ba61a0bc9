"""The page's panels and sections, registered once. ui.build_app lays the page out from these lists and the
Compare event's outputs follow PANELS' order, so adding a panel is one figure function (figures.py) and one
line below; adding a section is one line in SECTIONS.

A panel is drawn from the request's explorer.analysis.comparison.Analysis: `draw(analysis)`, or, for panels
redrawn by the frame slider (per_frame), `draw(analysis, frame)`, or `draw(analysis, images, frame)` for those
drawn over the pictures the model saw (on_images). The first section ("answers") sits above the tabs and is
drawn as soon as the answers exist; every other section is a tab. A section may also bring its own content
(`render`: the name of a builder that ui.py calls inside its tab, so the registry imports no Gradio), for a
tab whose panels come from another source, such as a benchmark report.
"""

from dataclasses import dataclass
from typing import Callable

from explorer.methods.registry import METHODS, groups
from explorer.page import figures


@dataclass(frozen=True)
class Section:
    name: str
    label: str
    how_to_read: str  # shown with the section's panels
    render: str = None  # the name of a ui.py function that builds the section's own components in its tab


@dataclass(frozen=True)
class Panel:
    name: str
    section: str  # a Section's name
    label: str
    draw: Callable  # figures.* builder: draw(analysis); draw(analysis, frame) when per_frame;
    # draw(analysis, images, frame) when on_images too
    per_frame: bool = False  # redrawn when the frame slider moves (video)
    on_images: bool = False  # drawn over the pictures the model saw
    half: bool = False  # half width: consecutive half panels share a row
    min_width: int = figures.PLOT_MIN_WIDTH  # px: the narrowest it is drawn (its titles are wrapped to fit it)

    def figure(self, analysis, images=None, frame=0):
        if not self.per_frame:
            return self.draw(analysis)
        return self.draw(analysis, images, frame) if self.on_images else self.draw(analysis, frame)


def method_guide():
    """One line per method, grouped as the method menus are: what each one looks at."""
    return "\n".join(f"- **{label}**: " + "; ".join(f"`{n}`: {METHODS[n].description}" for n in names)
                     for label, names in groups())


SECTIONS = [
    Section("answers", "Answers",
            "The same question answered three ways. A pruned answer that matches the unpruned one means the dropped "
            "tokens did not matter for this question. 'Closest call' is the smallest lead of an answer's token over "
            "the runner-up, in logits: a near tie (under 0.1) is a coin flip that another dtype or device may decide "
            "the other way, so read such an answer as undecided. 'Nominal budget' is the keep count asked for (\"-\" "
            "for the unpruned run, which keeps everything); the kept count is given after each stage of a "
            "multi-stage schedule; the average over all layers counts the layers before the pruning layer at full "
            "length (the paper's bookkeeping leaves them out), so it is the honest token count. On a generated "
            "example the right answer is known: the title gives it, and a column the share of the asked object's "
            "tokens each method kept."),
    Section("importance", "Token importance",
            "Top: each method's score for every visual token (one square = one image patch), as a percentile so "
            "both methods share one colour scale. Bottom: the tokens each method kept (dark = pruned). Hover a "
            "square for its index, row, column, score, rank. What each method looks at:\n\n" + method_guide()),
    Section("spectra", "Per-layer spectra",
            "How the spatial pattern of the visual tokens changes through the decoder. Low frequencies are smooth, "
            "large-scale structure; high frequencies are edges and detail. CLSE scores the tokens whose "
            "high-frequency content changes most between the reference layer L and the pruning layer K (the "
            "published `clse` multiplies that by the last prompt token's attention; `clse_spectral` uses it alone)."),
    Section("bias", "Positional bias",
            "Attention scores often favour tokens late in the sequence (the bottom rows of an image), whatever they "
            "show. If a method's score rises with the token's position, it is position-biased: the first two "
            "panels draw A and B (the other methods scored in the same run are one click away in their legends; "
            "baselines, dashed, have a fixed order whose correlation says nothing about judgement). The flip test "
            "runs the image upside down: a content-driven method keeps the same objects (its kept set follows the "
            "content), a position-biased one keeps the same rows; the dashed line is what a random set of the same "
            "size scores. CLSE's factors split the published score into its spectral factor and the attention it "
            "multiplies by. The object sweep (embedded model) puts eight identical circles at eight heights, in two "
            "scenes, where the question (how many?) needs every one and the budget cannot keep them all: a "
            "position-blind method keeps about the same share of each, a curve that rises or falls with the height "
            "is a positional preference, and a curve above the grey line (the share of all tokens kept) spends its "
            "budget on the circles. Measure, don't assume: read the curves of your settings."),
    Section("cost", "Cost",
            "Measured on the machine running this page. Pruning shortens every layer from K on, so prefill, FLOPs "
            "and the KV cache shrink; scoring is the time the method itself took. With several timed repeats (More "
            "settings) the bars are medians and the whiskers span the fastest to the slowest repeat. Peak memory is "
            "the device's peak allocation on a GPU and an estimate on the CPU (the panel's subtitle says which)."),
    Section("benchmark", "Benchmark",
            "The same comparison over a whole benchmark (lmms-eval, docs/evaluation.md): accuracy against the "
            "real average of visual tokens kept per method, the queried object's tokens kept where the data has "
            "ground truth, and positional bias over the dataset (where each method keeps tokens, and the rank "
            "correlation between score and position). Upload a report written by `python -m explorer.eval.report RUNS "
            "--json report.json`, or choose runs kept on this server.", render="benchmark_tab"),
]

PANELS = [
    Panel("answers", "answers", "Answers", figures.answers_table, min_width=figures.TABLE_MIN_WIDTH),
    Panel("importance", "importance", "Scores and kept tokens", figures.importance_figure, per_frame=True,
          on_images=True),
    Panel("overlap", "importance", "Overlap of the kept sets", figures.overlap_figure, per_frame=True,
          on_images=True, half=True),
    Panel("frame_counts", "importance", "Kept tokens per frame", figures.frame_counts_figure, half=True),
    Panel("spectrum_heatmap", "spectra", "Radial power spectrum per layer", figures.spectrum_heatmap, half=True),
    Panel("spectrum_curves", "spectra", "Spectrum at chosen layers", figures.spectrum_curves, half=True),
    Panel("highpass_maps", "spectra", "High-pass magnitude per layer", figures.highpass_maps_figure, per_frame=True,
          half=True),
    Panel("highfreq_share", "spectra", "High-frequency share per layer", figures.highfreq_share_figure, half=True),
    Panel("evolution", "spectra", "CLSE evolution |s_K - s_L|", figures.evolution_map, per_frame=True,
          on_images=True),
    Panel("position_scatter", "bias", "Score against position", figures.position_scatter, half=True),
    Panel("row_profile", "bias", "Mean score by row", figures.row_profile, half=True),
    Panel("flip", "bias", "Flip test", figures.flip_figure, per_frame=True, on_images=True, min_width=900),
    Panel("factors", "bias", "CLSE's factors: spectral, attention, product", figures.factors_figure, per_frame=True,
          on_images=True, min_width=1000),
    Panel("sweep", "bias", "Object sweep (embedded model)", figures.sweep_figure),
    Panel("cost", "cost", "Time per stage", figures.cost_figure),
    Panel("tokens_per_layer", "cost", "Tokens per layer", figures.tokens_per_layer_figure, half=True),
    Panel("efficiency", "cost", "FLOPs, KV cache and peak memory vs unpruned", figures.efficiency_figure, half=True),
]

FIRST = [p for p in PANELS if p.section == SECTIONS[0].name]  # drawn as soon as the answers exist
PER_FRAME = [p for p in PANELS if p.per_frame]


def panels_of(section):
    return [p for p in PANELS if p.section == section]


def draw(analysis, images=None, frame=0, panels=PANELS):
    """{panel name: figure} for the panels given (all by default), their titles wrapped to the panel's narrowest
    width."""
    return {p.name: figures.tidy(p.figure(analysis, images, frame), p.min_width) for p in panels}

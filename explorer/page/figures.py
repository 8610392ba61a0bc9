"""Every Plotly figure of the explorer page, drawn from an explorer.analysis.comparison.Analysis.

Figures compute no numbers of their own: every score, rank, percentile, correlation, IoU, count and ratio
comes from the analysis (each computed once there); a figure turns them into traces, hover texts and titles.
Builders redrawn with the frame slider take (analysis, images, frame), where images are the pictures the
model saw (one per image, or the frames of a video); the others take the analysis alone. No model calls, no
global state.
"""

import base64
import io

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.comparison import check_frame, close_call_kind, grid_of, kept_vector, to_grid
from explorer.methods.registry import METHODS

OVERLAP_COLORS = {"neither": "rgba(0,0,0,0.75)", "both": "rgba(255,217,47,0.55)"}
PRUNED_SHADE = "rgba(0,0,0,0.72)"  # darkens pruned patches on top of the image
MERGED_SHADE = "rgba(40,120,255,0.55)"  # a kept merged token: blue over the image
SCORE_SCALE = "Viridis"
# Quantities that are not methods (stages of the time, cost measures, layers) in greys and a sequential scale, so
# that a colour on any tab names one method only (the registry's)
TIMING_COLORS = ["#d9d9d9", "#252525", "#969696", "#636363"]
MEASURE_COLORS = {"prefill FLOPs": "#3a3a3a", "KV cache after prefill": "#8c8c8c", "peak memory": "#cfcfcf"}
LAYER_SCALE = "Cividis"  # the spectra's curves, one per layer, coloured by depth


def layer_colors(count):
    """`count` colours along LAYER_SCALE (the first layer darkest)."""
    from plotly.colors import sample_colorscale

    return sample_colorscale(LAYER_SCALE, [i / max(count - 1, 1) for i in range(count)])
NO_SPECTRA = "No spectra in this run (the unpruned run was made without diagnostics)."


def method_color(method):
    """The method's colour from its registry line (a record of a method this page does not know: grey-purple)."""
    return METHODS[method].color if method in METHODS else "#7b4173"


def is_baseline(method):
    """A reference point, not a judgement of the tokens (random, uniform, downsample): marked as such."""
    return method in METHODS and METHODS[method].group == "baseline"


def method_label(method):
    return f"{method} (baseline)" if is_baseline(method) else method


# ------------------------------------------------------------------------------------------ title wrapping
PLOT_MIN_WIDTH = 640  # px: the narrowest a panel is drawn (a half-width panel on a laptop; on a phone the page
# keeps this width and the panel scrolls sideways, ui.CSS), so its titles are wrapped for it
TABLE_MIN_WIDTH = 1100  # px: the answers table's (its eleven columns need it)
TITLE_PX, SUBTITLE_PX, SUBPLOT_PX = 9.0, 5.8, 7.6  # the width of a character of a title (17 px), of a <sup> line and
# of a subplot's title (14 px), measured on Plotly's default font; 100 px go to the margins
SUBPLOT_TITLE = "subplot title"  # the name grid_figure gives its subplots' titles (tidy() wraps them to the
# subplots' width, which grid_figure leaves in layout.meta["cell_width"] as a share of the figure's)


def title_chars(width=PLOT_MIN_WIDTH):
    """(characters of a title line, of a <sup> line) that fit a plot `width` px wide."""
    return int((width - 100) / TITLE_PX), int((width - 100) / SUBTITLE_PX)


TITLE_CHARS, SUBTITLE_CHARS = title_chars()


def wrap_line(text, width):
    """Plain text (Plotly's tags kept whole) wrapped at spaces into lines of at most `width` characters."""
    words, lines, line = text.split(" "), [], ""
    for word in words:
        visible = len(line.replace("<b>", "").replace("</b>", "")) + 1 + len(word)
        if line and visible > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


def wrap(text, width=TITLE_CHARS, sup_width=SUBTITLE_CHARS):
    """A Plotly title wrapped: each <br>-separated part no longer than `width` characters (a <sup> part, smaller,
    `sup_width`), so that no title runs past its plot's edge."""
    if not text:
        return text
    parts = []
    for part in text.split("<br>"):
        if part.startswith("<sup>") and part.endswith("</sup>"):
            parts += [f"<sup>{line}</sup>" for line in wrap_line(part[5:-6], sup_width)]
        else:
            parts += wrap_line(part, width)
    return "<br>".join(parts)


def tidy(fig, width=PLOT_MIN_WIDTH):
    """Every title of a figure wrapped to a plot `width` px wide (the figure's own, and the titles grid_figure
    puts over its subplots, at their share of the width), and the top margin grown to hold the title's lines."""
    chars, sup_chars = title_chars(width)
    share = (fig.layout.meta or {}).get("cell_width", 1.0) if isinstance(fig.layout.meta, dict) else 1.0
    cell = max(16, int(share * (width - 100) / SUBPLOT_PX))
    above = 0  # the lines of the subplot titles over the first row, which stand in the top margin
    for annotation in fig.layout.annotations:
        if annotation.name == SUBPLOT_TITLE and annotation.text:
            annotation.text = wrap(annotation.text, cell, cell + 10)
            if annotation.y is not None and annotation.y >= 0.999:
                above = max(above, annotation.text.count("<br>") + 1)
    title = fig.layout.title.text
    if title:
        wrapped = wrap(title, chars, sup_chars)
        fig.layout.title.text = wrapped
        lines = wrapped.count("<br>") + 1
        # at the top, below the label Gradio lays over the plot's corner; Plotly grows the margin to hold it all
        fig.update_layout(margin_t=max(fig.layout.margin.t or 0, 60 + 20 * lines + 18 * above),
                          title=dict(automargin=True, yref="container", y=1, yanchor="top", pad=dict(t=44)))
    return fig


# ----------------------------------------------------------------------------------------- shared drawing


def empty_figure(message, title=""):
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return fig


def frame_image(images, a, frame=0):
    """The PIL image under (the analysis's group, frame): images are listed group after group, frame after
    frame."""
    index = sum(grid_of(g)[0] for g in a.none["groups"][:a.group]) + frame
    if images is None or index >= len(images):
        return None
    return images[index]


def fit_to_grid(image, h, w):
    """The image cropped to the grid's aspect ratio h:w, centred.

    The page passes the images as the vision tower saw them (processor-resized and cropped, e.g. 336 x 336
    for CLIP-336), for which this does nothing. A raw image is centre-cropped to the grid's shape (a square
    for LLaVA), which is what CLIP's processor does (shortest edge resized, centre crop), so patch (r, c)
    lies over the pixels the model saw. Processors that squash instead of crop will be slightly off then:
    pass the model's view to be exact. Resizing is left to the browser (the trace is scaled to the grid)."""
    width, height = image.size
    if width * h > height * w:  # too wide
        new_width = max(1, round(height * w / h))
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = max(1, round(width * h / w))
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def image_trace(image, h, w, max_side=448):
    """go.Image of the picture stretched over the grid coordinates: patch (r, c) covers x in c +- 0.5,
    y in r +- 0.5. Sent as a JPEG data URI (much smaller than a pixel array)."""
    image = fit_to_grid(image.convert("RGB"), h, w)
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    dx, dy = w / image.width, h / image.height
    return go.Image(source=uri, x0=-0.5 + dx / 2, y0=-0.5 + dy / 2, dx=dx, dy=dy, hoverinfo="skip")


def hover_text(g, frame, fields):
    """[h][w] hover strings for one frame: token index, row, column (and frame), then each field.

    fields: {label: per-token strings over the group (length count)}."""
    t, h, w = grid_of(g)
    rows = []
    for r in range(h):
        row = []
        for c in range(w):
            n = frame * h * w + r * w + c
            lines = [f"token {g['offset'] + n}", f"row {r}, column {c}" + (f", frame {frame}" if t > 1 else "")]
            lines += [f"{label}: {values[n]}" for label, values in fields.items()]
            row.append("<br>".join(lines))
        rows.append(row)
    return rows


def fmt(values, digits=4):
    return ["-" if np.isnan(v) else f"{v:.{digits}g}" for v in values]


def token_fields(a, method, kept):
    """The standard hover fields of a method over the group: score, rank, percentile, kept (and what merging
    did to the token, where the method merged)."""
    scores, ranks = a.scores_of(method), a.ranks_of(method)
    scored = int((~np.isnan(scores)).sum())
    merges = a.merge_notes(method) if method in a.results else [""] * len(kept)
    return {
        "score": fmt(scores),
        "rank": ["-" if np.isnan(k) else f"{int(k)} of {scored}" for k in ranks],
        "percentile": fmt(a.percentiles_of(method), 3),
        "kept": [("yes" if k else "no") + (f" ({note})" if note else "") for k, note in zip(kept, merges)],
    }


def grid_heatmap(z, text, hovertemplate="%{text}<extra></extra>", **style):
    h, w = z.shape
    return go.Heatmap(z=z, x=np.arange(w), y=np.arange(h), text=text, hovertemplate=hovertemplate, **style)


def mask_heatmap(kept_map, text, pruned_color=PRUNED_SHADE, kept_color="rgba(0,0,0,0)"):
    """1 = kept (kept_color), 0.5 = kept as a merged token (MERGED_SHADE), 0 = pruned (pruned_color)."""
    return grid_heatmap(kept_map, text, zmin=0, zmax=1, showscale=False,
                        colorscale=[[0, pruned_color], [0.25, pruned_color], [0.25, MERGED_SHADE],
                                    [0.75, MERGED_SHADE], [0.75, kept_color], [1, kept_color]])


def style_grid_axes(fig, h, w, rows=1, cols=1):
    """Image-like axes on every subplot: row 0 on top, square patches, no ticks. One layout update (per-axis
    update calls cost more than the rest of the figure)."""
    axes = {}
    for i in range(1, rows * cols + 1):  # grid_figure numbers its axes row by row from 1 ("" for the first)
        suffix = "" if i == 1 else str(i)
        axes["xaxis" + suffix] = dict(range=[-0.5, w - 0.5], visible=False, constrain="domain")
        axes["yaxis" + suffix] = dict(range=[h - 0.5, -0.5], visible=False, scaleanchor="x" + suffix,
                                      constrain="domain")
    fig.update_layout(plot_bgcolor="white", **axes)


def grid_figure(rows, cols, titles, horizontal_spacing=0.04, vertical_spacing=0.08):
    """An empty figure with a rows x cols grid of subplots (axes numbered row by row, as make_subplots does)
    and a title over each. Built directly: make_subplots costs ~10 ms, more than the traces drawn in it."""
    width = (1 - horizontal_spacing * (cols - 1)) / cols
    height = (1 - vertical_spacing * (rows - 1)) / rows
    layout, annotations = {}, []
    for row in range(1, rows + 1):
        for col in range(1, cols + 1):
            i = (row - 1) * cols + col
            suffix = "" if i == 1 else str(i)
            x0 = (col - 1) * (width + horizontal_spacing)
            y1 = 1 - (row - 1) * (height + vertical_spacing)
            layout["xaxis" + suffix] = dict(domain=[max(0, x0), min(1, x0 + width)], anchor="y" + suffix)
            layout["yaxis" + suffix] = dict(domain=[max(0, y1 - height), min(1, y1)], anchor="x" + suffix)
            if i <= len(titles):
                annotations.append(dict(text=titles[i - 1], x=x0 + width / 2, y=y1, xref="paper", yref="paper",
                                        xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=14),
                                        name=SUBPLOT_TITLE))
    return go.Figure(layout=dict(annotations=annotations, meta={"cell_width": width}, **layout))


def in_cell(trace, row, col, cols):
    """The trace placed on subplot (row, col) of a grid_figure."""
    i = (row - 1) * cols + col
    return trace.update(xaxis="x" if i == 1 else f"x{i}", yaxis="y" if i == 1 else f"y{i}")


def reference_line(fig, value, horizontal=False, text=None, dash="dot", color="#888", at=1.0):
    """A dashed line across the plot at x = value (or y = value), with an optional label at `at` along it (0..1
    of the plot). Plain layout shapes: plotly's add_vline / add_hline are several milliseconds each."""
    line = dict(type="line", line=dict(dash=dash, color=color))
    if horizontal:
        line.update(xref="paper", x0=0, x1=1, yref="y", y0=value, y1=value)
    else:
        line.update(xref="x", x0=value, x1=value, yref="paper", y0=0, y1=1)
    fig.layout.shapes += (line,)
    if text:
        label = dict(text=text, showarrow=False, xanchor="right" if horizontal else "left", yanchor="bottom")
        label.update(dict(xref="paper", x=at, yref="y", y=value) if horizontal else
                     dict(xref="x", x=value, yref="paper", y=at))
        fig.layout.annotations += (label,)


def frame_note(g, frame):
    t = grid_of(g)[0]
    return f" (frame {frame + 1} of {t})" if t > 1 else ""


def layer_label(i, num_layers):
    return "decoder output" if i == num_layers else f"input of layer {i}"


def _mark_layers(fig, a, horizontal=False):
    """Dashed lines at the reference layer L and the pruning layer K."""
    # the labels sit at different heights: L and K are often neighbours (L=0, K=1)
    for (layer, name), at in zip(((a.none["ref_layer"], "L (reference)"), (a.none["prune_layer"], "K (prune)")),
                                 (1.0, 0.9)):
        reference_line(fig, layer, horizontal, f"{name} = {layer}", dash="dash", color="#444", at=at)


def _rgba(hex_color, alpha):
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _rho_label(m, rho):
    return f"{m} (Spearman {rho:+.2f})" if not np.isnan(rho) else f"{m} (Spearman n/a)"


# ----------------------------------------------------------------------------------------------- answers


def kept_cell(row):
    """"28 / 256", or after each stage of a multi-stage schedule "144 → 92 → 27 / 256"."""
    stages = row.get("stage_kept") or []
    counts = " → ".join(str(n) for n in stages) if len(stages) > 1 else str(row["kept"])
    return f"{counts} / {row['visual_tokens']}"


def prefill_cell(row):
    """The prefill time, with the fastest and slowest of the timed repeats when there were several."""
    spread = row.get("prefill_spread")
    if spread and row.get("repeats", 1) > 1:
        return f"{row['prefill_ms']:.1f} ({spread[0]:.1f}-{spread[1]:.1f}, {row['repeats']} runs)"
    return f"{row['prefill_ms']:.1f}"


def closest_cell(call):
    """An answer's closest call: '8.53 (token 1)', a near tie said so, '-' without margins."""
    if call is None:
        return "-"
    kind = close_call_kind(call)
    return f"{call[0]:.3g} (token {call[1]})" + (f": {kind}" if kind else "")


def _answer_cells(row, truth=False):
    same = "reference" if row["same"] is None else ("yes" if row["same"] else "no")
    nominal = "-" if row["nominal"] is None else f"{row['nominal']:g}"
    average = "-" if row["average_kept"] is None else f"{row['average_kept']:.1f}"
    method = row["method"] + (f" ({row['mode']})" if row.get("mode") else "")
    cells = [method, row["answer"] or "(empty)", same, closest_cell(row["closest"]), kept_cell(row), nominal,
             average, prefill_cell(row), f"{row['kv_cache_mib']:.2f}", row["how"]]
    if truth:
        cells.append("-" if row.get("recall") is None else f"{row['recall']:.2f}")
    return cells + [f"{row['turn']}: {row['question']}"]


def answers_table(a):
    truth = a.ground_truth
    recall = bool(truth and truth.get("target_tokens"))
    rows = [_answer_cells(row, recall) for row in a.answers]
    header = ["method", "answer", "same as unpruned", "closest call: logit margin", "visual tokens kept / total" + (
        " (after each stage)" if any(len(r.get("stage_kept") or []) > 1 for r in a.answers) else ""),
              "nominal budget", "visual tokens per layer (average over all layers)",
              "prefill ms" + (" (one run)" if a.timed_once else " (median, fastest-slowest)"), "KV cache MiB",
              "how it ran"] + (["asked object's tokens kept"] if recall else []) + ["turn: question"]
    colors = [method_color(row["method"]) for row in a.answers]
    fig = go.Figure(go.Table(
        header=dict(values=[f"<b>{h}</b>" for h in header], align="left", fill_color="#e8e8e8"),
        cells=dict(values=list(map(list, zip(*rows))), align="left",
                   font=dict(color=[colors] + [["black"] * len(rows)] * (len(header) - 1))),
    ))
    title = "Answers: unpruned vs pruned (KV cache measured after decoding)"
    if a.runs_on:
        title += f"; the model runs on {a.runs_on}"
    lines = []
    if truth:
        answer = truth.get("answer")
        lines.append(f"the right answer: <b>{answer}</b> (known: {truth['source']})" if answer else
                     f"the right answer is not known for this question ({truth['source']}: its generator asks "
                     "other questions; the objects' outlines are drawn over the masks)")
    if a.settings_used:
        lines.append(a.settings_used)
    if a.timed_once:
        lines.append("timings: one run each (the first run also pays for warming up); set Timed repeats under "
                     "More settings for medians and their spread")
    # e.g. a tie at the cut: the reader must know the selection was not the score's doing
    lines += [f"note: {note}" for note in a.notes]
    wrapped = [wrap(f"<sup>{line}</sup>", sup_width=title_chars(TABLE_MIN_WIDTH)[1]) for line in lines]
    title += "".join(f"<br>{line}" for line in wrapped)
    top = 60 + 20 * (1 + sum(line.count("<br>") + 1 for line in wrapped))  # the margin tidy() gives the title
    # a cell wraps its text onto as many lines as its column's width asks at the table's narrowest (how a method
    # ran takes four or five): a fixed row height hid the last answer below the table's fold
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=top, b=10),
                      height=top + 20 + sum(_table_row_px(row, len(header)) for row in [header, *rows]))
    return fig


TABLE_CELL_PX, TABLE_LINE_PX = 7.0, 16  # a character of a table cell (12 px font, words wrapped whole), a line


def _table_row_px(cells, columns):
    """The height a row of the answers table takes at the table's narrowest: its tallest cell's wrapped lines."""
    chars = max(8, int((TABLE_MIN_WIDTH - 20) / columns / TABLE_CELL_PX))
    lines = max(len(wrap_line(str(cell).replace("<b>", "").replace("</b>", ""), chars)) for cell in cells)
    return TABLE_LINE_PX * lines + 18


# ------------------------------------------------------------------------------------ importance & overlap


OUTLINE_ASKED = dict(color="#00e5ff", width=3)  # the asked object's outline (ground truth of a generated scene)
OUTLINE_OTHER = dict(color="#ffffff", width=1.5, dash="dot")


def outline_shapes(a, axes):
    """Layout shapes outlining the ground truth's objects (a generated example) on the given subplots' axes
    ("" for the first, "2", ...), in grid coordinates; the asked object in cyan. [] without ground truth."""
    truth = a.ground_truth
    if not truth:
        return []
    _, h, w = a.grid
    size = truth.get("image_size") or 1
    shapes = []
    for obj in truth["objects"]:
        x0, y0, x1, y1 = (v * w / size - 0.5 for v in obj["box"])  # pixels -> patch coordinates
        line = OUTLINE_ASKED if obj.get("asked") else OUTLINE_OTHER
        for axis in axes:
            ref = dict(xref="x" + axis, yref="y" + axis, line=line, fillcolor="rgba(0,0,0,0)", layer="above")
            if obj["shape"] == "circle":
                shapes.append(dict(type="circle", x0=x0, y0=y0, x1=x1, y1=y1, **ref))
            elif obj["shape"] == "square":
                shapes.append(dict(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, **ref))
            else:  # a triangle pointing up, filling its box
                shapes.append(dict(type="path", path=f"M {(x0 + x1) / 2},{y0} L {x1},{y1} L {x0},{y1} Z", **ref))
    return shapes


def stage_views(a, m, frame):
    """The stage slider's views of a method: [(title of the score map, title of the mask, percentiles [h, w],
    kept map [h, w], hover text)], one per stage (the last one's mask is the set kept for decoding)."""
    g = a.g
    stages = a.stages.get(m) or []
    views = []
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        kept = a.kept_map(m) if last else stage["kept"]
        where = f"stage {i + 1} of {len(stages)} (layer {stage['layer']}, {stage['scorer']})"
        count = int((np.asarray(kept) > 0).sum())
        fields = {"score": fmt(stage["scores"]), "percentile": fmt(stage["percentiles"], 3),
                  "kept": ["yes" if k else "no" for k in np.asarray(kept) > 0]}
        views.append((f"{m}: score percentile, {where}",
                      f"{m}: kept {count} of {g['count']} after {where}" + (" for decoding" if last else ""),
                      to_grid(stage["percentiles"], g)[frame], to_grid(kept, g)[frame], hover_text(g, frame, fields)))
    return views


def importance_figure(a, images, frame=0):
    """Scores (as percentiles, one shared colour scale) over the image, and the kept masks below; for a
    multi-stage schedule a slider over the stages (each stage's scores and the set kept after it); on a
    generated example the objects' outlines (the asked one in cyan)."""
    g = a.g
    check_frame(g, frame)
    _, h, w = grid_of(g)
    methods = list(a.pair)
    titles = [f"{m}: score percentile (first stage)" for m in methods]
    titles += [f"{m}: kept {int(a.kept[m].sum())} of {g['count']} for decoding (dark = pruned"
               + (f", blue = {len(a.merged[m])} merged" if a.merged.get(m) else "") + ")" for m in methods]
    views = {m: stage_views(a, m, frame) for m in methods}
    stages = max(len(v) for v in views.values())
    for col, m in enumerate(methods):  # a method without stages (the unpruned reference) shows the same at each
        if not views[m]:
            views[m] = [(titles[col], titles[2 + col], to_grid(a.percentiles_of(m), g)[frame],
                         to_grid(a.kept_map(m), g)[frame], hover_text(g, frame, token_fields(a, m, a.kept[m])))]
    if stages > 1:  # the first stage shown; the slider moves through the others
        for col, m in enumerate(methods):
            titles[col], titles[2 + col] = views[m][0][0], views[m][0][1]
    fig = grid_figure(2, 2, titles)
    image = frame_image(images, a, frame)
    background = image_trace(image, h, w) if image is not None else None  # encoded once, drawn four times
    traces, changing = [], []  # changing: the indices of the score and mask traces the slider restyles
    for col, m in enumerate(methods, start=1):
        text = hover_text(g, frame, token_fields(a, m, a.kept[m]))
        for row in (1, 2):
            if background is not None:
                traces.append(in_cell(go.Image(background), row, col, 2))
        pct = to_grid(a.percentiles_of(m), g)[frame]
        mask = to_grid(a.kept_map(m), g)[frame]
        if stages > 1:
            _, _, pct, mask, text = views[m][0]
        changing += [len(traces), len(traces) + 1]
        traces.append(in_cell(grid_heatmap(pct, text, coloraxis="coloraxis", opacity=0.6, name=m), 1, col, 2))
        traces.append(in_cell(mask_heatmap(mask, text), 2, col, 2))
    fig.add_traces(traces)
    style_grid_axes(fig, h, w, rows=2, cols=2)
    if frame == 0:
        fig.layout.shapes += tuple(outline_shapes(a, ["", "2", "3", "4"]))
    fig.update_layout(
        title=f"Which visual tokens each method values{frame_note(g, frame)}"
              + ("<br><sup>outlines: the scene's objects (known: a generated example), the asked one in cyan</sup>"
                 if a.ground_truth and frame == 0 else ""),
        coloraxis=dict(colorscale=SCORE_SCALE, cmin=0, cmax=100,
                       colorbar=dict(title="score<br>percentile<br>(per method)", len=0.5, y=0.78)),
        height=760 + (60 if stages > 1 else 0),
    )
    if stages > 1:
        steps = []
        for i in range(stages):
            picked = {m: views[m][min(i, len(views[m]) - 1)] for m in methods}
            z, text, layout = [], [], {}
            for col, m in enumerate(methods):
                title, mask_title, pct, mask, hover = picked[m]
                z += [pct, mask]
                text += [hover, hover]
                cell = max(16, int(fig.layout.meta["cell_width"] * (PLOT_MIN_WIDTH - 100) / SUBPLOT_PX))
                layout[f"annotations[{col}].text"] = wrap(title, cell, cell + 10)
                layout[f"annotations[{2 + col}].text"] = wrap(mask_title, cell, cell + 10)
            steps.append(dict(method="update", label=f"stage {i + 1}", args=[{"z": z, "text": text}, layout, changing]))
        fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="shown: "),
                                        pad=dict(t=20))])
    return fig


def overlap_figure(a, images, frame=0):
    """One map: kept by both / only A / only B / neither (codes 3 / 1 / 2 / 0), counts over the whole group."""
    g = a.g
    check_frame(g, frame)
    _, h, w = grid_of(g)
    method_a, method_b = a.pair
    codes, counts = a.overlap["codes"], a.overlap["counts"]
    labels = ["neither", f"only {method_a}", f"only {method_b}", "both"]
    colors = [OVERLAP_COLORS["neither"], _rgba(method_color(method_a), 0.6), _rgba(method_color(method_b), 0.6),
              OVERLAP_COLORS["both"]]
    scale = []
    for i, color in enumerate(colors):  # a stepped scale: code i fills [i/4, (i+1)/4]
        scale += [[i / 4, color], [(i + 1) / 4, color]]
    text = hover_text(g, frame, {"kept by": [labels[c] for c in codes]})
    fig = go.Figure()
    image = frame_image(images, a, frame)
    if image is not None:
        fig.add_trace(image_trace(image, h, w))
    fig.add_trace(grid_heatmap(to_grid(codes, g)[frame], text, zmin=-0.5, zmax=3.5, colorscale=scale, colorbar=dict(
        tickvals=[0, 1, 2, 3], ticktext=[f"{label} ({counts[label]})" for label in labels], title="kept by")))
    style_grid_axes(fig, h, w)
    summary = ", ".join(f"{label} {counts[label]}" for label in reversed(labels))
    fig.update_layout(title=f"Kept by {method_a} and/or {method_b}{frame_note(g, frame)}<br>"
                            f"<sup>{summary} (of {g['count']} tokens)</sup>", height=520)
    return fig


def frame_counts_figure(a):
    fig = go.Figure()
    for m, pairs in a.frame_counts.items():
        fig.add_trace(go.Bar(x=[p[0] for p in pairs], y=[p[1] for p in pairs], name=m, marker_color=method_color(m),
                             hovertemplate=f"{m}<br>%{{x}}: %{{y}} tokens kept<extra></extra>"))
    sizes = {grid_of(g)[1] * grid_of(g)[2] for g in a.none["groups"]}
    each = f" (each has {sizes.pop()} tokens)" if len(sizes) == 1 else ""
    fig.update_layout(barmode="group", title=f"Kept visual tokens per frame or image{each}",
                      xaxis_title="frame (or image)", yaxis_title="kept tokens")
    return fig


# ----------------------------------------------------------------------------------------------- spectra


def spectrum_heatmap(a):
    if a.spectra is None:
        return empty_figure(NO_SPECTRA, "Spatial spectrum per layer")
    radial = np.array(a.spectra["radial"], dtype=float)  # [layer entries, radius bins]
    num_layers = a.none["num_layers"]
    layers = a.spectra["layers"]
    z = np.log10(np.maximum(radial, 1e-30))
    text = [[f"{layer_label(i, num_layers)}<br>radius {r}<br>power {radial[k, r]:.4g}" for r in range(z.shape[1])]
            for k, i in enumerate(layers)]
    fig = go.Figure(go.Heatmap(z=z, x=np.arange(z.shape[1]), y=layers, text=text, colorscale="Magma",
                               hovertemplate="%{text}<extra></extra>", colorbar=dict(title="log10 power")))
    _mark_layers(fig, a, horizontal=True)
    fig.update_layout(title="Spatial power spectrum of the visual tokens, layer by layer<br><sup>radially averaged "
                            "(0 = the mean over the image, higher = finer detail); last row = decoder output</sup>",
                      xaxis_title="radial frequency (bins from the centre of the 2-D spectrum)",
                      yaxis=dict(title="hidden states entering layer", autorange="reversed", tickvals=layers,
                                 ticktext=["out" if i == num_layers else str(i) for i in layers]))
    return fig


def spectrum_curves(a, layers=None):
    if a.spectra is None:
        return empty_figure(NO_SPECTRA, "Spectrum curves")
    num_layers = a.none["num_layers"]
    if layers is None:
        layers = [0, a.none["prune_layer"], num_layers]
    fig = go.Figure()
    chosen = list(dict.fromkeys(layers))  # unique, in order
    for i, color in zip(chosen, layer_colors(len(chosen))):
        power = a.spectra["radial"][i]
        fig.add_trace(go.Scatter(x=list(range(len(power))), y=power, mode="lines+markers",
                                 name=layer_label(i, num_layers), line_color=color))
    fig.update_layout(title="Radial power spectrum at chosen layers", xaxis_title="radial frequency (bins)",
                      yaxis_title="power (log scale)", yaxis_type="log")
    return fig


def highpass_maps_figure(a, frame=0):
    """The per-token high-pass magnitude s(z) at each layer entry, with a slider over layers.

    The slider restyles the one heatmap (method "update") instead of animating go.Frames: Gradio's gr.Plot
    hands Plotly only data/layout/config and drops frames, so an "animate" slider would do nothing there.
    The map is drawn without the picture so the magnitudes read clearly."""
    if a.spectra is None:
        return empty_figure(NO_SPECTRA, "High-pass magnitude per layer")
    g = a.g
    check_frame(g, frame)
    _, h, w = grid_of(g)
    num_layers = a.none["num_layers"]
    maps = [to_grid(values, g)[frame] for values in a.spectra["highpass"]]
    start = min(a.none["prune_layer"], len(maps) - 1)

    def title(i):
        return (f"High-pass magnitude per token, {layer_label(i, num_layers)}{frame_note(g, frame)} "
                "(colour scale per layer)")

    # The hover text (token, row, column) is the same at every layer; only z changes with the slider.
    fig = go.Figure(grid_heatmap(maps[start], hover_text(g, frame, {}), colorscale="Inferno",
                                 hovertemplate="%{text}<br>high-pass magnitude: %{z:.4g}<extra></extra>",
                                 colorbar=dict(title="|high-pass|")))
    steps = [dict(method="update", label="out" if i == num_layers else str(i),  # wrapped as tidy() wraps titles
                  args=[{"z": [maps[i]]}, {"title.text": wrap(title(i))}]) for i in range(len(maps))]
    fig.update_layout(title=title(start), height=560, sliders=[dict(
        active=start, steps=steps, currentvalue=dict(prefix="layer: "), pad=dict(t=30))])
    style_grid_axes(fig, h, w)
    return fig


def highfreq_share_figure(a):
    spectra = a.none.get("spectra")
    if not spectra:
        return empty_figure(NO_SPECTRA, "High-frequency share per layer")
    num_layers = a.none["num_layers"]
    fig = go.Figure()
    for gi, (spec, color) in enumerate(zip(spectra, layer_colors(len(spectra)))):
        fig.add_trace(go.Scatter(x=spec["layers"], y=spec["highfreq_share"], mode="lines+markers", line_color=color,
                                 name=f"group {gi + 1} ({a.none['groups'][gi]['kind']})",
                                 text=[layer_label(i, num_layers) for i in spec["layers"]],
                                 hovertemplate="%{text}<br>share %{y:.3f}<extra></extra>"))
    _mark_layers(fig, a)
    fig.update_layout(title="Share of spectral energy passed by the CLSE high-pass mask, per layer",
                      xaxis_title=f"hidden states entering layer ({num_layers} = decoder output)",
                      yaxis_title="high-frequency share (0..1)")
    return fig


def evolution_map(a, images, frame=0):
    """|s_K - s_L| per token (the numerator of CLSE's evolution intensity) over the image."""
    if a.evolution is None:
        return empty_figure(NO_SPECTRA, "Spectral evolution map")
    g = a.g
    check_frame(g, frame)
    _, h, w = grid_of(g)
    k, ref = a.none["prune_layer"], a.none["ref_layer"]
    e = a.evolution
    text = hover_text(g, frame, {"|s_K - s_L|": fmt(e["change"]), f"s at layer L={ref}": fmt(e["s_l"]),
                                 f"s at layer K={k}": fmt(e["s_k"]), "evolution intensity E": fmt(e["intensity"])})
    fig = go.Figure()
    image = frame_image(images, a, frame)
    if image is not None:
        fig.add_trace(image_trace(image, h, w))
    fig.add_trace(grid_heatmap(to_grid(e["change"], g)[frame], text, colorscale="Inferno", opacity=0.65,
                               colorbar=dict(title="|s_K - s_L|")))
    style_grid_axes(fig, h, w)
    fig.update_layout(title=f"How much each token's high-frequency content changed between layer L={ref} and "
                            f"K={k}{frame_note(g, frame)}<br><sup>CLSE keeps the tokens that changed most "
                            "(after normalising by s_L)</sup>", height=520)
    return fig


# ------------------------------------------------------------------------------------------ positional bias


def shown_first(a):
    """The methods of the positional panels, A and B first (drawn), then the others scored in the same run
    (in the legend, drawn on a click: "legendonly")."""
    return [m for m in a.pair if m in a.percentiles] + [m for m in a.percentiles if m not in a.pair]


def legend_state(a, m):
    return True if m in a.pair else "legendonly"


OTHERS_NOTE = "A and B drawn; click another method in the legend to add it (baselines: dashed)"


def position_scatter(a):
    fig = go.Figure()
    for m in shown_first(a):
        pct = a.percentiles[m]
        index = np.arange(len(pct))
        valid = ~np.isnan(pct)
        fig.add_trace(go.Scatter(x=index[valid], y=pct[valid], mode="markers",
                                 name=_rho_label(method_label(m), a.spearman[m]), visible=legend_state(a, m),
                                 marker=dict(color=method_color(m), size=5, opacity=0.6,
                                             symbol="x" if is_baseline(m) else "circle"),
                                 hovertemplate=f"{m}<br>token %{{x}}<br>percentile %{{y:.1f}}<extra></extra>"))
    fig.update_layout(title="Score against position in the sequence<br><sup>a method whose score rises with the "
                            f"index favours late tokens (bottom of the image) whatever they show; {OTHERS_NOTE}</sup>",
                      xaxis_title="raster index within the image (0 = top-left, frame after frame)",
                      yaxis_title="score percentile (per method)", yaxis_range=[-3, 103], height=620,
                      legend=dict(orientation="h", y=-0.2, font=dict(size=11), entrywidth=0.5,
                                  entrywidthmode="fraction"))
    return fig


def row_profile(a):
    fig = go.Figure()
    for m in shown_first(a):
        mean = a.row_means[m]
        fig.add_trace(go.Scatter(x=np.arange(len(mean)), y=mean, mode="lines+markers", visible=legend_state(a, m),
                                 name=_rho_label(method_label(m), a.spearman[m]), line_color=method_color(m),
                                 line_dash="dash" if is_baseline(m) else "solid",
                                 line_width=3 if m in a.pair else 1.5,
                                 hovertemplate=f"{m}<br>row %{{x}}: mean percentile %{{y:.1f}}<extra></extra>"))
    reference_line(fig, 50, horizontal=True, text="no preference (50)")
    fig.update_layout(title="Mean score percentile by image row<br><sup>legend: Spearman with the raster index; "
                            f"{OTHERS_NOTE}. A baseline's Spearman describes its fixed order, not a bias of "
                            "judgement</sup>",
                      xaxis_title="image row (0 = top)", yaxis_title="mean score percentile", yaxis_range=[0, 100],
                      height=620, legend=dict(orientation="h", y=-0.2, font=dict(size=11), entrywidth=0.5,
                                              entrywidthmode="fraction"))
    return fig


def flip_figure(a, images=None, frame=0):
    """The flip test's kept sets over the picture: on the original, and the flipped run's mapped back; and its
    two IoUs against the chance level of a random set of the same size (the IoUs run over every frame of a clip;
    the maps show the frame chosen)."""
    if not a.flip:
        return empty_figure("No method to compare in the flip test.", "Flip test")
    g = a.g
    check_frame(g, frame)
    _, h, w = grid_of(g)
    titles = []
    for m, n in a.flip.items():
        titles += [f"{m}: kept on the original", f"{m}: kept upside down, mapped back",
                   f"{m}: follows content {n['follows_content']:.2f} · stays in place {n['stays_in_place']:.2f}"]
    rows = len(a.flip)
    fig = grid_figure(rows, 3, titles, horizontal_spacing=0.08, vertical_spacing=0.26 / rows)
    image = frame_image(images, a, frame)
    background = image_trace(image, h, w) if image is not None else None
    traces, axes = [], {}
    for row, (m, n) in enumerate(a.flip.items(), start=1):
        for col, indices in ((1, n["kept"]), (2, n["mapped"])):
            if background is not None:
                traces.append(in_cell(go.Image(background), row, col, 3))
            vector = kept_vector(indices, g)
            text = hover_text(g, frame, {"kept": ["yes" if v else "no" for v in vector]})
            traces.append(in_cell(mask_heatmap(to_grid(vector, g)[frame], text, pruned_color="rgba(255,255,255,0.6)",
                                               kept_color=_rgba(method_color(m), 0.6)), row, col, 3))
        values = [n["follows_content"], n["stays_in_place"]]
        traces.append(in_cell(go.Bar(x=values, y=["follows content", "stays in place"], orientation="h",
                                     marker_color=[method_color(m), "#bbbbbb"], showlegend=False,
                                     text=[f"{v:.2f}" for v in values], textposition="outside",
                                     hovertemplate="%{y}: IoU %{x:.3f}<extra>" + m + "</extra>"), row, 3, 3))
        i = (row - 1) * 3 + 3
        axes[i] = n["chance"]
    fig.add_traces(traces)
    style_grid_axes(fig, h, w, rows=rows, cols=3)
    last = max(axes)
    for i, chance in axes.items():  # the bar cells: plain axes, the chance level as a dashed line
        suffix = "" if i == 1 else str(i)
        fig.layout["xaxis" + suffix].update(visible=True, range=[0, 1.15], constrain=None,
                                            title=f"IoU (dashed: chance, {chance:.2f})" if i == last else None)
        fig.layout["yaxis" + suffix].update(visible=True, range=None, autorange="reversed", scaleanchor=None,
                                            constrain=None)
        fig.layout.shapes += (dict(type="line", xref="x" + suffix, yref="y" + suffix + " domain", x0=chance,
                                   x1=chance, y0=0, y1=1, line=dict(dash="dash", color="#444")),)
    chance = next(iter(a.flip.values()))["chance"]
    fig.update_layout(title="Flip test: the same question on the image turned upside down<br><sup>content-driven: "
                            "follows content > stays in place; position-biased: the reverse; a random set of the same "
                            f"size scores about {chance:.2f} on both (dashed line)</sup>",
                      height=max(480, 370 * rows), plot_bgcolor="white")
    return fig


def factors_figure(a, images, frame=0):
    """CLSE's first-stage score split into its factors on the same image: the spectral factor (clse_spectral),
    the attention it multiplies by (FastV's score) and the product (clse), as percentiles over the picture, with
    each one's Spearman with the position; and their mean percentile by image row."""
    factors = a.factors
    if not factors:
        return empty_figure("No CLSE factors in this run (the unpruned run scored neither clse, clse_spectral nor "
                            "fastv).", "CLSE's factors")
    g = a.g
    check_frame(g, frame)
    _, h, w = grid_of(g)
    labels = list(factors)
    cols = len(labels) + 1
    titles = [f"{label}: {_rho_label(f['method'], f['spearman'])}" for label, f in factors.items()]
    titles.append("mean percentile by image row")
    fig = grid_figure(1, cols, titles, horizontal_spacing=0.06)
    image = frame_image(images, a, frame)
    background = image_trace(image, h, w) if image is not None else None
    traces = []
    for col, (label, f) in enumerate(factors.items(), start=1):
        if background is not None:
            traces.append(in_cell(go.Image(background), 1, col, cols))
        text = hover_text(g, frame, {"score": fmt(f["scores"]), "percentile": fmt(f["percentiles"], 3)})
        traces.append(in_cell(grid_heatmap(to_grid(f["percentiles"], g)[frame], text, coloraxis="coloraxis",
                                           opacity=0.7, name=label), 1, col, cols))
    for label, f in factors.items():
        mean = a.row_means[f["method"]]
        name = label if f["method"] in label else f"{label} ({f['method']})"  # the colour is the method's
        traces.append(in_cell(go.Scatter(x=np.arange(len(mean)), y=mean, mode="lines+markers", name=name,
                                         line_color=method_color(f["method"]),
                                         hovertemplate=f"{label}<br>row %{{x}}: %{{y:.1f}}<extra></extra>"),
                              1, cols, cols))
    fig.add_traces(traces)
    style_grid_axes(fig, h, w, rows=1, cols=cols)
    suffix = str(cols)
    fig.layout["xaxis" + suffix].update(visible=True, range=[-0.5, h - 0.5], title="image row (0 = top)",
                                        constrain=None)
    fig.layout["yaxis" + suffix].update(visible=True, range=[0, 100], autorange=None, scaleanchor=None,
                                        constrain=None, title="mean percentile")
    k, ref = a.none.get("prune_layer"), a.none.get("ref_layer")
    fig.update_layout(
        title=f"CLSE's factors on this input (first stage, K={k}, L={ref}){frame_note(g, frame)}<br><sup>CLSE "
              "(published) = the spectral factor x the last prompt token's attention; a factor whose percentiles "
              "rise with the row brings a positional trend into the product</sup>",
        coloraxis=dict(colorscale=SCORE_SCALE, cmin=0, cmax=100, colorbar=dict(title="percentile", len=0.8, x=1.02)),
        legend=dict(orientation="h", y=-0.15), height=430)
    return fig


def sweep_figure(a):
    """Recall of an object's tokens as the object moves from the top (0) to the bottom (1) of the image."""
    sweep = a.sweep
    if not sweep:
        return empty_figure("The object sweep needs known object positions: it runs on the embedded model.",
                            "Object sweep")
    fig = go.Figure()
    for m, recall in sweep["recall"].items():
        mean = float(np.mean(recall)) if recall else float("nan")
        fig.add_trace(go.Scatter(x=sweep["positions"], y=recall, mode="lines+markers",
                                 name=f"{method_label(m)} (mean {mean:.2f})", line_color=method_color(m),
                                 line_dash="dash" if is_baseline(m) else "solid"))
    if sweep.get("kept_share"):
        reference_line(fig, sweep["kept_share"], horizontal=True, text="share of all tokens kept")
    fig.update_layout(title="Object sweep: identical circles at eight heights compete for the budget<br><sup>the "
                            "share of each circle's tokens kept; flat = position-blind, rising = the bottom favoured; "
                            "a curve above the grey line spends its budget on the circles</sup>",
                      xaxis_title="circle centre height (0 = top, 1 = bottom)",
                      yaxis_title="share of the circle's tokens kept", yaxis_range=[0, 1.05],
                      legend=dict(orientation="h", y=-0.25))
    return fig


# --------------------------------------------------------------------------------------------------- cost


def cost_figure(a):
    """Stacked time per stage and method; with repeats, the total's median carries its min-max as an error bar."""
    names = list(a.results)
    fig = go.Figure()
    for i, color in enumerate(TIMING_COLORS):
        label = a.timing_parts[names[0]][i][0]
        values = [a.timing_parts[m][i][1] for m in names]
        fig.add_trace(go.Bar(y=names, x=values, name=label, orientation="h", marker_color=color,
                             hovertemplate=f"%{{y}}<br>{label}: %{{x:.1f}} ms<extra></extra>"))
    totals = [a.results[m]["timings_ms"]["total"] for m in names]
    spreads = [a.timing_spread[m].get("total") for m in names]
    error = None
    if all(spreads):  # timed over repeats: median bar, min-max whisker
        error = dict(type="data", symmetric=False, array=[hi - t for t, (lo, hi) in zip(totals, spreads)],
                     arrayminus=[t - lo for t, (lo, hi) in zip(totals, spreads)], color="#444")
    fig.add_trace(go.Scatter(y=names, x=totals, mode="text+markers" if error else "text", error_x=error,
                             marker=dict(size=1, color="#444"), text=[f" {t:.0f} ms" for t in totals],
                             textposition="middle right", showlegend=False, hoverinfo="skip"))
    repeats = ("<br><sup>median of the repeats; whiskers: min to max of the total</sup>" if error else
               "<br><sup>one run each: single timings vary from run to run (the first also pays for warming up); "
               "set Timed repeats under More settings for medians and their spread</sup>")
    fig.update_layout(barmode="stack", title="Where the time goes, per method (measured on the machine that ran "
                                             f"this request; the vision encoder ran once and is shared){repeats}",
                      xaxis_title="milliseconds", yaxis_title="method", yaxis_autorange="reversed")
    return fig


def tokens_per_layer_figure(a):
    fig = go.Figure()
    for m, r in a.results.items():
        layers = list(range(len(r["tokens_per_layer"])))
        fig.add_trace(go.Scatter(x=layers, y=r["tokens_per_layer"], mode="lines+markers", line_shape="hv", name=m,
                                 line_color=method_color(m), customdata=r["visual_per_layer"],
                                 hovertemplate=f"{m}<br>layer %{{x}}: %{{y}} tokens (%{{customdata}} visual)"
                                               "<extra></extra>"))
    _mark_layers(fig, a)
    fig.update_layout(title="Sequence length entering each decoder layer", xaxis_title="decoder layer",
                      yaxis_title="tokens (text + visual)")
    return fig


def efficiency_figure(a):
    """FLOPs, KV cache and (when measured) peak memory of each method as a fraction of unpruned."""
    names = list(a.results)
    formula = a.none["flops"].get("formula", "")
    memory_kind = a.none.get("peak_memory_kind") if "peak memory" in a.relative_cost else None
    notes = {"prefill FLOPs": formula, "peak memory": memory_kind or ""}
    colors = MEASURE_COLORS
    fig = go.Figure()
    for label, ratios in a.relative_cost.items():
        values = [ratios[m] for m in names]
        fig.add_trace(go.Bar(x=names, y=values, name=label, marker_color=colors[label],
                             text=[f"{v:.2f}x" for v in values], textposition="outside",
                             customdata=[notes.get(label, "")] * len(names),
                             hovertemplate=f"%{{x}}<br>{label}: %{{y:.3f}} of unpruned<br>%{{customdata}}"
                                           "<extra></extra>"))
    reference_line(fig, 1, horizontal=True)
    subtitle = f"FLOPs {formula}" + (f"; peak memory: {memory_kind}" if memory_kind else "")
    fig.update_layout(barmode="group", xaxis_title="method", yaxis_title="fraction of unpruned", yaxis_range=[0, 1.2],
                      title=f"Cost relative to unpruned (1 = same as unpruned)<br><sup>{subtitle}</sup>")
    return fig

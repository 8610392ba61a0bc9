"""Every Plotly figure of the explorer page, as pure functions of run records.

Inputs are plain data: `results` = {method: record.to_json()} (the "none" record is always there and alone
carries `spectra` and `reference_scores`), PIL images (one per image, or the frames of a video), method names.
No model calls, no global state. Nothing assumes a grid size: every map reads its group's
`grid` [t, h, w], `offset` (first visual index of the group) and `count`.

Conventions used throughout:
- visual token n of a group (0 .. t*h*w - 1) sits in frame n // (h*w), row (n % (h*w)) // w, column n % w;
  hover texts show the global visual index (offset + n), the one `kept_indices` uses;
- scores are compared across methods as percentiles within the group (100 = the method's highest score),
  because raw CLSE scores (0..1 sigmoids) and attention weights live on unrelated scales;
- "rank" is 1 for the highest score, ties going to the earlier token, exactly as the selection does.
"""

import base64
import io

import numpy as np
import plotly.graph_objects as go

METHOD_COLORS = {
    "none": "#7f7f7f",
    "clse": "#1f77b4",
    "clse_hybrid": "#9467bd",
    "fastv": "#ff7f0e",
    "random": "#2ca02c",
    "uniform": "#8c564b",
}
OVERLAP_COLORS = {"neither": "rgba(0,0,0,0.75)", "both": "rgba(255,217,47,0.55)"}
PRUNED_SHADE = "rgba(0,0,0,0.72)"  # darkens pruned patches on top of the image
SCORE_SCALE = "Viridis"
TIMING_PARTS = [  # (label, how to get it from timings_ms); the parts add up to timings_ms["total"]
    ("vision encoder", lambda t: t["vision_encoder"]),
    ("scoring (the method itself)", lambda t: t["scoring"]),
    ("prefill without scoring", lambda t: t["prefill"] - t["scoring"]),
    ("decode", lambda t: t["decode"]),
]
TIMING_COLORS = ["#9edae5", "#d62728", "#1f77b4", "#bcbd22"]


def method_color(method):
    return METHOD_COLORS.get(method, "#17becf")


# ------------------------------------------------------------------------------------------- record access


def group_info(results, group=0):
    """The group's dict from the unpruned record (every record of one comparison has the same groups)."""
    groups = results["none"]["groups"]
    if not 0 <= group < len(groups):
        raise ValueError(f"group {group} does not exist; this input has {len(groups)} group(s)")
    return groups[group]


def grid_of(g):
    t, h, w = g["grid"]
    return int(t), int(h), int(w)


def group_values(values, g):
    """A per-token vector of one group as float numbers (None -> NaN). `values` runs over all visual tokens
    (length N: the group's slice is taken) or over this group only (length count)."""
    if len(values) != g["count"]:
        values = values[g["offset"]:g["offset"] + g["count"]]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def to_grid(values, g):
    """A group's per-token vector (see group_values) -> array [t, h, w]: token n at (n // hw, n % hw // w, n % w)."""
    return group_values(values, g).reshape(grid_of(g))


def kept_vector(record, g):
    """1.0 where the token is kept for decoding (after every stage), 0.0 where pruned, over the group."""
    kept = np.zeros(g["count"])
    local = np.asarray(record["kept_indices"], dtype=int) - g["offset"]
    kept[local[(local >= 0) & (local < g["count"])]] = 1.0
    return kept


def first_stage_scores(results, method):
    """The method's first-stage scores over all visual tokens (None = already pruned), or None if unknown.

    From the method's own record when it was run with a pruning stage, otherwise from the unpruned record's
    `reference_scores` (every method scored at the prune layer without pruning). "none" has no scores."""
    record = results.get(method)
    if record and record.get("stages"):
        return record["stages"][0]["scores"]
    return (results["none"].get("reference_scores") or {}).get(method)


def average_ranks(values):
    """1-based ascending ranks, ties averaged (as Spearman needs)."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def percentiles(values):
    """Scores -> 0..100 within the vector (100 = highest, ties share a value); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    valid = ~np.isnan(values)
    n = int(valid.sum())
    if n == 1:
        out[valid] = 100.0
    elif n > 1:
        out[valid] = (average_ranks(values[valid]) - 1) / (n - 1) * 100
    return out


def descending_ranks(values):
    """1 = highest score, ties to the earlier token (the selection's order); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    ranks = np.full(values.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    order = valid[np.argsort(-values[valid], kind="stable")]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


# ----------------------------------------------------------------------------------------- shared drawing


def empty_figure(message, title=""):
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return fig


def frame_image(images, results, group=0, frame=0):
    """The PIL image under (group, frame): images are listed group after group, frame after frame."""
    groups = results["none"]["groups"]
    index = sum(grid_of(g)[0] for g in groups[:group]) + frame
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


def token_fields(scores, kept):
    """The standard hover fields of a method over one group: score, rank, percentile, kept."""
    ranks = descending_ranks(scores)
    scored = int((~np.isnan(scores)).sum())
    return {
        "score": fmt(scores),
        "rank": ["-" if np.isnan(k) else f"{int(k)} of {scored}" for k in ranks],
        "percentile": fmt(percentiles(scores), 3),
        "kept": ["yes" if k else "no" for k in kept],
    }


def grid_heatmap(z, text, hovertemplate="%{text}<extra></extra>", **style):
    h, w = z.shape
    return go.Heatmap(z=z, x=np.arange(w), y=np.arange(h), text=text, hovertemplate=hovertemplate, **style)


def mask_heatmap(kept_map, text, pruned_color=PRUNED_SHADE, kept_color="rgba(0,0,0,0)"):
    """1 = kept (kept_color), 0 = pruned (pruned_color)."""
    return grid_heatmap(kept_map, text, zmin=0, zmax=1, showscale=False,
                        colorscale=[[0, pruned_color], [1, kept_color]])


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
                                        xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=14)))
    return go.Figure(layout=dict(annotations=annotations, **layout))


def in_cell(trace, row, col, cols):
    """The trace placed on subplot (row, col) of a grid_figure."""
    i = (row - 1) * cols + col
    return trace.update(xaxis="x" if i == 1 else f"x{i}", yaxis="y" if i == 1 else f"y{i}")


def reference_line(fig, value, horizontal=False, text=None, dash="dot", color="#888"):
    """A dashed line across the plot at x = value (or y = value), with an optional label. Plain layout shapes:
    plotly's add_vline / add_hline are several milliseconds each."""
    line = dict(type="line", line=dict(dash=dash, color=color))
    if horizontal:
        line.update(xref="paper", x0=0, x1=1, yref="y", y0=value, y1=value)
    else:
        line.update(xref="x", x0=value, x1=value, yref="paper", y0=0, y1=1)
    fig.layout.shapes += (line,)
    if text:
        label = dict(text=text, showarrow=False, xanchor="right" if horizontal else "left", yanchor="bottom")
        label.update(dict(xref="paper", x=1, yref="y", y=value) if horizontal else
                     dict(xref="x", x=value, yref="paper", y=1))
        fig.layout.annotations += (label,)


def frame_note(g, frame):
    t = grid_of(g)[0]
    return f" (frame {frame + 1} of {t})" if t > 1 else ""


def check_frame(g, frame):
    t = grid_of(g)[0]
    if not 0 <= frame < t:
        raise ValueError(f"frame {frame} does not exist; this group has {t} frame(s)")


def method_record(results, method):
    if method not in results:
        raise ValueError(f"method {method!r} was not run in these results (have {', '.join(results)})")
    return results[method]


def layer_label(i, num_layers):
    return "decoder output" if i == num_layers else f"input of layer {i}"


# ----------------------------------------------------------------------------------------------- answers


def answers_table(results):
    reference = results["none"]["answer_ids"]
    rows = []
    for name, r in results.items():
        rows.append([
            name,
            r["answer"] or "(empty)",
            "reference" if name == "none" else ("yes" if r["answer_ids"] == reference else "no"),
            f"{len(r['kept_indices'])} / {r['visual_tokens']}",
            f"{r['budget']['average_kept']:.1f}" if r["budget"].get("average_kept") is not None else "-",
            f"{r['timings_ms']['prefill']:.1f}",
            f"{r['kv_cache_bytes'] / 2**20:.2f}",
        ])
    header = ["method", "answer", "same as unpruned", "visual tokens kept / total",
              "visual tokens per layer (average)", "prefill ms", "KV cache MiB"]
    colors = [method_color(row[0]) for row in rows]
    fig = go.Figure(go.Table(
        header=dict(values=[f"<b>{h}</b>" for h in header], align="left", fill_color="#e8e8e8"),
        cells=dict(values=list(map(list, zip(*rows))), align="left",
                   font=dict(color=[colors] + [["black"] * len(rows)] * (len(header) - 1))),
    ))
    notes = [note for r in results.values() for note in r.get("notes", [])]
    title = "Answers: unpruned vs pruned (KV cache measured after decoding)"
    if notes:  # e.g. a tie at the cut: the reader must know the selection was not the score's doing
        title += "".join(f"<br><sup>note: {note}</sup>" for note in dict.fromkeys(notes))
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50 + 18 * len(set(notes)), b=10))
    return fig


# ------------------------------------------------------------------------------------ importance & overlap


def importance_figure(results, images, method_a, method_b, frame=0, group=0):
    """Scores (as percentiles, one shared colour scale) over the image, and the kept masks below."""
    g = group_info(results, group)
    check_frame(g, frame)
    _, h, w = grid_of(g)
    methods = [method_a, method_b]
    kept = {m: kept_vector(method_record(results, m), g) for m in methods}
    titles = [f"{m}: score percentile (first stage)" for m in methods]
    titles += [f"{m}: kept {int(kept[m].sum())} of {g['count']} for decoding (dark = pruned)" for m in methods]
    fig = grid_figure(2, 2, titles)
    image = frame_image(images, results, group, frame)
    background = image_trace(image, h, w) if image is not None else None  # encoded once, drawn four times
    traces = []
    for col, m in enumerate(methods, start=1):
        raw = first_stage_scores(results, m)
        scores = group_values(raw, g) if raw is not None else np.full(g["count"], np.nan)
        text = hover_text(g, frame, token_fields(scores, kept[m]))
        for row in (1, 2):
            if background is not None:
                traces.append(in_cell(go.Image(background), row, col, 2))
        pct = to_grid(percentiles(scores), g)[frame]
        traces.append(in_cell(grid_heatmap(pct, text, coloraxis="coloraxis", opacity=0.6, name=m), 1, col, 2))
        traces.append(in_cell(mask_heatmap(to_grid(kept[m], g)[frame], text), 2, col, 2))
    fig.add_traces(traces)
    style_grid_axes(fig, h, w, rows=2, cols=2)
    fig.update_layout(
        title=f"Which visual tokens each method values{frame_note(g, frame)}",
        coloraxis=dict(colorscale=SCORE_SCALE, cmin=0, cmax=100,
                       colorbar=dict(title="score<br>percentile<br>(per method)", len=0.5, y=0.78)),
        height=760,
    )
    return fig


def overlap_counts(results, method_a, method_b, group=0):
    """{"both", "only A", "only B", "neither"} counts over one group (keys use the method names)."""
    g = group_info(results, group)
    a = kept_vector(method_record(results, method_a), g).astype(bool)
    b = kept_vector(method_record(results, method_b), g).astype(bool)
    return {"both": int((a & b).sum()), f"only {method_a}": int((a & ~b).sum()),
            f"only {method_b}": int((~a & b).sum()), "neither": int((~a & ~b).sum())}


def overlap_figure(results, images, method_a, method_b, frame=0, group=0):
    """One map: kept by both / only A / only B / neither (codes 3 / 1 / 2 / 0), counts over the whole group."""
    g = group_info(results, group)
    check_frame(g, frame)
    _, h, w = grid_of(g)
    a = kept_vector(method_record(results, method_a), g).astype(bool)
    b = kept_vector(method_record(results, method_b), g).astype(bool)
    codes = np.where(a & b, 3, np.where(a, 1, np.where(b, 2, 0)))
    counts = overlap_counts(results, method_a, method_b, group)
    labels = ["neither", f"only {method_a}", f"only {method_b}", "both"]
    colors = [OVERLAP_COLORS["neither"], _rgba(method_color(method_a), 0.6), _rgba(method_color(method_b), 0.6),
              OVERLAP_COLORS["both"]]
    scale = []
    for i, color in enumerate(colors):  # a stepped scale: code i fills [i/4, (i+1)/4]
        scale += [[i / 4, color], [(i + 1) / 4, color]]
    text = hover_text(g, frame, {"kept by": [labels[c] for c in codes]})
    fig = go.Figure()
    image = frame_image(images, results, group, frame)
    if image is not None:
        fig.add_trace(image_trace(image, h, w))
    fig.add_trace(grid_heatmap(to_grid(codes, g)[frame], text, zmin=-0.5, zmax=3.5, colorscale=scale, colorbar=dict(
        tickvals=[0, 1, 2, 3], ticktext=[f"{label} ({counts[label]})" for label in labels], title="kept by")))
    style_grid_axes(fig, h, w)
    summary = ", ".join(f"{label} {counts[label]}" for label in reversed(labels))
    fig.update_layout(title=f"Kept by {method_a} and/or {method_b}{frame_note(g, frame)}<br>"
                            f"<sup>{summary} (of {g['count']} tokens)</sup>", height=520)
    return fig


def _rgba(hex_color, alpha):
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def frame_counts(record, results):
    """[(label, kept count)] per frame of every group (one entry per image for image groups)."""
    groups = results["none"]["groups"]
    kept = set(record["kept_indices"])
    out = []
    for gi, g in enumerate(groups):
        t, h, w = grid_of(g)
        for f in range(t):
            start = g["offset"] + f * h * w
            count = len(kept.intersection(range(start, start + h * w)))
            name = f"frame {f + 1}" if t > 1 else f"image {gi + 1}"
            out.append((name if len(groups) == 1 or t == 1 else f"video {gi + 1} frame {f + 1}", count))
    return out


def frame_counts_figure(results, methods):
    fig = go.Figure()
    for m in methods:
        pairs = frame_counts(method_record(results, m), results)
        fig.add_trace(go.Bar(x=[p[0] for p in pairs], y=[p[1] for p in pairs], name=m, marker_color=method_color(m),
                             hovertemplate=f"{m}<br>%{{x}}: %{{y}} tokens kept<extra></extra>"))
    sizes = {grid_of(g)[1] * grid_of(g)[2] for g in results["none"]["groups"]}
    each = f" (each has {sizes.pop()} tokens)" if len(sizes) == 1 else ""
    fig.update_layout(barmode="group", title=f"Kept visual tokens per frame or image{each}",
                      xaxis_title="frame (or image)", yaxis_title="kept tokens")
    return fig


# ----------------------------------------------------------------------------------------------- spectra


def spectra_of(results, group=0):
    spectra = results["none"].get("spectra")
    if not spectra:
        return None
    group_info(results, group)
    return spectra[group]


NO_SPECTRA = "No spectra in this run (the unpruned run was made without diagnostics)."


def spectrum_heatmap(results, group=0):
    spec = spectra_of(results, group)
    if spec is None:
        return empty_figure(NO_SPECTRA, "Spatial spectrum per layer")
    radial = np.array(spec["radial"], dtype=float)  # [layer entries, radius bins]
    num_layers = results["none"]["num_layers"]
    layers = spec["layers"]
    z = np.log10(np.maximum(radial, 1e-30))
    text = [[f"{layer_label(i, num_layers)}<br>radius {r}<br>power {radial[k, r]:.4g}" for r in range(z.shape[1])]
            for k, i in enumerate(layers)]
    fig = go.Figure(go.Heatmap(z=z, x=np.arange(z.shape[1]), y=layers, text=text, colorscale="Magma",
                               hovertemplate="%{text}<extra></extra>", colorbar=dict(title="log10 power")))
    _mark_layers(fig, results, horizontal=True)
    fig.update_layout(title="Spatial power spectrum of the visual tokens, layer by layer<br><sup>radially averaged "
                            "(0 = the mean over the image, higher = finer detail); last row = decoder output</sup>",
                      xaxis_title="radial frequency (bins from the centre of the 2-D spectrum)",
                      yaxis=dict(title="hidden states entering layer", autorange="reversed", tickvals=layers,
                                 ticktext=["out" if i == num_layers else str(i) for i in layers]))
    return fig


def _mark_layers(fig, results, horizontal=False):
    """Dashed lines at the reference layer L and the pruning layer K."""
    r = results["none"]
    for layer, name in ((r["ref_layer"], "L (reference)"), (r["prune_layer"], "K (prune)")):
        reference_line(fig, layer, horizontal, f"{name} = {layer}", dash="dash", color="#444")


def spectrum_curves(results, layers=None, group=0):
    spec = spectra_of(results, group)
    if spec is None:
        return empty_figure(NO_SPECTRA, "Spectrum curves")
    num_layers = results["none"]["num_layers"]
    if layers is None:
        layers = [0, results["none"]["prune_layer"], num_layers]
    fig = go.Figure()
    for i in dict.fromkeys(layers):  # unique, in order
        power = spec["radial"][i]
        fig.add_trace(go.Scatter(x=list(range(len(power))), y=power, mode="lines+markers",
                                 name=layer_label(i, num_layers)))
    fig.update_layout(title="Radial power spectrum at chosen layers", xaxis_title="radial frequency (bins)",
                      yaxis_title="power (log scale)", yaxis_type="log")
    return fig


def highpass_maps_figure(results, group=0, frame=0):
    """The per-token high-pass magnitude s(z) at each layer entry, with a slider over layers.

    The slider restyles the one heatmap (method "update") instead of animating go.Frames: Gradio's gr.Plot
    hands Plotly only data/layout/config and drops frames, so an "animate" slider would do nothing there."""
    spec = spectra_of(results, group)
    if spec is None:
        return empty_figure(NO_SPECTRA, "High-pass magnitude per layer")
    g = group_info(results, group)
    check_frame(g, frame)
    _, h, w = grid_of(g)
    num_layers = results["none"]["num_layers"]
    maps = [to_grid(values, g)[frame] for values in spec["highpass"]]
    start = min(results["none"]["prune_layer"], len(maps) - 1)

    def title(i):
        return (f"High-pass magnitude per token, {layer_label(i, num_layers)}{frame_note(g, frame)} "
                "(colour scale per layer)")

    # The hover text (token, row, column) is the same at every layer; only z changes with the slider.
    fig = go.Figure(grid_heatmap(maps[start], hover_text(g, frame, {}), colorscale="Inferno",
                                 hovertemplate="%{text}<br>high-pass magnitude: %{z:.4g}<extra></extra>",
                                 colorbar=dict(title="|high-pass|")))
    steps = [dict(method="update", label="out" if i == num_layers else str(i),
                  args=[{"z": [maps[i]]}, {"title.text": title(i)}]) for i in range(len(maps))]
    fig.update_layout(title=title(start), height=560, sliders=[dict(
        active=start, steps=steps, currentvalue=dict(prefix="layer: "), pad=dict(t=30))])
    style_grid_axes(fig, h, w)
    return fig


def highfreq_share_figure(results):
    spectra = results["none"].get("spectra")
    if not spectra:
        return empty_figure(NO_SPECTRA, "High-frequency share per layer")
    num_layers = results["none"]["num_layers"]
    fig = go.Figure()
    for gi, spec in enumerate(spectra):
        fig.add_trace(go.Scatter(x=spec["layers"], y=spec["highfreq_share"], mode="lines+markers",
                                 name=f"group {gi + 1} ({results['none']['groups'][gi]['kind']})",
                                 text=[layer_label(i, num_layers) for i in spec["layers"]],
                                 hovertemplate="%{text}<br>share %{y:.3f}<extra></extra>"))
    _mark_layers(fig, results)
    fig.update_layout(title="Share of spectral energy passed by the CLSE high-pass mask, per layer",
                      xaxis_title=f"hidden states entering layer ({num_layers} = decoder output)",
                      yaxis_title="high-frequency share (0..1)")
    return fig


def evolution_map(results, images, group=0, frame=0):
    """|s_K - s_L| per token (the numerator of CLSE's evolution intensity) over the image."""
    spec = spectra_of(results, group)
    if spec is None:
        return empty_figure(NO_SPECTRA, "Spectral evolution map")
    g = group_info(results, group)
    check_frame(g, frame)
    _, h, w = grid_of(g)
    k, ref = results["none"]["prune_layer"], results["none"]["ref_layer"]
    s_k, s_l = group_values(spec["highpass"][k], g), group_values(spec["highpass"][ref], g)
    change = np.abs(s_k - s_l)
    intensity = np.minimum(change / (np.mean(s_l) + s_l + 1e-6), 1.0)  # CLSE's E_i (method.md, step 2)
    text = hover_text(g, frame, {"|s_K - s_L|": fmt(change), f"s at layer L={ref}": fmt(s_l),
                                 f"s at layer K={k}": fmt(s_k), "evolution intensity E": fmt(intensity)})
    fig = go.Figure()
    image = frame_image(images, results, group, frame)
    if image is not None:
        fig.add_trace(image_trace(image, h, w))
    fig.add_trace(grid_heatmap(to_grid(change, g)[frame], text, colorscale="Inferno", opacity=0.65,
                               colorbar=dict(title="|s_K - s_L|")))
    style_grid_axes(fig, h, w)
    fig.update_layout(title=f"How much each token's high-frequency content changed between layer L={ref} and "
                            f"K={k}{frame_note(g, frame)}<br><sup>CLSE keeps the tokens that changed most "
                            "(after normalising by s_L)</sup>", height=520)
    return fig


# ------------------------------------------------------------------------------------------ positional bias


def rank_correlation(scores, positions):
    """Spearman's rho (Pearson correlation of ranks, ties averaged), numpy only. Pairs with a None/NaN are
    dropped; NaN if fewer than 2 pairs remain or either side is constant."""
    x = np.array([np.nan if v is None else v for v in scores], dtype=float)
    y = np.array([np.nan if v is None else v for v in positions], dtype=float)
    valid = ~(np.isnan(x) | np.isnan(y))
    if valid.sum() < 2:
        return float("nan")
    rx, ry = average_ranks(x[valid]), average_ranks(y[valid])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def method_group_scores(results, method, group=0):
    raw = first_stage_scores(results, method)
    return None if raw is None else group_values(raw, group_info(results, group))


def bias_summary(results, methods, group=0):
    """{method: Spearman of its first-stage scores with the raster index} (None where undefined); methods
    without scores (e.g. "none") are left out."""
    out = {}
    for m in methods:
        scores = method_group_scores(results, m, group)
        if scores is not None:
            rho = rank_correlation(scores, np.arange(len(scores)))
            out[m] = None if np.isnan(rho) else rho
    return out


def _rho_label(m, rho):
    return f"{m} (Spearman {rho:+.2f})" if not np.isnan(rho) else f"{m} (Spearman n/a)"


def position_scatter(results, methods, group=0):
    fig = go.Figure()
    for m in methods:
        scores = method_group_scores(results, m, group)
        if scores is None:
            continue
        index = np.arange(len(scores))
        valid = ~np.isnan(scores)
        rho = rank_correlation(scores, index)
        fig.add_trace(go.Scatter(x=index[valid], y=percentiles(scores)[valid], mode="markers", name=_rho_label(m, rho),
                                 marker=dict(color=method_color(m), size=5, opacity=0.6),
                                 hovertemplate=f"{m}<br>token %{{x}}<br>percentile %{{y:.1f}}<extra></extra>"))
    fig.update_layout(title="Score against position in the sequence<br><sup>a method whose score rises with the "
                            "index favours late tokens (bottom of the image) whatever they show</sup>",
                      xaxis_title="raster index within the image (0 = top-left, frame after frame)",
                      yaxis_title="score percentile (per method)", yaxis_range=[-3, 103])
    return fig


def row_profile(results, methods, group=0):
    g = group_info(results, group)
    t, h, w = grid_of(g)
    fig = go.Figure()
    for m in methods:
        scores = method_group_scores(results, m, group)
        if scores is None:
            continue
        by_row = percentiles(scores).reshape(t, h, w).transpose(1, 0, 2).reshape(h, t * w)
        counts = (~np.isnan(by_row)).sum(axis=1)
        mean = np.where(counts > 0, np.nansum(by_row, axis=1) / np.maximum(counts, 1), np.nan)
        rho = rank_correlation(scores, np.arange(len(scores)))
        fig.add_trace(go.Scatter(x=np.arange(h), y=mean, mode="lines+markers", name=_rho_label(m, rho),
                                 line_color=method_color(m),
                                 hovertemplate=f"{m}<br>row %{{x}}: mean percentile %{{y:.1f}}<extra></extra>"))
    reference_line(fig, 50, horizontal=True, text="no preference (50)")
    fig.update_layout(title="Mean score percentile by image row (legend: Spearman with the raster index)",
                      xaxis_title="image row (0 = top)", yaxis_title="mean score percentile", yaxis_range=[0, 100])
    return fig


def mirror_rows(indices, g):
    """Visual indices of a group's upside-down image mapped to the original orientation (row r -> h-1-r)."""
    _, h, w = grid_of(g)
    out = []
    for n in indices:
        local = n - g["offset"]
        if 0 <= local < g["count"]:
            f, rest = divmod(local, h * w)
            r, c = divmod(rest, w)
            out.append(g["offset"] + f * h * w + (h - 1 - r) * w + c)
    return out


def iou(a, b):
    a, b = set(a), set(b)
    union = a | b
    return len(a & b) / len(union) if union else float("nan")


def flip_test(results, flipped_results, methods, group=0, frame=0):
    """(figure, {method: {"follows_content", "stays_in_place"}}) comparing a run with the run on the image
    flipped upside down. follows_content = IoU(kept, flipped kept mapped back), stays_in_place = IoU(kept,
    flipped kept as is), over the group's tokens kept for decoding (all frames). Only `kept_indices` of the
    flipped records is read. Methods missing from either run are skipped; `frame` picks the frame drawn."""
    g = group_info(results, group)
    _, h, w = grid_of(g)
    in_group = range(g["offset"], g["offset"] + g["count"])  # a range: membership is O(1)
    numbers, masks = {}, []
    for m in methods:
        if m not in results or m not in flipped_results:
            continue
        kept = [n for n in results[m]["kept_indices"] if n in in_group]
        flipped = [n for n in flipped_results[m]["kept_indices"] if n in in_group]
        mapped = mirror_rows(flipped, g)
        numbers[m] = {"follows_content": iou(kept, mapped), "stays_in_place": iou(kept, flipped)}
        masks.append((m, kept, mapped))
    if not masks:
        return empty_figure("No method to compare in the flip test.", "Flip test"), numbers
    titles = []
    for m, _, _ in masks:
        n = numbers[m]
        titles += [f"{m}: kept on the original",
                   f"{m}: flipped run, mapped back<br>follows content {n['follows_content']:.2f} · "
                   f"stays in place {n['stays_in_place']:.2f}"]
    fig = grid_figure(len(masks), 2, titles, horizontal_spacing=0.2 / 2,
                      vertical_spacing=0.12 / max(len(masks), 1))
    traces = []
    for row, (m, kept, mapped) in enumerate(masks, start=1):
        for col, indices in ((1, kept), (2, mapped)):
            vector = kept_vector({"kept_indices": indices}, g)
            text = hover_text(g, frame, {"kept": ["yes" if v else "no" for v in vector]})
            traces.append(in_cell(mask_heatmap(to_grid(vector, g)[frame], text, pruned_color="#eeeeee",
                                               kept_color=method_color(m)), row, col, 2))
    fig.add_traces(traces)
    style_grid_axes(fig, h, w, rows=len(masks), cols=2)
    fig.update_layout(title="Flip test: the same question on the image turned upside down<br><sup>content-driven: "
                            "follows content > stays in place; position-biased: the reverse</sup>",
                      height=max(420, 330 * len(masks)))
    return fig, numbers


def sweep_figure(sweep):
    """Recall of an object's tokens as the object moves from the top (0) to the bottom (1) of the image."""
    fig = go.Figure()
    for m, recall in sweep["recall"].items():
        fig.add_trace(go.Scatter(x=sweep["positions"], y=recall, mode="lines+markers", name=m,
                                 line_color=method_color(m)))
    fig.update_layout(title="Object sweep: share of the object's tokens kept as it moves down the image",
                      xaxis_title="object centre row (0 = top, 1 = bottom)", yaxis_title="share of object tokens kept",
                      yaxis_range=[0, 1.05])
    return fig


# --------------------------------------------------------------------------------------------------- cost


def cost_figure(results):
    names = list(results)
    fig = go.Figure()
    for (label, part), color in zip(TIMING_PARTS, TIMING_COLORS):
        values = [part(results[m]["timings_ms"]) for m in names]
        fig.add_trace(go.Bar(y=names, x=values, name=label, orientation="h", marker_color=color,
                             hovertemplate=f"%{{y}}<br>{label}: %{{x:.1f}} ms<extra></extra>"))
    totals = [results[m]["timings_ms"]["total"] for m in names]
    fig.add_trace(go.Scatter(y=names, x=totals, mode="text", text=[f" {t:.0f} ms" for t in totals],
                             textposition="middle right", showlegend=False, hoverinfo="skip"))
    fig.update_layout(barmode="stack", title="Where the time goes, per method (measured on the machine that ran "
                                             "this request; the vision encoder ran once and is shared)",
                      xaxis_title="milliseconds", yaxis_title="method", yaxis_autorange="reversed")
    return fig


def tokens_per_layer_figure(results):
    fig = go.Figure()
    for m, r in results.items():
        layers = list(range(len(r["tokens_per_layer"])))
        fig.add_trace(go.Scatter(x=layers, y=r["tokens_per_layer"], mode="lines+markers", line_shape="hv", name=m,
                                 line_color=method_color(m), customdata=r["visual_per_layer"],
                                 hovertemplate=f"{m}<br>layer %{{x}}: %{{y}} tokens (%{{customdata}} visual)"
                                               "<extra></extra>"))
    _mark_layers(fig, results)
    fig.update_layout(title="Sequence length entering each decoder layer", xaxis_title="decoder layer",
                      yaxis_title="tokens (text + visual)")
    return fig


def efficiency_figure(results):
    base = results["none"]
    names = list(results)
    flops = [results[m]["flops"]["prefill"] / base["flops"]["prefill"] for m in names]
    kv = [results[m]["kv_cache_bytes_prefill"] / base["kv_cache_bytes_prefill"] for m in names]
    formula = base["flops"].get("formula", "")
    fig = go.Figure()
    for label, values, color in (("prefill FLOPs", flops, "#1f77b4"), ("KV cache after prefill", kv, "#ff7f0e")):
        fig.add_trace(go.Bar(x=names, y=values, name=label, marker_color=color, text=[f"{v:.2f}x" for v in values],
                             textposition="outside", customdata=[formula] * len(names),
                             hovertemplate=f"%{{x}}<br>{label}: %{{y:.3f}} of unpruned<br>%{{customdata}}"
                                           "<extra></extra>"))
    reference_line(fig, 1, horizontal=True)
    fig.update_layout(barmode="group", title=f"Cost relative to unpruned (1 = same as unpruned)<br><sup>FLOPs {formula}"
                                             "</sup>", xaxis_title="method", yaxis_title="fraction of unpruned",
                      yaxis_range=[0, 1.2])
    return fig

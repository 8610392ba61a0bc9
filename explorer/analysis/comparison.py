"""The numbers the page shows, computed once from the records of one comparison. figures.py only draws them.

Input is plain data: the page's payload, {"results": {method: record.to_json()}, ...} (the "none" record is
always there and alone carries `spectra` and `reference_scores`), plus, once the page's diagnostic runs are
done, "flipped_kept_indices" (the flip test's kept sets) and "positional_sweep". Nothing assumes a grid size:
every map reads its group's `grid` [t, h, w], `offset` (first visual index of the group) and `count`.

Conventions used throughout:
- visual token n of a group (0 .. t*h*w - 1) sits in frame n // (h*w), row (n % (h*w)) // w, column n % w;
  `kept_indices` and hover texts use the global visual index (offset + n);
- scores are compared across methods as percentiles within the group (100 = the method's highest score),
  because raw CLSE scores (0..1 sigmoids) and attention weights live on unrelated scales;
- "rank" is 1 for the highest score, ties going to the earlier token, exactly as the selection does.

`Analysis` reads its payload and never writes to it; it computes each number on first use and keeps it
(functools.cached_property): the page builds one per request, draws the answers from it as soon as they exist,
and the frame slider redraws from the same object without computing anything again.
"""

import functools

import numpy as np

from explorer.analysis.stats import descending_ranks, percentiles, rank_correlation
from explorer.methods.scoring import evolution_intensity

TIMING_PARTS = [  # (label, timing names it is made of); the parts add up to timings_ms["total"]
    ("vision encoder", ("vision_encoder",)),
    ("scoring (the method itself)", ("scoring",)),
    ("prefill without scoring", ("prefill", "-scoring")),
    ("decode", ("decode",)),
]


# ------------------------------------------------------------------------------------------- record access


# A token that won by less than this many logits had its runner-up at over 90% of its probability (e^-0.1): a
# close call that another dtype, device or kernel can decide the other way (measured: the embedded model's pruned
# answers on scene_205 at 64 of 256 tokens won by 0.009 logits in float32 and flipped in bfloat16, same kept set)
NEAR_TIE = 0.1


def closest_call(margins):
    """(the smallest margin of an answer's tokens, the 1-based token it belongs to), or None without margins
    (records from before they were kept)."""
    if not margins:
        return None
    i = min(range(len(margins)), key=lambda k: margins[k])
    return float(margins[i]), i + 1


def close_call_kind(call):
    """"a tie" (margin 0), "a near tie" (under NEAR_TIE) or None, for an answer's closest call (closest_call)."""
    if call is None or call[0] >= NEAR_TIE:
        return None
    return "a tie" if call[0] == 0 else "a near tie"


def runner_up_share(margin):
    """The runner-up's probability as a share of the token's, e^-margin, to whole percent; closer to 100% with a
    decimal, never "100%" for a token that did win (0.00285 logits: "99.7%", not "100%")."""
    share = float(np.exp(-margin))
    return f"{share:.0%}" if share < 0.995 else f"{share:.1%}" if share < 0.9995 else "over 99.9%"


def close_call_note(method, call, turn=1):
    """The sentence for an answer whose closest call (closest_call) was a tie or a near tie, else None."""
    kind = close_call_kind(call)
    if kind is None:
        return None
    margin, token = call
    won = "tied with the runner-up (the decoding took the one first in the vocabulary)" if kind == "a tie" else (
        f"won by {margin:.3g} logits (the runner-up at {runner_up_share(margin)} of its probability)")
    where = f"{method}'s answer" + (f" to question {turn}" if turn > 1 else "")
    return (f"{where} was a close call: its token {token} {won}; another dtype, device or kernel may answer "
            "otherwise")


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


def kept_vector(kept_indices, g):
    """1.0 where the token is in kept_indices (global visual indices), 0.0 elsewhere, over the group."""
    kept = np.zeros(g["count"])
    local = np.asarray(kept_indices, dtype=int) - g["offset"]
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


def check_frame(g, frame):
    t = grid_of(g)[0]
    if not 0 <= frame < t:
        raise ValueError(f"frame {frame} does not exist; this group has {t} frame(s)")


def row_means(percentile_values, grid):
    """Mean of a group's per-token values by image row (all frames together); NaN where a row has none."""
    t, h, w = grid
    by_row = np.asarray(percentile_values).reshape(t, h, w).transpose(1, 0, 2).reshape(h, t * w)
    counts = (~np.isnan(by_row)).sum(axis=1)
    return np.where(counts > 0, np.nansum(by_row, axis=1) / np.maximum(counts, 1), np.nan)


# ------------------------------------------------------------------------------------ sets and flip test


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


def chance_iou(k, n):
    """The IoU two independent random sets of k of n tokens have on average (about k / (2n - k)): what the flip
    test's two numbers are worth when a score knows neither the content nor the position."""
    if not 0 < k <= n:
        return float("nan")
    if k == n:
        return 1.0
    # E[|A & B|] = k^2 / n for two random k-sets; IoU = inter / (2k - inter), taken at the mean
    inter = k * k / n
    return inter / (2 * k - inter)


def frame_counts(kept_indices, groups):
    """[(label, kept count)] per frame of every group (one entry per image for image groups)."""
    kept = set(kept_indices)
    out = []
    for gi, g in enumerate(groups):
        t, h, w = grid_of(g)
        for f in range(t):
            start = g["offset"] + f * h * w
            count = len(kept.intersection(range(start, start + h * w)))
            name = f"frame {f + 1}" if t > 1 else f"image {gi + 1}"
            out.append((name if len(groups) == 1 or t == 1 else f"video {gi + 1} frame {f + 1}", count))
    return out


def overlap_codes(kept_a, kept_b):
    """Per token: 3 = kept by both, 1 = only A, 2 = only B, 0 = neither (kept vectors of 0/1)."""
    a, b = np.asarray(kept_a, dtype=bool), np.asarray(kept_b, dtype=bool)
    return np.where(a & b, 3, np.where(a, 1, np.where(b, 2, 0)))


# -------------------------------------------------------------------------------------------- the analysis


COMPARISONS = {"single": "controlled: every method scores at one stage and keeps the same count (isolates the "
                         "score; not how each method's authors run it)",
               "paper": "CLSE's paper schedule for every method (its later stages by each method's own later scorer)"}


def how_it_ran(record):
    """One line from a record: its stages' layers and counts, and whether this is the method as its authors run
    it or its score at the controlled stage."""
    stages = record.get("stages") or []
    if not stages:
        return "reference (unpruned)"
    layers = "/".join(str(s["layer"]) for s in stages)
    counts = "/".join(str(sum(s["keep_counts"])) for s in stages)
    merged = sum(len(s.get("merged") or {}) for s in stages)
    what = {"single": "its score at one stage (controlled)", "paper": "the paper's stages",
            "official": "as its authors run it (official)"}.get(record.get("schedule"), record.get("schedule", ""))
    return f"{what}: layer {layers}, kept {counts}" + (f", {merged} merged" if merged else "")


def _none_if_nan(value):
    return None if value is None or np.isnan(value) else float(value)


def with_numbers(result, pair=None):
    """A complete result (the comparison and its diagnostics) with what its analysis adds to the JSON:
    "flip_test" and "positional_bias" (of the first group). A new mapping: the given one is not changed."""
    numbers = Analysis(result, pair=pair)
    return {**result, "flip_test": numbers.flip_numbers(), "positional_bias": numbers.bias_summary()}


class Analysis:
    """Every number of the page for one comparison and one group, each computed on first use.

    payload: {"results": ..., optional "flipped_kept_indices", "positional_sweep"}; pair: the two methods
    compared side by side (default: the first two pruned methods of the results, or one method twice)."""

    def __init__(self, payload, pair=None, group=0, turn=0):
        self.payload = payload
        self.results = payload["results"]
        self.group = group
        self.turn = turn  # the conversation's turn whose kept sets the maps show (reprune: each its own)
        self.g = group_info(self.results, group)
        self.grid = grid_of(self.g)
        self.methods_run = [m for m in self.results if m != "none"]
        if pair is None:  # A and B; one method compared with itself when only one was run
            run = self.methods_run or ["none"]
            pair = (run[0], run[1 if len(run) > 1 else 0])
        self.pair = tuple(pair)
        for m in self.pair:
            if m not in self.results:
                raise ValueError(f"method {m!r} was not run in these results (have {', '.join(self.results)})")

    @property
    def none(self):
        return self.results["none"]

    # ---- answers

    @functools.cached_property
    def answers(self):
        """One row per turn of the conversation and method (the first turn's rows first): what the answers
        panel shows. "same" compares with the unpruned answer of the same turn; "stage_kept" is the count kept
        after each pruning stage (several in a multi-stage schedule); "prefill_spread" the fastest and slowest
        of the timed repeats (None for one run); "recall" the share of the asked object's tokens kept (ground
        truth of a generated example; None elsewhere). With the follow-ups asked in both modes, each follow-up
        has a row per mode and method ("mode")."""
        rows = []
        for name, r in self.results.items():
            budget = r.get("budget") or {}
            spread = (r.get("timings_spread_ms") or {}).get("prefill")
            rows.append({
                "method": name, "turn": 1, "question": r.get("question", ""),
                "answer": r["answer"],
                "same": None if name == "none" else r["answer_ids"] == self.none["answer_ids"],
                "kept": len(r["kept_indices"]),
                "stage_kept": [sum(s["keep_counts"]) for s in r.get("stages") or []],
                "visual_tokens": r["visual_tokens"],
                "nominal": None if name == "none" else budget.get("nominal"),  # the unpruned run has no budget
                "average_kept": budget.get("average_kept"),
                "prefill_ms": r["timings_ms"]["prefill"],
                "prefill_spread": tuple(spread) if spread else None,
                "repeats": int(r.get("repeats") or 1),
                "kv_cache_mib": r["kv_cache_bytes"] / 2**20,
                "how": how_it_ran(r),
                "recall": self.recall.get(name),
                "mode": None,
                "closest": closest_call(r.get("answer_margins")),
            })
        reference_turns = self.none.get("turns") or []
        other = self.payload.get("other_mode_turns") or {}  # the follow-ups asked in the other mode too
        for t in range(1, len(reference_turns)):
            for name, r in self.results.items():
                turn = (r.get("turns") or [])[t] if len(r.get("turns") or []) > t else None
                if turn is None:
                    continue
                mode = (r.get("settings") or {}).get("follow_up_mode", "keep")
                versions = [(mode, turn)]
                if name != "none" and other.get("mode") and len(other["turns"].get(name) or []) > t:
                    versions.append((other["mode"], other["turns"][name][t]))
                for version_mode, version in versions:
                    rows.append({
                        "method": name, "turn": t + 1, "question": version["question"], "answer": version["answer"],
                        "same": None if name == "none" else
                        version["answer_ids"] == reference_turns[t]["answer_ids"],
                        "kept": len(version["kept_indices"]), "stage_kept": [], "visual_tokens": r["visual_tokens"],
                        "nominal": None, "average_kept": None, "prefill_ms": version["timings_ms"]["prefill"],
                        "prefill_spread": None, "repeats": 1,
                        "kv_cache_mib": version["kv_cache_bytes"] / 2**20,
                        "how": ("full cache" if name == "none" else
                                "pruned again for this question (reprune)" if version_mode == "reprune" else
                                "on the first question's pruned cache (keep)"),
                        "recall": None, "mode": None if name == "none" else version_mode,
                        "closest": closest_call(version.get("answer_margins")),
                    })
        return rows

    @functools.cached_property
    def timed_once(self):
        """Whether the timings come from one run each (no spread to show: the reader must be told)."""
        return all(not (r.get("timings_spread_ms") or {}) for r in self.results.values())

    @functools.cached_property
    def turns(self):
        """How many turns the conversation has (1 without follow-ups)."""
        return max(1, len(self.none.get("turns") or []))

    @functools.cached_property
    def grid_names(self):
        """What the page calls each visual group: its family-given name, or image / video and its number."""
        groups = self.none["groups"]
        names = []
        for gi, g in enumerate(groups):
            name = g.get("name") or ""
            label = f"{g['kind']} {gi + 1}" + (f": {name}" if name else "") if len(groups) > 1 else (name or g["kind"])
            names.append(label)
        return names

    @functools.cached_property
    def notes(self):
        """Every record's notes, each once (unknown words, ties at the cut, renamed methods...), then the answers
        that were close calls (close_call_note)."""
        notes = [*(self.payload.get("page_notes") or []),
                 *(n for r in self.results.values() for n in r.get("notes") or [])]
        for row in self.answers:
            method = row["method"] + (f" ({row['mode']})" if row.get("mode") else "")
            notes.append(close_call_note(method, row["closest"], row["turn"]))
        return list(dict.fromkeys(n for n in notes if n))

    @functools.cached_property
    def settings_used(self):
        """Which comparison this is (controlled, the paper's schedule, or official) and 'K=1, L=0, KV cache
        before K: prune' as the pruned records report them (None when none was pruned)."""
        pruned = [r for m, r in self.results.items() if m != "none" and r.get("stages")]
        if not pruned:
            return None
        r = pruned[0]
        schedule = r.get("schedule", "single")
        if schedule == "official":
            text = ("official: each method as its authors run it (its own layers, counts and KV policy: see 'how "
                    "it ran'); compare them at the real average of visual tokens kept per layer")
        else:
            text = (COMPARISONS[schedule] + f", K={r['prune_layer']}, L={r['ref_layer']}"
                    + (f", KV cache before K: {r['early_kv']}" if r.get("early_kv") else ""))
        return text + (", inverted (lowest-ranked tokens kept)" if any(p.get("invert") for p in pruned) else "")

    @functools.cached_property
    def runs_on(self):
        """'cpu, float32' from the records (None when they do not say)."""
        parts = [self.none.get("device"), self.none.get("dtype")]
        return ", ".join(str(p) for p in parts if p) or None

    # ---- scores, ranks, kept sets

    @functools.cached_property
    def scores(self):
        """{method: first-stage scores over the group (NaN = not scored)} for every method with scores: the
        methods run first, then those only scored in the unpruned run's reference_scores."""
        names = dict.fromkeys(self.methods_run + list(self.none.get("reference_scores") or {}))
        raw = {m: first_stage_scores(self.results, m) for m in names}
        return {m: group_values(values, self.g) for m, values in raw.items() if values is not None}

    @functools.cached_property
    def percentiles(self):
        return {m: percentiles(s) for m, s in self.scores.items()}

    @functools.cached_property
    def ranks(self):
        return {m: descending_ranks(s) for m, s in self.scores.items()}

    def scores_of(self, method):
        """The method's scores over the group, all NaN when it has none (e.g. "none")."""
        return self.scores.get(method, np.full(self.g["count"], np.nan))

    def percentiles_of(self, method):
        return self.percentiles.get(method, np.full(self.g["count"], np.nan))

    def ranks_of(self, method):
        return self.ranks.get(method, np.full(self.g["count"], np.nan))

    @functools.cached_property
    def kept(self):
        """{method: 1.0 kept for decoding / 0.0 pruned, over the group} for every method run, at this turn (its
        own kept set in reprune mode; the first question's in keep mode)."""
        out = {}
        for m, r in self.results.items():
            turns = r.get("turns") or []
            indices = turns[self.turn]["kept_indices"] if len(turns) > self.turn else r["kept_indices"]
            out[m] = kept_vector(indices, self.g)
        return out

    @functools.cached_property
    def merged(self):
        """{method: {group-local index of a kept merged token: [group-local indices of the originals it stands
        for]}} (official schedules of merging methods; empty elsewhere)."""
        offset, count = self.g["offset"], self.g["count"]
        return {m: {int(n) - offset: [a - offset for a in absorbed]
                    for n, absorbed in (r.get("merged") or {}).items() if 0 <= int(n) - offset < count}
                for m, r in self.results.items()}

    def kept_map(self, method):
        """1 kept, 0.5 kept as a merged token, 0 pruned, over the group (the kept masks' three shades)."""
        kept = self.kept[method].copy()
        kept[list(self.merged.get(method, {}))] = 0.5
        return kept

    def merge_notes(self, method):
        """Per token of the group, what merging did to it: '' (nothing), 'merged token: stands for ...' or
        'merged into token n'."""
        notes = [""] * self.g["count"]
        for centre, absorbed in self.merged.get(method, {}).items():
            notes[centre] = f"merged token: stands for {len(absorbed)} ({', '.join(map(str, absorbed[:12]))}" + (
                ", ..." if len(absorbed) > 12 else "") + ")"
            for a in absorbed:
                if a != centre:
                    notes[a] = f"merged into token {centre + self.g['offset']}"
        return notes

    @functools.cached_property
    def overlap(self):
        """{"codes": per-token code (see overlap_codes), "counts": {"both", "only A", "only B", "neither"}}."""
        a, b = self.pair
        codes = overlap_codes(self.kept[a], self.kept[b])
        counts = {"both": int((codes == 3).sum()), f"only {a}": int((codes == 1).sum()),
                  f"only {b}": int((codes == 2).sum()), "neither": int((codes == 0).sum())}
        return {"codes": codes, "counts": counts}

    @functools.cached_property
    def frame_counts(self):
        return {m: frame_counts(self.results[m]["kept_indices"], self.none["groups"]) for m in self.methods_run}

    # ---- positional bias

    @functools.cached_property
    def spearman(self):
        """{method: Spearman of its first-stage scores with the raster index} (NaN where undefined)."""
        return {m: rank_correlation(s, np.arange(len(s))) for m, s in self.scores.items()}

    @functools.cached_property
    def row_means(self):
        """{method: mean score percentile by image row}."""
        return {m: row_means(p, self.grid) for m, p in self.percentiles.items()}

    def bias_summary(self):
        """The payload's "positional_bias": {method run: Spearman or None}."""
        return {m: _none_if_nan(self.spearman[m]) for m in self.methods_run if m in self.spearman}

    @functools.cached_property
    def flip(self):
        """{method: {"follows_content", "stays_in_place", "kept", "mapped"}} from the flip test's kept sets:
        follows_content = IoU(kept, flipped kept mapped back), stays_in_place = IoU(kept, flipped kept as
        is), over the group's tokens kept for decoding (all frames). Empty before the flip test ran."""
        flipped = self.payload.get("flipped_kept_indices") or {}
        in_group = range(self.g["offset"], self.g["offset"] + self.g["count"])  # a range: membership is O(1)
        out = {}
        for m in self.methods_run:
            if m not in flipped:
                continue
            kept = [n for n in self.results[m]["kept_indices"] if n in in_group]
            flipped_kept = [n for n in flipped[m] if n in in_group]
            mapped = mirror_rows(flipped_kept, self.g)
            out[m] = {"follows_content": iou(kept, mapped), "stays_in_place": iou(kept, flipped_kept),
                      "kept": kept, "mapped": mapped, "chance": chance_iou(len(kept), self.g["count"])}
        return out

    def flip_numbers(self):
        """The payload's "flip_test": {method: {"follows_content", "stays_in_place", "chance"}}."""
        return {m: {"follows_content": n["follows_content"], "stays_in_place": n["stays_in_place"],
                    "chance": n["chance"]} for m, n in self.flip.items()}

    @property
    def sweep(self):
        return self.payload.get("positional_sweep")

    # ---- CLSE's factors, the stages, the ground truth

    @functools.cached_property
    def factors(self):
        """CLSE's first-stage score split into its factors, from the unpruned run's scores at the same K and L:
        {"spectral factor": clse_spectral's score, "attention": FastV's score (the last prompt token's attention
        at K-1, the factor CLSE multiplies by), "product (clse)": clse}, each over the group, with its
        Spearman with the raster index; None where the run scored none of them."""
        names = {"spectral factor": "clse_spectral", "attention": "fastv", "product (clse)": "clse"}
        out = {label: m for label, m in names.items() if m in self.scores}
        if not out:
            return None
        return {label: {"method": m, "scores": self.scores[m], "percentiles": self.percentiles[m],
                        "spearman": self.spearman[m]} for label, m in out.items()}

    @functools.cached_property
    def stages(self):
        """{method of the pair: [{"layer", "scorer", "scores" (over the group, NaN = already pruned),
        "kept" (1/0 over the group after the stage)}]}: the stage slider's views (one entry for a single stage)."""
        out = {}
        for m in self.pair:
            views = []
            for i, stage in enumerate(self.results[m].get("stages") or []):
                # the first stage's scores are the method's first-stage scores: their percentiles are computed once
                scores = self.scores[m] if i == 0 and m in self.scores else group_values(stage["scores"], self.g)
                shares = self.percentiles[m] if i == 0 and m in self.percentiles else percentiles(scores)
                kept = kept_vector(stage.get("keep_indices") or [], self.g) if stage.get("keep_indices") is not None \
                    else self.kept[m]
                views.append({"layer": stage["layer"], "scorer": stage.get("scorer", m), "scores": scores,
                              "percentiles": shares, "kept": kept})
            out[m] = views
        return out

    @functools.cached_property
    def ground_truth(self):
        """The payload's ground truth of a generated example (objects, the right answer, the asked object's
        tokens), for the image group it describes; None elsewhere."""
        truth = self.payload.get("ground_truth")
        if not truth or truth.get("group", 0) != self.group:
            return None
        return truth

    @functools.cached_property
    def recall(self):
        """{method: share of the asked object's tokens kept for decoding} where the ground truth names them."""
        truth = self.ground_truth
        if not truth or not truth.get("target_tokens"):
            return {}
        target = np.asarray(truth["target_tokens"], dtype=int)
        return {m: float(self.kept[m][target].mean()) for m in self.results}

    # ---- spectra

    @functools.cached_property
    def spectra(self):
        """The group's spectra of the unpruned run ({"layers", "highpass", "radial", "highfreq_share"}), or None."""
        spectra = self.none.get("spectra")
        return spectra[self.group] if spectra else None

    @functools.cached_property
    def evolution(self):
        """CLSE's numerator |s_K - s_L| and evolution intensity E per token (method.md, step 2), or None."""
        if self.spectra is None:
            return None
        k, ref = self.none["prune_layer"], self.none["ref_layer"]
        s_k = group_values(self.spectra["highpass"][k], self.g)
        s_l = group_values(self.spectra["highpass"][ref], self.g)
        return {"change": np.abs(s_k - s_l), "s_k": s_k, "s_l": s_l, "intensity": evolution_intensity(s_l, s_k)}

    # ---- cost

    @functools.cached_property
    def timing_parts(self):
        """{method: [(label, ms)]} of TIMING_PARTS; they add up to the method's total."""
        out = {}
        for m, r in self.results.items():
            t = r["timings_ms"]
            out[m] = [(label, sum(-t[n[1:]] if n.startswith("-") else t[n] for n in names))
                      for label, names in TIMING_PARTS]
        return out

    @functools.cached_property
    def timing_spread(self):
        """{method: {timing name: (min, max)}} over the timed repeats; empty for a single repeat."""
        return {m: {name: tuple(v) for name, v in (r.get("timings_spread_ms") or {}).items()}
                for m, r in self.results.items()}

    @functools.cached_property
    def relative_cost(self):
        """{label: {method: value / unpruned value}} for prefill FLOPs, the KV cache after prefill and peak
        memory; a measure is left out when a record lacks it (0 is a Record's "not measured")."""
        fields = {"prefill FLOPs": lambda r: (r.get("flops") or {}).get("prefill"),
                  "KV cache after prefill": lambda r: r.get("kv_cache_bytes_prefill"),
                  "peak memory": lambda r: r.get("peak_memory_bytes")}
        out = {}
        for label, value in fields.items():
            values = {m: value(r) for m, r in self.results.items()}
            if all(values.values()):
                out[label] = {m: v / values["none"] for m, v in values.items()}
        return out

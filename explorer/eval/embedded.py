"""Evaluate the embedded model, unpruned and pruned, on held-out generated scenes and clips.

    python -m explorer.eval.embedded --seed 0 --n 300 --markdown
        [--clips 100] [--keep 85,57,28] [--methods none,clse,...] [--no-invert] [--prune-layer K]
        [--schedules single,official] [--variant] [--weights DIR] [--threads 1]

One question per scene (question kinds taken in turn), one motion question per clip (n // 3 clips). Every
method of the registry runs at every budget in two comparisons, each labelled: controlled (schedule single:
one stage at the family's K, the same count for every method: it isolates the score) and official (each
method as its authors run it: its layers, schedule, count rule and KV policy, its free parameter solved so
that the real average of visual tokens kept per layer is the budget; that average is reported beside each
accuracy, and a method that cannot reach a budget is listed with its sentence); and
again inverted (the lowest-ranked tokens kept: the same real token count, the opposite choice). Each input is
encoded once and every run re-uses it.

Answers are scored on the first generated word (one prefill per run, no decoding step): the model answers
with one word. The unpruned run also decodes up to three tokens, and the report gives the share of its
answers that are exactly that one word, so the first-word scoring can be checked against full answers.

Prints JSON (and with --markdown the tables of docs/evaluation.md):
- unpruned accuracy by question kind on the plain held-out set, on the variant set (the same seeds drawn
  with `variant=True`: other sizes, colours a little off, anti-aliasing, JPEG) and on the plain set's
  questions typed as people type them ("What color is the circle?");
- per method, budget and direction (normal / inverted): accuracy by kind (with its 95% Wilson interval on
  images, motion and overall), target-token recall (the share of the queried object's visual tokens kept)
  overall and by the object's third of the image, the share of cuts that fell inside a tie of scores, and the
  real average of visual tokens kept per decoder layer; and against the first method of --methods at the same
  budget, direction and schedule, on the questions both answered: the difference of overall accuracy with its
  95% interval (Newcombe's, paired) and the exact McNemar p-value (explorer/analysis/stats.py). A difference
  is established only where p is small (p < 0.05): a higher accuracy with a larger p is not "better";
- the runs a method refused (its official schedule cannot reach a budget, EVS on images) with the sentence;
- accuracy by the share of the queried object kept (half or more / some / none), against the unpruned
  accuracy on the same questions and chance on them;
- per method, its accuracy against the accuracy its target recall predicts (what every method's kept sets
  score, on average, at the same share of the object kept and question kind).
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

import models
from explorer.analysis.stats import THIRDS, difference_text, interval_text, paired_difference, third_of, \
    wilson_interval
from explorer.core.engine import encode_input
from explorer.core.engine import TIE_AT_CUT, run
from explorer.core.settings import check_settings
from explorer.methods.registry import check_method, pruning_methods
from models.base import BadInput
from models.shapes_llava import scenes

KINDS = scenes.QUESTION_KINDS
ALL_KINDS = KINDS + ("motion",)
# chance for a guess among a kind's answers (every answer is one word of a fixed set)
CHANCE = {"color": 1 / len(scenes.COLORS), "shape": 1 / len(scenes.SHAPES), "count": 1 / len(scenes.NUMBERS),
          "exists": 1 / 2, "where": 1 / len(scenes.QUADRANTS), "motion": 1 / len(scenes.DIRECTIONS)}
SHARES = ("half or more", "some", "none")  # of the queried object's tokens kept: >= 50%, 1-49%, 0%
PREDICTION_BINS = (0.0, 1e-9, 0.25, 0.5, 0.75)  # share-kept bins (with the kind) for the recall prediction
ANSWER_TOKENS = 3  # the unpruned run decodes up to this many tokens, to check the one-word answers


@dataclass
class Item:
    images: list
    kind: str  # "image" or "video"
    question: object  # scenes.Question
    target: np.ndarray = None  # bool over the input's visual tokens: the queried object(s); None if no object
    band: str = None  # the (first) queried object's third of the image: top, middle, bottom


def eval_items(seed, n_scenes, n_clips, variant=False):
    """Held-out items, deterministic from the seed; `variant`: the same seeds drawn with the variant option."""
    if seed + max(n_scenes, n_clips) > scenes.TRAIN_SEED_START:
        raise ValueError(f"evaluation seeds must stay below {scenes.TRAIN_SEED_START} (the training range)")
    items = []
    for i in range(n_scenes):
        scene = scenes.make_scene(seed + i, variant=variant)
        question = scenes.question_in_turn(scene, i)
        items.append(Item([scene.image], "image", question, *_target(scene.objects, question)))
    for i in range(n_clips):
        clip = scenes.make_clip(seed + i, variant=variant)
        question = clip.questions[0]
        masks = [scenes.object_token_mask(objs[0]) for objs in clip.frames_objects]
        items.append(Item(clip.frames, "video", question, np.concatenate(masks), _band(clip.frames_objects[0][0])))
    return items


def _band(obj):
    return third_of(obj.center[1] / scenes.IMAGE_SIZE)


def _target(objects, question):
    if not question.targets:
        return None, None
    mask = np.any([scenes.object_token_mask(objects[i]) for i in question.targets], axis=0)
    return mask, _band(objects[question.targets[0]])


def typed(text, style):
    """A generated question as people type it: capitalised, "?" glued to the last word; styles in turn:
    "What color is the circle?", "What color is the circle" (no mark), "WHAT COLOR IS THE CIRCLE?!"."""
    words = text.removesuffix(" ?")
    sentence = words[0].upper() + words[1:]
    return (sentence + "?", sentence, words.upper() + "?!")[style % 3]


def has_unknown_word(tokenizer, text):
    """Whether the tokenizer maps a word of text to its unknown token (the old case-sensitive tokenizer did
    this to every capitalised first word)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids


def plan_runs(methods, budgets, invert, schedules=("single",)):
    """[(method, keep, inverted, schedule)]: the unpruned reference first, then every method at every budget in
    every schedule ("single": the controlled comparison; "official": each method as its authors run it)."""
    runs = [("none", None, False, "single")]
    for schedule in schedules:
        for method in methods:
            if method == "none":
                continue
            for keep in budgets:
                runs.append((method, keep, False, schedule))
                if invert:
                    runs.append((method, keep, True, schedule))
    return runs


def first_word(processor, record):
    return processor.tokenizer.decode(record.answer_ids[:1], skip_special_tokens=True).strip()


def kept_mask(record):
    """A run's kept set as a boolean mask over its visual tokens."""
    mask = np.zeros(record.visual_tokens, dtype=bool)
    mask[record.kept_indices] = True
    return mask


def run_item(model, processor, family, item, runs, prune_layer=None, text=None):
    """One row per run on one item: the first word and whether it is the answer, its token's margin (how close a
    call it was: engine.margins), the kept set (packed bits), the share of the queried object's tokens kept, whether
    the cut fell inside a tie, and the real average kept per decoder layer. A run the
    method refuses (BadInput: a budget its official schedule cannot reach, EVS on an image) gives a row with
    "refused" (the sentence) and nothing else; `answered` drops those rows."""
    text = text or item.question.text
    encoded = encode_input(model, processor, family, item.images, text, item.kind)
    rows = []
    for method, keep, inverted, schedule in runs:
        settings = check_settings(keep=keep or 1, prune_layer=prune_layer, invert=inverted, schedule=schedule,
                                  max_new_tokens=ANSWER_TOKENS if method == "none" else 1)
        try:
            record = run(model, processor, encoded, method, settings)
        except BadInput as error:
            rows.append({"method": method, "keep": keep, "inverted": inverted, "schedule": schedule,
                         "input": item.kind, "refused": str(error)})
            continue
        answer = first_word(processor, record)
        kept = kept_mask(record)
        share = None if item.target is None else float(kept[item.target].mean())
        rows.append({"method": method, "keep": keep, "inverted": inverted, "schedule": schedule,
                     "qkind": item.question.kind, "answer": answer, "margin": record.answer_margins[0],
                     "kept": np.packbits(kept).tobytes(),  # 32 bytes for 256 tokens: a row per run stays small
                     "correct": answer == item.question.answer, "share": share, "band": item.band,
                     "tie": any(TIE_AT_CUT in note for note in record.notes),
                     "average_kept": record.budget["average_kept"], "input": item.kind,
                     "one_word": record.answer == answer})
    return rows


def evaluate(model, processor, family, items, methods, budgets, invert=True, prune_layer=None, typed_style=None,
             schedules=("single",)):
    """Rows (dicts) of every run on every item, each item tagged with its index ("item"). typed_style: ask
    each question as people type it (typed(), styles in turn from this one) instead of the generated text."""
    runs = plan_runs(methods, budgets, invert, schedules)
    rows = []
    for i, item in enumerate(items):
        text = item.question.text if typed_style is None else typed(item.question.text, typed_style + i)
        unknown = has_unknown_word(processor.tokenizer, text)
        for row in run_item(model, processor, family, item, runs, prune_layer, text):
            rows.append({**row, "item": i, "unknown_word": unknown})
    return rows


# ------------------------------------------------------------------------------------------------ analysis


def answered(rows):
    """The rows of runs that ran (a refused run's row holds only its sentence)."""
    return [r for r in rows if not r.get("refused")]


def refusals(rows):
    """[{method, keep, schedule, input, runs, sentence}] of the refused runs (each distinct sentence once)."""
    out = {}
    for row in rows:
        if row.get("refused"):
            key = (row["method"], row["keep"], row["inverted"], row["schedule"], row["input"], row["refused"])
            out[key] = out.get(key, 0) + 1
    return [{"method": m, "keep": k, "inverted": i, "schedule": s, "input": kind, "runs": n, "sentence": text}
            for (m, k, i, s, kind, text), n in out.items()]


def _mean(values):
    values = list(values)
    return round(float(np.mean(values)), 4) if values else None


def _interval(values):
    values = list(values)
    interval = wilson_interval(sum(values), len(values))
    return [round(x, 4) for x in interval] if interval else None


def accuracy(rows):
    """Accuracy by question kind, on image questions, on motion and overall, the question count, and the 95%
    Wilson interval of the images, motion and overall accuracies."""
    by_kind = defaultdict(list)
    for row in rows:
        by_kind[row["qkind"]].append(row["correct"])
    images = [c for k, v in by_kind.items() if k != "motion" for c in v]
    motion = by_kind.get("motion", [])
    return {"by_kind": {k: _mean(by_kind[k]) for k in ALL_KINDS if k in by_kind},
            "images": _mean(images), "motion": _mean(motion),
            "overall": _mean(r["correct"] for r in rows), "questions": len(rows),
            "interval": {"images": _interval(images), "motion": _interval(motion),
                         "overall": _interval(r["correct"] for r in rows)}}


def run_summary(rows):
    """One (method, keep, direction): accuracy, target recall overall and by third, ties, average kept."""
    with_target = [r for r in rows if r["share"] is not None]
    recall = {"all": _mean(r["share"] for r in with_target)}
    for band in THIRDS:
        recall[band] = _mean(r["share"] for r in with_target if r["band"] == band)
    return {**accuracy(rows), "target_recall": recall, "tied_cuts": _mean(r["tie"] for r in rows),
            "average_kept": {kind: _mean(r["average_kept"] for r in rows if r["input"] == kind)
                             for kind in ("image", "video")}}


def of_schedule(rows, schedule):
    """The rows of one schedule, with the unpruned reference."""
    return [r for r in rows if r["method"] == "none" or r.get("schedule", "single") == schedule]


def summarize(rows, schedule="single"):
    """{method: {"unpruned" | keep | keep + " inverted": run_summary}} of one schedule; every pruning method
    after the first also gets "vs_first" (paired_against_first) in each entry."""
    groups = defaultdict(list)
    for row in of_schedule(answered(rows), schedule):
        groups[(row["method"], row["keep"], row["inverted"])].append(row)
    report = {}
    for (method, keep, inverted), group in groups.items():
        name = "unpruned" if keep is None else f"{keep}{' inverted' if inverted else ''}"
        report.setdefault(method, {})[name] = run_summary(group)
    for (method, keep, inverted), paired in paired_against_first(of_schedule(rows, schedule)).items():
        report[method][f"{keep}{' inverted' if inverted else ''}"]["vs_first"] = paired
    return report


def paired_against_first(rows):
    """{(method, keep, inverted): the paired comparison of its overall accuracy with the first pruning method's
    (the first of --methods that ran) at the same budget and direction, on the questions both answered}: the
    difference (this method - the first) with Newcombe's 95% interval, the exact McNemar p-value and the
    discordant counts (stats.paired_difference), plus "against", the first method's name."""
    first = next((r["method"] for r in rows if r["method"] != "none"), None)  # refused runs count: the order
    pruned = [r for r in answered(rows) if r["method"] != "none"]
    if first is None:
        return {}
    theirs = {(r["keep"], r["inverted"], r["item"]): r["correct"] for r in pruned if r["method"] == first}
    mine = defaultdict(list)
    for row in pruned:
        if row["method"] != first and (row["keep"], row["inverted"], row["item"]) in theirs:
            mine[(row["method"], row["keep"], row["inverted"])].append(row)
    out = {}
    for key, group in mine.items():
        paired = paired_difference([theirs[(r["keep"], r["inverted"], r["item"])] for r in group],
                                   [r["correct"] for r in group])
        out[key] = {"against": first, **{k: [round(x, 4) for x in v] if k == "interval" else
                                         float(f"{v:.4g}") if k == "p" else  # small p-values stay readable
                                         round(v, 4) if isinstance(v, float) else v for k, v in paired.items()}}
    return out


def share_class(share):
    return SHARES[0] if share >= 0.5 else SHARES[1] if share > 0 else SHARES[2]


def by_share_kept(rows):
    """Per method (normal runs, every budget pooled; "all methods" pools them): for each class of the share of
    the queried object kept, the runs, their accuracy, the unpruned accuracy on the same questions, the ratio,
    and chance on those questions."""
    rows = answered(rows)
    unpruned = {r["item"]: r["correct"] for r in rows if r["method"] == "none"}
    pruned = [r for r in rows if r["method"] != "none" and not r["inverted"] and r["share"] is not None]
    report = {}
    for method in [*dict.fromkeys(r["method"] for r in pruned), "all methods"]:
        mine = [r for r in pruned if method in (r["method"], "all methods")]
        entry = {}
        for name in SHARES:
            members = [r for r in mine if share_class(r["share"]) == name]
            acc, base = _mean(r["correct"] for r in members), _mean(unpruned[r["item"]] for r in members)
            entry[name] = {"runs": len(members), "accuracy": acc, "unpruned": base,
                           "ratio": round(acc / base, 3) if members and base else None,
                           "chance": _mean(CHANCE[r["qkind"]] for r in members)}
        report[method] = entry
    return report


def predicted_by_recall(rows):
    """Per method (normal runs with a queried object, budgets pooled): its accuracy, and the accuracy predicted
    from the share of the object it kept alone: the mean accuracy of every pruned run (every method, normal
    and inverted) with the same question kind and share bin. A method above its prediction gains from
    something other than keeping the object (or the model favours its kind of kept set)."""
    pruned = [r for r in answered(rows) if r["method"] != "none" and r["share"] is not None]

    def cell(row):
        return row["qkind"], int(np.searchsorted(PREDICTION_BINS, row["share"], side="right"))

    table = defaultdict(list)
    for row in pruned:
        table[cell(row)].append(row["correct"])
    rate = {key: float(np.mean(values)) for key, values in table.items()}
    report = {}
    for method in dict.fromkeys(r["method"] for r in pruned):
        mine = [r for r in pruned if r["method"] == method and not r["inverted"]]
        actual, predicted = _mean(r["correct"] for r in mine), _mean(rate[cell(r)] for r in mine)
        report[method] = {"runs": len(mine), "recall": _mean(r["share"] for r in mine), "accuracy": actual,
                          "predicted": predicted, "difference": round(actual - predicted, 4)}
    return report


def same_token_count(rows):
    """Whether every inverted run kept the same real average per layer as its normal run."""
    rows = answered(rows)
    key = lambda r: (r["item"], r["method"], r["keep"], r.get("schedule"))  # noqa: E731
    normal = {key(r): r["average_kept"] for r in rows if not r["inverted"]}
    return all(normal[key(r)] == r["average_kept"] for r in rows if r["inverted"])


def _row_means(values, background, rows, side):
    """Per image row, the mean over background tokens only (NaN for a row with none)."""
    return [values[background & (rows == r)].mean() for r in range(side)]


def evolution_by_row(model, processor, family, seed, n_scenes, ref_layer=0, prune_layer=2):
    """Where CLSE's signal comes from, by image row, on background tokens only (no object covers them): the
    mean evolution intensity E between layers L and K and the mean change of the hidden state |z_K - z_L|,
    over n_scenes held-out scenes. A row profile that falls from top to bottom on empty background is a
    positional preference of the model's early layers, which CLSE inherits."""
    from explorer.methods.scoring import evolution_intensity, highpass_magnitude

    energy, change = [], []
    for i in range(n_scenes):
        scene = scenes.make_scene(seed + i)
        inputs = family.build_inputs(processor, [scene.image], scene.questions[0].text, kind="image")
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states
        group = family.visual_groups(model, inputs, kind="image")[0]
        grid, side = group.grid, group.grid[1]
        rows = np.arange(group.count) // group.grid[2]
        z_ref, z_cur = hidden[ref_layer][0, group.positions], hidden[prune_layer][0, group.positions]
        background = ~np.any([scenes.object_token_mask(o) for o in scene.objects], axis=0)

        intensity = evolution_intensity(highpass_magnitude(z_ref, grid), highpass_magnitude(z_cur, grid))
        energy.append(_row_means(intensity.numpy(), background, rows, side))
        change.append(_row_means((z_cur - z_ref).norm(dim=-1).numpy(), background, rows, side))
    return {"evolution_intensity": [round(float(x), 3) for x in np.nanmean(energy, 0)],
            "hidden_change": [round(float(x), 1) for x in np.nanmean(change, 0)]}


# ------------------------------------------------------------------------------------------------ tables


def _f(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def _with_interval(entry, name):
    return interval_text(entry[name], entry.get("interval", {}).get(name))


def unpruned_table(sets):
    """sets: {name: (accuracy(), share of one-word answers, questions with an unknown word)}."""
    lines = ["| questions | " + " | ".join(ALL_KINDS) + " | images [95% CI] | motion [95% CI] | overall [95% CI] | "
             "one-word answers | with an unknown word |", "|---" * (len(ALL_KINDS) + 6) + "|"]
    for name, (acc, one_word, unknown) in sets.items():
        lines.append(f"| {name} | " + " | ".join(_f(acc["by_kind"].get(k)) for k in ALL_KINDS)
                     + f" | {_with_interval(acc, 'images')} | {_with_interval(acc, 'motion')} | "
                     f"{_with_interval(acc, 'overall')} | {_f(one_word, 2)} | {unknown} |")
    return lines


def first_method(report):
    """The method every other is compared with in a report (the "against" of its vs_first entries)."""
    return next((e["vs_first"]["against"] for by_keep in report.values() for e in by_keep.values()
                 if e.get("vs_first")), None)


def methods_table(report):
    first = first_method(report) or "the first method"
    head = ("| method | keep | kept per layer (image / clip) | images | motion | overall [95% CI] | "
            f"overall - {first}'s [95% CI], McNemar p | target recall | cut in a tie | inverted: images | motion | "
            f"overall [95% CI] | overall - {first}'s inverted, p | target recall |")
    lines = [head, "|---" * 14 + "|"]
    for method, by_keep in report.items():
        for keep, entry in by_keep.items():
            if keep.endswith("inverted"):
                continue
            inv = by_keep.get(f"{keep} inverted")
            kept = entry["average_kept"]
            cells = [method, keep, f"{_f(kept['image'], 1)} / {_f(kept['video'], 1)}", _f(entry["images"]),
                     _f(entry["motion"]), _with_interval(entry, "overall"), difference_text(entry.get("vs_first")),
                     _f(entry["target_recall"]["all"]), _f(entry["tied_cuts"], 2)]
            cells += [_f(inv["images"]), _f(inv["motion"]), _with_interval(inv, "overall"),
                      difference_text(inv.get("vs_first")), _f(inv["target_recall"]["all"])] if inv else ["-"] * 5
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def refusals_table(refused):
    lines = ["| method | keep | schedule | input | runs | the method's sentence |", "|---" * 6 + "|"]
    for r in refused:
        lines.append(f"| {r['method']}{' (inverted)' if r['inverted'] else ''} | {r['keep']} | {r['schedule']} | "
                     f"{r['input']} | {r['runs']} | {r['sentence']} |")
    return lines


def kinds_table(report):
    lines = ["| method | keep | " + " | ".join(ALL_KINDS) + " |", "|---" * (len(ALL_KINDS) + 2) + "|"]
    for method, by_keep in report.items():
        for keep, entry in by_keep.items():
            if not keep.endswith("inverted"):
                lines.append(f"| {method} | {keep} | " + " | ".join(_f(entry["by_kind"].get(k)) for k in ALL_KINDS)
                             + " |")
    return lines


def bands_table(report):
    lines = ["| method | keep | recall, top third | middle third | bottom third |", "|---" * 5 + "|"]
    for method, by_keep in report.items():
        for keep, entry in by_keep.items():
            if method != "none" and not keep.endswith("inverted"):
                recall = entry["target_recall"]
                lines.append(f"| {method} | {keep} | " + " | ".join(_f(recall[b]) for b in THIRDS)
                             + " |")
    return lines


def shares_table(shares):
    head = "| method | " + " | ".join(f"{s}: runs | accuracy | unpruned | ratio" for s in SHARES[:2])
    lines = [head + " | none: runs | accuracy | unpruned | chance |", "|---" * 13 + "|"]
    for method, entry in shares.items():
        cells = [method]
        for name in SHARES:
            e = entry[name]
            last = _f(e["chance"]) if name == SHARES[2] else _f(e["ratio"], 2)
            cells += [str(e["runs"]), _f(e["accuracy"]), _f(e["unpruned"]), last]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def prediction_table(predictions):
    lines = ["| method | target recall | accuracy | predicted from the share kept | difference |", "|---" * 5 + "|"]
    for method, e in predictions.items():
        lines.append(f"| {method} | {_f(e['recall'])} | {_f(e['accuracy'])} | {_f(e['predicted'])} | "
                     f"{e['difference']:+.3f} |")
    return lines


def markdown(result):
    """Every table of docs/evaluation.md, each after a one-line title."""
    chance = ", ".join(f"{k} {v:.3f}" for k, v in CHANCE.items())
    sections = [
        ("Unpruned accuracy by question kind (plain held-out set, variant set, questions as people type them)",
         unpruned_table({name: (u["accuracy"], u["one_word"], u["unknown_word"])
                         for name, u in result["unpruned"].items()})),
        ("Controlled comparison (every method scores at the family's K and keeps the same count): accuracy and "
         "target recall per method and budget, normal and inverted (the lowest-ranked tokens kept)",
         methods_table(result["results"])),
        *([("Official schedules (each method as its authors run it, its free parameter solved to the budget's real "
            "average kept per layer, shown beside it): accuracy and target recall, normal and inverted",
            methods_table(result["official"]["results"])),
           ("Official schedules: accuracy by the share of the queried object kept",
            shares_table(result["official"]["by_share_kept"]))] if result.get("official") else []),
        ("Accuracy by question kind, normal runs", kinds_table(result["results"])),
        ("Target recall by the queried object's third of the image", bands_table(result["results"])),
        (f"Accuracy by the share of the queried object kept (budgets pooled; chance per kind: {chance})",
         shares_table(result["by_share_kept"])),
        ("Accuracy against the accuracy predicted from the share of the object kept",
         prediction_table(result["predicted_by_recall"])),
        *([("Runs a method refused (not in the tables above; differences are paired over the questions both "
            "methods answered)", refusals_table(result["refused"]))] if result.get("refused") else []),
    ]
    out = []
    for title, lines in sections:
        out += [f"**{title}**", "", *lines, ""]
    out.append("intervals: 95% Wilson for an accuracy; for a difference with the first method (the same questions, "
               "paired), Newcombe's 95% interval and the exact McNemar p-value: call a method better only where p "
               "< 0.05")
    out.append(f"inverted runs keep the same real token count as the normal ones: {result['same_token_count']}; "
               f"{result['seconds']} s wall, {result['cpu_seconds']} s CPU ({result['threads']} thread(s))")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ command


def unpruned_entry(rows):
    return {"accuracy": accuracy(rows), "one_word": _mean(r["one_word"] for r in rows),
            "unknown_word": sum(r["unknown_word"] for r in rows)}


def full_evaluation(model, processor, family, args, methods, budgets):
    """The main evaluation (plain or --variant items), plus the unpruned variant set and typed questions."""
    n_clips = args.n // 3 if args.clips is None else args.clips
    items = eval_items(args.seed, args.n, n_clips, variant=args.variant)
    rows = evaluate(model, processor, family, items, methods, budgets, not args.no_invert, args.prune_layer,
                    schedules=args.schedules)
    main_set = "variant set" if args.variant else "plain held-out set"
    unpruned = {main_set: unpruned_entry([r for r in answered(rows) if r["method"] == "none"])}
    if not args.variant:
        variant = eval_items(args.seed, args.n, n_clips, variant=True)
        unpruned["variant set"] = unpruned_entry(evaluate(model, processor, family, variant, [], [], False))
    typed_rows = evaluate(model, processor, family, items, [], [], False, typed_style=0)
    unpruned[f"{main_set}, typed"] = unpruned_entry(typed_rows)
    controlled = of_schedule(rows, "single")
    result = {"unpruned": unpruned, "results": summarize(rows), "by_share_kept": by_share_kept(controlled),
              "predicted_by_recall": predicted_by_recall(controlled), "same_token_count": same_token_count(rows),
              "refused": refusals(rows)}
    if "official" in args.schedules:
        official = of_schedule(rows, "official")
        result["official"] = {"results": summarize(rows, "official"), "by_share_kept": by_share_kept(official),
                              "predicted_by_recall": predicted_by_recall(official)}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=300, help="scenes (one question each)")
    parser.add_argument("--clips", type=int, default=None, help="motion clips (default n // 3)")
    parser.add_argument("--keep", default="85,57,28",
                        help="visual tokens kept (default: the paper's 192/128/64 of 576 scaled to 256 tokens)")
    parser.add_argument("--methods", default=",".join(pruning_methods()))
    parser.add_argument("--no-invert", action="store_true", help="skip the inverted ablation")
    parser.add_argument("--schedules", default="single,official",
                        help="single (the controlled comparison) and / or official (each as its authors run it)")
    parser.add_argument("--prune-layer", type=int, default=None, help="default: the family's official K")
    parser.add_argument("--variant", action="store_true", help="evaluate on the variant set (scenes drawn "
                        "slightly differently: sizes, colour jitter, anti-aliasing, JPEG)")
    parser.add_argument("--weights", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true", help="also print the tables of docs/evaluation.md")
    parser.add_argument("--rows", action="store_true",
                        help="only print CLSE's evolution intensity and the hidden-state change by image row, "
                             "on background tokens (L = 0, K = --prune-layer, default 2)")
    args = parser.parse_args(argv)
    args.schedules = tuple(s for s in args.schedules.split(",") if s)
    torch.set_num_threads(args.threads)
    try:
        budgets = [int(k) for k in args.keep.split(",") if k]
        methods = [m for m in args.methods.split(",") if m]
        for method in methods:
            check_method(method)
        eval_items(args.seed, args.n, 0)  # the seed range check, before loading
        model, processor, family = models.load(args.weights)
    except ValueError as error:  # BadInput (an unknown method, a model that does not load) is one
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.rows:
        print(json.dumps(evolution_by_row(model, processor, family, args.seed, args.n, 0, args.prune_layer or 2)))
        return 0
    wall, cpu = time.time(), time.process_time()
    result = full_evaluation(model, processor, family, args, methods, budgets)
    result = {"model": args.weights or models.EMBEDDED_ID, "seed": args.seed, "scenes": args.n,
              "variant": args.variant, "prune_layer": args.prune_layer, "threads": args.threads,
              "seconds": round(time.time() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1), **result}
    print(json.dumps(result, indent=1))
    if args.markdown:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

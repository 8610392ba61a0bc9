"""Evaluate the embedded model, unpruned and pruned, on held-out generated scenes and clips.

    python -m explorer.evaluate --seed 0 --n 300 [--clips 100] [--keep 85,57,28]
        [--methods none,clse,clse_spectral,fastv,random,uniform] [--prune-layer K] [--weights DIR]

One question per scene (question kinds taken in turn), one motion question per clip. Prints JSON: accuracy
per question kind and overall for each method and budget; target-token recall (the share of the queried
object's visual tokens kept) per method, overall and by the object's place in the image (top, middle and
bottom third of the rows) - the positional-bias picture.
"""

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np
import torch

import models
from explorer.engine import TIE_AT_CUT, encode, run
from explorer.settings import check_settings
from models.shapes_llava import scenes

KINDS = ("color", "shape", "count", "exists", "where")


def eval_items(seed, n_scenes, n_clips):
    """[(images, kind, question, target token mask or None, row band)], deterministic from the seed."""
    if seed + max(n_scenes, n_clips) > scenes.TRAIN_SEED_START:
        raise ValueError(f"evaluation seeds must stay below {scenes.TRAIN_SEED_START} (the training range)")
    items = []
    for i in range(n_scenes):
        scene = scenes.make_scene(seed + i)
        wanted = KINDS[i % len(KINDS)]
        options = [q for q in scene.questions if q.kind == wanted] or scene.questions
        question = options[i // len(KINDS) % len(options)]
        items.append(([scene.image], "image", question, *_target(scene.objects, question)))
    for i in range(n_clips):
        clip = scenes.make_clip(seed + i)
        question = clip.questions[0]
        masks = [scenes.object_token_mask(objs[0]) for objs in clip.frames_objects]
        band = _band(clip.frames_objects[0][0])
        items.append((clip.frames, "video", question, np.concatenate(masks), band))
    return items


def _band(obj):
    y = obj.center[1] / scenes.IMAGE_SIZE
    return "top" if y < 1 / 3 else "middle" if y < 2 / 3 else "bottom"


def _target(objects, question):
    if not question.targets:
        return None, None
    mask = np.any([scenes.object_token_mask(objects[i]) for i in question.targets], axis=0)
    return mask, _band(objects[question.targets[0]])


def evaluate(model, processor, family, items, methods, budgets, prune_layer=None):
    """Nested dict of accuracy and recall; each input is encoded once and reused by every method/budget."""
    correct = defaultdict(lambda: defaultdict(list))  # (method, keep) -> kind -> [0/1]
    recall = defaultdict(lambda: defaultdict(list))  # (method, keep) -> band -> [share]
    ties = defaultdict(list)  # (method, keep) -> [the cut fell inside a tie of scores (record.notes)]
    for images, kind, question, target, band in items:
        inputs = family.build_inputs(processor, images, question.text, kind=kind)
        encoded = encode(model, family, inputs, kind=kind)
        for method in methods:
            for keep in ([None] if method == "none" else budgets):
                settings = check_settings(keep=keep or 1, prune_layer=prune_layer, max_new_tokens=3)
                record = run(model, processor, encoded, method, settings)
                key = (method, keep)
                correct[key][question.kind].append(record.answer == question.answer)
                ties[key].append(any(TIE_AT_CUT in note for note in record.notes))
                if target is not None:
                    kept = np.zeros(record.visual_tokens, dtype=bool)
                    kept[record.kept_indices] = True
                    share = kept[target].mean()
                    recall[key]["all"].append(share)
                    recall[key][band].append(share)
    report = {}
    for (method, keep), by_kind in correct.items():
        flat = [x for values in by_kind.values() for x in values]
        images_only = [x for k, values in by_kind.items() if k != "motion" for x in values]
        entry = {
            "accuracy": {k: round(float(np.mean(v)), 4) for k, v in sorted(by_kind.items())},
            "accuracy_overall": round(float(np.mean(flat)), 4),
            "accuracy_images": round(float(np.mean(images_only)), 4) if images_only else None,
            "questions": len(flat),
            "target_recall": {b: round(float(np.mean(v)), 4) for b, v in sorted(recall[(method, keep)].items())},
            "tied_cuts": round(float(np.mean(ties[(method, keep)])), 4),  # share of inputs cut inside a tie
        }
        report.setdefault(method, {})["unpruned" if keep is None else str(keep)] = entry
    return report


def evolution_by_row(model, processor, family, seed, n_scenes, ref_layer=0, prune_layer=2):
    """Where CLSE's signal comes from, by image row, on background tokens only (no object covers them): the
    mean evolution intensity E between layers L and K and the mean change of the hidden state |z_K - z_L|,
    over n_scenes held-out scenes. A row profile that falls from top to bottom on empty background is a
    positional preference of the model's early layers, which CLSE inherits."""
    from explorer.scoring import evolution_intensity, highpass_magnitude

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

        def row_means(values):  # per image row, background tokens only (NaN for a row with none)
            return [values[background & (rows == r)].mean() for r in range(side)]

        energy.append(row_means(evolution_intensity(highpass_magnitude(z_ref, grid),
                                                    highpass_magnitude(z_cur, grid)).numpy()))
        change.append(row_means((z_cur - z_ref).norm(dim=-1).numpy()))
    return {"evolution_intensity": [round(float(x), 3) for x in np.nanmean(energy, 0)],
            "hidden_change": [round(float(x), 1) for x in np.nanmean(change, 0)]}


def markdown(report):
    """The report as two Markdown tables: accuracy and target recall per method and budget, and recall by the
    object's third of the image (the positional-bias picture)."""
    lines = ["| method | keep | accuracy (images) | motion | overall | target recall | cut in a tie |",
             "|---|---|---|---|---|---|---|"]
    bands = ["| method | keep | recall, top third | middle third | bottom third |", "|---|---|---|---|---|"]
    for method, by_keep in report.items():
        for keep, entry in by_keep.items():
            recall = entry["target_recall"]
            lines.append(f"| {method} | {keep} | {entry['accuracy_images']:.3f} | "
                         f"{entry['accuracy'].get('motion', float('nan')):.3f} | {entry['accuracy_overall']:.3f} | "
                         f"{recall.get('all', float('nan')):.3f} | {entry['tied_cuts']:.2f} |")
            if method != "none":
                bands.append(f"| {method} | {keep} | " + " | ".join(f"{recall.get(b, float('nan')):.3f}"
                                                                 for b in ("top", "middle", "bottom")) + " |")
    return "\n".join(lines + [""] + bands)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=300, help="scenes (one question each)")
    parser.add_argument("--clips", type=int, default=None, help="motion clips (default n // 3)")
    parser.add_argument("--keep", default="85,57,28",
                        help="visual tokens kept (default: the paper's 192/128/64 of 576 scaled to 256 tokens)")
    parser.add_argument("--methods", default="none,clse,clse_spectral,fastv,random,uniform")
    parser.add_argument("--prune-layer", type=int, default=None, help="default: the family's official K")
    parser.add_argument("--weights", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown", action="store_true", help="also print the README tables")
    parser.add_argument("--rows", action="store_true",
                        help="only print CLSE's evolution intensity and the hidden-state change by image row, "
                             "on background tokens (L = 0, K = --prune-layer)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        budgets = [int(k) for k in args.keep.split(",") if k]
        methods = [m for m in args.methods.split(",") if m]
        items = eval_items(args.seed, args.n, args.n // 3 if args.clips is None else args.clips)
        model, processor, family = models.load(args.weights)
    except (ValueError, models.ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.rows:
        print(json.dumps(evolution_by_row(model, processor, family, args.seed, args.n, 0, args.prune_layer or 2)))
        return 0
    start = time.time()
    report = evaluate(model, processor, family, items, methods, budgets, args.prune_layer)
    print(json.dumps({"model": args.weights or models.EMBEDDED_ID, "seed": args.seed, "scenes": args.n,
                      "prune_layer": args.prune_layer, "seconds": round(time.time() - start, 1),
                      "results": report}, indent=1))
    if args.markdown:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

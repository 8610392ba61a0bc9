"""What question-aware pruning forgets in a conversation, measured on the embedded model (its scenes are the
ground truth): a first question about one object, then a follow-up about another.

    python -m explorer.eval.follow_ups --seed 0 --n 300 --markdown [--clips 100] [--keep 85,57,28]
        [--methods fastv,clse,clse_spectral,divprune,uniform] [--weights DIR] [--threads 1]

Scenes: the first question is the evaluation's (scenes.question_in_turn), the follow-up a question of another
kind about other objects (targets disjoint from the first's; "is there ...? no" questions have no object and are
not follow-ups). Clips: the first question is about the clip's objects (scenes.clip_scene_questions), the
follow-up its motion question. Every method runs in the controlled comparison (one stage at the family's K, the
same count) at every budget, its follow-up continued in both modes (explorer/core/conversation.py): "keep" (on
the first question's pruned cache, what a deployed pruner does) and "reprune" (chosen again for the follow-up).
Answers are scored on their first word, as in explorer.eval.embedded.

Reported: unpruned accuracy on the first questions and the follow-ups (images, motion); per method, budget and
mode the follow-up accuracy; and the follow-up accuracy split by how much of the follow-up's object the FIRST
question's pruning kept (ground truth: half or more / some / none), for the question-aware methods (FastV, CLSE)
and the question-agnostic ones (CLSE-spectral, DivPrune, uniform) pooled.
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
from explorer.core import conversation
from explorer.core.engine import encode_input, run
from explorer.core.settings import check_settings
from explorer.eval.embedded import CHANCE, SHARES, _f, _mean, share_class
from explorer.methods.registry import check_method
from models.shapes_llava import scenes

QUESTION_AWARE = ("fastv", "clse")
QUESTION_AGNOSTIC = ("clse_spectral", "divprune", "uniform")
MODES = ("keep", "reprune")


@dataclass
class Dialogue:
    images: list
    kind: str  # "image" or "video"
    first: object  # scenes.Question
    follow_up: object  # scenes.Question
    target: np.ndarray  # bool over the visual tokens: the follow-up's object(s)


def masks(objects_per_frame, targets):
    """The tokens of the target objects over every frame (one frame for a scene)."""
    return np.concatenate([np.any([scenes.object_token_mask(objs[i]) for i in targets], axis=0)
                           for objs in objects_per_frame])


def dialogues(seed, n_scenes, n_clips):
    """Held-out two-turn dialogues, deterministic from the seed (scenes without a suitable follow-up skipped)."""
    if seed + max(n_scenes, n_clips) > scenes.TRAIN_SEED_START:
        raise ValueError(f"evaluation seeds must stay below {scenes.TRAIN_SEED_START} (the training range)")
    items = []
    for i in range(n_scenes):
        scene = scenes.make_scene(seed + i)
        first = scenes.question_in_turn(scene, i)
        others = [q for q in scene.questions if q.targets and q.kind != first.kind
                  and not set(q.targets) & set(first.targets)]
        if others:
            follow_up = others[i % len(others)]
            items.append(Dialogue([scene.image], "image", first, follow_up, masks([scene.objects], follow_up.targets)))
    for i in range(n_clips):
        clip = scenes.make_clip(seed + i)
        extra = [q for q in scenes.clip_scene_questions(clip) if q.targets]
        if extra:
            motion = clip.questions[0]
            items.append(Dialogue(clip.frames, "video", extra[i % len(extra)], motion,
                                  masks(clip.frames_objects, motion.targets)))
    return items


def first_word(processor, ids):
    return processor.tokenizer.decode(ids[:1], skip_special_tokens=True).strip()


def share_kept(kept_indices, target):
    kept = np.zeros(len(target), dtype=bool)
    kept[kept_indices] = True
    return float(kept[target].mean())


def run_dialogue(model, processor, family, item, methods, budgets):
    """Rows: the unpruned first and follow-up answers, then every method, budget and mode's follow-up."""
    encoded = encode_input(model, processor, family, item.images, item.first.text, item.kind)
    rows = []
    for method, keep in [("none", None)] + [(m, k) for m in methods for k in budgets]:
        for mode in MODES if method != "none" else ("keep",):
            settings = check_settings(keep=keep or 1, max_new_tokens=1, follow_ups=[item.follow_up.text],
                                      follow_up_mode=mode)
            record = run(model, processor, encoded, method, settings, question=item.first.text, keep_state=True)
            conversation.converse(model, processor, encoded, record, item.images, settings, item.kind)
            first, second = record.turns
            rows.append({"method": method, "keep": keep, "mode": mode, "input": item.kind,
                         "first_correct": first_word(processor, first["answer_ids"]) == item.first.answer,
                         "correct": first_word(processor, second["answer_ids"]) == item.follow_up.answer,
                         "qkind": item.follow_up.kind,
                         "survived": share_kept(first["kept_indices"], item.target),
                         "kept_for_follow_up": share_kept(second["kept_indices"], item.target)})
    return rows


def evaluate(model, processor, family, items, methods, budgets):
    rows = []
    for i, item in enumerate(items):
        rows += [{**row, "item": i} for row in run_dialogue(model, processor, family, item, methods, budgets)]
    return rows


def summary(rows):
    unpruned = [r for r in rows if r["method"] == "none"]
    report = {"unpruned": {kind: {"first": _mean(r["first_correct"] for r in unpruned if r["input"] == kind),
                                  "follow_up": _mean(r["correct"] for r in unpruned if r["input"] == kind),
                                  "dialogues": sum(r["input"] == kind for r in unpruned)}
                           for kind in ("image", "video")}}
    by_run = defaultdict(list)
    for r in rows:
        if r["method"] != "none":
            by_run[(r["method"], r["keep"], r["mode"])].append(r)
    report["runs"] = [{"method": m, "keep": k, "mode": mode,
                       "images": _mean(r["correct"] for r in group if r["input"] == "image"),
                       "motion": _mean(r["correct"] for r in group if r["input"] == "video"),
                       "survived": _mean(r["survived"] for r in group),
                       "kept_for_follow_up": _mean(r["kept_for_follow_up"] for r in group)}
                      for (m, k, mode), group in by_run.items()]
    unpruned_correct = {r["item"]: r["correct"] for r in unpruned}
    split = {}
    for family_name, names in (("question-aware", QUESTION_AWARE), ("question-agnostic", QUESTION_AGNOSTIC)):
        for mode in MODES:
            mine = [r for r in rows if r["method"] in names and r["mode"] == mode]
            split[f"{family_name}, {mode}"] = {
                share: {"runs": len(members), "accuracy": _mean(r["correct"] for r in members),
                        "unpruned": _mean(unpruned_correct[r["item"]] for r in members),
                        "chance": _mean(CHANCE[r["qkind"]] for r in members)}
                for share in SHARES for members in [[r for r in mine if share_class(r["survived"]) == share]]}
    report["by_survival"] = split
    return report


def markdown(report):
    u = report["unpruned"]
    lines = ["**Unpruned: first questions and follow-ups (held-out dialogues)**", "",
             "| input | dialogues | first question | follow-up |", "|---|---|---|---|"]
    for kind, label in (("image", "images"), ("video", "motion (clips)")):
        lines.append(f"| {label} | {u[kind]['dialogues']} | {_f(u[kind]['first'])} | {_f(u[kind]['follow_up'])} |")
    lines += ["", "**Follow-up accuracy per method, budget and mode (controlled comparison), with the share of the "
                  "follow-up's object the first question's pruning kept and the share kept for the follow-up**", "",
              "| method | keep | mode | images | motion | object kept by the first turn | kept for the follow-up |",
              "|---|---|---|---|---|---|---|"]
    for run_ in report["runs"]:
        lines.append(f"| {run_['method']} | {run_['keep']} | {run_['mode']} | {_f(run_['images'])} | "
                     f"{_f(run_['motion'])} | {_f(run_['survived'])} | {_f(run_['kept_for_follow_up'])} |")
    lines += ["", "**Follow-up accuracy by how much of its object the first question's pruning kept (budgets pooled)**",
              "", "| methods, mode | " + " | ".join(f"{s}: runs | accuracy | unpruned" for s in SHARES) +
              " | chance (none) |", "|---" * (2 + 3 * len(SHARES)) + "|"]
    for name, entry in report["by_survival"].items():
        cells = [name]
        for share in SHARES:
            e = entry[share]
            cells += [str(e["runs"]), _f(e["accuracy"]), _f(e["unpruned"])]
        cells.append(_f(entry[SHARES[2]]["chance"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=300, help="scenes")
    parser.add_argument("--clips", type=int, default=None, help="clips (default n // 3)")
    parser.add_argument("--keep", default="85,57,28")
    parser.add_argument("--methods", default=",".join(QUESTION_AWARE + QUESTION_AGNOSTIC))
    parser.add_argument("--weights", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        methods = [check_method(m) for m in args.methods.split(",") if m]
        items = dialogues(args.seed, args.n, args.n // 3 if args.clips is None else args.clips)
        model, processor, family = models.load(args.weights)
    except ValueError as error:  # BadInput included
        print(f"error: {error}", file=sys.stderr)
        return 2
    wall = time.time()
    report = summary(evaluate(model, processor, family, items, methods, [int(k) for k in args.keep.split(",")]))
    report.update(model=args.weights or models.EMBEDDED_ID, seed=args.seed, seconds=round(time.time() - wall, 1))
    print(json.dumps(report, indent=1))
    if args.markdown:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

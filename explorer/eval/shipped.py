"""The benchmark report shipped with the app: the embedded model on held-out generated scenes, written in the
shape `python -m explorer.eval.report --json` writes, so the page's Benchmark tab shows it by default.

    python -m explorer.eval.shipped [--n 200] [--keep 85,57,28] [--methods clse_spectral,clse,fastv,random,uniform]
        [--seed 0] [--out assets/report_shapes.json] [--threads 1]

Reproducible (held-out seeds `seed .. seed + n - 1`, one question each, kinds in turn as the offline `shapes`
task and `explorer.eval.embedded` ask them; deterministic methods; `random` seeded) and small (a few tens of kB:
per run its numbers and the 16 x 16 share of samples keeping each cell, no per-sample lines). No lmms-eval needed:
the records come from the engine directly (each scene encoded once, every method and budget run on it in the
controlled comparison: one stage at the family's K, the same count for every method), answers scored on the
first generated word (every answer of the embedded model is one word), the same per-sample maths as the report
of lmms-eval runs (explorer/analysis/report.py: target recall, density, score-position correlation, intervals), each
run compared with the first method at the same budget (paired, exact McNemar).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import models
from explorer.core.engine import encode_input, run
from explorer.core.settings import check_settings
from explorer.analysis import report as reports
from explorer.analysis.runs import record_line
from models.shapes_llava import scenes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "assets", "report_shapes.json")
METHODS = ("clse_spectral", "clse", "fastv", "random", "uniform")  # the first is each budget's reference
BUDGETS = (85, 57, 28)  # the paper's 192 / 128 / 64 of 576 on the embedded model's 256 tokens
TASK = "shapes"


def scene_items(seed, n):
    """[(doc_id, scene, question)]: held-out scenes, one question each, kinds in turn (the offline task's)."""
    if seed + n > scenes.TRAIN_SEED_START:
        raise ValueError(f"held-out seeds must stay below {scenes.TRAIN_SEED_START}")
    out = []
    for i in range(n):
        scene = scenes.make_scene(seed + i)
        out.append((i, scene, scenes.question_in_turn(scene, i)))
    return out


def target_tokens(scene, question):
    if not question.targets:
        return []
    mask = np.any([scenes.object_token_mask(scene.objects[i]) for i in question.targets], axis=0)
    return np.flatnonzero(mask).tolist()


def build(n=200, budgets=BUDGETS, methods=METHODS, seed=0, progress=None):
    """The report dict ({"runs", "tasks", "about"}) of the embedded model on n held-out scenes."""
    model, processor, family = models.load(models.EMBEDDED_ID)
    plan = [("none", None)] + [(m, keep) for keep in budgets for m in methods]
    lines = {key: [] for key in plan}
    correct = {key: {} for key in plan}
    side = scenes.IMAGE_SIZE // scenes.PATCH
    for doc_id, scene, question in scene_items(seed, n):
        encoded = encode_input(model, processor, family, [scene.image], question.text, "image")
        target = target_tokens(scene, question)
        for method, keep in plan:
            settings = check_settings(keep=keep or 1, max_new_tokens=1)
            record = run(model, processor, encoded, method, settings)
            answer = processor.tokenizer.decode(record.answer_ids[:1], skip_special_tokens=True).strip()
            line = record_line(record.to_json())
            line.update(doc_id=doc_id, task=TASK, target_tokens=target, target_grid=[side, side])
            lines[(method, keep)].append(line)
            correct[(method, keep)][doc_id] = int(answer == question.answer)
        if progress and (doc_id + 1) % 20 == 0:
            progress(f"{doc_id + 1} of {n} scenes")
    runs = []
    for method, keep in plan[1:] + plan[:1]:  # each budget's reference first; the unpruned run last
        values = correct[(method, keep)]
        settings = {"method": method, **({"keep": keep} if keep is not None else {})}
        runs.append({"results_file": None, "task": TASK, "model": "explorer.eval.shipped",
                     "pretrained": models.EMBEDDED_ID,
                     "method": method, "keep": keep, "invert": False, "settings": settings, "tag": None,
                     "limit": None, "metrics": {"exact_match": sum(values.values()) / len(values)},
                     "main_metric": "exact_match", "accuracy": sum(values.values()) / len(values),
                     "samples": len(values), "errors": 0, **reports.summarise(lines[(method, keep)], values)})
    reports.compare_with_first(runs, same_keep=True)
    for entry in runs:
        entry.pop("timings_ms", None)  # machine-dependent: the report stays reproducible byte for byte
    return {"runs": runs, "tasks": [TASK], "about": {
        "what": f"the embedded model ({models.EMBEDDED_ID}) on {n} held-out generated scenes (seeds {seed}-"
                f"{seed + n - 1}, one question each, kinds in turn), controlled comparison (one stage at the family's "
                "K, the same count for every method), answers scored on the first word",
        "command": f"python -m explorer.eval.shipped --n {n} --keep {','.join(map(str, budgets))} "
                   f"--methods {','.join(methods)} --seed {seed}"}}


def rounded(value, digits=5):
    """Floats shortened to `digits` significant digits (the shipped file stays small and diffs stay readable)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="held-out scenes")
    parser.add_argument("--keep", default=",".join(map(str, BUDGETS)), help="budgets (tokens of 256)")
    parser.add_argument("--methods", default=",".join(METHODS), help="methods; the first is each budget's reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=SHIPPED, help="where the report goes (default: the one the page ships)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the same numbers everywhere)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    report = build(args.n, tuple(int(k) for k in args.keep.split(",")), tuple(args.methods.split(",")), args.seed,
                   progress=lambda text: print(text, file=sys.stderr))
    with open(args.out, "w") as f:
        json.dump(rounded(report), f, separators=(",", ":"))
    print(reports.markdown(report))
    print(f"\nwrote {args.out} ({os.path.getsize(args.out) // 1024} kB) in {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

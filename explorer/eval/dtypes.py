"""The embedded model in half precision: python -m explorer.eval.dtypes [--n 300] [--dtypes float32,bfloat16]
[--device cpu]

The page runs the embedded model in float32 on a CPU and in bfloat16 on a GPU (a ZeroGPU Space): does it tell
the same story there? On the same held-out scenes and clips as python -m explorer.eval.embedded (its items and
runs: the controlled comparison at the family's K, no inverted runs), every method and budget run in each dtype;
per method and budget: the accuracy in each (95% Wilson interval), the paired difference of the other dtype
from the first (Newcombe's interval, exact McNemar p), the answers that differ between the two and how many of
them on the same kept set (the decoder's rounding alone), the kept sets that differ (the scores' rounding chose
otherwise), the first dtype's answers that were close calls (decided by under NEAR_TIE logits:
explorer/analysis/comparison.py), and how many of the differing answers were close calls there. The unpruned
model is the first row.
"""

import argparse
import json
import sys

import numpy as np
import torch

import models
from explorer.analysis.comparison import NEAR_TIE
from explorer.analysis.stats import interval_text, paired_difference, wilson_interval
from explorer.eval.embedded import answered, eval_items, evaluate
from explorer.methods.registry import check_method


def keyed(rows):
    """{(method, keep): {item: row}} of the runs that ran."""
    out = {}
    for row in answered(rows):
        out.setdefault((row["method"], row["keep"]), {})[row["item"]] = row
    return out


def overlap(x, y):
    """The share of run x's kept set that run y kept too (rows' packed bits: embedded.run_item)."""
    a, b = (np.unpackbits(np.frombuffer(r["kept"], dtype=np.uint8)).astype(bool) for r in (x, y))
    return float((a & b).sum() / max(a.sum(), 1))


def compare_dtypes(by_dtype):
    """by_dtype: {dtype: evaluate() rows on the same items}, the first dtype the reference. Returns one entry per
    (method, keep) of the first dtype's runs, on the items both dtypes answered."""
    (first, reference), (second, other) = list(by_dtype.items())[:2]
    theirs, mine = keyed(reference), keyed(other)
    out = []
    for key, rows in theirs.items():
        items = [i for i in rows if i in mine.get(key, {})]
        a, b = [rows[i] for i in items], [mine[key][i] for i in items]
        differ = [x["answer"] != y["answer"] for x, y in zip(a, b)]
        close = [x["margin"] < NEAR_TIE for x in a]
        moved = [x["kept"] != y["kept"] for x, y in zip(a, b)]  # the dtype's rounding of the scores chose otherwise
        paired = paired_difference([x["correct"] for x in a], [y["correct"] for y in b])
        out.append({"method": key[0], "keep": key[1], "questions": len(items), "dtypes": [first, second],
                    "accuracy": [paired["first"], paired["second"]],
                    "intervals": [wilson_interval(sum(x["correct"] for x in a), len(a)),
                                  wilson_interval(sum(y["correct"] for y in b), len(b))],
                    "difference": paired["difference"], "difference_interval": paired["interval"], "p": paired["p"],
                    "answers_differ": sum(differ), "close_calls": sum(close),
                    "differ_and_close": sum(d and c for d, c in zip(differ, close)),
                    "kept_sets_differ": sum(moved), "differ_same_kept": sum(d and not m for d, m in zip(differ, moved)),
                    "kept_overlap": float(np.mean([overlap(x, y) for x, y in zip(a, b)])) if a else None})
    return out


def markdown(entries):
    first, second = entries[0]["dtypes"]
    lines = [f"| method | keep | questions | {first} accuracy | {second} accuracy | {second} - {first} (p) | "
             f"answers that differ | of them, on the same kept set | kept sets that differ (mean overlap) | close "
             f"calls in {first} (under {NEAR_TIE} logits) | of the differing answers, close calls in {first} |",
             "|---" * 11 + "|"]
    for e in entries:
        lines.append(f"| {e['method']} | {e['keep'] or 'all'} | {e['questions']} | "
                     f"{interval_text(e['accuracy'][0], e['intervals'][0])} | "
                     f"{interval_text(e['accuracy'][1], e['intervals'][1])} | "
                     f"{interval_text(e['difference'], e['difference_interval'])} (p = {e['p']:.2g}) | "
                     f"{e['answers_differ']} | {e['differ_same_kept']} | {e['kept_sets_differ']} "
                     f"({e['kept_overlap']:.3f}) | "
                     f"{e['close_calls']} | {e['differ_and_close']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=300, help="scenes (one question each); clips: n // 3")
    parser.add_argument("--keep", default="85,57,28", help="visual tokens kept (default: the paper's 192/128/64 "
                        "of 576 scaled to 256 tokens)")
    parser.add_argument("--methods", default="clse,fastv")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="two dtypes, the first the reference")
    parser.add_argument("--weights", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--device", default="cpu", help="where both dtypes run (default cpu; cuda on a GPU)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the entries as JSON instead of the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        dtypes = [d for d in args.dtypes.split(",") if d]
        if len(dtypes) != 2 or any(d not in models.DTYPES for d in dtypes):
            raise ValueError(f"--dtypes takes two of {', '.join(models.DTYPES)}, got {args.dtypes!r}")
        budgets = [int(k) for k in args.keep.split(",") if k]
        methods = [m for m in args.methods.split(",") if m]
        for method in methods:
            check_method(method)
        items = eval_items(args.seed, args.n, args.n // 3)
        by_dtype = {}
        for dtype in dtypes:
            model, processor, family = models.load(args.weights, device=args.device, dtype=dtype)
            by_dtype[dtype] = evaluate(model, processor, family, items, methods, budgets, invert=False)
    except ValueError as error:  # BadInput (an unknown method, a model that does not load) is one
        print(f"error: {error}", file=sys.stderr)
        return 2
    entries = compare_dtypes(by_dtype)
    print(json.dumps(entries, indent=1) if args.json else markdown(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput by batch size: python -m explorer.bench --batch 1,4,8 [--methods clse,fastv] [--budgets 192]

On the engine benchmark's shapes (explorer/bench/engine.py: random-weight LLaVA models with 576 visual tokens),
questions per second of the batched engine (explorer/core/batch.py) per batch size, method and budget, as
ratios to the unpruned model at batch size 1, all measured in this one run. Every input of a batch is its own
(a different image and question, the prompts a few tokens apart, so the batch is padded); the vision tower runs
once per input before timing (it is the same at every batch size): the time is the engine's prefill and
greedy decoding of --new-tokens tokens per question.

Ratios that are ratios (explorer/bench/pairs.py): each repeat runs, per variant (method, budget, batch size), the
unpruned batch of one and the variant back to back (the pair's order alternated between repeats, the variants'
order rotated), and the pair gives the ratio (B / t_variant) / (1 / t_unpruned batch 1); a row prints the
median over --repeats with its spread, or the spread alone, marked unsteady, beyond --tolerance.

Where the time goes, from the same run's records: per batch size and method, the prefill per question and a
decoding step per question (the batch's engine timings divided by its size, medians over the repeats). A batch
gains only where these two shrink per question; the throughput ratio for answers of n tokens follows from them
((P_1 + n d_1) / (P_B + n d_B), per question), and the table says for which answer lengths batch B reaches
--target times batch 1, from these measured parts (a derived figure, labelled as one).
"""

import sys
import time

import numpy as np
from PIL import Image

from explorer.bench import pairs
from explorer.core.batch import run_batch
from explorer.core.engine import encode_input
from explorer.core.settings import check_settings
from models import DTYPES, llava

QUESTION = "what is in the image ?"


def inputs(model, processor, count):
    """`count` encoded inputs: a different random 336 x 336 image each, and questions of 7 to 9 repetitions of
    the benchmark's question (about 40 text tokens with the template; prompts of different lengths)."""
    out = []
    for n in range(count):
        image = Image.fromarray((np.random.default_rng(n).random((336, 336, 3)) * 255).astype("uint8"))
        question = " ".join([QUESTION] * (7 + n % 3))
        out.append((encode_input(model, processor, llava, [image], question), question))
    return out


def timer(kind):
    return time.process_time if kind == "cpu" else time.perf_counter


def timed_batch(model, processor, encoded, method, settings, now):
    """Seconds for one batch through the engine (prefill and decoding), and its records."""
    start = now()
    records = run_batch(model, processor, [e for e, _ in encoded], method, settings, questions=[q for _, q in encoded])
    return now() - start, records


def measure(model, processor, encoded, sizes, methods, budgets, args, progress=None):
    """{(method, keep, batch): [throughput ratio to unpruned batch 1 per repeat]}, {same: [questions / s]}, the
    notes of the batched records (how each variant ran) and {same: [(prefill ms per question, decoding step ms
    per question)] per repeat} from the variant's records."""
    now = timer(args.clock)
    variants = [("none", None, b) for b in sizes] + [(m, k, b) for m in methods if m != "none" for k in budgets
                                                      for b in sizes]
    settings = {(m, k): check_settings(methods=[] if m == "none" else [m], keep=k or 1.0, prune_layer=args.prune_layer,
                                       early_kv=args.early_kv, max_new_tokens=args.new_tokens)
                for m, k, _ in variants}
    reference = check_settings(methods=[], keep=1.0, prune_layer=args.prune_layer, early_kv=args.early_kv,
                               max_new_tokens=args.new_tokens)
    ratios, rates, notes, parts = ({v: [] for v in variants} for _ in range(4))
    for repeat in range(args.repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            method, keep, size = variant
            if progress:
                progress(f"{method} keep {keep} batch {size}, repeat {repeat + 1} of {args.repeats}")
            pair = [("reference", "none", reference, encoded[:1]), ("variant", method, settings[(method, keep)],
                                                                    encoded[:size])]
            times = {}
            for label, name, s, batch in pair if repeat % 2 == 0 else pair[::-1]:
                times[label], records = timed_batch(model, processor, batch, name, s, now)
                if label == "variant":
                    timings = records[-1].timings_ms  # a batched record's timings are the whole batch's
                    parts[variant].append((timings["prefill"] / size, timings["decode_per_token"] / size))
                if label == "variant" and repeat == 0:
                    notes[variant] = records[-1].notes[-1] if size > 1 else "batch of one: engine.run"
            ratios[variant].append(size * times["reference"] / times["variant"])
            rates[variant].append(size / times["variant"])
    return ratios, rates, notes, parts


def crossing(prefill_1, step_1, prefill_b, step_b, target):
    """The answer length (new tokens) from which a batch's throughput is `target` times batch 1's, per question
    ((prefill_1 + n step_1) / (prefill_b + n step_b) >= target), or None where no length reaches it."""
    gain_per_token = step_1 - target * step_b
    deficit = target * prefill_b - prefill_1
    if deficit <= 0:
        return 0
    return int(np.ceil(deficit / gain_per_token)) if gain_per_token > 0 else None


def time_table(parts, args):
    """Where the time goes: the prefill and a decoding step per question, per batch size and method (medians over
    the repeats, CPU or wall time as the clock), and the answer length from which each batch reaches --target."""
    print(f"\nWhere the time goes (the records' engine timings per question, medians over {args.repeats} repeats; "
          f"the last column derived from them: the answer length from which the batch reaches {args.target}x "
          "its method's batch 1)\n")
    print("| method | keep | batch | prefill per question (ms) | decoding step per question (ms) | "
          f"reaches {args.target}x from |")
    print("|---|---|---|---|---|---|")
    medians = {variant: [float(np.median(column)) for column in zip(*values)] for variant, values in parts.items()}
    for (method, keep, size), (prefill, step) in medians.items():
        reach = "(batch 1)" if size == 1 else crossing(*medians[(method, keep, 1)], prefill, step, args.target)
        reach = "no length" if reach is None else (
            f"{reach} new token{'' if reach == 1 else 's'}" if isinstance(reach, int) else reach)
        print(f"| {method} | {keep if keep is not None else 'all'} | {size} | {prefill:.0f} | {step:.1f} | {reach} |")


def table(name, model, processor, encoded, sizes, methods, budgets, args):
    """The throughput table and where the time goes, for `encoded`: [(engine.Encoded, question)], at least as
    many inputs as the largest batch, each its own."""
    run_batch(model, processor, [e for e, _ in encoded[:2]], "none",
              check_settings(methods=[], prune_layer=args.prune_layer, max_new_tokens=2))  # warm up: first kernels
    ratios, rates, notes, parts = measure(model, processor, encoded, sizes, methods, budgets, args,
                                          lambda text: print(text, file=sys.stderr, flush=True))
    print(f"\n### {name}: throughput by batch size, {args.new_tokens} new tokens per question, {args.dtype}\n")
    print("| method | keep | batch | questions / s | throughput ratio to unpruned batch 1 (min-max) |")
    print("|---|---|---|---|---|")
    for (method, keep, size), values in ratios.items():
        print(f"| {method} | {keep if keep is not None else 'all'} | {size} | "
              f"{pairs.median(rates[(method, keep, size)]):.3f} | {pairs.cell(values, tolerance=args.tolerance)} |",
              flush=True)
    batched = sorted({note for note in notes.values() if note.startswith("run in a batch")})
    alone = sorted({note for note in notes.values() if note.startswith("asked for in a batch")})
    print(f"\n(batched on the engine's padded batch: {len(batched) > 0}; " +
          (f"run one by one: {alone[0]}" if alone else "none ran one by one") + ")")
    if batched:
        print(f"(a batched record's note: {batched[-1]})")
    time_table(parts, args)
    return ratios


def batch_sizes(text):
    """--batch's sizes, batch 1 always among them (every ratio is to it)."""
    sizes = [int(b) for b in text.split(",")]
    return sizes if 1 in sizes else [1, *sizes]


def main(args, shapes, build):
    sizes = batch_sizes(args.batch)
    methods = args.methods.split(",")
    budgets = [float(b) if "." in b else int(b) for b in args.budgets.split(",")]
    for name, shape in shapes.items():
        model, processor = build(**shape)
        model.to(DTYPES[args.dtype])  # the inputs' pixels follow the model's dtype (encode_input)
        params = sum(p.numel() for p in model.model.language_model.parameters()) / 1e6
        print(f"\n{name}: {params:.0f}M decoder parameters, pruning at layer {args.prune_layer}")
        table(name, model, processor, inputs(model, processor, max(sizes)), sizes, methods, budgets, args)
        del model
    return 0

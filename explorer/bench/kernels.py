"""One decoding step's parts alone, by batch size: python -m explorer.bench --kernels [--batch 1,4] [--dtype D]

Why a batch gains what it gains (the decoding step per question in explorer/bench/batch.py's time table): on
each shape, the two parts of a decoding step timed alone, at batch 1 and at batch B, in pairs back to back (the
pair's order alternated between repeats; a pair's ratio is per question, t_B / (B t_1)):
- the matrix products: every linear module of the decoder with its own weights, and the LM head, on one row per
  question (a decoding step reads every weight once, whatever the batch: where reading were all the cost, a
  question of batch B would cost 1/B of a question alone);
- the attention: every layer's SDPA of one query per question over a cache as long as the benchmark's inputs
  (mid-answer), the batch padded as the engine's batches are (a boolean mask; batch 1 none): each question
  reads its own cache, so reading alone gives no gain per question (1).
Each row also says the rate at which a pass reads its weights or its cache (GB/s, at batch 1 and at batch B): a
part that gains less than reading alone predicts is limited by this machine's kernels for that shape, not by its
memory.
"""

import numpy as np
import torch
import torch.nn.functional as F

from explorer.bench import pairs
from explorer.bench.batch import batch_sizes, inputs, timer
from models import DTYPES, llava


def linears(model):
    """The matrix products of one decoding step: every nn.Linear of the decoder, then the LM head."""
    lm = llava.text_model(model)
    return [m for m in lm.modules() if isinstance(m, torch.nn.Linear)] + [model.get_output_embeddings()]


def matrix_products(modules, size, dtype):
    """A pass over `modules` on `size` rows (a random row each, of the module's width): (run, bytes read)."""
    rows = {m.in_features: torch.randn(size, 1, m.in_features, dtype=dtype) for m in modules}
    weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in modules)

    def run():
        for m in modules:
            m(rows[m.in_features])

    return run, weight_bytes


def attention(config, size, length, dtype):
    """Every layer's SDPA of one query per question over a cache of `length` keys, as the engine decodes a batch:
    sample b left-padded by b % 3 rows and the pads masked (batch 1: no mask). (run, bytes of cache read)."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    width = getattr(config, "head_dim", None) or config.hidden_size // heads
    caches = [(torch.randn(size, kv_heads, length, width, dtype=dtype),
               torch.randn(size, kv_heads, length, width, dtype=dtype)) for _ in range(config.num_hidden_layers)]
    query = torch.randn(size, heads, 1, width, dtype=dtype)
    mask = None
    if size > 1:
        mask = torch.ones(size, 1, 1, length, dtype=torch.bool)
        for b in range(size):
            mask[b, ..., :b % 3] = False

    def run():
        for keys, values in caches:
            F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, enable_gqa=kv_heads != heads)

    return run, sum(k.numel() * k.element_size() * 2 for k, _ in caches)


def timed(run, now, inner):
    start = now()
    for _ in range(inner):
        run()
    return (now() - start) / inner


def measure(parts, sizes, repeats, now, inner=1):
    """parts: {name: factory(size) -> (run, bytes)}. Returns {(name, size): ([seconds per pass at batch 1],
    [seconds at batch size], [per-question ratio]) over the repeats} and {(name, size): bytes read at size}; each
    repeat times batch 1 and batch `size` back to back, the order alternated."""
    out, read = {}, {}
    for name, factory in parts.items():
        runs = {size: factory(size) for size in sizes}
        for run, _ in runs.values():
            run()  # warm up: first kernels, first touch of the buffers
        for size in sizes:
            if size == 1:
                continue
            ones, many = [], []
            for repeat in range(repeats):
                order = (1, size) if repeat % 2 == 0 else (size, 1)
                times = {s: timed(runs[s][0], now, inner) for s in order}
                ones.append(times[1])
                many.append(times[size])
            out[(name, size)] = (ones, many, [m / (size * o) for o, m in zip(ones, many)])
            read[(name, 1)], read[(name, size)] = runs[1][1], runs[size][1]
    return out, read


def table(name, model, processor, sizes, args):
    dtype = DTYPES[args.dtype]
    config = llava.text_model(model).config
    length = inputs(model, processor, 1)[0][0].inputs_embeds.shape[1] + args.new_tokens // 2
    modules = linears(model)
    parts = {f"matrix products ({len(modules)} linear modules with the LM head)":
             lambda size: matrix_products(modules, size, dtype),
             f"attention ({config.num_hidden_layers} layers, one query over {length} keys per question)":
             lambda size: attention(config, size, length, dtype)}
    with torch.inference_mode():
        results, read = measure(parts, sizes, args.repeats, timer(args.clock))
    print(f"\n### {name}: one decoding step's parts alone by batch size, {args.dtype}, medians of {args.repeats} "
          "pairs\n")
    print("| part | batch | batch 1 (ms) | batch B (ms) | batch 1 reads (GB/s) | batch B reads (GB/s) | "
          "per question, batch B / batch 1 (min-max) | if reading were all the cost |")
    print("|---|---|---|---|---|---|---|---|")
    for (part, size), (ones, many, ratios) in results.items():
        one, batch = float(np.median(ones)), float(np.median(many))
        ideal = 1 / size if part.startswith("matrix") else 1.0
        print(f"| {part} | {size} | {one * 1e3:.1f} | {batch * 1e3:.1f} | {read[(part, 1)] / one / 1e9:.1f} | "
              f"{read[(part, size)] / batch / 1e9:.1f} | {pairs.cell(ratios, tolerance=args.tolerance)} | "
              f"{ideal:.3f} |", flush=True)
    return results


def main(args, shapes, build):
    sizes = batch_sizes(args.batch or "1,4")
    for name, shape in shapes.items():
        model, processor = build(**shape)
        model.to(DTYPES[args.dtype])
        table(name, model, processor, sizes, args)
        del model
    return 0

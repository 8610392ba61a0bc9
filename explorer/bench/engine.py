"""Engine benchmark: python -m explorer.bench [--repeats 3] [--quick]  (this module: explorer/bench/engine.py)

Builds random-weight LLaVA models of realistic shape in code (a CLIP-336/14 grid of 576 visual tokens; a
~0.5B-parameter, 24-layer decoder and a deeper, narrow 32-layer one), then measures in this one run, per
method and budget: prefill time relative to unpruned beside the ideal ratio (the share of token-layers left:
cost linear in tokens), scoring overhead as a share of prefill, decode ms per token, KV-cache bytes and FLOPs
relative to unpruned. Ratios are ratios (explorer/bench/pairs.py): every repeat times the unpruned run and the
pruned one back to back, the pair's order alternated between repeats, and takes their ratio; a row prints the
median ratio over --repeats with its spread (min-max), or, where the spread is wider than --tolerance (+-10% of
the median by default), the spread alone, marked unsteady. One thread by default (--threads), timed by this
process's CPU time (--clock auto: with one thread on the CPU; --clock wall for wall time): other processes on
a shared machine then do not count in it, and on an idle machine it equals wall time.
`--suite paper` runs the paper's 7B shapes instead (explorer/bench/paper.py); `--batch 1,4,8` the throughput of
batched runs per batch size (explorer/bench/batch.py); `--kernels` a decoding step's parts alone by batch size
(explorer/bench/kernels.py).
With --dtype bfloat16 (or float16) it also reports how far the half-precision kept sets are from float32's
(overlap of the kept sets for CLSE and FastV per budget) and times everything in that dtype.

The peer rows (--peer, in the same run): each attention-based score computed the way its official code does
against ours, at 576 visual tokens and at an 8-frame video of 576 each: the official CLSE and FastV code switch
the scoring layer to eager attention with output_attentions (the N x N weights, of which they read the last
row), SparseVLM's custom SDPA returns the full softmax matrix (of which it reads the raters' rows); ours
computes the rows needed from the layer's own projections and leaves the layer on SDPA. Timed: the scoring
layer's attention with the weights (official) against SDPA plus our rows; peak memory: the process's peak
resident memory above its level before (Linux VmHWM, reset before each measurement). Ratios of medians.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from explorer.bench import pairs
from explorer.bench.peer import peer_attention
from explorer.core.compare import compare, warm_up
from explorer.core.engine import encode_input
from explorer.core.settings import EARLY_KV, check_settings
from models import DTYPES, llava
from models.shapes_llava.build import llava_processor, word_tokenizer

SHAPES = {
    # name: decoder width, layers, heads, MLP width (vision tower kept small: it is timed, not compared)
    "llava-576 / 0.5B decoder (d1024 x 24)": dict(hidden=1024, layers=24, heads=16, mlp=4096),
    "llava-576 / deep narrow (d512 x 32)": dict(hidden=512, layers=32, heads=8, mlp=1536),
}
QUICK_SHAPES = {"llava-576 / quick (d256 x 8)": dict(hidden=256, layers=8, heads=4, mlp=768)}


def build(hidden, layers, heads, mlp, vocab=32000):
    tokenizer = word_tokenizer("what is in the image ?".split())
    processor = llava_processor(tokenizer, image_size=336, patch_size=14)
    vision = CLIPVisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=4,
                              image_size=336, patch_size=14)
    text = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=4096,
                       eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id,
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.set_attn_implementation("sdpa")
    model.generation_config.eos_token_id = None  # random weights: decode a fixed number of tokens
    return model, processor


def timed(model, processor, image, question, methods, keep, args):
    """{method: Record} with timings as medians over --repeats, the methods' order rotated between repeats."""
    settings = check_settings(methods=methods, keep=keep, prune_layer=args.prune_layer, early_kv=args.early_kv,
                              max_new_tokens=args.new_tokens, repeats=args.repeats)
    return compare(model, processor, llava, [image], question, settings, diagnostics=False)


def dtype_overlap(model, processor, image, question, budgets, args):
    """Share of the float32 kept set that the same method keeps in --dtype, per budget, for CLSE and FastV."""
    reference = {keep: timed(model, processor, image, question, ["clse", "fastv"], keep, args) for keep in budgets}
    model.to(DTYPES[args.dtype])
    out = {}
    for keep in budgets:
        half = timed(model, processor, image, question, ["clse", "fastv"], keep, args)
        for method in ("clse", "fastv"):
            ours, theirs = set(half[method].kept_indices), set(reference[keep][method].kept_indices)
            out[(method, keep)] = len(ours & theirs) / keep
    return out


def table(model, processor, image, question, budgets, methods, args):
    """One row per method and budget: ratios of pruned to unpruned timed in pairs (explorer/bench/pairs.py),
    medians over --repeats with their spread. Returns every unpruned record of the run."""
    encoded = encode_input(model, processor, llava, [image], question)
    unpruned = []
    for keep in budgets:
        settings = check_settings(methods=methods, keep=keep, prune_layer=args.prune_layer, early_kv=args.early_kv,
                                  max_new_tokens=args.new_tokens)
        variants = [(method, method, settings) for method in methods]
        results = pairs.run_pairs(model, processor, encoded, variants, args.repeats)
        for method in methods:
            p = results[method]
            r, base = p.pruned[0], p.unpruned[0]
            prefill = p.ratios(lambda x: x.timings_ms["prefill"])
            ideal = sum(r.tokens_per_layer) / sum(base.tokens_per_layer)
            bare = [(q.timings_ms["prefill"] - q.timings_ms["scoring"]) / u.timings_ms["prefill"]
                    for q, u in zip(p.pruned, p.unpruned)]
            scoring = [100 * q.timings_ms["scoring"] / q.timings_ms["prefill"] for q in p.pruned]
            decode = pairs.median(p.values(lambda x: x.timings_ms["decode_per_token"]))
            print(f"| {method} | {keep} | {pairs.cell(prefill, tolerance=args.tolerance)} | "
                  f"{pairs.median(prefill) / ideal:.2f} | {pairs.median(bare):.3f} | {ideal:.3f} | "
                  f"{pairs.median(scoring):.2f}% | {decode:.1f} | "
                  f"{r.kv_cache_bytes / base.kv_cache_bytes:.3f} | "
                  f"{r.flops['prefill'] / base.flops['prefill']:.3f} |", flush=True)
            unpruned += p.unpruned
    return unpruned


def peer_table(args):
    """The peer rows: the official way (the N x N weights) against ours (the rows needed), 576 and 8 x 576."""
    name, shape = "llava-576 / deep narrow (d512 x 32)", SHAPES["llava-576 / deep narrow (d512 x 32)"]
    model, _ = build(**shape)
    print(f"\n### Peer rows: scoring attention the official way vs ours ({name}, one scoring layer, "
          f"medians of {args.repeats}, order rotated)\n")
    print("| tokens | official: eager attention with its N x N weights, ms | ours: SDPA + the rows needed, ms | "
          "time ratio (official / ours) | official peak MB | ours peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for seq in (576 + 40, 8 * 576 + 40):
        result = peer_attention(model, seq, repeats=args.repeats)
        assert result["difference"] < 1e-5  # the same rows both ways (float32)
        (t_off, m_off), (t_ours, m_ours) = result["official"], result["ours"]
        print(f"| {seq} | {t_off:.1f} | {t_ours:.1f} | {t_off / t_ours:.2f} | {m_off:.0f} | {m_ours:.0f} | "
              f"{m_off / max(m_ours, 1):.1f} |", flush=True)
    print("\n(the same rows both ways: the last prompt token's (FastV, CLSE) and 8 rater tokens' (SparseVLM), "
          "checked equal within 1e-5 before timing)")
    del model


def main(argv=None):
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs (unpruned, pruned) per row")
    parser.add_argument("--tolerance", type=float, default=pairs.TOLERANCE,
                        help="a ratio is printed as one number only when every repeat lies within +-this share of "
                             "the median (default 0.10)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch's CPU threads (default 1: immune to another process on a core, where an OpenMP "
                             "barrier waiting for a descheduled thread stalls every operation; 0: torch's default)")
    parser.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                        help="wall time, or this process's CPU time (other processes' load not counted; with one "
                             "thread); auto (default): CPU time with one thread on the CPU, else wall time")
    parser.add_argument("--prune-layer", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=4)
    parser.add_argument("--budgets", default=None, help="visual tokens kept: counts, or ratios (0.334) (default "
                        "192,128,64; with --batch 192)")
    parser.add_argument("--early-kv", choices=EARLY_KV, default=None,
                        help="the layers before K keep / drop the pruned tokens (default: the family's policy)")
    parser.add_argument("--methods", default=None, help="default clse,fastv,random; with --batch clse,fastv")
    parser.add_argument("--batch", default=None, help="batch sizes, e.g. 1,4,8: throughput (questions per second) "
                        "per batch size and method as ratios to unpruned batch 1 (explorer/bench/batch.py); with "
                        "--suite paper: on each of its models too, after its tables")
    parser.add_argument("--kernels", action="store_true", help="instead: one decoding step's parts (the matrix "
                        "products, the attention) timed alone at batch 1 and the --batch sizes (default 1,4), as "
                        "ratios per question (explorer/bench/kernels.py)")
    parser.add_argument("--target", type=float, default=1.5, help="with --batch: the throughput ratio to batch 1 "
                        "whose answer length the time table derives (default 1.5)")
    parser.add_argument("--dtype", choices=["auto", *DTYPES], default=None,
                        help="time in this dtype (default float32; the paper suite: auto, bfloat16 on CUDA); other "
                             "than float32: also the kept sets' overlap with float32")
    parser.add_argument("--shapes", default=None, help="comma-separated names' prefixes (default: all)")
    parser.add_argument("--quick", action="store_true", help="one small model, for a smoke test")
    parser.add_argument("--peer", action="store_true", help="also the peer rows: attention scored the official "
                        "way (eager, N x N weights) against ours, at 576 and 8 x 576 tokens")
    parser.add_argument("--peer-only", action="store_true", help="only the peer rows")
    parser.add_argument("--suite", choices=("engine", "paper"), default="engine",
                        help="engine (default): the shapes above on this machine; paper: the paper's 7B shapes "
                             "(LLaVA-1.5-7B, Video-LLaVA-7B, Qwen2-VL-7B) built on the device (bench/paper.py)")
    parser.add_argument("--layers", type=int, default=None,
                        help="paper suite: N decoder layers, a tiny tower and a narrow decoder: a smoke test")
    parser.add_argument("--counts", action="store_true",
                        help="paper suite: what does not depend on the device (schedules, real averages, KV cache and "
                             "FLOPs ratios at the full shapes), every model at full depth with a narrow decoder, "
                             "untimed")
    parser.add_argument("--width", type=int, default=None,
                        help="paper suite: the decoder's width (default: the model's; 256 with --layers)")
    parser.add_argument("--device", default="auto", help="paper suite: auto (CUDA if present), cuda, cuda:N, cpu")
    parser.add_argument("--models", default=None, help="paper suite: comma-separated parts of the models' names")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "auto":  # the engine suite runs on the CPU; the paper suite decides for its device
        args.clock = "cpu" if torch.get_num_threads() == 1 and args.suite == "engine" else args.clock
    args.budgets = args.budgets or ("192" if args.batch else "192,128,64")
    args.methods = args.methods or ("clse,fastv" if args.batch else "clse,fastv,random")
    budgets = [float(b) if "." in b else int(b) for b in args.budgets.split(",")]  # counts, or ratios of N
    if args.suite == "paper" and args.kernels:
        parser.error("--kernels times the engine suite's shapes on this machine, not the paper suite's")
    if args.suite == "paper":
        from explorer.bench import paper  # noqa: PLC0415

        args.budgets, args.dtype = budgets, args.dtype or "auto"
        status = paper.main(args, lambda text: print(text, file=sys.stderr, flush=True))
        print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
        return status
    args.dtype = args.dtype or "float32"
    if args.dtype == "auto":
        parser.error("--dtype auto is for the paper suite")
    methods = args.methods.split(",")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, {args.dtype}, SDPA attention, "
          f"{'wall' if args.clock == 'wall' else 'CPU (this process, --clock cpu)'} time; "
          f"{args.repeats} repeats, each a pair ({'batch 1, batch B' if args.kernels else 'unpruned, pruned'}) back "
          f"to back, its order alternated: ratios are "
          f"medians of the pairs' ratios (min-max), 'unsteady' beyond +-{args.tolerance:.0%} of the median")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    shapes = {name: shape for name, shape in shapes.items()
              if not args.shapes or any(name.startswith(p) or p in name for p in args.shapes.split(","))}
    if args.kernels:
        from explorer.bench import kernels  # noqa: PLC0415

        status = kernels.main(args, shapes, build)
        print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
        return status
    if args.batch:
        from explorer.bench import batch  # noqa: PLC0415

        status = batch.main(args, shapes, build)
        print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
        return status
    image = Image.fromarray((np.random.default_rng(0).random((336, 336, 3)) * 255).astype("uint8"))
    question = " ".join(["what is in the image ?"] * 7)  # about 40 text tokens with the template
    if args.peer_only:
        peer_table(args)
        print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
        return 0
    for name, shape in shapes.items():
        model, processor = build(**shape)
        params = sum(p.numel() for p in model.model.language_model.parameters()) / 1e6
        if args.dtype != "float32":
            overlap = dtype_overlap(model, processor, image, question, budgets, args)
            print(f"\n### {name}: kept-set overlap, {args.dtype} vs float32 (share of the float32 set kept)\n")
            print("| method | " + " | ".join(str(k) for k in budgets) + " |\n|---|" + "---|" * len(budgets))
            for method in ("clse", "fastv"):
                print(f"| {method} | " + " | ".join(f"{overlap[(method, k)]:.3f}" for k in budgets) + " |")
        warm_up(model, processor, llava)
        print(f"\n### {name}: {params:.0f}M decoder parameters, pruning at layer {args.prune_layer}, {args.dtype}\n")
        print("| method | keep | prefill ratio (min-max) | / ideal | without scoring | ideal ratio | "
              "scoring % of prefill | decode ms/token | KV-cache ratio | FLOPs ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        with pairs.clock(args.clock):
            unpruned = table(model, processor, image, question, budgets, methods, args)
        base = unpruned[0]
        timing = lambda key: pairs.median([r.timings_ms[key] for r in unpruned])  # noqa: E731
        print(f"\nunpruned (medians of its {len(unpruned)} runs): prefill {timing('prefill'):.0f} ms, decode "
              f"{timing('decode_per_token'):.1f} ms/token, vision encoder {base.timings_ms['vision_encoder']:.0f} ms, "
              f"KV cache {base.kv_cache_bytes / 2**20:.1f} MiB, {base.visual_tokens} visual + {base.text_tokens} "
              f"text tokens; {base.flops['formula']}")
        assert model.config.text_config._attn_implementation == "sdpa"  # never switched to eager
        del model
    if args.peer:
        peer_table(args)
    print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
    return 0

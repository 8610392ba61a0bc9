"""Engine benchmark: python -m explorer.bench [--repeats 3] [--quick]

Builds random-weight LLaVA models of realistic shape in code (a CLIP-336/14 grid of 576 visual tokens; a
~0.5B-parameter, 24-layer decoder and a deeper, narrow 32-layer one), then measures in this one run, per
method and budget: prefill time relative to unpruned beside the ideal ratio (the share of token-layers left:
cost linear in tokens), scoring overhead as a share of prefill, decode ms per token, and KV-cache bytes
relative to unpruned. Timings are the minimum over --repeats runs. Prints a Markdown table.
"""

import argparse
import os
import platform
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from explorer.engine import encode, run
from models import llava
from models.toy import llava_processor, word_tokenizer

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


def timed_run(model, processor, encoded, method, keep, args):
    best = None
    for _ in range(args.repeats):
        record = run(model, processor, encoded, method, keep, prune_layer=args.prune_layer,
                     max_new_tokens=args.new_tokens)
        if best is None or record.timings_ms["prefill"] < best.timings_ms["prefill"]:
            best = record
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prune-layer", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--budgets", default="192,128,64")
    parser.add_argument("--methods", default="clse,fastv,random")
    parser.add_argument("--quick", action="store_true", help="one small model, for a smoke test")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    methods = args.methods.split(",")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, float32, SDPA attention")
    image = Image.fromarray((np.random.default_rng(0).random((336, 336, 3)) * 255).astype("uint8"))
    question = " ".join(["what is in the image ?"] * 7)  # about 40 text tokens with the template
    for name, shape in (QUICK_SHAPES if args.quick else SHAPES).items():
        model, processor = build(**shape)
        params = sum(p.numel() for p in model.model.language_model.parameters()) / 1e6
        inputs = llava.build_inputs(processor, [image], question)
        encoded = encode(model, llava, inputs)
        timed_run(model, processor, encoded, "none", 64, args)  # warm-up
        base = timed_run(model, processor, encoded, "none", 64, args)
        full_layers = sum(base.tokens_per_layer)
        print(f"\n### {name}: {params:.0f}M decoder parameters, {encoded.groups[0].count} visual + "
              f"{base.text_tokens} text tokens, pruning at layer {args.prune_layer}")
        print(f"unpruned: prefill {base.timings_ms['prefill']:.0f} ms, decode "
              f"{base.timings_ms['decode_per_token']:.1f} ms/token, vision encoder {encoded.vision_ms:.0f} ms, "
              f"KV cache {base.kv_cache_bytes / 2**20:.1f} MiB\n")
        print("| method | keep | prefill ratio | without scoring | ideal ratio | scoring % of prefill | "
              "decode ms/token | KV-cache ratio | FLOPs ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        for keep in budgets:
            for method in methods:
                r = timed_run(model, processor, encoded, method, keep, args)
                t = r.timings_ms
                full = base.timings_ms["prefill"]
                print(f"| {method} | {keep} | {t['prefill'] / full:.3f} | {(t['prefill'] - t['scoring']) / full:.3f} | "
                      f"{sum(r.tokens_per_layer) / full_layers:.3f} | {100 * t['scoring'] / t['prefill']:.2f}% | "
                      f"{t['decode_per_token']:.1f} | {r.kv_cache_bytes / base.kv_cache_bytes:.3f} | "
                      f"{r.flops['prefill'] / base.flops['prefill']:.3f} |", flush=True)
        assert model.config.text_config._attn_implementation == "sdpa"  # never switched to eager
        del model


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")

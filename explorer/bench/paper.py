"""The paper's shapes: python -m explorer.bench --suite paper [--repeats 3] [--layers N]  (explorer/bench/paper.py)

Random-weight models of the paper's shapes, built with the real transformers classes from configs written here
and directly on the device (torch.device as the default device: bfloat16 on CUDA, float32 on the CPU; never
built on the CPU first and moved):
- LLaVA-1.5-7B (LlavaForConditionalGeneration): the Vicuna-7B decoder (32 layers x 4096, MLP 11008, vocabulary
  32064), the CLIP-L/336 tower (24 x 1024, patch 14): one image, 576 visual tokens;
- Video-LLaVA-7B (VideoLlavaForConditionalGeneration): the same decoder, the CLIP-L/224 video tower: 8 frames x
  (256 patches + the frame's CLS) = 2,056 video tokens, the CLS of every frame context (never pruned);
- Qwen2-VL-7B (Qwen2VLForConditionalGeneration): its decoder (28 x 3584, 28 heads with 4 KV heads, MLP 18944,
  vocabulary 152064, M-RoPE), its 32 x 1280 tower: a 1-megapixel image (1008 x 1008 pixels: 72 x 72 patches,
  36 x 36 = 1,296 tokens after the 2 x 2 merge).
The inputs are constructed, not processed (input_ids with the right placeholder count between text ids, random
pixel tensors, Qwen's grid and token types): a processor is needed only to decode the answer's tokens, so a stand-
in one does that. Each model runs the unpruned reference, CLSE as published (images: three stages 1/11/21 of 32
(1/10/19 of 28) with its keep table used literally, spectral x attention at the first; video one stage L = 2, K = 3
keeping the budget; the claims were measured so, not at the official mode's one real cost) and FastV as its authors
run it (one stage at K = 2, earlier layers keep their KV cache) at each budget, timed in pairs
(explorer/bench/pairs.py), and reports prefill, time to first token, decode ms/token, KV cache, FLOPs and peak
memory as ratios to unpruned (medians of the pairs, min-max), the real average of visual tokens kept over all
layers, the paper's claims beside ours, and the peer rows: the attention row the official code reads from the eager
N x N weights against ours (SDPA plus the rows), on each model's sequence.

--layers N: the same suite with N decoder layers, a tiny tower (2 layers, width 64; the same patch grids, so the
same token counts) and a narrow decoder (--width, 256 by default), in float32 on the CPU: a smoke test of the
whole path. A schedule deeper than N layers (FastV's K = 2 on 2 layers) then runs at K = N - 1, and the table
says so. Needs torch, numpy and transformers (with Pillow, which the family files import).

--counts: what a GPU run prints that does not depend on the GPU, on any machine in seconds: each model at its full
depth with a narrow decoder and a tiny tower (the real shapes' token counts), every variant run once, untimed: the
schedule, the real average kept, the KV cache ratio (exact: every layer's cache is as wide in both runs) and the
FLOPs ratio at the real shape's width (from the runs' tokens per layer), beside the paper's claims.
"""

import gc
import sys
import time
from types import SimpleNamespace

import torch
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                          Qwen2VLConfig, Qwen2VLForConditionalGeneration, VideoLlavaConfig,
                          VideoLlavaForConditionalGeneration)
from transformers.feature_extraction_utils import BatchFeature

from explorer.bench import pairs
from explorer.bench.peer import peer_attention
from explorer.core.engine import encode, layer_flops
from explorer.core.settings import check_settings
from explorer.core.stage import method_plan
from explorer.methods.registry import METHODS
from models import llava, qwen2_vl, video_llava
from models.base import BadInput

METHODS_RUN = ("clse", "fastv")
# The paper's efficiency claims (factors: unpruned / pruned) beside ours; the video claim is at its video budget
# (194 of 2,048 in its README), shown beside our 192.
CLAIMS = {("LLaVA-1.5-7B", 192): {"prefill": 1.51, "FLOPs": 2.28, "KV cache": 5.59},
          ("Video-LLaVA-7B", 192): {"prefill": 2.73, "FLOPs": 9.35, "KV cache": 8.70}}
PREFIX, SUFFIX = 35, 24  # text tokens before and after the visual ones (LLaVA's vicuna_v1 prompt: image at 35)


def vicuna_7b(layers, width, vocab=32064):
    """The Vicuna-7B decoder (LLaVA-1.5, Video-LLaVA), or a narrow one of the same proportions for --layers."""
    heads = 32 if width == 4096 else max(1, width // 64)
    return LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=11008 * width // 4096,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0)


def clip_tower(image_size, tiny):
    """CLIP-L/14 (24 x 1024, 16 heads), or a tiny tower with the same patch grid."""
    size = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2) if tiny else \
        dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)
    return CLIPVisionConfig(image_size=image_size, patch_size=14, projection_dim=768, hidden_act="quick_gelu",
                            layer_norm_eps=1e-5, **size)


def llava_7b(layers, width, tiny, sample=0):
    config = LlavaConfig(vision_config=clip_tower(336, tiny), text_config=vicuna_7b(layers, width),
                         image_token_index=32000, image_seq_length=576, vision_feature_layer=-2,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu")
    ids = text_ids(config.text_config.vocab_size - 64, PREFIX + sample % 3, [32000] * 576, SUFFIX, seed=sample)
    pixels = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(sample))
    return LlavaForConditionalGeneration, config, llava, "image", dict(input_ids=ids, pixel_values=pixels)


def video_llava_7b(layers, width, tiny, sample=0, frames=8):
    config = VideoLlavaConfig(vision_config=clip_tower(224, tiny), text_config=vicuna_7b(layers, width),
                              image_token_index=32000, video_token_index=32001, image_seq_length=256,
                              video_seq_length=frames * 257, vision_feature_layer=-2,
                              vision_feature_select_strategy="default", projector_hidden_act="gelu")
    ids = text_ids(config.text_config.vocab_size - 64, PREFIX + sample % 3, [32001] * (frames * 257), SUFFIX,
                   seed=sample)
    pixels = torch.randn(1, frames, 3, 224, 224, generator=torch.Generator().manual_seed(sample))
    return VideoLlavaForConditionalGeneration, config, video_llava, "video", dict(input_ids=ids,
                                                                                   pixel_values_videos=pixels)


def qwen2_vl_7b(layers, width, tiny, sample=0, side=72):
    """Qwen2-VL-7B; an image of side x side patches of 14 (72: 1008 x 1008 pixels, about a megapixel)."""
    heads, kv_heads = (28, 4) if width == 3584 else (max(1, width // 64), max(1, width // 256))
    half = width // heads // 2
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]  # [16, 24, 24] at head_dim 128
    text = dict(vocab_size=152064, hidden_size=width, intermediate_size=18944 * width // 3584,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
                bos_token_id=151643, eos_token_id=151645,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": section})
    vision = dict(depth=2, embed_dim=64, num_heads=2) if tiny else dict(depth=32, embed_dim=1280, num_heads=16)
    vision.update(hidden_size=width, mlp_ratio=4, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  in_channels=3, hidden_act="quick_gelu")
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=151655, video_token_id=151656,
                           vision_start_token_id=151652, vision_end_token_id=151653)
    tokens = side * side // 4
    ids = text_ids(151643, PREFIX - 1 + sample % 3, [151652] + [151655] * tokens + [151653], SUFFIX - 1, seed=sample)
    pixels = torch.randn(side * side, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(sample))
    return Qwen2VLForConditionalGeneration, config, qwen2_vl, "image", dict(
        input_ids=ids, pixel_values=pixels, image_grid_thw=torch.tensor([[1, side, side]]),
        mm_token_type_ids=(ids == 151655).int(), attention_mask=torch.ones_like(ids))


def text_ids(high, before, visual, after, seed=0):
    """[1, S]: `before` random text ids, the visual placeholders, `after` random text ids (ids 3 .. high - 1:
    never a special or placeholder token)."""
    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(3, high, (before + after,), generator=generator)
    return torch.cat([text[:before], torch.tensor(visual), text[before:]])[None]


# name: (builder, the decoder's full width, what the model is)
MODELS = {
    "LLaVA-1.5-7B": (llava_7b, 4096, "Vicuna-7B decoder 32 x 4096, CLIP-L/336 tower, 576 visual tokens"),
    "Video-LLaVA-7B": (video_llava_7b, 4096, "Vicuna-7B decoder 32 x 4096, CLIP-L/224 video tower, 8 frames x "
                                             "(256 + CLS) = 2,056 video tokens"),
    "Qwen2-VL-7B": (qwen2_vl_7b, 3584, "decoder 28 x 3584 (GQA 28 / 4), 32 x 1280 tower, a 1008 x 1008 image: "
                                        "1,296 visual tokens"),
}
FULL_LAYERS = {"LLaVA-1.5-7B": 32, "Video-LLaVA-7B": 32, "Qwen2-VL-7B": 28}
FULL_MLP = {"LLaVA-1.5-7B": 11008, "Video-LLaVA-7B": 11008, "Qwen2-VL-7B": 18944}  # all gated (SwiGLU)


class _Tokenizer:
    """What the engine asks of a processor: decoding the answer's ids (here, the ids themselves), no end token
    (random weights: every run decodes the same number of tokens)."""

    eos_token_id = None

    @staticmethod
    def decode(ids, skip_special_tokens=True):
        return " ".join(map(str, ids))


PROCESSOR = SimpleNamespace(tokenizer=_Tokenizer())


def build(name, device, dtype, layers=None, width=None):
    """(model, family, kind, inputs) for one of MODELS, built directly on `device` in `dtype`."""
    builder, full_width, _ = MODELS[name]
    model_class, config, family, kind, inputs = builder(layers or FULL_LAYERS[name], width or full_width,
                                                        tiny=layers is not None)
    torch.manual_seed(0)
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    model.generation_config.eos_token_id = None
    return model, family, kind, BatchFeature(inputs)


def as_published(method, keep, kind, new_tokens):
    """(Settings, how) of a method as the paper's claims were measured: CLSE with its keep table used literally
    (images: schedule "paper", whose nominal "192" averages more than 192 tokens per layer; video: the paper's
    one stage at the family's video K keeping the count, as its Video-LLaVA scripts' 194 of 2048), not the
    official mode's table scaled to the budget's real average; FastV as its authors run it (official mode: one
    stage at K = 2, its count solved to the real average). The table shows every row's real average."""
    if method != "clse":
        return check_settings(methods=[method], keep=keep, schedule="official", max_new_tokens=new_tokens), "official"
    if kind == "image":
        return (check_settings(methods=[method], keep=keep, schedule="paper", max_new_tokens=new_tokens),
                "the paper's keep table")
    return (check_settings(methods=[method], keep=keep, schedule="single", max_new_tokens=new_tokens),
            "the paper's video setting")


def variants(encoded, family, kind, budgets, new_tokens, num_layers, truncated):
    """[(label, method, Settings, how it runs)]: CLSE as published and FastV as its authors run it at every budget
    (as_published); on a decoder too shallow for that schedule (--layers), one stage at its last layer, said so."""
    out = []
    for keep in budgets:
        for method in METHODS_RUN:
            settings, how = as_published(method, keep, kind, new_tokens)
            try:
                method_plan(encoded, settings, num_layers, method)
            except BadInput:
                if not truncated:
                    raise
                k = num_layers - 1
                settings = check_settings(methods=[method], keep=keep, schedule="single", prune_layer=k,
                                          early_kv=METHODS[method].official.early_kv, max_new_tokens=new_tokens)
                how = f"truncated: one stage at K = {k}"
            out.append((f"{method} {keep}", method, settings, how))
    return out


def schedule_of(record):
    """'K 1/11/21: 330/210/62 kept' from a pruned record's stages."""
    layers = "/".join(str(s.layer) for s in record.stages)
    kept = "/".join(str(sum(s.keep_counts)) for s in record.stages)
    return f"K {layers}: {kept} kept"


def weights_bytes(model):
    return sum(p.numel() * p.element_size() for p in model.parameters())


def run_model(name, args, device, dtype, say):
    """Build one model on the device, time its pairs and its peer rows, print its tables; returns the claims rows
    [(name, keep, measure, paper factor, our factor)]."""
    start = time.perf_counter()
    model, family, kind, inputs = build(name, device, dtype, args.layers, args.width)
    built_s = time.perf_counter() - start
    lm = family.text_model(model)
    num_layers, config = len(lm.layers), model.config.get_text_config()
    weights = weights_bytes(model)
    say(f"{name}: built in {built_s:.1f} s ({weights / 2**30:.2f} GiB of weights); encoding")
    encode(model, family, inputs, kind=kind)  # the tower's first call pays for its first kernels: not timed
    encoded = encode(model, family, inputs, kind=kind)
    chosen = variants(encoded, family, kind, args.budgets, args.new_tokens, num_layers, args.layers is not None)
    run_model_warm_up(model, encoded)
    results = pairs.run_pairs(model, PROCESSOR, encoded, [(label, method, s) for label, method, s, _ in chosen],
                              args.repeats, progress=say)
    unpruned = [r for p in results.values() for r in p.unpruned]
    base = unpruned[0]
    median = lambda key: pairs.median([r.timings_ms[key] for r in unpruned])  # noqa: E731
    print(f"\n### {name}: {MODELS[name][2]}" + (f" (here {num_layers} layers x {config.hidden_size}, a tiny tower)"
                                               if args.layers else "") + f"; {base.dtype} on {base.device}\n")
    print(f"unpruned (medians of its {len(unpruned)} runs): {base.visual_tokens} visual + {base.text_tokens} text "
          f"tokens; prefill {median('prefill'):.1f} ms, first token {median('first_token'):.1f} ms (vision "
          f"encoder {encoded.vision_ms:.1f} ms, once), decode {median('decode_per_token'):.2f} ms/token, KV cache "
          f"{base.kv_cache_bytes / 2**20:.1f} MiB, peak memory {base.peak_memory_bytes / 2**30:.2f} GiB "
          f"({base.peak_memory_kind}; weights {weights / 2**30:.2f} GiB); model built in {built_s:.1f} s\n")
    print("| method | budget | schedule | real average kept | prefill | first token | decode ms/token | KV cache | "
          "FLOPs | peak memory | peak above the weights | scoring, % of the pruned prefill |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    claims, tolerance = [], args.tolerance
    cuda = device.type == "cuda"
    for label, method, settings, how in chosen:
        p = results[label]
        r = p.pruned[0]
        ratio = lambda key: p.ratios(lambda x: x.timings_ms[key])  # noqa: E731
        fixed = lambda value: value(r) / value(base)  # noqa: E731  (deterministic: the first pair's)
        above = (lambda x: max(x.peak_memory_bytes - weights, 1)) if cuda else (lambda x: x.peak_memory_bytes)
        schedule = schedule_of(r) + ("" if how == "official" else f" ({how})")
        print(f"| {method} | {settings.keep} | {schedule} | {r.budget['average_kept']:.1f} | "
              f"{pairs.cell(ratio('prefill'), tolerance=tolerance)} | "
              f"{pairs.cell(ratio('first_token'), tolerance=tolerance)} | "
              f"{pairs.cell(ratio('decode_per_token'), tolerance=tolerance)} | "
              f"{fixed(lambda x: x.kv_cache_bytes):.3f} | {fixed(lambda x: x.flops['prefill']):.3f} | "
              f"{pairs.cell(p.ratios(lambda x: x.peak_memory_bytes), tolerance=tolerance)} | "
              f"{pairs.cell(p.ratios(above), tolerance=tolerance)} | "
              f"{pairs.median([100 * x.timings_ms['scoring'] / x.timings_ms['prefill'] for x in p.pruned]):.2f}% |",
              flush=True)
        if method == "clse":
            claims += claim_rows(name, settings.keep, {
                "prefill": 1 / pairs.median(ratio("prefill")), "FLOPs": 1 / fixed(lambda x: x.flops["prefill"]),
                "KV cache": 1 / fixed(lambda x: x.kv_cache_bytes)})
    print(f"\nratios pruned / unpruned, each repeat's pair back to back: medians (min-max) of {args.repeats}; KV cache "
          f"and FLOPs are exact. Peak memory: {base.peak_memory_kind}" + (
              "; above the weights: the peak less the weights' bytes" if cuda else " (the estimate holds no weights)")
          + f". FLOPs: {base.flops['formula']}. Scoring: the pruning stages' own time (the attention rows from the "
          "cached keys, the spectra, the selection and the gather), the median of the pruned runs.")
    peer_rows(model, family, name, base.visual_tokens + base.text_tokens, args.repeats, say)
    if args.batch:
        batch_rows(model, family, kind, name, args, num_layers)
    del model, lm, encoded, results
    unpruned.clear()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return claims


def batch_rows(model, family, kind, name, args, num_layers):
    """--batch: throughput by batch size on this model (explorer/bench/batch.py's tables), every input of a batch
    its own (its own random pixels and text, 0-2 more text tokens: the batch is padded); unpruned and --methods at
    the first budget, in one controlled setting (K = --prune-layer, at most the last layer of a truncated decoder).
    """
    from explorer.bench import batch  # noqa: PLC0415

    sizes = batch.batch_sizes(args.batch)
    builder, full_width, _ = MODELS[name]
    layers, width = args.layers or FULL_LAYERS[name], args.width or full_width
    encoded = [(encode(model, family, BatchFeature(builder(layers, width, args.layers is not None, sample=i)[4]),
                       kind=kind), "") for i in range(max(sizes))]
    k = min(args.prune_layer, num_layers - 1)
    print(f"\n{name}, batched: {max(sizes)} inputs of its own, the controlled setting (every method one stage at "
          f"K = {k}, keeping {args.budgets[0]}), {args.new_tokens} new tokens per question")
    settings = SimpleNamespace(**{**vars(args), "prune_layer": k,
                                  "dtype": str(model.dtype).removeprefix("torch.")})
    batch.table(name, model, PROCESSOR, encoded, sizes, args.methods.split(","), args.budgets[:1], settings)


def claim_rows(name, keep, ours):
    """The claims table's rows for CLSE at this budget, where the paper makes claims: (model, budget, measure,
    the paper's factor, ours or None where this run measured no such thing)."""
    return [(name, keep, measure, paper, ours.get(measure)) for measure, paper in CLAIMS.get((name, keep), {}).items()]


def full_flops(record, name):
    """A run's prefill FLOPs at the real shape's width (its tokens per layer through the full-width layer)."""
    return sum(layer_flops(n, MODELS[name][1], FULL_MLP[name], gated=True) for n in record.tokens_per_layer)


def count_model(name, args, device, dtype, say):
    """--counts: one model at its full depth (narrow, a tiny tower), every variant run once, untimed; prints its
    exact columns and returns the claims rows it can fill (FLOPs, KV cache)."""
    from explorer.core.engine import run  # noqa: PLC0415

    model, family, kind, inputs = build(name, device, dtype, FULL_LAYERS[name], args.width)
    say(f"{name}: {FULL_LAYERS[name]} layers x {args.width}, a tiny tower; running each variant once")
    encoded = encode(model, family, inputs, kind=kind)
    chosen = variants(encoded, family, kind, args.budgets, args.new_tokens, FULL_LAYERS[name], False)
    base = run(model, PROCESSOR, encoded, "none", chosen[0][2])
    print(f"\n### {name}: {MODELS[name][2]}\n\n{base.visual_tokens} visual + {base.text_tokens} text tokens, "
          f"{args.new_tokens} new tokens; run at {FULL_LAYERS[name]} layers x {args.width} with a tiny tower (the "
          f"same token counts); FLOPs at the real width (d = {MODELS[name][1]}, m = {FULL_MLP[name]}, gated)\n")
    print("| method | budget | schedule | real average kept | KV cache | FLOPs |\n|---|---|---|---|---|---|")
    claims = []
    for _, method, settings, how in chosen:
        r = run(model, PROCESSOR, encoded, method, settings)
        kv, flops = r.kv_cache_bytes / base.kv_cache_bytes, full_flops(r, name) / full_flops(base, name)
        schedule = schedule_of(r) + ("" if how == "official" else f" ({how})")
        print(f"| {method} | {settings.keep} | {schedule} | {r.budget['average_kept']:.1f} | {kv:.3f} | "
              f"{flops:.3f} |", flush=True)
        if method == "clse":
            claims += claim_rows(name, settings.keep, {"FLOPs": 1 / flops, "KV cache": 1 / kv})
    del model, encoded
    gc.collect()
    return claims


def run_model_warm_up(model, encoded):
    """One short unpruned run, so that no timed run pays for the first kernels and allocations."""
    from explorer.core.engine import run  # noqa: PLC0415

    run(model, PROCESSOR, encoded, "none", check_settings(methods=[], keep=1, prune_layer=0, max_new_tokens=2))


def peer_rows(model, family, name, seq, repeats, say):
    say(f"{name}: the peer rows")
    result = peer_attention(model, seq, repeats=repeats, family=family)
    (t_off, m_off), (t_ours, m_ours) = result["official"], result["ours"]
    print(f"\npeer, {seq} tokens, one scoring layer (layer 1): the official way (eager attention with its N x N "
          f"weights) {t_off:.2f} ms, ours (SDPA + the rows needed) {t_ours:.2f} ms: {t_off / t_ours:.2f}x; peak "
          f"{max(m_off, 0):.0f} MB against {max(m_ours, 0):.0f} MB ({m_off / max(m_ours, 1):.1f}x); the two ways' rows "
          f"differ by at most {result['difference']:.1e} (medians of {repeats}, wall time)", flush=True)


def main(args, say):
    """The suite; args from explorer/bench/engine.py's parser (device, dtype, layers, width, budgets, repeats,
    new_tokens, tolerance). Returns the exit status."""
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else
                                                                       "cpu"))
    if args.layers is not None and args.layers < 2:
        print("error: --layers needs at least 2 decoder layers (a stage prunes the states entering a layer >= 1)",
              file=sys.stderr)
        return 2
    if args.counts and (args.layers is not None or args.batch):
        print("error: --counts runs every model once at its full depth, untimed: leave out --layers and --batch",
              file=sys.stderr)
        return 2
    if device.type == "cpu" and args.layers is None and not args.counts:
        print("error: the paper suite's 7B models need a GPU (one 7B model in float32 is 28 GB); on the CPU run "
              "the smoke test: --suite paper --layers 2", file=sys.stderr)
        return 2
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    if (args.layers is not None or args.counts) and args.width is None:
        args.width = 256
    kind = args.clock if args.clock != "auto" else "cpu" if device.type == "cpu" and torch.get_num_threads() == 1 \
        else "wall"
    if kind == "cpu" and device.type != "cpu":
        print("error: --clock cpu times a model on the CPU; on a GPU the clock is wall time", file=sys.stderr)
        return 2
    args.clock = kind  # the batch tables (--batch) time with the suite's clock
    names = [n for n in MODELS if not args.models or any(m.lower() in n.lower() for m in args.models.split(","))]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    if args.counts:
        print(f"## The paper's shapes, what does not depend on the device: {', '.join(names)} at full depth, narrow "
              f"({args.width}) decoders and tiny towers in {str(dtype).removeprefix('torch.')} on {gpu}; budgets "
              f"{', '.join(map(str, args.budgets))}; every variant run once, untimed; torch {torch.__version__}")
    else:
        print(f"## The paper's shapes: {', '.join(names)}, random weights built on {gpu} in "
          f"{str(dtype).removeprefix('torch.')}" + (f", truncated to {args.layers} decoder layers x {args.width} and a "
                                                  "tiny tower (a smoke test)" if args.layers else "")
              + f"; budgets {', '.join(map(str, args.budgets))}; {args.repeats} repeats, each a pair (unpruned, "
              f"pruned) back to back, its order alternated; {args.new_tokens} new tokens; {kind} time, "
              f"{torch.get_num_threads()} CPU threads; torch {torch.__version__}")
    claims = []
    with pairs.clock(kind):
        for name in names:
            claims += (count_model if args.counts else run_model)(name, args, device, dtype, say)
    if claims:
        print("\n### Beside the paper's claims (CLSE as published; factors unpruned / pruned)\n")
        print("| model | budget | measure | paper | ours |\n|---|---|---|---|---|")
        for name, keep, measure, paper, ours in claims:
            print(f"| {name} | {keep} | {measure} | {paper:.2f}x | "
                  + (f"{ours:.2f}x |" if ours is not None else "timed on a GPU only |"))
        print("\n(the paper's video claim is at its video budget, 194 of 2,048; ours at 192"
              + ("; a truncated decoder cannot match the paper's factors: a smoke test" if args.layers else "") + ")")
    return 0

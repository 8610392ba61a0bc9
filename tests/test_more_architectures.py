"""More architectures through the explorer unchanged (the generic path, models/generic.py): tiny checkpoints built
in code (tests/tiny_more.py), each checked as a new user would run it: models.family_of finds a family (no
refusal), keep-all decoding through encode + run equals the stock model's own greedy generate token for token,
and FastV and CLSE at keep 0.5 keep about half of the visual tokens, the text all kept.

Not here, though tests/tiny_more.py builds them, because they do not run unchanged (found 2026-12 on transformers
5.23; the generic default each would need is in the more-archs branch's report):
* exaone4_5, kimi_k25, mistral_large4, inkling_mm_model: keep-all equals generate, but FastV and CLSE are refused
  (no decoder layer whose attention row the shared defaults can read: post-norm layers without an input norm,
  MLA without k_proj, "indexed" / "hybrid" layer types); scores without an attention row prune.
* nemotron_h_omni: the wrapper has no output embeddings (lm_head sits in its ForCausalLM decoder): run() fails in
  logits_of; with the head found, as exaone4_5 (attention in a `mixer`).
* cosmos3_edge: its processor returns no mm_token_type_ids unless asked, and the stock forward then raises.
* got_ocr2: the checkpoint has no chat template, and the generic path has no official prompt.
* shieldgemma2: its processor writes one prompt per policy (a batch), which decoding cannot take.
* chameleon: keep-all differs from generate (the decoder is the wrapper itself: what is captured at its door are
  the placeholder tokens, not the VQ image tokens)."""

import pytest
import torch

import models
from explorer.core.engine import encode, run
from models import generic
from tests import tiny_more

ARCHITECTURES = ["vipllava", "fast_vlm", "aya_vision", "cohere2_vision", "perception_lm", "ovis2", "deepseek_vl",
                 "deepseek_vl_hybrid", "glm4v_moe", "glm_ocr", "hyperclovax_vision_v2", "video_llama_3", "muse_glimmer",
                 "muse_spark", "lfm3_vl", "minimax_m3_vl", "cosmos3_omni", "cohere_compass", "paddleocr_vl",
                 "hunyuan_vl", "ernie4_5_vl_moe", "step3p7", "minicpmv4_7",
                 "lighton_ocr", "qianfan_ocr", "janus", "gemma4_unified", "aria", "idefics2"]
NEW_TOKENS = 5


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = getattr(tiny_more, f"tiny_{name}")()
        return cache[name]
    return get


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_keep_all_equals_the_stock_generate_and_pruning_keeps_half(built, name):
    model, processor, inputs = built(name)
    family = models.family_of(model)
    assert family is generic
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    stock = out[0, inputs["input_ids"].shape[1]:].tolist()
    encoded = encode(model, family, inputs)
    record = run(model, processor, encoded, "none", keep=1.0, max_new_tokens=NEW_TOKENS)
    assert record.answer_ids == stock
    assert record.kept_indices == list(range(record.visual_tokens))
    for method in ("fastv", "clse"):
        record = run(model, processor, encoded, method, keep=0.5, max_new_tokens=NEW_TOKENS)
        n, kept, k = record.visual_tokens, len(record.kept_indices), record.prune_layer
        assert abs(kept - n / 2) <= len(encoded.groups), (method, kept, n)  # half of each grid, rounded
        assert record.tokens_per_layer[k] == record.tokens_per_layer[0] - (n - kept), method
        assert record.tokens_per_layer[k] - record.visual_per_layer[k] == record.text_tokens, method
        assert len(record.answer_ids) == NEW_TOKENS, method

"""Tiny random-weight Qwen2-VL / Qwen2.5-VL models for the tests, built from a config in code with their real
processors (Qwen2VLProcessor / Qwen2_5_VLProcessor + Qwen2VLImageProcessor + Qwen2VLVideoProcessor) and a
word-level tokenizer carrying Qwen's special tokens and a Qwen-style chat template."""

import torch
from transformers import PreTrainedTokenizerFast

from models.shapes_llava.build import _word_level

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>", "<unk>"]
QWEN_TEMPLATE_WORDS = ["system", "user", "assistant", "You", "are", "a", "helpful", "."]  # the template's words

# Qwen2-VL's chat template (system turn by default, one user turn, vision items where they are listed).
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer(words):
    """A word-level tokenizer over `words` with Qwen's special tokens (<|im_start|>, <|image_pad|>, ...)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level(QWEN_SPECIAL_TOKENS, [*QWEN_TEMPLATE_WORDS, *words]),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>",
                              "im_start_token": "<|im_start|>"},
    )


def qwen2_vl_processor(tokenizer, version="2", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 24, patch_size=14,
                       merge_size=2, temporal_patch_size=2):
    """The real Qwen processor with small pixel bounds (images map to a few merged tokens, e.g. 4 x 6)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    common = dict(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=patch_size, merge_size=merge_size,
                  temporal_patch_size=temporal_patch_size)
    image_processor = Qwen2VLImageProcessor(**common)
    video_processor = Qwen2VLVideoProcessor(**common, cap_pixels_per_frame=False)
    processor_class = Qwen2_5_VLProcessor if version == "2.5" else Qwen2VLProcessor
    return processor_class(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                           chat_template=QWEN_CHAT_TEMPLATE)


def tiny_qwen2_vl(tokenizer, version="2", text_width=64, text_layers=4, heads=4, kv_heads=2, mlp_width=None,
                  vision_width=32, vision_layers=2, vision_heads=2, patch_size=14, merge_size=2,
                  temporal_patch_size=2, tokens_per_second=2, seed=0, attn_implementation="sdpa"):
    """A Qwen2VLForConditionalGeneration (version "2") or Qwen2_5_VLForConditionalGeneration ("2.5") with random
    weights. M-RoPE sections are scaled to the small head: they sum to head_dim / 2."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)

    half = text_width // heads // 2
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]  # [16, 24, 24] of 64 in the real models
    text = dict(
        vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=mlp_width or 4 * text_width,
        num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": section},
    )
    vision = dict(depth=vision_layers, num_heads=vision_heads, patch_size=patch_size,
                  spatial_merge_size=merge_size, temporal_patch_size=temporal_patch_size)
    ids = dict(image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
               video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
               vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
               vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"))
    if version == "2.5":
        vision.update(hidden_size=vision_width, intermediate_size=2 * vision_width, out_hidden_size=text_width,
                      window_size=56, fullatt_block_indexes=[vision_layers - 1],
                      tokens_per_second=tokens_per_second)
        config, model_class = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids), \
            Qwen2_5_VLForConditionalGeneration
    elif version == "2":
        vision.update(embed_dim=vision_width, hidden_size=text_width, mlp_ratio=2)
        config, model_class = Qwen2VLConfig(text_config=text, vision_config=vision, **ids), \
            Qwen2VLForConditionalGeneration
    else:
        raise ValueError(f"version must be '2' or '2.5', got {version!r}")
    torch.manual_seed(seed)
    model = model_class(config)
    model.set_attn_implementation(attn_implementation)
    return model.eval()

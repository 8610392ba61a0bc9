"""Tiny random-weight LLaVA-NeXT and LLaVA-NeXT-Video models for the tests, built from a config in code with their
real processors (LlavaNextProcessor + LlavaNextImageProcessor; LlavaNextVideoProcessor + LlavaNextImageProcessor
+ LlavaNextVideoVideoProcessor), a word-level tokenizer carrying <image> and <video>, and chat templates written
for the tests in the hub checkpoints' formats (Mistral's [INST] turns for LLaVA-NeXT, vicuna's USER / ASSISTANT
turns for LLaVA-NeXT-Video).

Sizes: 84 px tiles of 14 px patches (6 x 6 = 36 base tokens), pinpoints of 1 x 2, 2 x 1 and 2 x 2 tiles, so a
200 x 150 image lands on 2 x 2 tiles (12 x 12 stitched) whose unpadding cuts one row at the top and one at the
bottom: 10 x 12 tile tokens and 10 newlines. Video frames pool 6 x 6 to 3 x 3.
"""

import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    LlavaNextVideoConfig,
    LlavaNextVideoForConditionalGeneration,
    LlavaNextVideoProcessor,
    LlavaNextVideoVideoProcessor,
)

from tests.tiny_shared import VICUNA_TEMPLATE, llava_tokenizer

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<video>"]
TEMPLATE_WORDS = ["[INST]", "[/INST]", "USER", "ASSISTANT", ":"]
WORDS = "what color is the circle square ? red green blue yes no one two three".split()
TILE, PATCH = 84, 14
PINPOINTS = [[84, 168], [168, 84], [168, 168]]

# LLaVA-v1.6-Mistral's turns: "[INST] <image>\nquestion [/INST] answer</s>", images first.
NEXT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST] "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    " [/INST]{% else %} {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s> {% endif %}"
    "{% endfor %}"
)


def next_tokenizer(words=WORDS):
    """A word-level tokenizer over `words` with LLaVA's special tokens and <video>."""
    return llava_tokenizer(SPECIAL_TOKENS, [*TEMPLATE_WORDS, *words])


def image_processor(tile=TILE, pinpoints=PINPOINTS):
    return LlavaNextImageProcessor(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
                                   image_grid_pinpoints=pinpoints)


def next_processor(tokenizer, tile=TILE, patch=PATCH, pinpoints=PINPOINTS):
    return LlavaNextProcessor(image_processor=image_processor(tile, pinpoints), tokenizer=tokenizer, patch_size=patch,
                              vision_feature_select_strategy="default", chat_template=NEXT_TEMPLATE,
                              num_additional_image_tokens=1)


def video_processor(tokenizer, tile=TILE, patch=PATCH, pinpoints=PINPOINTS):
    frames = LlavaNextVideoVideoProcessor(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile})
    return LlavaNextVideoProcessor(video_processor=frames, image_processor=image_processor(tile, pinpoints),
                                   tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
                                   chat_template=VICUNA_TEMPLATE, num_additional_image_tokens=1)


def tiny_next(tokenizer, video=False, tile=TILE, patch=PATCH, pinpoints=PINPOINTS, vision_width=32, vision_layers=2,
              text_width=64, text_layers=4, heads=4, kv_heads=2, init=0.3, seed=0, attn_implementation="sdpa"):
    """A LlavaNextForConditionalGeneration (or, video=True, LlavaNextVideoForConditionalGeneration) with random
    weights. init: the text model's initializer_range (large, so that answers depend on the image); the end of
    sequence row of the LM head is zeroed so answers run their length."""
    vision = CLIPVisionConfig(hidden_size=vision_width, intermediate_size=4 * vision_width,
                              num_hidden_layers=vision_layers, num_attention_heads=max(1, vision_width // 32),
                              image_size=tile, patch_size=patch, projection_dim=vision_width)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
                       num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       tie_word_embeddings=False, initializer_range=init)
    common = dict(vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                  vision_feature_layer=-2, vision_feature_select_strategy="default", image_grid_pinpoints=pinpoints,
                  tie_word_embeddings=False)
    if video:
        config = LlavaNextVideoConfig(**common, video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
                                      spatial_pool_mode="average", spatial_pool_stride=2)
        model_class = LlavaNextVideoForConditionalGeneration
    else:
        config, model_class = LlavaNextConfig(**common), LlavaNextForConditionalGeneration
    torch.manual_seed(seed)
    model = model_class(config)
    model.set_attn_implementation(attn_implementation)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = 0.0
    return model.eval()


class TinyNext:
    """A tiny LLaVA-NeXT (video=False) or LLaVA-NeXT-Video (video=True) with its real processor; `save(directory)`
    writes the hub layout that models.load reads."""

    def __init__(self, video=False, **kwargs):
        from models import llava_next, llava_next_video

        self.tokenizer = next_tokenizer()
        self.processor = (video_processor if video else next_processor)(self.tokenizer)
        self.model = tiny_next(self.tokenizer, video=video, **kwargs)
        self.family = llava_next_video if video else llava_next

    def save(self, directory):
        self.model.save_pretrained(directory)
        self.processor.save_pretrained(directory)
        return str(directory)

"""Tiny random-weight Video-LLaVA and LLaVA-OneVision models for the tests, built from a config in code with
their real processors (VideoLlavaProcessor + VideoLlavaImageProcessor + VideoLlavaVideoProcessor;
LlavaOnevisionProcessor + LlavaOnevisionImageProcessor + LlavaOnevisionVideoProcessor), a word-level tokenizer
carrying each family's special tokens, and a chat template written for the test (the hub checkpoints ship one).

Sizes: Video-LLaVA's CLIP towers see 56 px at patch 14 (4 x 4 = 16 patches, a frame 1 + 16 tokens);
LLaVA-OneVision's SigLIP tiles are 70 px at patch 14 (5 x 5 = 25 patches, an odd side, so the video's 2 x 2
pooling rounds up to 3 x 3), on tile layouts up to 4 x 4 (a 280 x 280 image is 16 tiles: beyond anyres_max_9,
so its tile grid is bilinearly downscaled). The text models get a large initializer_range (0.3) so that their
greedy answers depend on the image.
"""

import torch
from transformers import PreTrainedTokenizerFast

from models.shapes_llava.build import _word_level
from tests.tiny_shared import VICUNA_TEMPLATE, llava_tokenizer

TEXT_INIT = 0.3  # a random text model at the default 0.02 answers the same whatever the image

# ------------------------------------------------------------------------------------------ Video-LLaVA

VIDEO_LLAVA_SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<video>"]
# the words of the chat template and of the official llava_v1 system prompt (models.llava.VICUNA_V1)
VIDEO_LLAVA_TEMPLATE_WORDS = ["USER", "ASSISTANT", ":", *("A chat between a curious human and an artificial "
                                                        "intelligence assistant . The gives helpful , detailed and "
                                                        "polite answers to human's questions").split()]
# The hub checkpoint's format: tests/tiny_shared.py's VICUNA_TEMPLATE.


def video_llava_tokenizer(words):
    return llava_tokenizer(VIDEO_LLAVA_SPECIAL_TOKENS, [*VIDEO_LLAVA_TEMPLATE_WORDS, *words])


def video_llava_processor(tokenizer, image_size=56, patch_size=14):
    from transformers import VideoLlavaImageProcessor, VideoLlavaProcessor, VideoLlavaVideoProcessor

    sizes = dict(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    return VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(**sizes), video_processor=VideoLlavaVideoProcessor(**sizes),
        tokenizer=tokenizer, patch_size=patch_size, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=VICUNA_TEMPLATE)


def tiny_video_llava(tokenizer, image_size=56, patch_size=14, vision_width=32, vision_layers=2, text_width=64,
                     text_layers=4, heads=4, kv_heads=2, seed=0, attn_implementation="sdpa"):
    """A VideoLlavaForConditionalGeneration with random weights (separate image and video CLIP towers)."""
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=vision_width, intermediate_size=4 * vision_width,
                              num_hidden_layers=vision_layers, num_attention_heads=max(1, vision_width // 16),
                              image_size=image_size, patch_size=patch_size, projection_dim=vision_width)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
                       num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       tie_word_embeddings=False, initializer_range=TEXT_INIT)
    config = VideoLlavaConfig(vision_config=vision, text_config=text,
                              image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                              video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                              vision_feature_layer=-2, vision_feature_select_strategy="default",
                              image_seq_length=(image_size // patch_size) ** 2)
    torch.manual_seed(seed)
    model = VideoLlavaForConditionalGeneration(config)
    model.set_attn_implementation(attn_implementation)
    return model.eval()


# ------------------------------------------------------------------------------------------ LLaVA-OneVision

ONEVISION_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>", "<unk>"]
ONEVISION_TEMPLATE_WORDS = ["system", "user", "assistant", "You", "are", "a", "helpful", "."]
# The hub checkpoint's format (Qwen's im_start / im_end turns, the images or video first, no system turn).
ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'video' %}<video>{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}\n{{ item['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def onevision_tokenizer(words):
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level(ONEVISION_SPECIAL_TOKENS, [*ONEVISION_TEMPLATE_WORDS, *words],
                                     isolated=["<image>", "<video>"]),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>", "im_start_token": "<|im_start|>"},
    )


def tile_pinpoints(tile=70, most=4):
    """Tile layouts of 1..most tiles a side, as the hub's (multiples of 384 up to 6 x 6) are of its tile."""
    return [[tile * r, tile * c] for r in range(1, most + 1) for c in range(1, most + 1)]


def onevision_processor(tokenizer, tile=70, patch_size=14, vision_aspect_ratio="anyres_max_9"):
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    size = {"height": tile, "width": tile}
    return LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=tile_pinpoints(tile)),
        video_processor=LlavaOnevisionVideoProcessor(size=size), tokenizer=tokenizer,
        num_image_tokens=(tile // patch_size) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio=vision_aspect_ratio, chat_template=ONEVISION_CHAT_TEMPLATE)


def tiny_onevision(tokenizer, tile=70, patch_size=14, vision_width=32, vision_layers=2, text_width=64,
                   text_layers=4, heads=4, kv_heads=2, seed=0, vision_aspect_ratio="anyres_max_9",
                   attn_implementation="sdpa"):
    """A LlavaOnevisionForConditionalGeneration with random weights (SigLIP tower, Qwen2 text model)."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, \
        SiglipVisionConfig

    vision = SiglipVisionConfig(hidden_size=vision_width, intermediate_size=4 * vision_width,
                                num_hidden_layers=vision_layers, num_attention_heads=max(1, vision_width // 16),
                                image_size=tile, patch_size=patch_size, vision_use_head=False)
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
                       num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       max_position_embeddings=4096, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
                       initializer_range=TEXT_INIT)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text,
                                  image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                  video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                                  vision_feature_layer=-1, vision_feature_select_strategy="full",
                                  image_grid_pinpoints=tile_pinpoints(tile), vision_aspect_ratio=vision_aspect_ratio)
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    model.set_attn_implementation(attn_implementation)
    return model.eval()

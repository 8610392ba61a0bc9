"""Tiny random-weight Qwen3-VL and InternVL3 (HF-native) models for tests/test_qwen3_internvl.py, built from their
configs in code with their real processors (Qwen3VLProcessor + Qwen2VLImageProcessor + Qwen3VLVideoProcessor;
InternVLProcessor + GotOcr2ImageProcessor + InternVLVideoProcessor), a word-level tokenizer carrying each
family's special tokens, and a chat template written for the tests (shaped like the hub templates: Qwen3-VL
wraps the video placeholder in <|vision_start|> ... <|vision_end|>, InternVL writes <IMG_CONTEXT> / <video>
and a newline per visual item)."""

import torch
from transformers import PreTrainedTokenizerFast

from models import internvl, qwen3_vl
from models.shapes_llava.build import _word_level
from tests.tiny_models import QWEN_SPECIAL_TOKENS

WORDS = "what color is the circle square ? red green blue yes no one two three".split()
# Qwen3-VL writes "<0.5 seconds>" before every temporal patch: split by the word-level pre-tokenizer into
# "<0", ".", "5", "seconds>", so these pieces are words of the tiny vocabulary (no <unk> in a video prompt).
TIMESTAMP_WORDS = [f"<{d}" for d in range(30)] + [str(d) for d in range(10)] + ["seconds>"]
QWEN3_TEMPLATE_WORDS = ["user", "assistant", "."]
INTERNVL_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                           "<video>", "<unk>"]
INTERNVL_TEMPLATE_WORDS = ["system", "user", "assistant", "You", "are", "a", "helpful", ".", ":",
                           *[f"Frame{i}" for i in range(1, 17)]]

# No default system turn (Qwen3-VL's template adds one only when given); vision items where they are listed.
QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'video' %}<video>\n"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen3_tokenizer(words=WORDS):
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level(QWEN_SPECIAL_TOKENS, [*QWEN3_TEMPLATE_WORDS, *TIMESTAMP_WORDS, *words]),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>",
                              "im_start_token": "<|im_start|>"},
    )


def qwen3_vl_processor(tokenizer, min_tokens=4, max_tokens=24, video_max_tokens=96):
    """32 px per merged token (patch 16, merge 2); an image maps to 4 .. 24 merged tokens (300 x 200 -> 4 x 6),
    a 4-frame video of 300 x 200 frames to 2 temporal patches of 3 x 6."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    unit = 32 * 32
    image_processor = Qwen2VLImageProcessor(min_pixels=unit * min_tokens, max_pixels=unit * max_tokens,
                                            patch_size=16, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": unit * min_tokens,
                                                  "longest_edge": unit * video_max_tokens},
                                            patch_size=16, merge_size=2, temporal_patch_size=2,
                                            cap_pixels_per_frame=False)
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=QWEN3_CHAT_TEMPLATE)


def tiny_qwen3_vl(tokenizer, text_width=64, text_layers=6, heads=4, kv_heads=2, head_dim=16, vision_width=32,
                  vision_layers=3, deepstack=(0, 1, 2), seed=0, initializer_range=0.3):
    """A Qwen3VLForConditionalGeneration with random weights: DeepStack features from vision layers `deepstack`
    are added after decoder layers 0 .. len(deepstack) - 1. Interleaved M-RoPE sections sum to head_dim / 2."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    text = dict(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=2 * text_width,
                num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                head_dim=head_dim, max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
                initializer_range=initializer_range,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_interleaved": True,
                                 "mrope_section": [head_dim // 2 - 2 * (head_dim // 8), head_dim // 8,
                                                   head_dim // 8]})
    vision = dict(depth=vision_layers, hidden_size=vision_width, intermediate_size=2 * vision_width, num_heads=2,
                  patch_size=16, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=text_width,
                  num_position_embeddings=16, deepstack_visual_indexes=list(deepstack))
    config = Qwen3VLConfig(text_config=text, vision_config=vision,
                           image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
                           video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
                           vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
                           vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"))
    config.text_config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    model.set_attn_implementation("sdpa")
    return model.eval()


def tiny_qwen3_vl_moe(tokenizer, experts=4, **kwargs):
    """The MoE variant (Qwen3VLMoeForConditionalGeneration): the same text model, DeepStack and rotary, its MLPs
    experts; built from tiny_qwen3_vl's config with the MoE config class."""
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    dense = tiny_qwen3_vl(tokenizer, **kwargs).config.to_dict()
    dense["text_config"].update(num_experts=experts, num_experts_per_tok=2, moe_intermediate_size=32,
                                decoder_sparse_step=1, model_type="qwen3_vl_moe_text")
    dense["vision_config"]["model_type"] = "qwen3_vl_moe_vision"
    config = Qwen3VLMoeConfig(**{key: dense[key] for key in ("text_config", "vision_config", "image_token_id",
                                                             "video_token_id", "vision_start_token_id",
                                                             "vision_end_token_id")})
    torch.manual_seed(kwargs.get("seed", 0))
    model = Qwen3VLMoeForConditionalGeneration(config)
    model.set_attn_implementation("sdpa")
    return model.eval()


def internvl_tokenizer(words=WORDS):
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level(INTERNVL_SPECIAL_TOKENS, [*INTERNVL_TEMPLATE_WORDS, *words]),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>",
                              "im_start_token": "<|im_start|>"},
    )


def internvl_processor(tokenizer, tile=84, tokens_per_tile=36, max_patches=6):
    """84 px tiles (a 12 x 12 patch raster of 7 px, pixel-shuffled to 6 x 6 = 36 tokens); up to 6 tiles plus
    the thumbnail (300 x 200 -> 2 rows x 3 columns + thumbnail)."""
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

    size = {"height": tile, "width": tile}
    image_processor = GotOcr2ImageProcessor(size=size, crop_to_patches=True, min_patches=1, max_patches=max_patches)
    video_processor = InternVLVideoProcessor(size=size)
    return InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                             image_seq_length=tokens_per_tile, chat_template=INTERNVL_CHAT_TEMPLATE)


def tiny_internvl(tokenizer, tile=84, patch=7, text_width=64, text_layers=4, heads=4, kv_heads=2, vision_width=32,
                  vision_layers=2, seed=0, initializer_range=0.3):
    """An InternVLForConditionalGeneration (InternViT with a CLS token, pixel shuffle 0.5, a Qwen2 decoder)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    vision = dict(hidden_size=vision_width, num_hidden_layers=vision_layers, num_attention_heads=2,
                  intermediate_size=2 * vision_width, image_size=[tile, tile], patch_size=[patch, patch])
    text = dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=text_width,
                intermediate_size=2 * text_width, num_hidden_layers=text_layers, num_attention_heads=heads,
                num_key_value_heads=kv_heads, max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id, bos_token_id=None, initializer_range=initializer_range,
                tie_word_embeddings=False)
    config = InternVLConfig(vision_config=vision, text_config=text,
                            image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            image_seq_length=(tile // patch // 2) ** 2, downsample_ratio=0.5,
                            vision_feature_layer=-1, vision_feature_select_strategy="default",
                            tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    model.set_attn_implementation("sdpa")
    return model.eval()


class TinyQwen3:
    """Qwen3-VL with 6 decoder layers and DeepStack after layers 0, 1, 2; the DeepStack mergers' outputs are
    scaled up so that the injected features change the answer (at random init they are too small to)."""

    def __init__(self, deepstack_scale=300.0, **kwargs):
        self.tokenizer = qwen3_tokenizer()
        self.processor = qwen3_vl_processor(self.tokenizer)
        self.model = tiny_qwen3_vl(self.tokenizer, **kwargs)
        self.family = qwen3_vl
        with torch.no_grad():
            for merger in self.model.model.visual.deepstack_merger_list:
                merger.linear_fc2.weight.mul_(deepstack_scale)
                merger.linear_fc2.bias.mul_(deepstack_scale)
            self.model.lm_head.weight[self.tokenizer.eos_token_id] = 0.0  # answers longer than a token or two


class TinyInternVL:
    def __init__(self, **kwargs):
        self.tokenizer = internvl_tokenizer()
        self.processor = internvl_processor(self.tokenizer)
        self.model = tiny_internvl(self.tokenizer, **kwargs)
        self.family = internvl
        with torch.no_grad():
            self.model.lm_head.weight[self.tokenizer.eos_token_id] = 0.0


def save(t, directory):
    t.model.save_pretrained(directory)
    t.processor.save_pretrained(directory)
    return str(directory)

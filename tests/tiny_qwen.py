"""Tiny random-weight checkpoints of five M-RoPE families, built in code with their real classes:

  tiny_qwen3_5      Qwen3_5ForConditionalGeneration     (3 Gated-DeltaNet linear-attention layers + 1 full)
  tiny_qwen3_5_moe  Qwen3_5MoeForConditionalGeneration  (the same, MLPs as 4 small experts + a shared expert)
  tiny_qwen3_vl_moe Qwen3VLMoeForConditionalGeneration  (DeepStack after decoder layers 0 and 1, 4 experts)
  tiny_glm4v        Glm4vForConditionalGeneration       (GLM-4.1V)
  tiny_glm46v       Glm46VForConditionalGeneration      (GLM-4.6V; the same modules, its own processor classes)

Each builder returns (model, processor): the model float32, eval, attn_implementation "sdpa", 4 text layers of
width 64, 2 vision layers; the processor is the class AutoProcessor maps the model type to (Qwen3VLProcessor for
the three Qwen ones; Glm4vProcessor, Glm46VProcessor), with its real image and video processors set to the model's
patch / merge / temporal sizes, and pixel bounds that give a 90 x 70 image 30 visual tokens (5 x 6).

Tokenizers: word-level, every word one token. Qwen3VL-MoE and GLM use a WordLevel PreTrainedTokenizerFast
(models.shapes_llava.build._word_level). Qwen3.5 cannot: AutoTokenizer loads a "qwen3_5" / "qwen3_5_moe"
checkpoint with Qwen3_5Tokenizer whatever tokenizer_config.json names (both are in transformers'
MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS), and that class rebuilds a byte-level BPE from the saved vocab and
merges, which turns a WordLevel vocabulary into garbage on reload. So the Qwen3.5 tokenizer IS a Qwen3_5Tokenizer
(Qwen's own pre-tokenizer regex + ByteLevel), its BPE merges trained in code on the word list so that each word,
with or without its leading space, is one token (digits stand alone, as in Qwen: " 3" is " ", "3").

The chat templates are written here in each family's shape (not copied): Qwen3-VL / Qwen3.5 put
<|vision_start|><|image_pad|><|vision_end|> where the item is listed, no default system turn, Qwen3.5 opens the
answer with <think>\\n (empty think block with enable_thinking=False); GLM starts with [gMASK]<sop>, uses
<|user|> / <|assistant|> role tokens and <|begin_of_image|><|image|><|end_of_image|> /
<|begin_of_video|><|video|><|end_of_video|>.

Random weights: initializer_range 0.3 (text and vision) makes answers depend on the image; for Qwen3.5 that is not
enough (see _livelier_qwen3_5); the lm_head rows of the end tokens are zeroed so answers run their full length;
Qwen3VL-MoE's DeepStack mergers are scaled up so the injected features change the answer (tests/test_tiny_qwen.py
checks all three).
"""

import functools
import json

import torch
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, trainers
from tokenizers import models as tokenizer_models
from transformers import PreTrainedTokenizerFast

from models.shapes_llava.build import _word_level
from tests.tiny_qwen3_internvl import QWEN3_CHAT_TEMPLATE, qwen3_tokenizer
from tests.tiny_shared import WORDS, finish

ARCHITECTURES = ["qwen3_5", "qwen3_5_moe", "qwen3_vl_moe", "glm4v", "glm46v"]

TEXT_WIDTH, TEXT_LAYERS, VISION_LAYERS = 64, 4, 2
INIT = 0.3  # initializer_range: large enough that the answer depends on the image

# ------------------------------------------------------------------------------------------------ Qwen3.5

QWEN3_5_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                          "<|image_pad|>", "<|video_pad|>", "<think>", "</think>"]
# What the template and the video timestamps ("<0.1 seconds>" -> "<", "0", ".", "1", " seconds", ">") write.
QWEN3_5_TEMPLATE_WORDS = ["system", "user", "assistant", ".", "<", ">", "seconds", *map(str, range(10))]

QWEN3_5_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)


def qwen3_5_tokenizer(words=WORDS):
    """A Qwen3_5Tokenizer (the class AutoTokenizer picks for qwen3_5 and qwen3_5_moe) whose BPE merges make every
    word of `words` and of the template one token, with or without its leading space ("what", "Ġwhat") and after a
    newline; the byte alphabet keeps any other text encodable (byte by byte). Special tokens are added tokens."""
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX, Qwen3_5Tokenizer

    backend = Tokenizer(tokenizer_models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    corpus = [form for word in [*QWEN3_5_TEMPLATE_WORDS, *words] for form in (word, " " + word)] + ["\n", "\n\n"]
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=100_000, min_frequency=0, special_tokens=QWEN3_5_SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(backend.to_str())["model"]
    tokenizer = Qwen3_5Tokenizer(
        vocab=model["vocab"], merges=[tuple(merge) for merge in model["merges"]], eos_token="<|im_end|>",
        pad_token="<|endoftext|>", unk_token=None,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"})
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in QWEN3_5_SPECIAL_TOKENS])
    for word in [*QWEN3_5_TEMPLATE_WORDS, *words]:  # the point of the merges: one token per word (Qwen's regex
        forms = [word] if word.isdigit() else [word, " " + word]  # splits " 3" into " ", "3")
        assert all(len(tokenizer(form)["input_ids"]) == 1 for form in forms), word
    return tokenizer


def qwen3_processor(tokenizer, chat_template):
    """Qwen3VLProcessor (AutoProcessor's class for qwen3_5, qwen3_5_moe and qwen3_vl_moe) with Qwen2VLImageProcessor
    and Qwen3VLVideoProcessor at the models' patch 16, merge 2, temporal patch 2 (32 x 32 px per visual token), as
    tests/tiny_qwen3_internvl.py's qwen3_vl_processor with larger bounds. Images: 24 to 96 tokens (90 x 70 ->
    160 x 192 px -> 5 x 6 = 30 tokens). Videos: the bounds count all frames; 4 frames of 90 x 70 -> 128 x 128 px
    -> 2 temporal patches of 4 x 4 = 32 tokens."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    unit = 32 * 32
    common = dict(patch_size=16, merge_size=2, temporal_patch_size=2)
    image_processor = Qwen2VLImageProcessor(min_pixels=unit * 24, max_pixels=unit * 96, **common)
    video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": unit * 4 * 12, "longest_edge": unit * 4 * 48},
                                            cap_pixels_per_frame=False, **common)
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=chat_template)


def _mrope_section(rotary_dim):
    """Interleaved M-RoPE sections (T, H, W) over rotary_dim / 2 frequencies, shaped like the real [11, 11, 10] /
    [24, 20, 20]: T gets the remainder."""
    half = rotary_dim // 2
    return [half - 2 * (half * 5 // 16), half * 5 // 16, half * 5 // 16]


def _qwen3_5_config(tokenizer, moe, experts=4, layers=TEXT_LAYERS):
    """Text: width 64, layers linear, linear, linear, full (the real 3:1 pattern); full attention: 4 heads of 32,
    2 KV heads, gated output (q_proj is 2x), rotary on a quarter of the head (partial_rotary_factor 0.25, as the
    real model) = 8 dims = 4 frequencies, interleaved M-RoPE sections [2, 1, 1]; Gated-DeltaNet: 2 key heads and
    4 value heads of 16, conv kernel 4."""
    from transformers import Qwen3_5Config, Qwen3_5MoeConfig

    head_dim, partial = 32, 0.25
    text = dict(vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, num_hidden_layers=layers,
                layer_types=(["linear_attention"] * 3 + ["full_attention"]) * (layers // 4),
                num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim, linear_key_head_dim=16,
                linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
                linear_conv_kernel_dim=4, max_position_embeddings=4096, initializer_range=INIT,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": partial,
                                 "mrope_interleaved": True, "mrope_section": _mrope_section(int(head_dim * partial))})
    if moe:
        text.update(num_experts=experts, num_experts_per_tok=2, moe_intermediate_size=32,
                    shared_expert_intermediate_size=32)
    else:
        text.update(intermediate_size=2 * TEXT_WIDTH)
    vision = dict(depth=VISION_LAYERS, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=TEXT_WIDTH, num_position_embeddings=16,
                  initializer_range=INIT)
    config_class = Qwen3_5MoeConfig if moe else Qwen3_5Config
    return config_class(text_config=text, vision_config=vision, **_qwen_ids(tokenizer))


def _qwen_ids(tokenizer):
    ids = tokenizer.convert_tokens_to_ids
    return dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))


def _finish(model_class, config, seed, end_tokens):
    """The model from config with random weights (seeded), sdpa, eval; end_tokens silenced so that answers are
    not cut after a token or two."""
    torch.manual_seed(seed)
    return finish(model_class(config), end_tokens)


def _livelier_qwen3_5(model, seed):
    """At random init a Qwen3.5 answer hardly depends on a noise image: the Gated-DeltaNet decay rates
    (A = exp(A_log), drawn from 0.01 .. 16) forget the image within a few tokens, and the full-attention layer's
    q_norm / k_norm (zero-centred weights: a scale of 1 + 0) keep its attention nearly flat over the image tokens.
    Slower decay (A from 0.01 .. 1) and a 2x q / k norm scale (attention logits x 4) make answers differ per image."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            if layer.block_type == "linear_attention":
                a_log = layer.linear_attn.A_log
                a_log.copy_(torch.empty(a_log.shape).uniform_(0.01, 1.0, generator=generator).log())
            else:
                layer.self_attn.q_norm.weight.fill_(1.0)
                layer.self_attn.k_norm.weight.fill_(1.0)
    return model


def tiny_qwen3_5(seed=0, layers=TEXT_LAYERS, moe=False):
    """layers: a multiple of 4, in the real 3:1 pattern (8: the first full-attention layer at 3, the next at 7);
    moe: Qwen3.5-MoE (the same, MLPs as 4 small experts + a shared expert)."""
    from transformers import Qwen3_5ForConditionalGeneration, Qwen3_5MoeForConditionalGeneration

    tokenizer = qwen3_5_tokenizer()
    model_class = Qwen3_5MoeForConditionalGeneration if moe else Qwen3_5ForConditionalGeneration
    model = _finish(model_class, _qwen3_5_config(tokenizer, moe=moe, layers=layers), seed, [tokenizer.eos_token_id])
    return _livelier_qwen3_5(model, seed), qwen3_processor(tokenizer, QWEN3_5_CHAT_TEMPLATE)


tiny_qwen3_5_moe = functools.partial(tiny_qwen3_5, moe=True)


# ------------------------------------------------------------------------------------------------ Qwen3-VL-MoE


def tiny_qwen3_vl_moe(seed=0, experts=4, deepstack_scale=300.0):
    """Qwen3VLMoeForConditionalGeneration: text width 64, 4 heads of 16 (2 KV heads), q_norm / k_norm, interleaved
    M-RoPE sections [4, 2, 2] over the full head; every MLP a sparse block of `experts` experts (top 2, width 32);
    vision 2 layers, DeepStack from vision layers 0 and 1 added after decoder layers 0 and 1, the DeepStack
    mergers' outputs scaled by deepstack_scale (at random init they are too small to change the answer).
    Tokenizer and chat template: tests/tiny_qwen3_internvl.py's Qwen3-VL ones (word-level, no default system turn);
    processor: qwen3_processor."""
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    tokenizer = qwen3_tokenizer(WORDS)
    head_dim = 16
    text = dict(vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
                num_hidden_layers=TEXT_LAYERS, num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim,
                num_experts=experts, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1,
                max_position_embeddings=4096, initializer_range=INIT, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_interleaved": True,
                                 "mrope_section": _mrope_section(head_dim)})
    vision = dict(depth=VISION_LAYERS, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=TEXT_WIDTH, num_position_embeddings=16,
                  deepstack_visual_indexes=list(range(VISION_LAYERS)))
    config = Qwen3VLMoeConfig(text_config=text, vision_config=vision, **_qwen_ids(tokenizer))
    model = _finish(Qwen3VLMoeForConditionalGeneration, config, seed, [tokenizer.eos_token_id])
    with torch.no_grad():
        for merger in model.model.visual.deepstack_merger_list:
            merger.linear_fc2.weight.mul_(deepstack_scale)
            merger.linear_fc2.bias.mul_(deepstack_scale)
    return model, qwen3_processor(tokenizer, QWEN3_CHAT_TEMPLATE)


# ------------------------------------------------------------------------------------------------ GLM-4.1V / 4.6V

GLM_SPECIAL_TOKENS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
                      "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>",
                      "<|begin_of_video|>", "<|end_of_video|>", "<|image|>", "<|video|>", "<think>", "</think>",
                      "<unk>"]
# What the templates write, and the frame timestamps: GLM-4.1V writes int(seconds) after each frame ("3"),
# GLM-4.6V "3.0 seconds" (split into "3", ".", "0", "seconds").
GLM_TEMPLATE_WORDS = ["You", "are", "a", "helpful", "assistant", ".", "seconds", *map(str, range(60))]


def _glm_template(thinking_switch):
    """GLM's shape: [gMASK]<sop>, then <|system|> / <|user|> / <|assistant|> turns (no end-of-turn token: the next
    role token ends a turn), images and videos where they are listed. thinking_switch (GLM-4.5V/4.6V): with
    enable_thinking=False the generation prompt carries an empty <think></think>."""
    return (
        "[gMASK]<sop>"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}<|system|>\n"
        "{% elif message['role'] == 'user' %}<|user|>\n"
        "{% else %}<|assistant|>\n{% endif %}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for content in message['content'] %}"
        "{% if content['type'] == 'video' or 'video' in content %}<|begin_of_video|><|video|><|end_of_video|>"
        "{% elif content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
        "<|begin_of_image|><|image|><|end_of_image|>"
        "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n"
        + ("{% if enable_thinking is defined and enable_thinking is false %}<think></think>\n{% endif %}"
           if thinking_switch else "")
        + "{% endif %}"
    )


GLM4V_CHAT_TEMPLATE = _glm_template(thinking_switch=False)
GLM46V_CHAT_TEMPLATE = _glm_template(thinking_switch=True)


def glm_tokenizer(words=WORDS):
    """A word-level tokenizer with GLM's special tokens (all added tokens, so "[gMASK]<sop><|user|>" splits); the
    processor reads image_token / video_token and looks up <|begin_of_video|> / <|end_of_video|> by name (to tell
    video frames from images in mm_token_type_ids)."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_word_level(GLM_SPECIAL_TOKENS, [*GLM_TEMPLATE_WORDS, *words]),
        eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>",
                              "image_start_token": "<|begin_of_image|>", "image_end_token": "<|end_of_image|>",
                              "video_start_token": "<|begin_of_video|>", "video_end_token": "<|end_of_video|>"},
    )
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in GLM_SPECIAL_TOKENS])
    return tokenizer


def glm_processor(tokenizer, version):
    """Glm4vProcessor / Glm46VProcessor with their image and video processors at the model's patch 14, merge 2,
    temporal patch 2 (28 x 28 px per visual token). The pixel bounds count every frame (an image is 2 temporal
    copies): an image gets 24 to 96 tokens (90 x 70 -> 140 x 168 px -> 5 x 6 = 30), a clip of 4 frames 16 to 96
    per temporal patch (4 frames of 90 x 70 -> 112 x 140 px -> 2 temporal patches of 4 x 5 = 40). Frame sampling
    is off (do_sample_frames=False): GLM samples by the clip's fps, which a list of frames does not carry (it
    raises); every frame given is used, and the timestamps assume 24 fps (the processor warns)."""
    from transformers import (Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor, Glm46VImageProcessor,
                              Glm46VProcessor, Glm46VVideoProcessor)

    classes = {"4.1": (Glm4vProcessor, Glm4vImageProcessor, Glm4vVideoProcessor, GLM4V_CHAT_TEMPLATE),
               "4.6": (Glm46VProcessor, Glm46VImageProcessor, Glm46VVideoProcessor, GLM46V_CHAT_TEMPLATE)}
    processor_class, image_class, video_class, template = classes[version]
    unit = 28 * 28 * 2  # pixels of one visual token, both temporal copies
    common = dict(patch_size=14, merge_size=2, temporal_patch_size=2)
    image_processor = image_class(size={"shortest_edge": unit * 24, "longest_edge": unit * 96}, **common)
    video_processor = video_class(size={"shortest_edge": unit * 2 * 16, "longest_edge": unit * 2 * 96},
                                  do_sample_frames=False, **common)
    return processor_class(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                           chat_template=template)


def _glm_config(tokenizer, config_class):
    """Text: width 64, 2 heads of 32 and 1 KV head (the real 9B: 32 heads of 128, 2 KV heads), biased q/k/v,
    partial_rotary_factor 0.5 (as the real model) = 16 rotary dims, M-RoPE sections [2, 3, 3] (the real
    [8, 12, 12] / 4). Glm4vTextConfig has neither by default: the rotary then covers the whole head and the
    fallback sections [8, 12, 12] do not split its frequencies (any head but 64 fails). Vision: 2 layers of 32,
    patch 14, merge 2, a 112 px learned position grid (8 x 8) resampled per image."""
    ids = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
                num_hidden_layers=TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=4096, initializer_range=INIT, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=[ids("<|endoftext|>"), ids("<|user|>"), ids("<|observation|>")],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                 "mrope_section": [2, 3, 3]})
    vision = dict(depth=VISION_LAYERS, hidden_size=32, intermediate_size=64, num_heads=2, image_size=112,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=TEXT_WIDTH,
                  initializer_range=INIT)
    return config_class(text_config=text, vision_config=vision, image_token_id=ids("<|image|>"),
                        video_token_id=ids("<|video|>"), image_start_token_id=ids("<|begin_of_image|>"),
                        image_end_token_id=ids("<|end_of_image|>"), video_start_token_id=ids("<|begin_of_video|>"),
                        video_end_token_id=ids("<|end_of_video|>"))


def _tiny_glm(version, seed):
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration, Glm46VConfig, Glm46VForConditionalGeneration

    config_class, model_class = {"4.1": (Glm4vConfig, Glm4vForConditionalGeneration),
                                 "4.6": (Glm46VConfig, Glm46VForConditionalGeneration)}[version]
    tokenizer = glm_tokenizer()
    config = _glm_config(tokenizer, config_class)
    model = _finish(model_class, config, seed, config.text_config.eos_token_id)
    return model, glm_processor(tokenizer, version)


def tiny_glm4v(seed=0):
    return _tiny_glm("4.1", seed)


def tiny_glm46v(seed=0):
    return _tiny_glm("4.6", seed)


BUILDERS = {"qwen3_5": tiny_qwen3_5, "qwen3_5_moe": tiny_qwen3_5_moe, "qwen3_vl_moe": tiny_qwen3_vl_moe,
            "glm4v": tiny_glm4v, "glm46v": tiny_glm46v}

"""Tiny random-weight Mistral3, SmolVLM, Idefics3 and Llama4 checkpoints for tests/test_tiny_idefics.py, built from
their config classes in code with their real processors (PixtralProcessor + PixtralImageProcessor;
SmolVLMProcessor + SmolVLMImageProcessor + SmolVLMVideoProcessor; Idefics3Processor + Idefics3ImageProcessor;
Llama4Processor + Llama4ImageProcessor), a word-level tokenizer carrying each family's special tokens and a chat
template written in the family's style.

`tiny_<arch>(seed=0)` returns (model, processor). Every model is the class AutoModelForImageTextToText maps its
config to, in float32, "sdpa", .eval(), with a text hidden size of 64 and 4 decoder layers, 2 vision layers, a
larger initialiser (so that answers depend on the image) and a zeroed lm_head row for the end-of-turn token (so
that answers are longer than one token). A 90 x 70 RGB image gives:

* mistral3: 5 rows x 7 columns = 35 [IMG] (14 px per token: patch 7, spatial merge 2), [IMG_BREAK] after rows
  1-4, [IMG_END] after the last row;
* smolvlm: 2 x 2 tiles + the global image, 16 <image> per tile (112 px tile, patch 7, pixel shuffle 4): 80;
  a 4-frame video: 4 x 16;
* idefics3: 2 x 2 tiles + the global image, 16 <image> per tile (56 px tile, patch 7, pixel shuffle 2): 80;
* llama4: 2 x 2 tiles + the global tile, 16 <|patch|> per tile (56 px tile, patch 7, pixel shuffle 0.5): 80;
  Maverick-like decoder (MoE on layers 1 and 3, no QK norm; tiny_llama4(qk_norm=True, moe_step=1) is Scout-like),
  chunked attention in chunks of 64 tokens on the RoPE layers 0-2, NoPE full attention on layer 3, and float32
  pixel values (the hub image processor's are bfloat16; see tiny_llama4).
"""

import torch

from tests.tiny_shared import WORDS, finish, word_tokenizer

INITIALIZER_RANGE = 0.3


def _tokenizer(special_tokens, words, named, newline=False, **tokens):
    """`newline`: "\\n" is a token of its own (an added, non-special token, after the words), as in the byte-level
    tokenizers of the Llama 3 / SmolLM families, where the image expansions of Idefics3 and SmolVLM put one after
    every row of tiles."""
    return word_tokenizer(special_tokens, words, named, newlines=["\n"] if newline else [], **tokens)


def _finish(model, processor, eos_token):
    """sdpa, eval, the end-of-turn token silenced. The model is float32 as built (not cast: Module.to(float
    dtype) would drop the imaginary part of Llama4's complex vision rotary buffer)."""
    return finish(model, [processor.tokenizer.convert_tokens_to_ids(eos_token)]), processor


# ---------------------------------------------------------------------------------------------------- mistral3
# The special tokens keep their Tekken ids ([IMG] = 10, the config's default image_token_index).
MISTRAL3_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                           "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
                           "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
MISTRAL3_TEMPLATE_WORDS = ["You", "are", "a", "helpful", "assistant", "."]

# Mistral-Small-3.1's template without its default system prompt: bos, an optional [SYSTEM_PROMPT] turn,
# [INST] user items in their order (an image is [IMG]) [/INST], assistant text followed by </s>. There is no
# generation prompt to add: a prompt ending in [/INST] is already one.
MISTRAL3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}[SYSTEM_PROMPT]"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}{{ block['text'] }}{% endfor %}{% endif %}[/SYSTEM_PROMPT]"
    "{% elif message['role'] == 'user' %}[INST]"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}"
    "{% if block['type'] == 'text' %}{{ block['text'] }}"
    "{% elif block['type'] in ['image', 'image_url'] %}[IMG]"
    "{% else %}{{ raise_exception('Only text and image blocks are supported in message content!') }}{% endif %}"
    "{% endfor %}{% endif %}[/INST]"
    "{% elif message['role'] == 'assistant' %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}{{ block['text'] }}{% endfor %}{% endif %}{{ eos_token }}"
    "{% endif %}{% endfor %}"
)


def mistral3_tokenizer(words=WORDS):
    return _tokenizer(MISTRAL3_SPECIAL_TOKENS, [*MISTRAL3_TEMPLATE_WORDS, *words],
                      {"image_token": "[IMG]", "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]"},
                      bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def tiny_mistral3(seed=0, patch=7, merge=2, longest_edge=112, text_width=64, text_layers=4, vision_width=32,
                  vision_layers=2, initializer_range=INITIALIZER_RANGE):
    """Mistral3ForConditionalGeneration (Pixtral vision tower, 2 x 2 patch merger, Mistral decoder) with
    PixtralProcessor: an image is resized to fit `longest_edge` and rounded up to whole tokens of patch * merge
    px (90 x 70 -> 98 x 70 px -> 5 rows of 7 [IMG] tokens)."""
    from transformers import (Mistral3Config, Mistral3ForConditionalGeneration, PixtralImageProcessor,
                              PixtralProcessor)

    tokenizer = mistral3_tokenizer()
    image_processor = PixtralImageProcessor(size={"longest_edge": longest_edge},
                                            patch_size={"height": patch, "width": patch})
    processor = PixtralProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                                 spatial_merge_size=merge, chat_template=MISTRAL3_CHAT_TEMPLATE)
    text = dict(model_type="mistral", vocab_size=len(tokenizer), hidden_size=text_width,
                intermediate_size=2 * text_width, num_hidden_layers=text_layers, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, sliding_window=None,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000000.0},
                initializer_range=initializer_range, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    vision = dict(model_type="pixtral", hidden_size=vision_width, intermediate_size=2 * vision_width,
                  num_hidden_layers=vision_layers, num_attention_heads=2, image_size=longest_edge, patch_size=patch,
                  initializer_range=initializer_range)
    config = Mistral3Config(text_config=text, vision_config=vision,
                            image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"), spatial_merge_size=merge,
                            vision_feature_layer=-1, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return _finish(Mistral3ForConditionalGeneration(config), processor, "</s>")


# ------------------------------------------------------------------------------------------- smolvlm, idefics3
IDEFICS_ROW_COL_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
IDEFICS_TEMPLATE_WORDS = ["User", "Assistant", "System", ":"]
# The pieces of SmolVLM's video prompt ("You are provided the following series of four frames from a 0:00:03
# [H:MM:SS] video." and "Frame from 00:01:" per frame), split by the word-level pre-tokenizer.
SMOLVLM_VIDEO_WORDS = ["You", "are", "provided", "the", "following", "series", "of", "frames", "from", "a", "[H",
                       "MM", "SS]", "video", ".", "Frame", "zero", "one", "two", "three", "four", "five", "six",
                       "seven", "eight", *[str(n) for n in range(10)], *[f"{n:02d}" for n in range(60)]]

# The hub template of Idefics3-8B-Llama3 / SmolVLM (also SmolVLMProcessor's DEFAULT_CHAT_TEMPLATE, which
# apply_chat_template uses instead of the processor's own template whenever a conversation has a video):
# "User:<image>question<end_of_utterance>\nAssistant:", items in their order, "User: " with a space unless the
# turn starts with an image.
_IDEFICS_TURNS = (
    "{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}"
    "{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SMOLVLM_CHAT_TEMPLATE = "<|im_start|>" + _IDEFICS_TURNS
IDEFICS3_CHAT_TEMPLATE = "<|begin_of_text|>" + _IDEFICS_TURNS


def smolvlm_tokenizer(words=WORDS):
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<fake_token_around_image>", "<image>",
               "<end_of_utterance>", "<global-img>", "<video>", *IDEFICS_ROW_COL_TOKENS]
    return _tokenizer(special, [*IDEFICS_TEMPLATE_WORDS, *SMOLVLM_VIDEO_WORDS, *words],
                      {"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                       "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>",
                       "video_token": "<video>"},
                      newline=True, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                      pad_token="<|im_end|>", unk_token="<unk>")


def idefics3_tokenizer(words=WORDS):
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<unk>",
               "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *IDEFICS_ROW_COL_TOKENS]
    return _tokenizer(special, [*IDEFICS_TEMPLATE_WORDS, *words],
                      {"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                       "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
                      newline=True, bos_token="<|begin_of_text|>", eos_token="<end_of_utterance>",
                      pad_token="<|finetune_right_pad_id|>", unk_token="<unk>")


def _idefics_config(config_class, tokenizer, tile, patch, scale, text_width, text_layers, vision_width,
                    vision_layers, initializer_range):
    text = dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=text_width,
                intermediate_size=2 * text_width, num_hidden_layers=text_layers, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                initializer_range=initializer_range, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    vision = dict(hidden_size=vision_width, intermediate_size=2 * vision_width, num_hidden_layers=vision_layers,
                  num_attention_heads=2, image_size=tile, patch_size=patch, initializer_range=initializer_range)
    return config_class(text_config=text, vision_config=vision, scale_factor=scale,
                        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)


def tiny_smolvlm(seed=0, tile=112, patch=7, scale=4, longest_edge=224, text_width=64, text_layers=4,
                 vision_width=32, vision_layers=2, initializer_range=INITIALIZER_RANGE):
    """SmolVLMForConditionalGeneration (SigLIP-style tower, pixel shuffle `scale`, Llama decoder) with
    SmolVLMProcessor: images are resized to `longest_edge`, split into `tile` px tiles plus the global image
    (90 x 70 -> 2 x 2 tiles); each tile is (tile / patch / scale)^2 = 16 <image> tokens. Video frames are squared
    to one tile each (no splitting): 16 tokens per frame."""
    from transformers import (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor,
                              SmolVLMProcessor, SmolVLMVideoProcessor)

    tokenizer = smolvlm_tokenizer()
    image_processor = SmolVLMImageProcessor(size={"longest_edge": longest_edge},
                                            max_image_size={"longest_edge": tile}, do_image_splitting=True)
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": tile}, max_image_size={"longest_edge": tile},
                                            fps=1, num_frames=8)
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 image_seq_len=(tile // patch // scale) ** 2, chat_template=SMOLVLM_CHAT_TEMPLATE)
    config = _idefics_config(SmolVLMConfig, tokenizer, tile, patch, scale, text_width, text_layers, vision_width,
                             vision_layers, initializer_range)
    torch.manual_seed(seed)
    return _finish(SmolVLMForConditionalGeneration(config), processor, "<end_of_utterance>")


def tiny_idefics3(seed=0, tile=56, patch=7, scale=2, longest_edge=112, text_width=64, text_layers=4,
                  vision_width=32, vision_layers=2, initializer_range=INITIALIZER_RANGE):
    """Idefics3ForConditionalGeneration with Idefics3Processor: as SmolVLM (2 x 2 tiles of `tile` px + the global
    image for a 90 x 70 image, (tile / patch / scale)^2 = 16 <image> per tile), no video."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    tokenizer = idefics3_tokenizer()
    image_processor = Idefics3ImageProcessor(size={"longest_edge": longest_edge},
                                             max_image_size={"longest_edge": tile}, do_image_splitting=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=(tile // patch // scale) ** 2, chat_template=IDEFICS3_CHAT_TEMPLATE)
    config = _idefics_config(Idefics3Config, tokenizer, tile, patch, scale, text_width, text_layers, vision_width,
                             vision_layers, initializer_range)
    torch.manual_seed(seed)
    return _finish(Idefics3ForConditionalGeneration(config), processor, "<end_of_utterance>")


# ------------------------------------------------------------------------------------------------------ llama4
LLAMA4_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<unk>",
                         "<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|image_start|>",
                         "<|image_end|>", "<|image|>", "<|patch|>", "<|tile_x_separator|>", "<|tile_y_separator|>"]
LLAMA4_TEMPLATE_WORDS = ["system", "user", "assistant"]

# Llama 4's template without tools: bos, "<|header_start|>role<|header_end|>\n\n", items in their order (an
# image is <|image|>), <|eot|> after every turn, an assistant header as the generation prompt.
LLAMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|header_start|>' + message['role'] + '<|header_end|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|eot|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|header_start|>assistant<|header_end|>\n\n' }}{% endif %}"
)


def llama4_tokenizer(words=WORDS):
    return _tokenizer(LLAMA4_SPECIAL_TOKENS, [*LLAMA4_TEMPLATE_WORDS, *words],
                      {"image_token": "<|image|>", "patch_token": "<|patch|>", "boi_token": "<|image_start|>",
                       "eoi_token": "<|image_end|>", "tile_x_separator_token": "<|tile_x_separator|>",
                       "tile_y_separator_token": "<|tile_y_separator|>"},
                      newline=True, bos_token="<|begin_of_text|>", eos_token="<|eot|>",
                      pad_token="<|finetune_right_pad_id|>", unk_token="<unk>")


def tiny_llama4(seed=0, tile=56, patch=7, max_patches=4, text_width=64, text_layers=4, vision_width=32,
                vision_layers=2, experts=4, moe_step=2, qk_norm=False, chunk=64, initializer_range=INITIALIZER_RANGE,
                hub_normalization=False):
    """Llama4ForConditionalGeneration with Llama4Processor: `tile` px tiles (at most `max_patches`) plus a global
    tile when there is more than one (90 x 70 -> 2 x 2 + 1); each tile is (tile / patch)^2 / 4 = 16 <|patch|>
    tokens after the pixel shuffle (ratio 0.5). Decoder: layers 0-2 RoPE + chunked attention (chunks of `chunk`
    tokens, so the chunked mask bites inside a prompt), layer 3 NoPE + full attention; MoE (`experts` experts,
    top-1, plus the shared expert) on every `moe_step`-th layer (2: layers 1 and 3, dense MLPs on 0 and 2).

    The defaults are Maverick-like (MoE every second layer, no QK norm). `qk_norm=True, moe_step=1` is Scout-like:
    an RMS "L2" norm without weights on q and k after RoPE in the RoPE layers. At random initialisation it bounds
    the attention logits (about N(0, 1)), attention is nearly uniform over the prompt, the image tokens average
    out and two noise images often give the same answer; so the default leaves it off.

    Pixel values: Llama4ImageProcessor rescales and normalises in bfloat16 when do_rescale and do_normalize are
    both set (the hub setting, `hub_normalization=True`), so its pixel_values are bfloat16 and a float32 model
    fails on them unless they are cast (BatchFeature.to(model.dtype)). By default the processor only rescales
    (x / 255, float32, no normalisation: the bfloat16 path is the only one that normalises), so that
    generate(**inputs) runs on the float32 model as it comes."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4ImageProcessor, Llama4Processor

    tokenizer = llama4_tokenizer()
    normalization = {} if hub_normalization else dict(do_normalize=False)
    image_processor = Llama4ImageProcessor(size={"height": tile, "width": tile}, max_patches=max_patches,
                                           **normalization)
    processor = Llama4Processor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                                pixel_shuffle_ratio=0.5, chat_template=LLAMA4_CHAT_TEMPLATE)
    text = dict(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=text_width,
                intermediate_size_mlp=2 * text_width, num_hidden_layers=text_layers, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, num_local_experts=experts,
                num_experts_per_tok=1, interleave_moe_layer_step=moe_step, use_qk_norm=qk_norm,
                no_rope_layer_interval=4,
                attention_chunk_size=chunk, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                initializer_range=initializer_range, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    shuffled = 4 * vision_width  # pixel shuffle 0.5 stacks 2 x 2 patches: the adapter MLP's input width
    vision = dict(hidden_size=vision_width, intermediate_size=shuffled, num_hidden_layers=vision_layers,
                  num_attention_heads=2, image_size=tile, patch_size=patch, pixel_shuffle_ratio=0.5,
                  projector_input_dim=text_width, projector_output_dim=text_width, vision_output_dim=text_width,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                  initializer_range=initializer_range)
    config = Llama4Config(text_config=text, vision_config=vision,
                          image_token_index=tokenizer.convert_tokens_to_ids("<|patch|>"),
                          boi_token_index=tokenizer.convert_tokens_to_ids("<|image_start|>"),
                          eoi_token_index=tokenizer.convert_tokens_to_ids("<|image_end|>"),
                          tie_word_embeddings=False)
    torch.manual_seed(seed)
    return _finish(Llama4ForConditionalGeneration(config), processor, "<|eot|>")


BUILDERS = {"mistral3": tiny_mistral3, "smolvlm": tiny_smolvlm, "idefics3": tiny_idefics3, "llama4": tiny_llama4}

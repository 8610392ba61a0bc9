"""Tiny random-weight checkpoints of three B-mechanism families, built from their config classes in code with their
real processors, a word-level tokenizer carrying each family's special tokens and a chat template written here in
the family's format:

* molmo2: Molmo2ForConditionalGeneration + Molmo2Processor (Molmo2ImageProcessor, Molmo2VideoProcessor). The
  pooled features are ADDED to the embeddings of the <im_patch> tokens; all image tokens (patches, column breaks,
  starts and ends) form one bidirectional block in the prefill mask.
* lfm2_vl: Lfm2VlForConditionalGeneration + Lfm2VlProcessor (Lfm2VlImageProcessor); an Lfm2 decoder with short
  convolution and attention layers, a SigLIP2 NaViT tower fed padded patches (pixel_attention_mask,
  spatial_shapes). No video path.
* minicpmv4_6: MiniCPMV4_6ForConditionalGeneration + MiniCPMV4_6Processor (MiniCPMV4_6ImageProcessor,
  MiniCPMV4_6VideoProcessor); a Qwen3.5 hybrid decoder (gated-delta-net linear attention and full attention).

Each builder `tiny_<arch>(seed=0)` returns (model, processor): float32, sdpa, eval mode, the end-of-turn token's
lm_head row zeroed so answers run to max_new_tokens.
"""

import torch

from tests.tiny_shared import WORDS, finish, word_tokenizer


def _tokenizer(specials, words, named, eos, pad, bos=None, unk="<unk>"):
    return word_tokenizer(specials, words, named, eos_token=eos, pad_token=pad, unk_token=unk, bos_token=bos)


def _finish(model, tokenizer):
    """float32, sdpa, eval, the end-of-turn token silenced (where lm_head is tied to the word embeddings, as
    lfm2_vl's, the token's input embedding is zeroed with it)."""
    return finish(model.float(), [tokenizer.eos_token_id])


# ---------------------------------------------------------------------------------------------------- molmo2

MOLMO2_BASE = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
# In the hub tokenizer these sit right after Qwen3's base vocabulary (151936 ..), in this order: they live in the
# decoder's extra embedding table (`additional_vocab_size`), outside lm_head (`vocab_size` rows), so generation can
# never emit them.
MOLMO2_IMAGE_TOKENS = ["<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<low_res_im_start>", "<|image|>",
                       "<im_low>", "<frame_start>", "<frame_end>", "<|video|>"]
# The template's words; digits and "." spell the frame timestamps the processor writes ("0.0 <frame_start>...").
MOLMO2_TEMPLATE_WORDS = ["user", "assistant", "Image", ".", *[str(d) for d in range(10)]]

# Molmo2's hub template (allenai/Molmo2-4B, chat_template.jinja) without its task styles and subtitles: every
# image and video of the conversation goes first, before any turn ("<|image|>" for one image, "Image 1<|image|>
# Image 2<|image|>" for several, then one "<|video|>" per video); the text items of a turn are joined with
# spaces; a user turn ends with <|im_end|>, an assistant turn does not (the next user turn writes it first).
MOLMO2_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if message['content'] is not string %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{% set image_count.value = image_count.value + 1 %}"
    "{% elif content['type'] == 'video' %}{% set video_count.value = video_count.value + 1 %}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
    "{% if image_count.value == 1 %}<|image|>{% elif image_count.value > 1 %}"
    "{% for i in range(image_count.value) %}Image {{ i + 1 }}<|image|>{% endfor %}{% endif %}"
    "{% for _ in range(video_count.value) %}<|video|>{% endfor %}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set text = message['content'] %}{% else %}"
    "{% set m = namespace(text='') %}{% for content in message['content'] %}{% if content['type'] == 'text' %}"
    "{% set m.text = m.text ~ ('' if not m.text else ' ') ~ content['text'] %}{% endif %}{% endfor %}"
    "{% set text = m.text %}{% endif %}"
    "{% if message['role'] == 'user' %}{% if not loop.first %}<|im_end|>\n{% endif %}"
    "<|im_start|>user\n{{ text }}<|im_end|>\n"
    "{% else %}<|im_start|>assistant\n{{ text }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def molmo2_tokenizer(words=WORDS):
    """Qwen3's chat tokens, the words, then Molmo2's image tokens (ids after the base vocabulary). bos is <|im_end|>
    as in the hub tokenizer: the processor starts every prompt with it."""
    return _tokenizer(MOLMO2_BASE, [*MOLMO2_TEMPLATE_WORDS, *words, *MOLMO2_IMAGE_TOKENS],
                      named={"image_token": "<|image|>", "video_token": "<|video|>"},
                      eos="<|im_end|>", pad="<|endoftext|>", bos="<|im_end|>")


def molmo2_processor(tokenizer, crop=84, patch=14, margins=(1, 1), max_crops=4):
    """84 px crops of 14 px patches (6 x 6), pooled 2 x 2 to 3 x 3 for the low-resolution view; overlapping
    high-resolution crops with a 1-patch margin. A 90 x 70 image: 1 x 2 crops on a 84 x 140 canvas -> 3 x 5
    pooled tokens, plus the 3 x 3 low-resolution view (24 patch tokens, 7 row breaks, 2 starts, 2 ends).
    Video frames: the low-resolution view only, pooled 3 x 3 -> 2 x 2 tokens per frame."""
    from transformers import Molmo2ImageProcessor, Molmo2Processor, Molmo2VideoProcessor

    size = {"height": crop, "width": crop}
    image_processor = Molmo2ImageProcessor(size=size, patch_size=patch, pooling_size=[2, 2],
                                           overlap_margins=list(margins), max_crops=max_crops)
    # Molmo2VideoProcessor's class defaults leave do_rescale / do_normalize unset (None): frames would reach the
    # ViT as raw 0 .. 255 bytes (uint8 pixel_values_videos). A checkpoint's video_preprocessor_config.json has to
    # set them; set here.
    video_processor = Molmo2VideoProcessor(size=size, patch_size=patch, pooling_size=[3, 3], do_sample_frames=False,
                                           do_rescale=True, do_normalize=True, do_convert_rgb=True)
    return Molmo2Processor(image_processor=image_processor, video_processor=video_processor, tokenizer=tokenizer,
                           chat_template=MOLMO2_CHAT_TEMPLATE)


def tiny_molmo2(seed=0, text_width=64, text_layers=4, heads=4, kv_heads=2, head_dim=16, vision_width=32,
                vision_layers=2, crop=84, patch=14, initializer_range=0.3):
    """(Molmo2ForConditionalGeneration, Molmo2Processor): a 2-layer ViT whose layers [-1, 0] are concatenated
    (the hub model reads [-3, -9] of 25), a cross-attention pooling adapter, a 4-layer Qwen3-style decoder with
    per-head q/k norms."""
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration

    tokenizer = molmo2_tokenizer()
    ids = dict(zip(MOLMO2_IMAGE_TOKENS, tokenizer.convert_tokens_to_ids(MOLMO2_IMAGE_TOKENS)))
    base_vocab = ids["<im_start>"]  # the tokens before Molmo2's image tokens
    vision = dict(hidden_size=vision_width, intermediate_size=2 * vision_width, num_hidden_layers=vision_layers,
                  num_attention_heads=2, num_key_value_heads=2, head_dim=vision_width // 2,
                  image_size=[crop, crop], patch_size=patch, initializer_range=initializer_range)
    adapter = dict(vision_feature_layer=[-1, 0], hidden_size=vision_width, num_attention_heads=2,
                   num_key_value_heads=2, head_dim=vision_width // 2, intermediate_size=2 * text_width,
                   text_hidden_size=text_width, initializer_range=initializer_range)
    text = dict(hidden_size=text_width, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                vocab_size=base_vocab, additional_vocab_size=len(tokenizer) - base_vocab + 6,
                num_hidden_layers=text_layers, intermediate_size=2 * text_width, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                initializer_range=initializer_range)
    config = Molmo2Config(vision_config=vision, adapter_config=adapter, text_config=text,
                          image_start_token_id=ids["<im_start>"],
                          low_res_image_start_token_id=ids["<low_res_im_start>"],
                          image_end_token_id=ids["<im_end>"], image_patch_id=ids["<im_patch>"],
                          frame_start_token_id=ids["<frame_start>"], frame_end_token_id=ids["<frame_end>"],
                          initializer_range=initializer_range)
    torch.manual_seed(seed)
    model = Molmo2ForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return _finish(model, tokenizer), molmo2_processor(tokenizer, crop=crop, patch=patch)


# ---------------------------------------------------------------------------------------------------- lfm2_vl

LFM2_MAX_TILES = 4
# The hub tokenizer's ids: <|pad|> 0, <|startoftext|> 1, <|endoftext|> 2, <|im_start|> 6, <|im_end|> 7, <image> 396,
# <|img_row_R_col_C|> 397 .. 496 (10 x 10), <|img_thumbnail|> 497, <|image_start|> 498, <|image_end|> 499; here the
# same tokens in that order, tile tokens up to LFM2_MAX_TILES rows and columns.
LFM2_SPECIAL_TOKENS = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<image>",
                       *[f"<|img_row_{r}_col_{c}|>" for r in range(1, LFM2_MAX_TILES + 1)
                         for c in range(1, LFM2_MAX_TILES + 1)],
                       "<|img_thumbnail|>", "<|image_start|>", "<|image_end|>"]
LFM2_TEMPLATE_WORDS = ["system", "user", "assistant"]

# LFM2-VL's ChatML: <|startoftext|> once, then "<|im_start|>role\n ... <|im_end|>\n" per turn, an image as <image>
# where it is listed in the turn's content.
LFM2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<image>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def lfm2_vl_tokenizer(words=WORDS):
    return _tokenizer(LFM2_SPECIAL_TOKENS, [*LFM2_TEMPLATE_WORDS, *words],
                      named={"image_token": "<image>", "image_start_token": "<|image_start|>",
                             "image_end_token": "<|image_end|>", "image_thumbnail_token": "<|img_thumbnail|>"},
                      eos="<|im_end|>", pad="<|pad|>", bos="<|startoftext|>")


def lfm2_vl_processor(tokenizer, patch=8, tile=48, max_image_tokens=16):
    """SigLIP2 patches of 8 px, pixel-unshuffled 2 x 2 (16 px per token). An image whose 16 px-rounded size has
    more than `max_image_tokens` tokens is split into `tile` px tiles (2 .. 4 of them, 3 x 3 tokens each) plus a
    thumbnail of at most `max_image_tokens` tokens: 90 x 70 -> 2 x 2 tiles + a 3 x 4 thumbnail (48 tokens). Every
    view is padded to 64 patches (pixel_attention_mask)."""
    from transformers import Lfm2VlImageProcessor, Lfm2VlProcessor

    image_processor = Lfm2VlImageProcessor(encoder_patch_size=patch, downsample_factor=2, tile_size=tile,
                                           size={"height": tile, "width": tile}, min_tiles=2,
                                           max_tiles=LFM2_MAX_TILES, min_image_tokens=4,
                                           max_image_tokens=max_image_tokens, max_pixels_tolerance=1.0,
                                           use_thumbnail=True, do_image_splitting=True)
    return Lfm2VlProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=LFM2_CHAT_TEMPLATE)


def tiny_lfm2_vl(seed=0, text_width=64, layer_types=("conv", "full_attention", "conv", "conv"), heads=4, kv_heads=2,
                 vision_width=32, vision_layers=2, patch=8, initializer_range=0.3, projector_scale=0.03):
    """(Lfm2VlForConditionalGeneration, Lfm2VlProcessor): a 2-layer SigLIP2 NaViT tower (8 x 8 learned position
    grid, resized per view), a pixel-unshuffle + layer-norm + MLP projector and a 4-layer Lfm2 decoder of short
    gated convolutions and grouped-query attention (3 conv + 1 attention; the hub 1.6B model has 16 layers, 6 of
    them attention). Word embeddings are tied to lm_head as in the hub models. The projector's output is scaled
    by `projector_scale` to the text embeddings' size (std about 0.25 instead of 8): at random init the image
    features otherwise swamp the single attention layer and every image gets the same answer."""
    from transformers import Lfm2VlConfig, Lfm2VlForConditionalGeneration

    tokenizer = lfm2_vl_tokenizer()
    vision = dict(model_type="siglip2_vision_model", hidden_size=vision_width, intermediate_size=2 * vision_width,
                  num_hidden_layers=vision_layers, num_attention_heads=2, patch_size=patch, num_patches=64,
                  vision_use_head=False)
    text = dict(model_type="lfm2", vocab_size=len(tokenizer), hidden_size=text_width,
                intermediate_size=3 * text_width, block_multiple_of=16, num_hidden_layers=len(layer_types),
                layer_types=list(layer_types), num_attention_heads=heads, num_key_value_heads=kv_heads,
                max_position_embeddings=4096, initializer_range=initializer_range,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)
    config = Lfm2VlConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id,
                          projector_hidden_size=2 * text_width, downsample_factor=2)
    torch.manual_seed(seed)
    model = Lfm2VlForConditionalGeneration(config)
    with torch.no_grad():
        model.model.multi_modal_projector.linear_2.weight.mul_(projector_scale)
        model.model.multi_modal_projector.linear_2.bias.mul_(projector_scale)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return _finish(model, tokenizer), lfm2_vl_processor(tokenizer, patch=patch)


# ---------------------------------------------------------------------------------------------------- minicpmv4_6

# Qwen3.5's chat and vision pads, then MiniCPM-V's wrappers (as in openbmb/MiniCPM-V-4.6's tokenizer); the
# processor writes "<image_id>0</image_id><image><|image_pad|>...</image><slice>...</slice>\n<slice>...".
MINICPM_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<think>",
                          "</think>", "<image>", "</image>", "<slice>", "</slice>", "<image_id>", "</image_id>",
                          "<unk>"]
MINICPM_TEMPLATE_WORDS = ["system", "user", "assistant", *[str(d) for d in range(10)]]  # digits: the image ids

# Qwen3.5's ChatML with thinking switched off (an empty <think></think> after the generation prompt); an image
# or video is its pad token where it is listed in the turn's content (the processor expands it in place).
MINICPM_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<|image_pad|>"
    "{% elif content['type'] == 'video' %}<|video_pad|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}"
)


def minicpmv4_6_tokenizer(words=WORDS):
    return _tokenizer(MINICPM_SPECIAL_TOKENS, [*MINICPM_TEMPLATE_WORDS, *words],
                      named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                             "image_start_token": "<image>", "image_end_token": "</image>",
                             "slice_start_token": "<slice>", "slice_end_token": "</slice>",
                             "image_id_start_token": "<image_id>", "image_id_end_token": "</image_id>"},
                      eos="<|im_end|>", pad="<|endoftext|>")


def minicpmv4_6_processor(tokenizer, patch=4, scale_resolution=56, max_slice_nums=4):
    """4 px patches, merged 2 x 2 twice (16 px per token; the hub model: 14 px patches, 448 px slices). An image
    larger than scale_resolution^2 is sliced: 90 x 70 -> a 48 x 64 source view (3 x 4 tokens) and 2 x 2 slices
    of 48 x 64 (3 x 4 tokens each), 60 tokens. Video frames are not sliced (slice_mode off): 90 x 70 -> 3 x 4
    tokens per frame; frames are taken as given (do_sample_frames off: a list of frames has no fps)."""
    from transformers import MiniCPMV4_6ImageProcessor, MiniCPMV4_6Processor, MiniCPMV4_6VideoProcessor

    common = dict(patch_size=patch, scale_resolution=scale_resolution, max_slice_nums=max_slice_nums,
                  downsample_mode="16x", use_image_id=True)
    image_processor = MiniCPMV4_6ImageProcessor(**common, slice_mode=True)
    video_processor = MiniCPMV4_6VideoProcessor(**common, slice_mode=False, do_sample_frames=False)
    return MiniCPMV4_6Processor(image_processor=image_processor, video_processor=video_processor,
                                tokenizer=tokenizer, chat_template=MINICPM_CHAT_TEMPLATE)


def tiny_minicpmv4_6(seed=0, text_width=64, layer_types=("linear_attention",) * 3 + ("full_attention",), heads=4,
                     kv_heads=2, head_dim=32, vision_width=32, vision_layers=2, patch=4, scale_resolution=56,
                     initializer_range=0.3, linear_decay=0.03):
    """(MiniCPMV4_6ForConditionalGeneration, MiniCPMV4_6Processor): a 2-layer SigLIP NaViT tower with the
    window-attention merger after layer 0 (2 x 2 -> 1), the MLP merger (2 x 2 -> 1) into a 4-layer Qwen3.5
    decoder: 3 gated-delta-net linear-attention layers + 1 gated full-attention layer (the hub pattern is 3 + 1
    repeated). image_token_id / video_token_id are None in the default config, and the model then silently
    skips the images: they are set here. The linear-attention layers' decay rates (A = exp(A_log), drawn from
    U(0.01, 16) at init) are set to `linear_decay`: with the random init's fast decay the state forgets the image
    within a few tokens and every image gets the same answer."""
    from transformers import MiniCPMV4_6Config, MiniCPMV4_6ForConditionalGeneration

    tokenizer = minicpmv4_6_tokenizer()
    rotary_half = head_dim // 4 // 2  # partial_rotary_factor 0.25 as in Qwen3.5; M-RoPE sections sum to half of it
    text = dict(model_type="qwen3_5_text", vocab_size=len(tokenizer), hidden_size=text_width,
                intermediate_size=2 * text_width, num_hidden_layers=len(layer_types), layer_types=list(layer_types),
                num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
                linear_num_key_heads=2, linear_num_value_heads=4, max_position_embeddings=4096,
                initializer_range=initializer_range, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
                                 "mrope_interleaved": True,
                                 "mrope_section": [rotary_half - 2 * (rotary_half // 4), rotary_half // 4,
                                                   rotary_half // 4]})
    vision = dict(hidden_size=vision_width, intermediate_size=2 * vision_width, num_hidden_layers=vision_layers,
                  num_attention_heads=2, image_size=scale_resolution, patch_size=patch)
    config = MiniCPMV4_6Config(text_config=text, vision_config=vision, insert_layer_id=0,
                               image_size=scale_resolution, image_token_id=tokenizer.image_token_id,
                               video_token_id=tokenizer.video_token_id, downsample_mode="16x")
    torch.manual_seed(seed)
    model = MiniCPMV4_6ForConditionalGeneration(config)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            if hasattr(layer, "linear_attn"):
                layer.linear_attn.A_log.fill_(torch.log(torch.tensor(linear_decay)))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return _finish(model, tokenizer), minicpmv4_6_processor(tokenizer, patch=patch, scale_resolution=scale_resolution)

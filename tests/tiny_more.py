"""Tiny random-weight checkpoints of more image-text-to-text architectures (tests/test_more_architectures.py),
each built from its config class in code and shrunk (4 text layers of width 64, 2 vision layers).

`tiny_<arch>(seed=0)` returns (model, processor, inputs): the model in float32, "sdpa", eval mode, its
end-of-turn token's lm_head row zeroed so greedy answers run to max_new_tokens; the architecture's real processor
class, built offline with a word-level tokenizer carrying the family's special tokens and a chat template written
here; inputs for one random 90 x 70 image, made by the explorer's generic build_inputs with that processor (the
chat template, the question). got_ocr2's inputs are its processor's own OCR prompt (the checkpoint has no chat
template). Builders of architectures that do not run unchanged (see tests/test_more_architectures.py) are kept
for whoever changes the defaults they need.
"""

import torch
from transformers import PreTrainedTokenizerFast

from models.shapes_llava.build import _word_level
from tests.conftest import random_image

WORDS = "what color is the circle square ? red green blue yes no one two three left right up down".split()
QUESTION = "what color is the circle ?"
INIT = 0.3  # initializer_range: large enough that answers depend on the image



def mrope_text():
    """A tiny M-RoPE decoder's text config (sections 2 / 3 / 3 of a 16-wide head), as Cosmos3 Edge's and
    PaddleOCR-VL's builders give it."""
    return dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, initializer_range=INIT,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})

def chat_template(image, bos="", end=""):
    """A one-line-per-turn template: '<bos>user : <image> text <end> assistant :' (`image` written per image)."""
    return (
        "{{ '" + bos + "' }}{% for m in messages %}{{ m['role'] }} :"
        "{% if m['content'] is string %} {{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %} " + image + "{% elif c['type'] == 'text' %} {{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %} " + end + " {% endfor %}{% if add_generation_prompt %}assistant :{% endif %}"
    )


def tokenizer(specials, named, eos, pad=None, bos=None, unk="<unk>", words=WORDS):
    """A word-level tokenizer: `specials` first (ids 0, 1, ..), then the template's words and `words`. Every
    special is cut out of glued text; `named` ({"image_token": "<image>", ..}) become tokenizer attributes."""
    specials = list(dict.fromkeys([unk, *specials]))  # each once: _word_level numbers them by position
    backend = _word_level(specials, ["user", "assistant", ":", *words])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=pad or eos, unk_token=unk,
                                  bos_token=bos, extra_special_tokens=named)
    listed = set(tok.all_special_tokens)
    tok.add_tokens([t for t in specials if t not in listed], special_tokens=True)
    return tok


def finish(model, eos_id):
    """sdpa, eval, float32; eos's lm_head row zeroed (answers run to max_new_tokens)."""
    model.set_attn_implementation("sdpa")
    model = model.float().eval()
    head = model.get_output_embeddings() or model.get_decoder().get_output_embeddings()  # (a ForCausalLM decoder)
    with torch.no_grad():
        head.weight[eos_id] = 0.0
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id
    return model


def generic_inputs(model, processor, image=None):
    import models

    family = models.family_of(model)
    return family.build_inputs(processor, [image or random_image(0)], QUESTION)


def shrink_text(text, layers=4, width=64, heads=4, kv_heads=2, keep_head_dim=False, **extra):
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    text.num_hidden_layers, text.hidden_size, text.num_attention_heads = layers, width, heads
    if hasattr(text, "num_key_value_heads"):
        text.num_key_value_heads = kv_heads
    if hasattr(text, "intermediate_size"):
        text.intermediate_size = 2 * width
    text.head_dim = head_dim if keep_head_dim else width // heads
    text.initializer_range = INIT
    if getattr(text, "layer_types", None) is not None:
        text.layer_types = list(text.layer_types[:layers])
    for key, value in extra.items():
        setattr(text, key, value)
    return text


# ---------------------------------------------------------------------------------------------------- vipllava

def tiny_vipllava(seed=0):
    """VipLlavaForConditionalGeneration + LlavaProcessor (CLIPImageProcessor): CLIP 56 px / 14 px patches (4 x 4
    tokens, CLS dropped), features of vision layers (-1, -2, 0) concatenated."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaProcessor, VipLlavaConfig,
                              VipLlavaForConditionalGeneration)

    tok = tokenizer(["<pad>", "<s>", "</s>", "<image>"], {"image_token": "<image>"}, eos="</s>", pad="<pad>",
                    bos="<s>")
    size = 56
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=size, patch_size=14, projection_dim=32)
    text = shrink_text(LlamaConfig(vocab_size=len(tok)))
    config = VipLlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.image_token_id,
                            vision_feature_layer=(-1, -2, 0))
    torch.manual_seed(seed)
    model = finish(VipLlavaForConditionalGeneration(config), tok.eos_token_id)
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=chat_template("<image>", bos="<s>", end="</s>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- fast_vlm

def tiny_fast_vlm(seed=0, size=256):
    """FastVlmForConditionalGeneration with its timm FastViT-HD tower (fastvit_mci3 with one block per stage and
    widths 8 .. 32: 64 features) and a tiny Qwen2 decoder. The auto mapping has no processor class for it: the
    converted checkpoints ship a LlavaProcessor (CLIPImageProcessor; 64 px per token, strategy "full", no CLS),
    used here: 256 px -> 4 x 4 tokens."""
    from transformers import (CLIPImageProcessor, FastVlmConfig, FastVlmForConditionalGeneration, LlavaProcessor,
                              Qwen2Config)

    tok = tokenizer(["<|endoftext|>", "<|im_end|>", "<image>"], {"image_token": "<image>"}, eos="<|im_end|>",
                    pad="<|endoftext|>")
    vision = {"model_type": "timm_wrapper", "architecture": "fastvit_mci3", "do_pooling": True, "global_pool": "avg",
              "hidden_size": 64, "initializer_range": INIT,
              "model_args": {"inference_mode": True, "layers": [1, 1, 1, 1, 1], "embed_dims": [8, 16, 16, 32, 32]}}
    config = FastVlmConfig(vision_config=vision, text_config=shrink_text(Qwen2Config(vocab_size=len(tok))),
                           image_token_index=tok.image_token_id)
    torch.manual_seed(seed)
    model = finish(FastVlmForConditionalGeneration(config), tok.eos_token_id)
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=64,
                               vision_feature_select_strategy="full", num_additional_image_tokens=0,
                               chat_template=chat_template("<image>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- aya_vision

AYA_SPECIALS = ["<PAD>", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", "<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>",
                "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "TILE", "TILE_GLOBAL"]


def tiny_aya_vision(seed=0, size=112):
    """AyaVisionForConditionalGeneration (SigLIP, pixel shuffle 2, Cohere2 decoder: 3 sliding + 1 global layer) +
    AyaVisionProcessor (GotOcr2ImageProcessor, 112 px tiles, 2 to 4 crops): a 90 x 70 image gives <|START_OF_IMG|>,
    for each of 4 crops TILE_k and 16 <|IMG_PATCH|> (4 x 4), then TILE_GLOBAL and 16 more, <|END_OF_IMG|>."""
    from transformers import (AyaVisionConfig, AyaVisionForConditionalGeneration, AyaVisionProcessor, Cohere2Config,
                              GotOcr2ImageProcessor, SiglipVisionConfig)

    tok = tokenizer(AYA_SPECIALS, {"image_token": "<image>"}, eos="<|END_OF_TURN_TOKEN|>", pad="<PAD>",
                    bos="<BOS_TOKEN>", words=[*WORDS, *[f"_{i}" for i in range(1, 5)]])  # TILE_1 -> TILE, _1
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=size, patch_size=14, vision_use_head=False)
    text = shrink_text(Cohere2Config(vocab_size=len(tok)))
    config = AyaVisionConfig(vision_config=vision, text_config=text, downsample_factor=2,
                             image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"))
    torch.manual_seed(seed)
    model = finish(AyaVisionForConditionalGeneration(config), tok.eos_token_id)
    image_processor = GotOcr2ImageProcessor(size={"height": size, "width": size}, min_patches=2, max_patches=4)
    processor = AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14, img_size=size,
                                   downsample_factor=2,
                                   chat_template=chat_template("<image>", bos="<BOS_TOKEN>",
                                                               end="<|END_OF_TURN_TOKEN|>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- cohere2_vision

def tiny_cohere2_vision(seed=0, size=64):
    """Cohere2VisionForConditionalGeneration (SigLIP 8 px patches, pixel shuffle 2, Cohere2 decoder) +
    Cohere2VisionProcessor (Cohere2VisionImageProcessor, 64 px tiles, 2 to 4 crops and the thumbnail): a 90 x 70
    image gives <|START_OF_IMG|>, per tile 16 <|IMG_PATCH|> (4 x 4) and <|IMG_LINE_BREAK|>, <|END_OF_IMG|>."""
    from transformers import (Cohere2Config, Cohere2VisionConfig, Cohere2VisionForConditionalGeneration,
                              Cohere2VisionImageProcessor, Cohere2VisionProcessor, SiglipVisionConfig)

    named = {"image_token": "<|IMG_PATCH|>", "boi_token": "<|START_OF_IMG|>", "eoi_token": "<|END_OF_IMG|>",
             "img_line_break_token": "<|IMG_LINE_BREAK|>"}
    tok = tokenizer(["<PAD>", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", *named.values()], named,
                    eos="<|END_OF_TURN_TOKEN|>", pad="<PAD>", bos="<BOS_TOKEN>")
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=size, patch_size=8)
    text = shrink_text(Cohere2Config(vocab_size=len(tok)))
    config = Cohere2VisionConfig(vision_config=vision, text_config=text, downsample_factor=2,
                                 alignment_intermediate_size=64, image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    model = finish(Cohere2VisionForConditionalGeneration(config), tok.eos_token_id)
    image_processor = Cohere2VisionImageProcessor(size={"height": size, "width": size}, patch_size=size // 16,
                                                  min_patches=2, max_patches=4)
    processor = Cohere2VisionProcessor(image_processor=image_processor, tokenizer=tok,
                                       chat_template=chat_template("<|IMG_PATCH|>", bos="<BOS_TOKEN>",
                                                                   end="<|END_OF_TURN_TOKEN|>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- perception_lm

def tiny_perception_lm(seed=0, tile=112):
    """PerceptionLMForConditionalGeneration (timm Perception Encoder vit_pe_core_large_patch14_336 at width 32,
    2 blocks, 112 px; CLS dropped; 2 x 2 pooling after the projector; Llama decoder) + PerceptionLMProcessor
    (PerceptionLMImageProcessor "thumb+tile", 112 px tiles, at most 2): 16 <|image|> (4 x 4) per view."""
    from transformers import (LlamaConfig, PerceptionLMConfig, PerceptionLMForConditionalGeneration,
                              PerceptionLMImageProcessor, PerceptionLMProcessor, PerceptionLMVideoProcessor)

    named = {"image_token": "<|image|>", "video_token": "<|video|>"}
    tok = tokenizer(["<|end_of_text|>", "<|begin_of_text|>", "<|eot_id|>", *named.values()], named, eos="<|eot_id|>",
                    pad="<|end_of_text|>", bos="<|begin_of_text|>")
    side = tile // 14
    vision = {"model_type": "timm_wrapper", "architecture": "vit_pe_core_large_patch14_336", "initializer_range": INIT,
              "model_args": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": [tile, tile],
                             "ref_feat_shape": [side, side], "global_pool": "", "use_post_transformer_norm": False}}
    config = PerceptionLMConfig(vision_config=vision, text_config=shrink_text(LlamaConfig(vocab_size=len(tok))),
                                projector_pooling_ratio=2, image_token_id=tok.image_token_id,
                                video_token_id=tok.video_token_id)
    torch.manual_seed(seed)
    model = finish(PerceptionLMForConditionalGeneration(config), tok.eos_token_id)
    image_processor = PerceptionLMImageProcessor(tile_size=tile, max_num_tiles=2, size={"height": tile, "width": tile})
    video_processor = PerceptionLMVideoProcessor(size={"height": tile, "width": tile})
    processor = PerceptionLMProcessor(video_processor=video_processor, image_processor=image_processor, tokenizer=tok,
                                      patch_size=14, pooling_ratio=2,
                                      chat_template=chat_template("<|image|>", bos="<|begin_of_text|>",
                                                                  end="<|eot_id|>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- ovis2

OVIS2_INDICATORS = ["<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>"]


def tiny_ovis2(seed=0, size=56):
    """Ovis2ForConditionalGeneration (Aimv2-style tower, 14 px patches, softmax visual tokenizer over a 64-entry
    visual vocabulary; the indicator tokens take visual-table embeddings; Qwen2 decoder) + Ovis2Processor
    (Ovis2ImageProcessor, 56 px views): <IMG_START> 16 <IMG_ATOM> (4 x 4) <IMG_GRID> [tiles parted by <IMG_COL> /
    <IMG_ROW>] <IMG_END>."""
    from transformers import (Ovis2Config, Ovis2ForConditionalGeneration, Ovis2ImageProcessor, Ovis2Processor,
                              Qwen2Config)

    tok = tokenizer(["<|endoftext|>", "<|im_end|>", "<image>", "<IMG_ATOM>", *OVIS2_INDICATORS],
                    {"image_token": "<image>"}, eos="<|im_end|>", pad="<|endoftext|>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=size,
                  patch_size=14, vocab_size=64, initializer_range=INIT)
    text = shrink_text(Qwen2Config(vocab_size=len(tok)))
    config = Ovis2Config(vision_config=vision, text_config=text, hidden_size=64, vocab_size=len(tok),
                         image_token_id=tok.convert_tokens_to_ids("<IMG_ATOM>"),
                         visual_indicator_token_ids=tok.convert_tokens_to_ids(OVIS2_INDICATORS))
    torch.manual_seed(seed)
    model = finish(Ovis2ForConditionalGeneration(config), tok.eos_token_id)
    image_processor = Ovis2ImageProcessor(size={"height": size, "width": size}, crop_to_patches=True, min_patches=2,
                                          max_patches=4)
    processor = Ovis2Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=(size // 14) ** 2,
                               chat_template=chat_template("<image>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- deepseek_vl

def _deepseek(hybrid, seed, size=56):
    from transformers import LlamaConfig, SiglipVisionConfig

    if hybrid:
        from transformers import (DeepseekVLHybridConfig as Config,
                                  DeepseekVLHybridForConditionalGeneration as Model,
                                  DeepseekVLHybridImageProcessor as ImageProcessor,
                                  DeepseekVLHybridProcessor as Processor)
    else:
        from transformers import (DeepseekVLConfig as Config, DeepseekVLForConditionalGeneration as Model,
                                  DeepseekVLImageProcessor as ImageProcessor, DeepseekVLProcessor as Processor)
    named = {"image_token": "<image_placeholder>"}
    tok = tokenizer(["<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<image_placeholder>"], named,
                    eos="<｜end▁of▁sentence｜>", bos="<｜begin▁of▁sentence｜>")
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=size, patch_size=14)
    extra, image_kwargs = {}, {}
    if hybrid:  # SAM tower at 64 px (4 x 4 patches of 16), resampled to the SigLIP grid by the model
        extra["high_res_vision_config"] = {"model_type": "sam_vision_model", "hidden_size": 32, "output_channels": 16,
                                           "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64,
                                           "patch_size": 16, "window_size": 2, "global_attn_indexes": [1],
                                           "mlp_dim": 64}
        image_kwargs["high_res_size"] = {"height": 64, "width": 64}
    config = Config(vision_config=vision, text_config=shrink_text(LlamaConfig(vocab_size=len(tok))),
                    image_token_id=tok.image_token_id, **extra)
    torch.manual_seed(seed)
    model = finish(Model(config), tok.eos_token_id)
    image_processor = ImageProcessor(size={"height": size, "width": size}, **image_kwargs)
    processor = Processor(image_processor=image_processor, tokenizer=tok, num_image_tokens=(size // 14) ** 2,
                          chat_template=chat_template("<image_placeholder>", bos="<｜begin▁of▁sentence｜>",
                                                      end="<｜end▁of▁sentence｜>"))
    return model, processor, generic_inputs(model, processor)


def tiny_deepseek_vl(seed=0):
    """DeepseekVLForConditionalGeneration (SigLIP 56 px / 14 px, Llama decoder) + DeepseekVLProcessor
    (DeepseekVLImageProcessor): 16 <image_placeholder> (4 x 4)."""
    return _deepseek(False, seed)


def tiny_deepseek_vl_hybrid(seed=0):
    """DeepseekVLHybridForConditionalGeneration (SigLIP 56 px and a SAM tower at 64 px, fused per token; Llama
    decoder) + DeepseekVLHybridProcessor (DeepseekVLHybridImageProcessor): 16 <image_placeholder> (4 x 4)."""
    return _deepseek(True, seed)


# ------------------------------------------------------------------------------------- GLM: glm4v_moe, glm_ocr

def _glm(config_class, model_class, seed, **text_extra):
    """Glm4vProcessor (tests/tiny_qwen.py's GLM tokenizer and template; patch 14, merge 2: 90 x 70 -> 5 x 6 tokens)
    with a GLM config as tests/tiny_qwen.py's glm4v (2 heads of 32, partial rotary 0.5, M-RoPE [2, 3, 3])."""
    from tests import tiny_qwen

    tok = tiny_qwen.glm_tokenizer()
    base = tiny_qwen._glm_config(tok, __import__("transformers").Glm4vConfig)
    text = {**base.text_config.to_dict(), **text_extra}
    for key in ("model_type", "transformers_version", "architectures", "dtype"):
        text.pop(key, None)
    vision = {k: v for k, v in base.vision_config.to_dict().items() if k not in ("model_type", "transformers_version")}
    ids = {k: getattr(base, k) for k in ("image_token_id", "video_token_id", "image_start_token_id",
                                         "image_end_token_id", "video_start_token_id", "video_end_token_id")}
    config = config_class(text_config=text, vision_config=vision, **ids)
    torch.manual_seed(seed)
    model = model_class(config)
    for token in base.text_config.eos_token_id[1:]:
        with torch.no_grad():
            model.lm_head.weight[token] = 0.0
    model = finish(model, base.text_config.eos_token_id[0])
    processor = tiny_qwen.glm_processor(tok, "4.1")
    return model, processor, generic_inputs(model, processor)


def tiny_glm4v_moe(seed=0):
    """Glm4vMoeForConditionalGeneration (GLM-4.5V: the GLM-4.1V tower, an MoE decoder with 4 routed experts of 32,
    2 per token, one shared expert, layer 0 dense) + Glm4vProcessor."""
    from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration

    return _glm(Glm4vMoeConfig, Glm4vMoeForConditionalGeneration, seed, n_routed_experts=4, num_experts_per_tok=2,
                moe_intermediate_size=32, n_shared_experts=1, first_k_dense_replace=1, head_dim=32)


def tiny_glm_ocr(seed=0):
    """GlmOcrForConditionalGeneration (GLM-OCR: the GLM-4.1V-style tower and M-RoPE decoder) + Glm4vProcessor (the
    auto mapping has no processor for glm_ocr)."""
    from transformers import GlmOcrConfig, GlmOcrForConditionalGeneration

    return _glm(GlmOcrConfig, GlmOcrForConditionalGeneration, seed, head_dim=32)


# --------------------------------------------------------------------------------------- Qwen-style processors

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                 "<|video_pad|>"]
QWEN_NAMED = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "vision_start_token": "<|vision_start|>",
              "vision_end_token": "<|vision_end|>"}


def qwen_style(config_class, model_class, processor_class, text, vision, *, image_processor_class=None,
               video_processor_class=None, specials=(), named=None, ids=None, placeholder=None, eos="<|im_end|>",
               pad="<|endoftext|>", bos=None, patch=14, merge=2, temporal=2, video_temporal=None, tokens=(24, 96),
               seed=0,
               image_kwargs=None, processor_kwargs=None, config_kwargs=None):
    """A model whose processor expands one placeholder per image into grid_thw / merge^2 tokens (Qwen2-VL's
    scheme), with Qwen's special tokens plus `specials`; `ids` maps config attributes to tokens (default: image,
    video, vision start / end); the template writes `placeholder` per image. The image processor (default
    Qwen2VLImageProcessor) works at the tower's patch / merge / temporal patch, between tokens[0] and tokens[1]
    merged tokens (90 x 70 -> 5 x 6 at 28 px per token)."""
    from transformers import Qwen2VLImageProcessor

    named = {**QWEN_NAMED, **(named or {})}
    tok = tokenizer([*QWEN_SPECIALS, *specials, *named.values()], named, eos=eos, pad=pad, bos=bos)
    ids = ids or {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
                  "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}
    config = config_class(text_config=text, vision_config=vision,
                          **{k: tok.convert_tokens_to_ids(v) for k, v in ids.items()}, **(config_kwargs or {}))
    text_config = config.get_text_config()
    text_config.vocab_size = len(tok)
    for key, value in (("pad_token_id", tok.pad_token_id), ("bos_token_id", tok.bos_token_id),
                       ("eos_token_id", tok.eos_token_id)):
        if hasattr(text_config, key):
            setattr(text_config, key, value)
    torch.manual_seed(seed)
    model = finish(model_class(config), tok.eos_token_id)
    unit = (patch * merge) ** 2
    image_class = image_processor_class or Qwen2VLImageProcessor
    size = {"shortest_edge": unit * tokens[0], "longest_edge": unit * tokens[1]}
    image_kwargs = {"size": size, **(image_kwargs or {})}  # image_kwargs size=None: the processor's own bounds
    image_processor = image_class(patch_size=patch, merge_size=merge, temporal_patch_size=temporal,
                                  **{k: v for k, v in image_kwargs.items() if v is not None})
    parts = {"image_processor": image_processor, "tokenizer": tok}
    if video_processor_class is not None:
        parts["video_processor"] = video_processor_class(patch_size=patch, merge_size=merge,
                                                         temporal_patch_size=video_temporal or temporal,
                                                         **({"size": size} if image_kwargs.get("size") else {}))
    template = chat_template(placeholder or "<|vision_start|><|image_pad|><|vision_end|>", bos=bos or "", end=eos)
    processor = processor_class(**parts, chat_template=template, **(processor_kwargs or {}))
    return model, processor, generic_inputs(model, processor)


def qwen2_5_tower(**extra):
    """A Qwen2.5-VL vision tower: 2 blocks of 32, patch 14, merge 2, windows of 2 x 2 merged tokens."""
    return dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                temporal_patch_size=2, window_size=56, out_hidden_size=64, fullatt_block_indexes=[1],
                initializer_range=INIT, **extra)


def tiny_hyperclovax_vision_v2(seed=0):
    """HyperCLOVAXVisionV2ForConditionalGeneration (a Qwen2.5-VL tower, a HyperCLOVAX (Llama-like) decoder with 1-D
    positions) + HyperCLOVAXVisionV2Processor (Qwen2VLImageProcessor / Qwen2VLVideoProcessor)."""
    from transformers import (HyperCLOVAXConfig, HyperCLOVAXVisionV2Config,
                              HyperCLOVAXVisionV2ForConditionalGeneration, HyperCLOVAXVisionV2Processor,
                              Qwen2VLVideoProcessor)

    return qwen_style(HyperCLOVAXVisionV2Config, HyperCLOVAXVisionV2ForConditionalGeneration,
                      HyperCLOVAXVisionV2Processor, shrink_text(HyperCLOVAXConfig()).to_dict(), qwen2_5_tower(),
                      video_processor_class=Qwen2VLVideoProcessor, ids={"image_token_id": "<|image_pad|>",
                                                                        "video_token_id": "<|video_pad|>"}, seed=seed)


def tiny_exaone4_5(seed=0):
    """Exaone4_5_ForConditionalGeneration (a Qwen2.5-VL-style tower with grouped KV heads, an EXAONE 4 decoder:
    3 sliding-window + 1 global layer, 1-D positions) + Exaone4_5_Processor (Qwen2VLImageProcessor)."""
    from transformers import (Exaone4_5_Config, Exaone4_5_ForConditionalGeneration, Exaone4_5_Processor,
                              Exaone4Config, Qwen2VLVideoProcessor)

    return qwen_style(Exaone4_5_Config, Exaone4_5_ForConditionalGeneration, Exaone4_5_Processor,
                      shrink_text(Exaone4Config()).to_dict(), qwen2_5_tower(num_key_value_heads=2),
                      video_processor_class=Qwen2VLVideoProcessor, ids={"image_token_id": "<|image_pad|>",
                                                                        "video_token_id": "<|video_pad|>"}, seed=seed)


def tiny_video_llama_3(seed=0):
    """VideoLlama3ForConditionalGeneration (a SigLIP-style NaViT tower at patch 14, images unmerged; Qwen2 decoder,
    1-D positions) + VideoLlama3Processor (VideoLlama3ImageProcessor / VideoLlama3VideoProcessor)."""
    from transformers import (Qwen2Config, VideoLlama3Config, VideoLlama3ForConditionalGeneration,
                              VideoLlama3ImageProcessor, VideoLlama3Processor, VideoLlama3VideoProcessor)

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                  initializer_range=INIT)
    return qwen_style(VideoLlama3Config, VideoLlama3ForConditionalGeneration, VideoLlama3Processor,
                      shrink_text(Qwen2Config()).to_dict(), vision, image_processor_class=VideoLlama3ImageProcessor,
                      video_processor_class=VideoLlama3VideoProcessor, merge=1, temporal=1,
                      ids={"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>"}, seed=seed)


def _muse(spark, seed):
    """Muse Glimmer / Muse Spark: a NaViT tower with learned 2-D position embeddings, pixel shuffle 2 and an MLP
    projector; a decoder of 3 sliding-window RoPE layers and a NoPE full-attention layer (every 4th, counted from
    the last), gated attention with qk_norm, logit soft-capping (Spark: MoE MLPs, 4 experts of 32, 2 per token).
    MuseGlimmerProcessor / MuseSparkProcessor with MuseGlimmerImageProcessor; 90 x 70 -> 3 x 4 tokens:
    <|image_start|> n x <|patch|> <|image_end|>."""
    import transformers

    name = "MuseSpark" if spark else "MuseGlimmer"
    config_class, model_class = (getattr(transformers, f"{name}Config"),
                                 getattr(transformers, f"{name}ForConditionalGeneration"))
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, initializer_range=INIT, sliding_window=512)
    if spark:
        text.update(moe_intermediate_size=32, moe_hidden_size=32, num_local_experts=4, num_experts_per_tok=2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                  pos_emb_height=8, pos_emb_width=8, max_position_embeddings=64, merge_size=2,
                  initializer_range=INIT)
    specials = ["<|patch|>", "<|image_start|>", "<|image_end|>", "<|video|>", "<|vid_frame_separator|>",
                "<|vid_start|>", "<|vid_end|>"]
    extra, parts = {}, {}
    if spark:
        parts["feature_extractor"] = transformers.MuseSparkFeatureExtractor()
        extra["audio_config"] = {"out_hidden_size": 64, "hidden_sizes": [8, 8, 8, 16], "depths": [1, 1, 1, 1],
                                 "num_hidden_layers": 4}
    return qwen_style(config_class, model_class, getattr(transformers, f"{name}Processor"), text, vision,
                      image_processor_class=transformers.MuseGlimmerImageProcessor,
                      video_processor_class=transformers.MuseGlimmerVideoProcessor, specials=specials,
                      ids={"image_token_id": "<|patch|>", "video_token_id": "<|video|>"}, placeholder="<|patch|>",
                      named={"image_token": "<|patch|>", "video_token": "<|video|>"},
                      image_kwargs={"size": None, "max_image_tokens": 48},
                      config_kwargs={"out_hidden_size": 32 * 4, "projector_hidden_size": 64, **extra},
                      processor_kwargs=parts, seed=seed)


def tiny_muse_glimmer(seed=0):
    return _muse(False, seed)


def tiny_muse_spark(seed=0):
    return _muse(True, seed)


def tiny_lfm3_vl(seed=0):
    """Lfm3VlForConditionalGeneration (a NaViT tower at patch 16, merge 2; an Lfm3 hybrid decoder: conv, conv,
    full attention (partial proportional RoPE), conv; 1-D positions) + Lfm3VlProcessor (Qwen2VLImageProcessor /
    Qwen3VLVideoProcessor at 32 px per token)."""
    from transformers import (Lfm3Config, Lfm3VlConfig, Lfm3VlForConditionalGeneration, Lfm3VlProcessor,
                              Qwen3VLVideoProcessor)

    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, initializer_range=INIT)
    assert Lfm3Config(**text).layer_types == ["conv", "conv", "full_attention", "conv"]
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, patch_size=16, initializer_range=INIT)
    return qwen_style(Lfm3VlConfig, Lfm3VlForConditionalGeneration, Lfm3VlProcessor, text, vision,
                      video_processor_class=Qwen3VLVideoProcessor, patch=16, seed=seed)


def tiny_minimax_m3_vl(seed=0):
    """MiniMaxM3SparseForConditionalGeneration (a Qwen2-VL-style tower, an MoE decoder: 4 experts of 32, 2 per
    token, partial rotary over 8 of 16 dims, full attention; 1-D positions) + MiniMaxM3VLProcessor (its own
    image and video processors): ]<]start of image[>[ n x ]<]image[>[ ]<]end of image[>[."""
    from transformers import (MiniMaxM3SparseForConditionalGeneration, MiniMaxM3VLConfig, MiniMaxM3VLImageProcessor,
                              MiniMaxM3VLProcessor, MiniMaxM3VLVideoProcessor)

    marks = {"image_token": "]<]image[>[", "video_token": "]<]video[>["}
    text = dict(hidden_size=64, intermediate_size=32, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, rotary_dim=8, num_local_experts=4, num_experts_per_tok=2,
                dense_intermediate_size=128, shared_intermediate_size=32, initializer_range=INIT)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                  image_size=112, initializer_range=INIT)
    return qwen_style(MiniMaxM3VLConfig, MiniMaxM3SparseForConditionalGeneration, MiniMaxM3VLProcessor, text, vision,
                      image_processor_class=MiniMaxM3VLImageProcessor, video_processor_class=MiniMaxM3VLVideoProcessor,
                      specials=["]<]start of image[>[", "]<]end of image[>["], named=marks,
                      ids={"image_token_index": marks["image_token"], "video_token_index": marks["video_token"]},
                      placeholder=marks["image_token"], config_kwargs={"projector_hidden_size": 64}, seed=seed)


def tiny_cosmos3_edge(seed=0):
    """Cosmos3EdgeForConditionalGeneration (a SigLIP-style tower at patch 16 with a learned 16 x 16 position grid,
    merge 2; a decoder with M-RoPE [2, 3, 3]) + Cosmos3EdgeProcessor (Cosmos3EdgeImageProcessor /
    Cosmos3EdgeVideoProcessor at 32 px per token)."""
    from transformers import (Cosmos3EdgeConfig, Cosmos3EdgeForConditionalGeneration, Cosmos3EdgeImageProcessor,
                              Cosmos3EdgeProcessor, Cosmos3EdgeVideoProcessor)

    text = mrope_text()
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=16,
                  num_patches=256, initializer_range=INIT)
    return qwen_style(Cosmos3EdgeConfig, Cosmos3EdgeForConditionalGeneration, Cosmos3EdgeProcessor, text, vision,
                      image_processor_class=Cosmos3EdgeImageProcessor, video_processor_class=Cosmos3EdgeVideoProcessor,
                      patch=16, temporal=1, config_kwargs={"projector_hidden_size": 64}, seed=seed)


def qwen3_tower(**extra):
    """A Qwen3-VL vision tower: 2 blocks of 32, patch 16, merge 2, a 4 x 4 learned position grid, DeepStack
    features from both blocks."""
    return dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
                temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=16,
                deepstack_visual_indexes=[0, 1], initializer_range=INIT, **extra)


def tiny_cosmos3_omni(seed=0):
    """Cosmos3OmniForConditionalGeneration (a Qwen3-VL tower and decoder: interleaved M-RoPE [4, 2, 2], DeepStack
    after decoder layers 0 and 1) + Qwen3VLProcessor (the auto mapping has no processor for cosmos3_omni; its
    image / video processors are Qwen2VLImageProcessor / Qwen3VLVideoProcessor)."""
    from transformers import (Cosmos3OmniConfig, Cosmos3OmniForConditionalGeneration, Qwen3VLProcessor,
                              Qwen3VLVideoProcessor)

    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, initializer_range=INIT,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_interleaved": True,
                                 "mrope_section": [4, 2, 2]})
    return qwen_style(Cosmos3OmniConfig, Cosmos3OmniForConditionalGeneration, Qwen3VLProcessor, text, qwen3_tower(),
                      video_processor_class=Qwen3VLVideoProcessor, patch=16, seed=seed)


def tiny_cohere_compass(seed=0):
    """CohereCompassForConditionalGeneration (a Qwen3-VL-style tower with DeepStack, a Cohere decoder with
    interleaved M-RoPE [4, 2, 2] given per layer type, full attention) + CohereCompassProcessor
    (CohereCompassImageProcessor / CohereCompassVideoProcessor): <|IMAGE_PAD|> per merged token."""
    from transformers import (CohereCompassConfig, CohereCompassForConditionalGeneration,
                              CohereCompassImageProcessor, CohereCompassProcessor, CohereCompassVideoProcessor)

    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, initializer_range=INIT,
                rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 10000.0,
                                                    "mrope_interleaved": True, "mrope_section": [4, 2, 2]}})
    named = {"image_token": "<|IMAGE_PAD|>", "video_token": "<|VIDEO_PAD|>", "vision_start_token": "<|IMAGE_START|>",
             "vision_end_token": "<|IMAGE_END|>"}
    return qwen_style(CohereCompassConfig, CohereCompassForConditionalGeneration, CohereCompassProcessor, text,
                      qwen3_tower(), image_processor_class=CohereCompassImageProcessor,
                      video_processor_class=CohereCompassVideoProcessor, named=named,
                      ids={"image_token_id": "<|IMAGE_PAD|>", "video_token_id": "<|VIDEO_PAD|>",
                           "vision_start_token_id": "<|IMAGE_START|>", "vision_end_token_id": "<|IMAGE_END|>"},
                      placeholder="<|IMAGE_START|><|IMAGE_PAD|><|IMAGE_END|>", patch=16, seed=seed)


def tiny_paddleocr_vl(seed=0):
    """PaddleOCRVLForConditionalGeneration (a SigLIP NaViT tower at patch 14, merge 2; an Ernie-4.5-style decoder
    with M-RoPE [2, 3, 3]) + PaddleOCRVLProcessor (PaddleOCRVLImageProcessor)."""
    from transformers import (PaddleOCRVLConfig, PaddleOCRVLForConditionalGeneration, PaddleOCRVLImageProcessor,
                              PaddleOCRVLProcessor)

    text = mrope_text()
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                  image_size=56, initializer_range=INIT)
    return qwen_style(PaddleOCRVLConfig, PaddleOCRVLForConditionalGeneration, PaddleOCRVLProcessor, text, vision,
                      image_processor_class=PaddleOCRVLImageProcessor, temporal=1, seed=seed)


def tiny_hunyuan_vl(seed=0):
    """HunYuanVLForConditionalGeneration (HunyuanOCR: a NaViT tower at patch 16, merge 2, whose features carry a
    learned newline slot after every row and two extra slots: h * (w + 1) + 2 image tokens; a decoder with XD-RoPE
    over 4 axes [2, 2, 2, 2]) + HunYuanVLProcessor (HunYuanVLImageProcessor): <img_start> n x <img> <img_end>."""
    from transformers import (HunYuanVLConfig, HunYuanVLForConditionalGeneration, HunYuanVLImageProcessor,
                              HunYuanVLProcessor)

    named = {"image_token": "<img>", "image_start_token": "<img_start>", "image_end_token": "<img_end>"}
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, initializer_range=INIT,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2, 2]})
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=16,
                  out_hidden_size=64, text_hidden_size=64, initializer_range=INIT)
    return qwen_style(HunYuanVLConfig, HunYuanVLForConditionalGeneration, HunYuanVLProcessor, text, vision,
                      image_processor_class=HunYuanVLImageProcessor, specials=["<img_newline>"], named=named,
                      ids={"image_token_id": "<img>", "im_start_id": "<img_start>", "im_end_id": "<img_end>",
                           "im_newline_id": "<img_newline>"},
                      placeholder="<img_start><img><img_end>", patch=16, temporal=1, seed=seed)


def tiny_ernie4_5_vl_moe(seed=0):
    """Ernie4_5_VLMoeForConditionalGeneration (a Qwen2-VL-style tower, patch 14, merge 2; a decoder with 3-D RoPE
    [2, 2, 4] whose MoE layers route image tokens to vision experts by moe_mm_token_type_ids: 4 + 4 experts of 32,
    2 per token, one shared; layer 0 dense) + Ernie4_5_VLMoeProcessor (its image and video processors):
    <|IMAGE_START|> n x <|IMAGE_PLACEHOLDER|> <|IMAGE_END|>."""
    from transformers import (Ernie4_5_VLMoeConfig, Ernie4_5_VLMoeForConditionalGeneration,
                              Ernie4_5_VLMoeImageProcessor, Ernie4_5_VLMoeProcessor, Ernie4_5_VLMoeVideoProcessor)

    named = {"image_token": "<|IMAGE_PLACEHOLDER|>", "image_start_token": "<|IMAGE_START|>",
             "image_end_token": "<|IMAGE_END|>", "video_token": "<|VIDEO_PLACEHOLDER|>",
             "video_start_token": "<|VIDEO_START|>", "video_end_token": "<|VIDEO_END|>"}
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, moe_intermediate_size=[32, 32], moe_k=2, moe_num_experts=4,
                moe_num_shared_experts=1, initializer_range=INIT,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]})
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, initializer_range=INIT)
    return qwen_style(Ernie4_5_VLMoeConfig, Ernie4_5_VLMoeForConditionalGeneration, Ernie4_5_VLMoeProcessor, text,
                      vision, image_processor_class=Ernie4_5_VLMoeImageProcessor,
                      video_processor_class=Ernie4_5_VLMoeVideoProcessor, named=named,
                      ids={f"{k}_id": v for k, v in named.items()},
                      placeholder="<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>", temporal=1, video_temporal=2,
                      seed=seed)


def tiny_kimi_k25(seed=0):
    """Kimi_K25ForConditionalGeneration (a MoonViT-style tower, patch 14, 2 x 2 merge; a DeepSeek-V3 decoder: MLA
    with LoRA-ranked q / kv, MoE with 4 routed experts of 32, 2 per token, one shared, layer 0 dense; 1-D
    positions) + Kimi_K25Processor (Kimi_K25ImageProcessor / Kimi_K25VideoProcessor): <|media_pad|> per merged
    token."""
    from transformers import (DeepseekV3Config, Kimi_K25Config, Kimi_K25ForConditionalGeneration,
                              Kimi_K25ImageProcessor, Kimi_K25Processor, Kimi_K25VideoProcessor)

    text = DeepseekV3Config(hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4, num_experts_per_tok=2,
                            n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1, kv_lora_rank=16,
                            q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                            initializer_range=INIT).to_dict()
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                  pos_emb_height=16, pos_emb_width=16, initializer_range=INIT)
    named = {"image_token": "<|media_pad|>", "video_token": "<|kimi_k25_video_placeholder|>",
             "vision_start_token": "<|media_begin|>", "vision_end_token": "<|media_end|>"}
    return qwen_style(Kimi_K25Config, Kimi_K25ForConditionalGeneration, Kimi_K25Processor, text, vision,
                      image_processor_class=Kimi_K25ImageProcessor, video_processor_class=Kimi_K25VideoProcessor,
                      named=named, ids={"image_token_id": "<|media_pad|>",
                                        "video_token_id": "<|kimi_k25_video_placeholder|>",
                                        "vision_start_token_id": "<|media_begin|>",
                                        "vision_end_token_id": "<|media_end|>"},
                      placeholder="<|media_begin|><|media_pad|><|media_end|>", image_kwargs={"size": None},
                      config_kwargs={"projection_hidden_size": 32}, seed=seed)


def tiny_inkling_mm_model(seed=0):
    """InklingForConditionalGeneration (a patch-embedding tower, 10 px patches, one token per patch; a hybrid
    decoder whose layers mix attention with short convolutions and relative-position logits, sliding on layers 0,
    1, 3 and full on layer 2; MoE with 4 experts of 32, 2 per token) + InklingProcessor (InklingImageProcessor,
    InklingFeatureExtractor for audio): <|content_image|> then one <|unused_200054|> per patch."""
    from transformers import (InklingConfig, InklingFeatureExtractor, InklingForConditionalGeneration,
                              InklingImageProcessor, InklingProcessor)

    specials = ["<|unused_200054|>", "<|unused_200053|>", "<|content_image|>", "<|content_audio_input|>"]
    tok = tokenizer(["<|endoftext|>", "<|im_end|>", *specials], {"image_token": specials[0]}, eos="<|im_end|>",
                    pad="<|endoftext|>")
    ids = tok.convert_tokens_to_ids
    text = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, swa_num_attention_heads=4, swa_num_key_value_heads=2,
                swa_head_dim=16, sliding_window_size=512, d_rel=4, rel_extent=64, local_layer_ids=[0, 1, 3],
                intermediate_size=128, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2,
                n_shared_experts=1, initializer_range=INIT, pad_token_id=tok.pad_token_id,
                bos_token_id=None, eos_token_id=tok.eos_token_id)
    vision = dict(patch_size=10, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, initializer_range=INIT)
    audio = dict(initializer_range=INIT)
    config = InklingConfig(text_config=text, vision_config=vision, audio_config=audio,
                           image_token_id=ids(specials[0]), audio_token_id=ids(specials[1]),
                           image_bos_token_id=ids(specials[2]), audio_bos_token_id=ids(specials[3]))
    torch.manual_seed(seed)
    model = finish(InklingForConditionalGeneration(config), tok.eos_token_id)
    processor = InklingProcessor(feature_extractor=InklingFeatureExtractor(),
                                 image_processor=InklingImageProcessor(size={"height": 10, "width": 10}),
                                 tokenizer=tok, chat_template=chat_template("<|content_image|><|unused_200054|>",
                                                                            end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


def tiny_step3p7(seed=0, size=224):
    """Step3p7ForConditionalGeneration (a ViT with 2-D RoPE at 224 px / 14 px and two stride-2 convolutions: 4 x 4
    tokens for the global view; a decoder alternating full and sliding-window attention (the default config sets
    no window, which the stock forward needs), MoE on layer 3 with 4 experts of 32, 2 per token, a shared expert)
    + Step3p7Processor (Step3p7ImageProcessor, 112 px local crops):
    [<patch_start> 2 x 2 <im_patch> <patch_end> [<patch_newline>]]* <im_start> 16 <im_patch> <im_end>."""
    from transformers import Step3p7Config, Step3p7ForConditionalGeneration, Step3p7ImageProcessor, Step3p7Processor

    specials = ["<im_patch>", "<im_start>", "<im_end>", "<patch_start>", "<patch_end>", "<patch_newline>"]
    tok = tokenizer(["<|endoftext|>", "<|im_end|>", *specials], {"image_token": "<im_patch>"}, eos="<|im_end|>",
                    pad="<|endoftext|>")
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4, n_routed_experts=4,
                num_experts_per_tok=2, moe_intermediate_size=32, share_expert_dim=32, initializer_range=INIT,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, sliding_window=512,
                layer_types=["full_attention", "sliding_attention"] * 2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=size,
                  patch_size=14, mlp_ratio=2.0, max_position_embeddings=(size // 14) ** 2, initializer_range=INIT)
    config = Step3p7Config(text_config=text, vision_config=vision, image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    model = finish(Step3p7ForConditionalGeneration(config), tok.eos_token_id)
    image_processor = Step3p7ImageProcessor(size={"height": size, "width": size}, patch_size=size // 2)
    processor = Step3p7Processor(image_processor=image_processor, tokenizer=tok,
                                 chat_template=chat_template("<im_patch>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


def tiny_minicpmv4_7(seed=0):
    """MiniCPMV4_7ForConditionalGeneration (MiniCPM-V 4.6's tower and mergers, 16 px per token; a Qwen3.5 hybrid
    decoder, linear / full attention alternating, with M-RoPE over the source view and slices) +
    MiniCPMV4_7Processor (MiniCPMV4_6ImageProcessor / MiniCPMV4_6VideoProcessor, tests/tiny_misc.py's tokenizer,
    template and 56 px slicing): a 90 x 70 image -> a 3 x 4 source view and 2 x 2 slices of 3 x 4."""
    from transformers import (MiniCPMV4_6ImageProcessor, MiniCPMV4_6VideoProcessor, MiniCPMV4_7Config,
                              MiniCPMV4_7ForConditionalGeneration, MiniCPMV4_7Processor)

    from tests import tiny_misc

    dense, _ = tiny_misc.tiny_minicpmv4_6(seed=seed, layer_types=("linear_attention", "full_attention") * 2)
    tok = tiny_misc.minicpmv4_6_tokenizer()
    config = dense.config.to_dict()
    ids = tok.convert_tokens_to_ids
    markers = {"image_start_id": ids("<image>"), "image_end_id": ids("</image>"), "slice_start_id": ids("<slice>"),
               "slice_end_id": ids("</slice>"), "newline_id": None}
    for key in ("model_type", "transformers_version", "architectures", "drop_vision_last_layer"):
        config.pop(key, None)
    config = MiniCPMV4_7Config(**{**config, **markers})
    torch.manual_seed(seed)
    model = MiniCPMV4_7ForConditionalGeneration(config)
    model.load_state_dict(dense.state_dict())  # the same weights as the 4.6 build (its livelier decay rates)
    model = finish(model, tok.eos_token_id)
    common = dict(patch_size=4, scale_resolution=56, max_slice_nums=4, downsample_mode="16x", use_image_id=True)
    processor = MiniCPMV4_7Processor(image_processor=MiniCPMV4_6ImageProcessor(**common, slice_mode=True),
                                     video_processor=MiniCPMV4_6VideoProcessor(**common, slice_mode=False,
                                                                               do_sample_frames=False),
                                     tokenizer=tok, chat_template=tiny_misc.MINICPM_CHAT_TEMPLATE)
    return model, processor, generic_inputs(model, processor)


def tiny_nemotron_h_omni(seed=0):
    """NemotronH_Omni_Reasoning_V3 (a RADIO ViT at 16 px patches, pixel shuffle 0.5; a Nemotron-H hybrid decoder of
    single-mixer blocks: Mamba-2, MoE, attention, MLP; no audio tower) + NemotronH_Omni_Reasoning_V3Processor (its
    image processor, at most 256 patches; ParakeetFeatureExtractor for audio): <img> n x <image> </img>."""
    import transformers

    prefix = "NemotronH_Omni_Reasoning_V3"
    specials = ["<image>", "<video>", "<img>", "</img>", "<so_embedding>", "<so_start>", "<so_end>"]
    tok = tokenizer(["<|endoftext|>", "<|im_end|>", *specials], {"image_token": "<image>", "video_token": "<video>"},
                    eos="<|im_end|>", pad="<|endoftext|>")
    text = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, intermediate_size=128, mamba_num_heads=4, mamba_head_dim=16,
                ssm_state_size=16, n_groups=2, chunk_size=16, n_routed_experts=4, num_experts_per_tok=2,
                moe_intermediate_size=32, moe_shared_expert_intermediate_size=32, initializer_range=INIT,
                pad_token_id=tok.pad_token_id, bos_token_id=None, eos_token_id=tok.eos_token_id,
                layers_block_type=["linear_attention", "moe", "full_attention", "mlp"])
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=16, image_size=64,
                  max_img_size=256, video_temporal_patch_size=2, initializer_range=INIT)
    config = getattr(transformers, f"{prefix}_Config")(
        text_config=text, vision_config=vision, vision_hidden_size=32, projector_hidden_size=64,
        image_token_id=tok.image_token_id, video_token_id=tok.video_token_id)
    torch.manual_seed(seed)
    model = finish(getattr(transformers, prefix)(config), tok.eos_token_id)
    image_processor = getattr(transformers, f"{prefix}ImageProcessor")(min_num_patches=16, max_num_patches=256)
    processor = getattr(transformers, f"{prefix}Processor")(
        image_processor=image_processor, video_processor=getattr(transformers, f"{prefix}VideoProcessor")(),
        tokenizer=tok, feature_extractor=transformers.ParakeetFeatureExtractor(),
        chat_template=chat_template("<image>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


def tiny_mistral_large4(seed=0):
    """MistralLarge4ForConditionalGeneration (Pixtral tower, 2 x 2 patch merger; a decoder of MLA with a sparse
    "indexed" top-k selector on every layer, NoPE every 4th layer, MoE with 4 experts of 32, 2 per token, layer 0
    dense) + PixtralProcessor (tests/tiny_idefics.py's Mistral 3 tokenizer, template and 7 px patches: 90 x 70 ->
    5 rows of 7 [IMG], [IMG_BREAK] between rows)."""
    from transformers import (MistralLarge4Config, MistralLarge4ForConditionalGeneration, PixtralImageProcessor,
                              PixtralProcessor)

    from tests import tiny_idefics

    tok = tiny_idefics.mistral3_tokenizer()
    processor = PixtralProcessor(image_processor=PixtralImageProcessor(size={"longest_edge": 112},
                                                                       patch_size={"height": 7, "width": 7}),
                                 tokenizer=tok, patch_size=7, spatial_merge_size=2,
                                 chat_template=tiny_idefics.MISTRAL3_CHAT_TEMPLATE)
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4,
                num_experts_per_tok=2, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
                index_topk=512, index_head_dim=16, index_n_heads=2, initializer_range=INIT,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=112, patch_size=7, initializer_range=INIT)
    config = MistralLarge4Config(text_config=text, vision_config=vision, spatial_merge_size=2,
                                 image_token_index=tok.convert_tokens_to_ids("[IMG]"))
    torch.manual_seed(seed)
    model = finish(MistralLarge4ForConditionalGeneration(config), tok.eos_token_id)
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- OCR models

def tiny_lighton_ocr(seed=0):
    """LightOnOcrForConditionalGeneration (Pixtral tower at 7 px patches, 2 x 2 merger; Qwen3 decoder) +
    LightOnOcrProcessor (PixtralImageProcessor, 112 px longest edge): 90 x 70 -> 5 x 7 <|image_pad|> (no row
    breaks in its expansion)."""
    from transformers import (LightOnOcrConfig, LightOnOcrForConditionalGeneration, LightOnOcrProcessor,
                              PixtralImageProcessor, Qwen3Config)

    named = {"image_token": "<|image_pad|>", "image_break_token": "<|vision_pad|>", "image_end_token": "<|vision_end|>"}
    tok = tokenizer(["<|endoftext|>", "<|im_end|>", *named.values()], named, eos="<|im_end|>", pad="<|endoftext|>")
    vision = dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=112, patch_size=7, initializer_range=INIT)
    text = shrink_text(Qwen3Config(vocab_size=len(tok), pad_token_id=None, bos_token_id=None, eos_token_id=None))
    config = LightOnOcrConfig(vision_config=vision, text_config=text.to_dict(), spatial_merge_size=2,
                              image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    model = finish(LightOnOcrForConditionalGeneration(config), tok.eos_token_id)
    image_processor = PixtralImageProcessor(size={"longest_edge": 112}, patch_size={"height": 7, "width": 7})
    processor = LightOnOcrProcessor(image_processor=image_processor, tokenizer=tok, patch_size=7,
                                    spatial_merge_size=2,
                                    chat_template=chat_template("<|image_pad|>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


def tiny_qianfan_ocr(seed=0, size=112):
    """QianfanOCRForConditionalGeneration (an InternViT-style tower at 112 px / 14 px, pixel shuffle 0.5; Qwen3
    decoder) + QianfanOCRProcessor (GotOcr2ImageProcessor, 112 px tiles, 2 to 4 crops and a thumbnail): <img>
    16 x <IMG_CONTEXT> per view </img>, the views in one run."""
    from transformers import (GotOcr2ImageProcessor, QianfanOCRConfig, QianfanOCRForConditionalGeneration,
                              QianfanOCRProcessor, Qwen3Config)

    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>"}
    tok = tokenizer(["<|endoftext|>", "<|im_end|>", "<image>", *named.values()], named, eos="<|im_end|>",
                    pad="<|endoftext|>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=[size, size], patch_size=[14, 14], initializer_range=INIT)
    text = shrink_text(Qwen3Config(vocab_size=len(tok), pad_token_id=None, bos_token_id=None, eos_token_id=None))
    seq = (size // 14 // 2) ** 2
    config = QianfanOCRConfig(vision_config=vision, text_config=text.to_dict(), image_seq_length=seq,
                              image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"))
    torch.manual_seed(seed)
    model = finish(QianfanOCRForConditionalGeneration(config), tok.eos_token_id)
    image_processor = GotOcr2ImageProcessor(size={"height": size, "width": size}, crop_to_patches=True,
                                            min_patches=2, max_patches=4)
    processor = QianfanOCRProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=seq,
                                    chat_template=chat_template("<image>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


def tiny_got_ocr2(seed=0, size=256):
    """GotOcr2ForConditionalGeneration (a SAM ViT at 256 px / 16 px, windows of 4, global attention in block 1; two
    stride-2 convolutions: 4 x 4 tokens; Qwen2 decoder) + GotOcr2Processor (GotOcr2ImageProcessor). The checkpoint
    has no chat template (the processor writes its own OCR prompt when given no text), so these inputs are the
    processor's own prompt: processor(images=[image])."""
    from transformers import GotOcr2Config, GotOcr2ForConditionalGeneration, GotOcr2ImageProcessor, GotOcr2Processor

    tok = tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<imgpad>"], {},
                    eos="<|im_end|>", pad="<|endoftext|>",
                    words=[*WORDS, "system", "You", "should", "follow", "instructions", "carefully", "and", "explain",
                           "your", "answers", "in", "detail", "OCR"])
    vision = dict(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=size,
                  patch_size=16, window_size=4, global_attn_indexes=[1], mlp_dim=64)
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, initializer_range=INIT, tie_word_embeddings=False)
    config = GotOcr2Config(vision_config=vision, text_config=text, image_seq_length=(size // 64) ** 2,
                           image_token_index=tok.convert_tokens_to_ids("<imgpad>"))
    torch.manual_seed(seed)
    model = finish(GotOcr2ForConditionalGeneration(config), tok.eos_token_id)
    image_processor = GotOcr2ImageProcessor(size={"height": size, "width": size})
    processor = GotOcr2Processor(image_processor=image_processor, tokenizer=tok)
    inputs = processor(images=[random_image(0)], num_image_tokens=(size // 64) ** 2, return_tensors="pt")
    return model, processor, inputs


# ---------------------------------------------------------------------------------------------------- janus

def tiny_janus(seed=0, size=64):
    """JanusForConditionalGeneration (understanding path: a SigLIP-style ViT at 64 px / 16 px and an aligner MLP,
    Llama decoder; the generation path's VQ-VAE is built tiny and unused) + JanusProcessor (JanusImageProcessor):
    <begin_of_image> 16 x <image_placeholder> <end_of_image>."""
    from transformers import (JanusConfig, JanusForConditionalGeneration, JanusImageProcessor, JanusProcessor,
                              LlamaConfig)

    named = {"image_token": "<image_placeholder>", "boi_token": "<begin_of_image>", "eoi_token": "<end_of_image>"}
    tok = tokenizer(["<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", *named.values()], named,
                    eos="<｜end▁of▁sentence｜>", bos="<｜begin▁of▁sentence｜>")
    tokens = (size // 16) ** 2
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=size, patch_size=16,
                  projection_dim=64, depth=2, num_image_tokens=tokens, initializer_range=INIT)
    vq = dict(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32, channel_multiplier=[1, 2],
              num_res_blocks=1, num_patches=4, projection_dim=64, image_token_embed_dim=64)
    text = shrink_text(LlamaConfig(vocab_size=len(tok), pad_token_id=None, bos_token_id=None, eos_token_id=None))
    config = JanusConfig(text_config=text.to_dict(), vision_config=vision, vq_config=vq,
                         image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    model = finish(JanusForConditionalGeneration(config), tok.eos_token_id)
    image_processor = JanusImageProcessor(size={"height": size, "width": size})
    processor = JanusProcessor(image_processor=image_processor, tokenizer=tok, num_image_tokens=tokens,
                               chat_template=chat_template("<image_placeholder>", bos="<｜begin▁of▁sentence｜>",
                                                           end="<｜end▁of▁sentence｜>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- shieldgemma2

def tiny_shieldgemma2(seed=0, policies=("circle",)):
    """Gemma3ForConditionalGeneration with a ShieldGemma2Config (what AutoModelForImageTextToText loads for
    shieldgemma2; tests/tiny_gemma.py's Gemma 3 shape: SigLIP 96 px / 8 px pooled to 6 x 6, 3 sliding + 1 full
    layer, bidirectional image block) + ShieldGemma2Processor (Gemma3ImageProcessor; tests/tiny_gemma.py's
    tokenizer and template). The processor ignores the question: it writes one prompt per policy (a batch of
    len(policies)), here one policy whose text is the question's words."""
    from transformers import (Gemma3ForConditionalGeneration, Gemma3ImageProcessor, ShieldGemma2Config,
                              ShieldGemma2Processor)

    from tests import tiny_gemma

    gemma = tiny_gemma.gemma3_model(tiny_gemma.gemma3_tokenizer(), seed=seed, sliding_window=512)
    tok = tiny_gemma.gemma3_tokenizer()
    config = gemma.config.to_dict()
    for key in ("model_type", "transformers_version", "architectures"):
        config.pop(key, None)
    config = ShieldGemma2Config(**{k: v for k, v in config.items()
                                   if k in ("text_config", "vision_config", "mm_tokens_per_image", "boi_token_index",
                                            "eoi_token_index", "image_token_index", "initializer_range")})
    model = Gemma3ForConditionalGeneration(config)
    model.load_state_dict(gemma.state_dict())
    model = finish(model, tok.eos_token_id)
    with torch.no_grad():
        model.lm_head.weight[tok.convert_tokens_to_ids("<end_of_turn>")] = 0.0
    processor = ShieldGemma2Processor(image_processor=Gemma3ImageProcessor(size={"height": 96, "width": 96}),
                                      tokenizer=tok, image_seq_length=36, chat_template=tiny_gemma.GEMMA3_CHAT_TEMPLATE,
                                      policy_definitions={p: QUESTION for p in policies})
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- gemma4_unified

def tiny_gemma4_unified(seed=0, patch=4, pooling=3):
    """Gemma4UnifiedForConditionalGeneration (no ViT: pooled patches embedded by an MLP with learned per-axis
    positions; a Gemma 4 decoder: 3 sliding + 1 full layer (the full one with its own head size), bidirectional
    attention over each image) + Gemma4UnifiedProcessor (its image, video and audio processors; tests/tiny_gemma.py's
    Gemma 4 tokenizer and template): <|image> n x <|image|> <image|>, 90 x 70 -> 9 x 7."""
    import transformers

    from tests import tiny_gemma

    tok = tiny_gemma.gemma4_tokenizer()
    ids = tok.convert_tokens_to_ids
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=32, sliding_window=512,
                layer_types=["sliding_attention"] * 3 + ["full_attention"], initializer_range=INIT,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = dict(patch_size=patch, pooling_kernel_size=pooling, mm_embed_dim=64, mm_posemb_size=64,
                  output_proj_dims=64, initializer_range=INIT)
    config = transformers.Gemma4UnifiedConfig(
        text_config=text, vision_config=vision, audio_config=None, boi_token_id=ids("<|image>"),
        eoi_token_id=ids("<image|>"), image_token_id=ids("<|image|>"), video_token_id=ids("<|video|>"),
        boa_token_id=ids("<|audio>"), eoa_token_index=ids("<audio|>"), audio_token_id=ids("<|audio|>"),
        initializer_range=INIT)
    torch.manual_seed(seed)
    model = finish(transformers.Gemma4UnifiedForConditionalGeneration(config), tok.eos_token_id)
    with torch.no_grad():
        model.get_output_embeddings().weight[ids("<turn|>")] = 0.0
    sizes = dict(patch_size=patch, pooling_kernel_size=pooling, max_soft_tokens=70)
    processor = transformers.Gemma4UnifiedProcessor(
        feature_extractor=transformers.Gemma4UnifiedAudioFeatureExtractor(),
        image_processor=transformers.Gemma4UnifiedImageProcessor(**sizes),
        video_processor=transformers.Gemma4UnifiedVideoProcessor(**sizes),
        tokenizer=tok, image_seq_length=70, chat_template=tiny_gemma.GEMMA4_CHAT_TEMPLATE)
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- aria

def tiny_aria(seed=0, size=980, patch=140, queries=16):
    """AriaForConditionalGeneration (an Idefics3 vision tower at 980 px with 140 px patches: 7 x 7, a
    cross-attention projector resampling them to 16 learned queries; an MoE decoder, 4 experts of 32, 2 per
    token, one shared) + AriaProcessor (AriaImageProcessor): 16 <|img|> per image. The processor's call defaults
    (max_image_size 980, its size_conversion keyed by that size) win over the image processor's attributes, so
    the tower keeps the real 980 px input and the patch grows instead."""
    from transformers import AriaConfig, AriaForConditionalGeneration, AriaImageProcessor, AriaProcessor

    tok = tokenizer(["<|endoftext|>", "<|im_end|>", "<|img|>"], {"image_token": "<|img|>"}, eos="<|im_end|>",
                    pad="<|endoftext|>")
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=32, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, moe_num_experts=4, moe_topk=2, moe_num_shared_experts=1,
                initializer_range=INIT, pad_token_id=tok.pad_token_id, bos_token_id=None,
                eos_token_id=tok.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=size,
                  patch_size=patch, initializer_range=INIT)
    config = AriaConfig(text_config=text, vision_config=vision,
                        projector_patch_to_query_dict={(size // patch) ** 2: queries},
                        image_token_index=tok.image_token_id, initializer_range=INIT)
    torch.manual_seed(seed)
    model = finish(AriaForConditionalGeneration(config), tok.eos_token_id)
    with torch.no_grad():  # zero at init: every query would read the same
        model.model.multi_modal_projector.query.normal_(0.0, INIT)
    processor = AriaProcessor(image_processor=AriaImageProcessor(), tokenizer=tok, size_conversion={size: queries},
                              chat_template=chat_template("<|img|>", end="<|im_end|>"))
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- idefics2

def tiny_idefics2(seed=0, tile=56, latents=16):
    """Idefics2ForConditionalGeneration (a SigLIP-style tower at 56 px / 7 px, a perceiver resampler to 16 latents
    per view; Mistral decoder) + Idefics2Processor (Idefics2ImageProcessor with image splitting: 4 crops and the
    whole image; tests/tiny_idefics.py's Idefics3 turn format): per view
    <fake_token_around_image> 16 x <image>, one <fake_token_around_image> closing the image."""
    from transformers import (Idefics2Config, Idefics2ForConditionalGeneration, Idefics2ImageProcessor,
                              Idefics2Processor)

    from tests import tiny_idefics

    named = {"image_token": "<image>", "image_boundary_token": "<fake_token_around_image>",
             "end_of_utterance_token": "<end_of_utterance>"}
    tok = tokenizer(["<|begin_of_text|>", "<|end_of_text|>", *named.values()], named, eos="<end_of_utterance>",
                    pad="<|end_of_text|>", bos="<|begin_of_text|>", words=[*WORDS, "User", "Assistant"])
    text = dict(model_type="mistral", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                max_position_embeddings=4096, sliding_window=None, initializer_range=INIT,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=tile,
                  patch_size=7, initializer_range=INIT)
    perceiver = dict(hidden_size=64, resampler_n_latents=latents, resampler_depth=1, resampler_n_heads=2,
                     resampler_head_dim=16, num_key_value_heads=1, initializer_range=INIT)
    config = Idefics2Config(text_config=text, vision_config=vision, perceiver_config=perceiver,
                            image_token_id=tok.image_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = finish(Idefics2ForConditionalGeneration(config), tok.eos_token_id)
    image_processor = Idefics2ImageProcessor(size={"longest_edge": tile, "shortest_edge": tile},
                                             do_image_splitting=True)
    processor = Idefics2Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=latents,
                                  chat_template=tiny_idefics.IDEFICS3_CHAT_TEMPLATE)
    return model, processor, generic_inputs(model, processor)


# ---------------------------------------------------------------------------------------------------- chameleon

def tiny_chameleon(seed=0, size=64, codes=64):
    """ChameleonForConditionalGeneration (early fusion: a VQ-VAE at 64 px, downsampling 8: 8 x 8 codes from a 64-entry
    codebook, each mapped through vocabulary_map to an IMGIMG* BPE token and embedded by the decoder's own table;
    the decoder is the base model itself) + ChameleonProcessor (ChameleonImageProcessor): <racm3:break> 64 x
    <image> <eoss>, then the sep token (chat mode)."""
    from transformers import (ChameleonConfig, ChameleonForConditionalGeneration, ChameleonImageProcessor,
                              ChameleonProcessor)

    letters = "ABCDEFGHIJ"
    image_words = ["IMGIMG" + "".join(letters[int(d)] for d in str(i)) + "Z" for i in range(codes)]
    tok = tokenizer(["<pad>", "<s>", "</s>", "<reserved08706>", "<image>", "<racm3:break>", "<eoss>", *image_words],
                    {"image_token": "<image>", "boi_token": "<racm3:break>", "eoi_token": "<eoss>"}, eos="</s>",
                    pad="<pad>", bos="<s>")
    tok.add_special_tokens({"sep_token": "<reserved08706>"})
    vq = dict(embed_dim=8, num_embeddings=codes, latent_channels=32, resolution=size, base_channels=32,
              channel_multiplier=[1, 1, 1, 1], num_res_blocks=1, attn_resolutions=[])
    config = ChameleonConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, initializer_range=INIT, vq_config=vq,
                             vocabulary_map=tok.get_vocab(), pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    model = finish(ChameleonForConditionalGeneration(config), tok.eos_token_id)
    image_processor = ChameleonImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = ChameleonProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=(size // 8) ** 2)
    processor.chat_template = chat_template("<image>", bos="<s>", end="</s>")
    return model, processor, generic_inputs(model, processor)

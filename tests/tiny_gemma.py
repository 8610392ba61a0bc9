"""Tiny random-weight Gemma 3, Gemma 4 and PaliGemma checkpoints for tests/test_tiny_gemma.py, built from their
config classes in code with their real processors; `tiny_<arch>(seed=0)` returns (model, processor).

* gemma3: Gemma3ForConditionalGeneration (SigLIP tower, 4 text layers: 3 sliding + 1 full attention) with
  Gemma3Processor + Gemma3ImageProcessor: every image is squashed to 96 x 96 -> 12 x 12 patches of 8 px ->
  2 x 2 average pool -> 6 x 6 = 36 soft tokens.
* gemma4: Gemma4ForConditionalGeneration shaped like the large Gemma 4 models (4 text layers: 3 sliding + 1
  full attention with a wider head, one KV head and keys as values; use_bidirectional_attention="vision"; no
  per-layer inputs, no KV sharing, no audio tower) with Gemma4Processor + Gemma4ImageProcessor +
  Gemma4VideoProcessor + Gemma4AudioFeatureExtractor (the processor requires one). The aspect ratio is kept:
  90 x 70 -> 108 x 84 px -> 27 x 21 patches of 4 px -> 3 x 3 pool -> 9 x 7 = 63 soft tokens (per video frame too).
* paligemma: PaliGemmaForConditionalGeneration (SigLIP tower, Gemma text model; text_model="gemma2" gives
  PaliGemma 2) with PaliGemmaProcessor + SiglipImageProcessor: squashed to 48 x 48 -> 6 x 6 = 36 tokens
  (image_seq_length from the config).

Each tokenizer is word level (models/shapes_llava/build.py `_word_level`) and carries the family's special tokens
as added special tokens, the named ones (boi_token, image_token, ...) as the attributes the processor reads. The
newline strings the real templates and processors write ("\\n", "\\n\\n") are added tokens too, so they survive
the word-level split as they survive the real SentencePiece vocabulary. The chat templates are written here in
each family's style: Gemma 3 `<start_of_turn>user\\n ... <end_of_turn>\\n` with `<start_of_image>` where the
image item is; Gemma 4 `<|turn>user\\n ... <turn|>\\n` with `<|image|>` / `<|video|>`; PaliGemma has no chat
format on the hub (a prefix "<image>...<bos>prompt\\n", then the answer), so its template writes every image
first, then the turns' texts joined by "\\n".

Answers depend on the image: weights are initialised with a large std (0.3), Gemma 3's projector (zero at init)
and Gemma 4's patch position table (ones at init) are filled with random values, and the lm_head rows of the end
tokens are zeroed so that answers are longer than a token. The lm_head is untied from the embeddings for that
reason (real Gemma checkpoints tie them).
"""

import torch

from tests.tiny_shared import WORDS, finish, silence, word_tokenizer

NEWLINES = ["\n", "\n\n"]


def _tokenizer(special_tokens, words, named):
    """Gemma's: bos <bos>, eos <eos>, pad <pad>, unk <unk>; the newline strings right after the special tokens."""
    return word_tokenizer([*special_tokens, *NEWLINES], words, named, newlines=NEWLINES, bos_token="<bos>",
                          eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def _end(model, eos_ids):
    """sdpa, eval, the end tokens silenced, and generate told which ids end an answer."""
    model.generation_config.eos_token_id = list(eos_ids)
    return finish(model, eos_ids)


# ----------------------------------------------------------------------------------------------------------------
# Gemma 3

GEMMA3_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                         "<end_of_image>", "<image_soft_token>"]
GEMMA3_TEMPLATE_WORDS = ["user", "model", "system", "Here", "is", "the", "original", "image", "and", "here", "are",
                         "some", "crops", "to", "help", "you", "see", "better"]

# google/gemma-3-*-it's template, shortened: <bos>, a system turn folded into the first user turn, "assistant"
# written as "model", <start_of_image> where an image item is (the processor expands it to
# "\n\n<start_of_image>" + image_seq_length x <image_soft_token> + "<end_of_image>\n\n").
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% if messages[0]['content'] is string %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}"
    "{% else %}{% set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' %}{% endif %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def gemma3_tokenizer(words=WORDS):
    return _tokenizer(GEMMA3_SPECIAL_TOKENS, [*GEMMA3_TEMPLATE_WORDS, *words],
                      {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                       "image_token": "<image_soft_token>"})


def gemma3_processor(tokenizer, image_size=96, tokens_per_image=36):
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    image_processor = Gemma3ImageProcessor(size={"height": image_size, "width": image_size})
    return Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                           image_seq_length=tokens_per_image, chat_template=GEMMA3_CHAT_TEMPLATE)


def gemma3_model(tokenizer, image_size=96, patch_size=8, tokens_per_image=36, text_width=64, text_layers=4,
                 heads=4, kv_heads=2, head_dim=16, sliding_window=32, vision_width=32, vision_layers=2, seed=0,
                 initializer_range=0.3, projector_std=0.4):
    """Layer types: sliding x (text_layers - 1), then one full-attention layer (Gemma 3 is 5:1)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=2 * text_width,
                num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=sliding_window,
                layer_types=["sliding_attention"] * (text_layers - 1) + ["full_attention"],
                max_position_embeddings=4096, initializer_range=initializer_range,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=[tokenizer.eos_token_id, ids("<end_of_turn>")], tie_word_embeddings=False)
    vision = dict(model_type="siglip_vision_model", hidden_size=vision_width, intermediate_size=2 * vision_width,
                  num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size,
                  patch_size=patch_size, vision_use_head=False)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=tokens_per_image,
                          boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
                          image_token_index=ids("<image_soft_token>"), initializer_range=initializer_range,
                          tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():  # zero at init: the image would not reach the answer
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, projector_std)
    return _end(model, config.text_config.eos_token_id)


def tiny_gemma3(seed=0, **kwargs):
    tokenizer = gemma3_tokenizer()
    processor = gemma3_processor(tokenizer)
    return gemma3_model(tokenizer, seed=seed, **kwargs), processor


# ----------------------------------------------------------------------------------------------------------------
# Gemma 4

GEMMA4_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<|turn>", "<turn|>", "<|image>", "<image|>",
                         "<|image|>", "<|video|>", "<|audio>", "<audio|>", "<|audio|>"]
# A video frame is announced by its "mm:ss" timestamp, split by the word-level pre-tokenizer into "00", ":", "00".
TIMESTAMP_WORDS = [f"{i:02d}" for i in range(60)] + [":"]
GEMMA4_TEMPLATE_WORDS = ["user", "model", "system"]

# google/gemma-4-*-it's template without tools and thinking: <bos>, <|turn>role\n ... <turn|>\n, "assistant"
# written as "model", <|image|> / <|video|> inline where the item is (the processor expands <|image|> to
# <|image> + n x <|image|> + <image|>, and <|video|> to "mm:ss <|image> n x <|video|> <image|>" per frame).
GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<|turn>' + role + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif item['type'] == 'video' %}{{ '<|video|>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<turn|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|turn>model\n' }}{% endif %}"
)


def gemma4_tokenizer(words=WORDS):
    return _tokenizer(GEMMA4_SPECIAL_TOKENS, [*GEMMA4_TEMPLATE_WORDS, *TIMESTAMP_WORDS, *words],
                      {"boi_token": "<|image>", "eoi_token": "<image|>", "image_token": "<|image|>",
                       "video_token": "<|video|>", "boa_token": "<|audio>", "eoa_token": "<audio|>",
                       "audio_token": "<|audio|>"})


def gemma4_processor(tokenizer, patch_size=4, pooling=3, max_soft_tokens=70, frames=4):
    """max_soft_tokens must be one of 70, 140, 280, 560, 1120: an image is resized (aspect ratio kept) to at most
    max_soft_tokens x pooling^2 patches, each side a multiple of pooling x patch_size: 90 x 70 -> 108 x 84 px ->
    27 x 21 patches -> 9 x 7 = 63 soft tokens. Videos: `frames` frames, the same per frame."""
    from transformers import (Gemma4AudioFeatureExtractor, Gemma4ImageProcessor, Gemma4Processor,
                              Gemma4VideoProcessor)

    sizes = dict(patch_size=patch_size, pooling_kernel_size=pooling, max_soft_tokens=max_soft_tokens)
    return Gemma4Processor(feature_extractor=Gemma4AudioFeatureExtractor(),
                           image_processor=Gemma4ImageProcessor(**sizes),
                           video_processor=Gemma4VideoProcessor(**sizes, num_frames=frames),
                           tokenizer=tokenizer, image_seq_length=max_soft_tokens, chat_template=GEMMA4_CHAT_TEMPLATE)


def gemma4_model(tokenizer, patch_size=4, pooling=3, text_width=64, text_layers=4, heads=4, kv_heads=2,
                 head_dim=16, global_head_dim=32, global_kv_heads=1, k_eq_v=True, sliding_window=32,
                 per_layer_input=0, vision_width=32, vision_layers=2, seed=0, initializer_range=0.3):
    """Shaped like the large Gemma 4 models (31B dense, 26B-A4B MoE): sliding layers with head_dim and kv_heads,
    full-attention layers with global_head_dim, global_kv_heads and, with k_eq_v (attention_k_eq_v), no v_proj
    (the values are the keys before k_norm/RoPE); use_bidirectional_attention="vision"; no per-layer inputs and no
    KV sharing. Layer types: sliding x (text_layers - 1), then one full-attention layer (the last must be full).
    `per_layer_input` > 0 adds the E-models' per-layer embeddings (hidden_size_per_layer_input; the LM then
    receives `per_layer_inputs` [B, S, layers, per_layer_input]). num_kv_shared_layers stays 0 whatever the
    variant: shared KV defeats pruning by slicing (the E-models share it)."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=2 * text_width,
                num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                head_dim=head_dim, global_head_dim=global_head_dim, num_global_key_value_heads=global_kv_heads,
                attention_k_eq_v=k_eq_v, sliding_window=sliding_window,
                layer_types=["sliding_attention"] * (text_layers - 1) + ["full_attention"],
                max_position_embeddings=4096, initializer_range=initializer_range,
                use_bidirectional_attention="vision", num_kv_shared_layers=0,
                hidden_size_per_layer_input=per_layer_input, vocab_size_per_layer_input=len(tokenizer),
                final_logit_softcapping=30.0, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=[tokenizer.eos_token_id, ids("<turn|>")],
                tie_word_embeddings=False)
    vision = dict(hidden_size=vision_width, intermediate_size=2 * vision_width, num_hidden_layers=vision_layers,
                  num_attention_heads=2, num_key_value_heads=2, head_dim=vision_width // 2, patch_size=patch_size,
                  pooling_kernel_size=pooling, position_embedding_size=1024, initializer_range=initializer_range)
    config = Gemma4Config(text_config=text, vision_config=vision, audio_config=None,
                          boi_token_id=ids("<|image>"), eoi_token_id=ids("<image|>"), image_token_id=ids("<|image|>"),
                          video_token_id=ids("<|video|>"), boa_token_id=ids("<|audio>"),
                          eoa_token_index=ids("<audio|>"), audio_token_id=ids("<|audio|>"),
                          initializer_range=initializer_range, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Gemma4ForConditionalGeneration(config)
    with torch.no_grad():  # all ones at init: a constant added to every patch drowns the pixels after pooling
        model.model.vision_tower.patch_embedder.position_embedding_table.normal_(0.0, initializer_range)
    return _end(model, config.text_config.eos_token_id)


def tiny_gemma4(seed=0, **kwargs):
    """kwargs: gemma4_model's (per_layer_input=8 gives an E-model-like variant)."""
    tokenizer = gemma4_tokenizer()
    processor = gemma4_processor(tokenizer)
    return gemma4_model(tokenizer, seed=seed, **kwargs), processor


# ----------------------------------------------------------------------------------------------------------------
# PaliGemma

PALIGEMMA_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]

# PaliGemma has no chat template on the hub: a prompt is "<image>" x images, then <bos>, the prefix text and "\n"
# (PaliGemmaProcessor inserts the <bos> after the last <image> and appends the "\n"); the model writes the
# suffix. This template follows it: every image of the conversation first (the processor needs them at the
# start), then the turns' texts, each ended by "\n" except the last user text (the processor's "\n" ends it).
# There is no generation prompt to add.
PALIGEMMA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['content'] is not string %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] | trim }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% if not loop.last %}{{ '\n' }}{% endif %}"
    "{% endfor %}"
)


def paligemma_tokenizer(words=WORDS):
    return _tokenizer(PALIGEMMA_SPECIAL_TOKENS, list(words), {"image_token": "<image>"})


def paligemma_processor(tokenizer, image_size=48, patch_size=8):
    """SiglipImageProcessor squashing every image to image_size x image_size; image_seq_length =
    (image_size / patch_size)^2 (the model config's text_config.num_image_tokens). The processor adds PaliGemma's
    1024 <locXXXX> and 128 <segXXX> tokens to the tokenizer."""
    from transformers import PaliGemmaProcessor, SiglipImageProcessor

    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size},
                                           image_seq_length=(image_size // patch_size) ** 2)
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                              chat_template=PALIGEMMA_CHAT_TEMPLATE)


def paligemma_model(tokenizer, image_size=48, patch_size=8, text_width=64, text_layers=4, heads=4, kv_heads=1,
                    head_dim=16, vision_width=32, vision_layers=2, seed=0, initializer_range=0.3, text_model="gemma",
                    sliding_window=32):
    """text_model "gemma": PaliGemma 1 (Gemma text model, full attention only). "gemma2": PaliGemma 2 (Gemma 2 text
    model: sliding and full attention layers alternating, attention and final logit softcapping); Gemma 2 has no
    SDPA path (softcapping), so its text model runs "eager" (the vision tower stays "sdpa"). Build the processor
    first: it grows the tokenizer."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    text = dict(model_type="gemma", vocab_size=len(tokenizer), hidden_size=text_width,
                intermediate_size=2 * text_width, num_hidden_layers=text_layers, num_attention_heads=heads,
                num_key_value_heads=kv_heads, head_dim=head_dim, max_position_embeddings=4096,
                initializer_range=initializer_range, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    if text_model == "gemma2":
        text.update(model_type="gemma2", query_pre_attn_scalar=head_dim, sliding_window=sliding_window,
                    layer_types=["sliding_attention", "full_attention"] * (text_layers // 2),
                    attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    vision = dict(model_type="siglip_vision_model", hidden_size=vision_width, intermediate_size=2 * vision_width,
                  num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size,
                  patch_size=patch_size, vision_use_head=False)
    config = PaliGemmaConfig(text_config=text, vision_config=vision, image_token_index=tokenizer.image_token_id,
                             vocab_size=len(tokenizer), projection_dim=text_width, hidden_size=text_width,
                             tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config)
    if text_model == "gemma2":  # Gemma 2 has no sdpa path
        model.set_attn_implementation({"text_config": "eager", "vision_config": "sdpa"})
        model.generation_config.eos_token_id = [tokenizer.eos_token_id]
        return silence(model.eval(), [tokenizer.eos_token_id])
    return _end(model, [tokenizer.eos_token_id])


def tiny_paligemma(seed=0, **kwargs):
    """kwargs: paligemma_model's (text_model="gemma2" gives PaliGemma 2)."""
    tokenizer = paligemma_tokenizer()
    processor = paligemma_processor(tokenizer)
    return paligemma_model(tokenizer, seed=seed, **kwargs), processor

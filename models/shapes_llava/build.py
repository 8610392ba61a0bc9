"""How the embedded model is built before training: a word-level tokenizer, LLaVA-1.5's conversation
template, the CLIP processor and a LlavaForConditionalGeneration from a config, all in code (no hub).

The tests build their tiny random-weight LLaVA models with the same functions. Everything here produces the
real transformers classes (LlavaForConditionalGeneration, LlavaProcessor, CLIPImageProcessor and a
PreTrainedTokenizerFast), so the rest of the project cannot tell them from a hub checkpoint.
"""

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
TEMPLATE_WORDS = ["USER", "ASSISTANT", ":"]  # the words CHAT_TEMPLATE writes

# LLaVA-1.5's conversation format, one turn, images first.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    " {% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _word_level(special_tokens, words, isolated=(), lowercase=False, ignore=""):
    """A word-level tokenizers backend: special tokens first, then the words, in order (ids are stable).
    Words split on white space; "?.,!:;" are tokens of their own, also when glued to a word ("circle?" ->
    "circle", "?"); hyphenated words ("top-left") stay whole; `isolated` strings (e.g. "<image>") are cut out
    even when glued to a word. `lowercase`: the text is lower-cased before it is split (a Lowercase normalizer;
    special tokens are matched before it and stay as they are) and the words are stored lower-cased. `ignore`:
    characters replaced by a space before splitting (e.g. "!" in "circle?!", which no question uses)."""
    vocab = {tok: i for i, tok in enumerate(special_tokens)}
    for word in words:
        vocab.setdefault(word.lower() if lowercase else word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    steps = [normalizers.Lowercase()] if lowercase else []
    if ignore:
        steps.append(normalizers.Replace(Regex("[" + "".join("\\" + c for c in ignore) + "]"), " "))
    backend.normalizer = normalizers.Sequence(steps) if steps else None
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [*(pre_tokenizers.Split(text, behavior="isolated") for text in isolated), pre_tokenizers.WhitespaceSplit(),
         pre_tokenizers.Split(Regex(r"[?.,!:;]"), behavior="isolated")]
    )
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return backend


def word_tokenizer(words, lowercase=False, ignore=""):
    """A word-level tokenizer over `words` (lower-cased words and punctuation), with LLaVA's special tokens.
    `lowercase` (the embedded model's): questions are lower-cased before they are split, so "What color is the
    circle?" reads as "what color is the circle ?"; the template's words (USER, ASSISTANT) are then stored
    lower-cased too, so the chat template's text still tokenises without <unk>. `ignore`: punctuation dropped
    before splitting (see _word_level)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level(SPECIAL_TOKENS, [*TEMPLATE_WORDS, *words], isolated=["<image>"],
                                     lowercase=lowercase, ignore=ignore),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def llava_processor(tokenizer, image_size, patch_size, strategy="default"):
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_center_crop=True, do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy=strategy, chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # CLIP's CLS token
    )


def random_llava(tokenizer, image_size=56, patch_size=14, vision_width=32, vision_layers=2, text_width=64,
               text_layers=4, heads=4, kv_heads=2, mlp_width=None, seed=0, attn_implementation="sdpa"):
    """A LlavaForConditionalGeneration with random weights; grid (image_size // patch_size) squared."""
    vision = CLIPVisionConfig(
        hidden_size=vision_width, intermediate_size=4 * vision_width, num_hidden_layers=vision_layers,
        num_attention_heads=max(1, vision_width // 32), image_size=image_size, patch_size=patch_size,
        projection_dim=vision_width,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=mlp_width or 4 * text_width,
        num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id,
        vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.set_attn_implementation(attn_implementation)
    return model.eval()

"""What the tiny checkpoints (tests/tiny_*.py) and their tests (tests/test_tiny_*.py) share, written once: the
word-level tokenizer carrying a family's special tokens, the finishing touches of a random-weight model (sdpa,
eval, end tokens silenced so that answers run their full length), and the tests' prompt, greedy answer, timed
builds and save / Auto-class reload."""

import time

import torch
from tokenizers import AddedToken
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedTokenizerFast

from models.shapes_llava.build import _word_level

QUESTION = "what color is the circle ?"
WORDS = "what color is the circle square ? red green blue yes no one two three left right up down".split()


# ------------------------------------------------------------------------------------------------ the builders


def word_tokenizer(specials, words, named=None, newlines=(), **tokens):
    """A word-level PreTrainedTokenizerFast: `specials` first (ids 0, 1, ... in that order), then `words`.
    `named` ({attribute: token}) become its extra_special_tokens (tokenizer.image_token, .image_token_id, ...) and
    `tokens` its bos_token / eos_token / pad_token / unk_token. Every other string of `specials`, and every
    "<...>" of `words` (image tokens kept after the base vocabulary, as Molmo2's), is a special token as in the
    real vocabularies (cut out of the text even where glued to words, skipped by decode(skip_special_tokens)).
    `newlines` ("\\n", "\\n\\n") are added tokens that are not special, so that they survive the word split as
    in the real vocabularies: where `specials` lists them their ids stay there, otherwise they come after `words`."""
    named = named or {}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_word_level(specials, words), extra_special_tokens=named,
                                        **tokens)
    listed = {*named.values(), *tokens.values(), *newlines}
    glued = [t for t in words if t.startswith("<") and t.endswith(">") and len(t) > 2]
    tokenizer.add_special_tokens({"additional_special_tokens": [
        AddedToken(token, normalized=False, special=True)
        for token in dict.fromkeys([*specials, *glued]) if token not in listed]})
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False) for token in newlines])
    return tokenizer


# The vicuna turns of the llava-hf video checkpoints (Video-LLaVA, LLaVA-NeXT-Video): "USER: <image>\n<video>\n
# question ASSISTANT: answer</s>", images and videos before the text of a turn.
VICUNA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'video' %}<video>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    " {% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def llava_tokenizer(specials, words):
    """LLaVA's word-level tokenizer: <s>, </s>, <unk>, <pad>, and <image> and <video> cut out of glued text."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level(specials, words, isolated=["<image>", "<video>"]),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
    )


def silence(model, token_ids):
    """Zero the output rows of these end tokens: the random model's other logits spread around 0, so an end token
    (almost) never wins the argmax and greedy answers run to max_new_tokens (a tied input embedding is zeroed
    with its row)."""
    with torch.no_grad():
        for token_id in token_ids:
            model.get_output_embeddings().weight[token_id] = 0.0
    return model


def finish(model, end_tokens=()):
    """sdpa, eval, the end tokens silenced."""
    model.set_attn_implementation("sdpa")
    return silence(model.eval(), end_tokens)


# ------------------------------------------------------------------------------------------------ the tests


def user(kind="image", question=QUESTION):
    return {"role": "user", "content": [{"type": kind}, {"type": "text", "text": question}]}


def prompt(processor, kind="image", history=(), question=QUESTION):
    return processor.apply_chat_template([*history, user(kind, question)], add_generation_prompt=True)


def answer(model, inputs, new=6):
    """The greedy answer's token ids."""
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=new, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def timed(build):
    """(model, processor, seconds) of one build()."""
    start = time.perf_counter()
    model, processor = build()
    return model, processor, time.perf_counter() - start


def reloaded(model, processor, directory):
    """(model, processor) saved in the hub layout in `directory` and loaded back with the Auto classes, checked to
    be the same classes."""
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    again = AutoModelForImageTextToText.from_pretrained(directory).eval(), AutoProcessor.from_pretrained(directory)
    assert type(again[0]) is type(model) and type(again[1]) is type(processor)
    return again

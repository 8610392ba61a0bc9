"""The tiny molmo2, lfm2_vl and minicpmv4_6 checkpoints of tests/tiny_misc.py: the real classes (those the Auto
mappings pick), small, their processors' expansion of a 90 x 70 image, image-dependent greedy answers, a
save / Auto-class reload that answers the same, bfloat16, multi-turn chat templates and the video paths."""


import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from tests import tiny_misc, tiny_shared
from tests.conftest import random_image
from tests.tiny_shared import answer, prompt, timed, user

ARCHS = ["molmo2", "lfm2_vl", "minicpmv4_6"]
VIDEO_ARCHS = ["molmo2", "minicpmv4_6"]
# (placeholder ids' config attribute, expected layer kinds of the decoder)
VISUAL_ID = {"molmo2": "image_patch_id", "lfm2_vl": "image_token_id", "minicpmv4_6": "image_token_id"}
VIDEO_ID = {"molmo2": "image_patch_id", "minicpmv4_6": "video_token_id"}
LAYER_KINDS = {"molmo2": None, "lfm2_vl": {"conv", "full_attention"},
               "minicpmv4_6": {"linear_attention", "full_attention"}}


def build(arch, seed=0):
    return getattr(tiny_misc, f"tiny_{arch}")(seed=seed)


@pytest.fixture(scope="module")
def built():
    """{arch: (model, processor, seconds to build)}, each built once for the module."""
    return {arch: timed(lambda: build(arch)) for arch in ARCHS}


def image_inputs(processor, seed):
    text = prompt(processor)
    return processor(images=[random_image(seed)], text=text, return_tensors="pt")


def video_inputs(processor, seed):
    text = prompt(processor, "video")
    frames = [random_image(seed * 10 + i) for i in range(4)]
    return processor(videos=[frames], text=text, return_tensors="pt")


@pytest.mark.parametrize("arch", ARCHS)
def test_real_classes_small_and_fast(built, arch):
    model, processor, seconds = built[arch]
    config = model.config
    assert MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[config.model_type] == type(model).__name__
    assert PROCESSOR_MAPPING_NAMES[config.model_type] == type(processor).__name__
    assert seconds < 2.0
    text = config.get_text_config()
    assert text.hidden_size <= 64 and text.num_hidden_layers == 4
    assert config.vision_config.num_hidden_layers <= 2
    kinds = LAYER_KINDS[arch]
    if kinds is not None:
        assert set(text.layer_types) == kinds
    assert model.config._attn_implementation == "sdpa" and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert getattr(config, VISUAL_ID[arch]) is not None


@pytest.mark.parametrize("arch", ARCHS)
def test_image_expands_to_a_few_tokens_and_answers_depend_on_it(built, arch):
    model, processor, _ = built[arch]
    inputs = image_inputs(processor, 0)
    ids = inputs["input_ids"][0]
    unk = processor.tokenizer.unk_token_id
    assert unk not in ids.tolist()
    visual = int((ids == getattr(model.config, VISUAL_ID[arch])).sum())
    assert 16 <= visual <= 100
    first, second = answer(model, inputs), answer(model, image_inputs(processor, 1))
    assert len(first) == 6 and first != second


@pytest.mark.parametrize("arch", ARCHS)
def test_multi_turn_template(built, arch):
    _, processor, _ = built[arch]
    conversation = [user(), {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
                    {"role": "user", "content": [{"type": "text", "text": "what color is the square ?"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    closed = processor.apply_chat_template(conversation)
    assert text.startswith(closed) and len(text) > len(closed)
    assert text.count("user") == 2 and "red" in text and text.index("red") < text.index("square")
    tokens = processor(images=[random_image(0)], text=text)["input_ids"][0]
    assert processor.tokenizer.unk_token_id not in tokens


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_reload_with_auto_classes(built, arch, tmp_path):
    model, processor, _ = built[arch]
    reloaded, reprocessor = tiny_shared.reloaded(model, processor, tmp_path)
    inputs, again = image_inputs(processor, 0), image_inputs(reprocessor, 0)
    assert inputs["input_ids"].tolist() == again["input_ids"].tolist()
    assert answer(reloaded, again) == answer(model, inputs)


@pytest.mark.parametrize("arch", ARCHS)
def test_bfloat16_generates(arch):
    model, processor = build(arch)
    model = model.to(torch.bfloat16)
    inputs = image_inputs(processor, 0)
    assert len(answer(model, inputs)) == 6


@pytest.mark.parametrize("arch", VIDEO_ARCHS)
def test_video(built, arch):
    model, processor, _ = built[arch]
    inputs = video_inputs(processor, 0)
    ids = inputs["input_ids"][0]
    assert processor.tokenizer.unk_token_id not in ids.tolist()
    assert 16 <= int((ids == getattr(model.config, VIDEO_ID[arch])).sum()) <= 100
    pixels = inputs["pixel_values_videos"]
    assert pixels.is_floating_point() and pixels.abs().max() <= 3  # rescaled and normalised, not raw bytes
    first, second = answer(model, inputs), answer(model, video_inputs(processor, 1))
    assert len(first) == 6 and first != second


def test_molmo2_image_block_is_bidirectional(built):
    """The decoder gets a 4-D boolean mask in which the whole image run (patches, row breaks, starts, ends: the
    processor's mm_token_type_ids == 1) attends both ways, the text causally; without mm_token_type_ids the
    model silently falls back to a causal mask."""
    model, processor, _ = built["molmo2"]
    inputs = image_inputs(processor, 0)
    seen = {}
    hook = model.get_decoder().register_forward_pre_hook(lambda _, args, kwargs: seen.update(kwargs),
                                                         with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
            mask = seen["attention_mask"]
            model(**{k: v for k, v in inputs.items() if k != "mm_token_type_ids"})
    finally:
        hook.remove()
    image = (inputs["mm_token_type_ids"][0] == 1).nonzero().flatten()
    first, last = int(image[0]), int(image[-1])
    assert mask.dim() == 4 and mask.dtype == torch.bool
    assert bool(mask[0, 0, first, last]) and not bool(mask[0, 0, last, last + 1])
    assert seen["attention_mask"] is None

"""The tiny Gemma 3, Gemma 4 and PaliGemma checkpoints of tests/tiny_gemma.py: real classes, small and fast to
build, processors aligned with the model configs, answers that depend on the image, a save / Auto reload that
generates the same ids, bfloat16, Gemma 4's video path, multi-turn templates, and what each language model
receives (the facts a pruning engine relies on)."""


import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from tests import tiny_gemma, tiny_shared
from tests.conftest import random_image
from tests.tiny_shared import answer, prompt, timed, user

torch.set_num_threads(1)

ARCHS = ["gemma3", "gemma4", "paligemma"]
# Soft tokens of one 90 x 70 (w x h) image: Gemma 3 6 x 6 (squashed to 96 px, patch 8, 2 x 2 pool); Gemma 4
# 7 rows x 9 columns (aspect kept: 108 x 84 px, patch 4, 3 x 3 pool); PaliGemma 6 x 6 (48 px, patch 8).
IMAGE_TOKENS = {"gemma3": 36, "gemma4": 63, "paligemma": 36}
IMAGE_PROCESSORS = {"gemma3": "Gemma3ImageProcessor", "gemma4": "Gemma4ImageProcessor",
                    "paligemma": "SiglipImageProcessor"}


def image_inputs(processor, seed=1, size=(90, 70)):
    return processor(images=[random_image(seed, size)], text=prompt(processor), return_tensors="pt")


def video_inputs(processor, seed=1):
    frames = [random_image(seed + i) for i in range(4)]
    return processor(videos=[frames], text=prompt(processor, "video"), return_tensors="pt")


def image_token_id(model):
    return model.config.image_token_id


@pytest.fixture(scope="module")
def built():
    """{arch: (model, processor, build seconds)}, each built once."""
    return {arch: timed(getattr(tiny_gemma, f"tiny_{arch}")) for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_real_classes_small_and_fast(built, arch):
    model, processor, seconds = built[arch]
    assert seconds < 2.0
    assert type(model).__name__ == MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[arch]
    assert type(processor).__name__ == PROCESSOR_MAPPING_NAMES[arch]
    assert type(processor.image_processor).__name__ == IMAGE_PROCESSORS[arch]
    assert not model.training and model.dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"
    text = model.config.get_text_config()
    assert text.hidden_size <= 64 and text.num_hidden_layers == 4
    assert model.config.vision_config.num_hidden_layers <= 2
    if arch != "paligemma":  # Gemma 3 / 4: both layer kinds, the last layer full attention
        assert text.layer_types == ["sliding_attention"] * 3 + ["full_attention"]
    assert max(processor.tokenizer.get_vocab().values()) < text.vocab_size


def test_processors_match_the_configs(built):
    model, processor, _ = built["gemma3"]
    vision = model.config.vision_config
    assert processor.image_processor.size == {"height": vision.image_size, "width": vision.image_size}
    assert processor.image_seq_length == model.config.mm_tokens_per_image
    model, processor, _ = built["gemma4"]
    vision, text = model.config.vision_config, model.config.text_config
    for sub in (processor.image_processor, processor.video_processor):
        assert (sub.patch_size, sub.pooling_kernel_size) == (vision.patch_size, vision.pooling_kernel_size)
    assert text.use_bidirectional_attention == "vision" and text.num_kv_shared_layers == 0
    assert type(processor.feature_extractor).__name__ == "Gemma4AudioFeatureExtractor"
    assert model.model.audio_tower is None
    model, processor, _ = built["paligemma"]
    assert processor.image_seq_length == model.config.text_config.num_image_tokens


@pytest.mark.parametrize("arch", ARCHS)
def test_one_contiguous_run_per_image(built, arch):
    model, processor, _ = built[arch]
    inputs = image_inputs(processor)
    ids = inputs["input_ids"][0]
    where = (ids == image_token_id(model)).nonzero().flatten()
    assert len(where) == IMAGE_TOKENS[arch]
    assert processor.image_token_ids == [image_token_id(model)]
    if arch == "gemma3":  # the processor's image_token(_id) is the placeholder the template writes: <start_of_image>
        assert processor.image_token_id == processor.tokenizer.boi_token_id != image_token_id(model)
    assert where[-1] - where[0] + 1 == len(where)
    if arch == "gemma4":  # the grid, read from image_position_ids (x, y per patch; -1 = padding)
        positions = inputs["image_position_ids"][0]
        real = positions[(positions >= 0).all(-1)]
        k = model.config.vision_config.pooling_kernel_size
        rows, cols = (int(real[:, 1].max()) + 1) // k, (int(real[:, 0].max()) + 1) // k
        assert (rows, cols) == (7, 9)
    tokens = processor.tokenizer.convert_ids_to_tokens(ids)
    if arch == "paligemma":  # the images open the prompt; <bos> follows the last one
        assert where[0] == 0 and tokens[where[-1] + 1] == "<bos>"
    else:
        boi, eoi = processor.tokenizer.boi_token, processor.tokenizer.eoi_token
        assert (tokens[where[0] - 1], tokens[where[-1] + 1]) == (boi, eoi)


def test_gemma3_pan_and_scan_adds_one_run_per_crop(built):
    """With pan and scan a wide image becomes the original plus crops, each its own boi + 36 + eoi run
    (pixel_values [1 + crops, 3, 96, 96]; num_crops is not returned)."""
    model, processor, _ = built["gemma3"]
    inputs = processor(images=[random_image(1, (300, 100))], text=prompt(processor), return_tensors="pt",
                       do_pan_and_scan=True, pan_and_scan_min_crop_size=32)
    ids = inputs["input_ids"][0]
    assert inputs["pixel_values"].shape[0] == 4 and "num_crops" not in inputs
    assert int((ids == processor.tokenizer.boi_token_id).sum()) == 4
    assert int((ids == image_token_id(model)).sum()) == 4 * 36
    assert len(answer(model, inputs)) == 6


@pytest.mark.parametrize("arch", ARCHS)
def test_answer_depends_on_the_image(built, arch):
    model, processor, _ = built[arch]
    first, second = answer(model, image_inputs(processor, 1)), answer(model, image_inputs(processor, 2))
    assert len(first) == len(second) == 6
    assert first != second


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_auto_reload_generate_the_same(built, arch, tmp_path):
    model, processor, _ = built[arch]
    reloaded, reprocessor = tiny_shared.reloaded(model, processor, tmp_path)
    assert reprocessor.apply_chat_template([user()], add_generation_prompt=True) == prompt(processor)
    assert answer(reloaded, image_inputs(reprocessor)) == answer(model, image_inputs(processor))
    if arch == "gemma4":
        assert answer(reloaded, video_inputs(reprocessor)) == answer(model, video_inputs(processor))


@pytest.mark.parametrize("arch", ARCHS)
def test_bfloat16_generates(arch):
    model, processor = getattr(tiny_gemma, f"tiny_{arch}")()
    model = model.to(torch.bfloat16)
    batches = [image_inputs(processor)] + ([video_inputs(processor)] if arch == "gemma4" else [])
    for inputs in batches:
        inputs = {k: v.to(torch.bfloat16) if torch.is_floating_point(v) else v for k, v in inputs.items()}
        assert len(answer(model, inputs)) == 6


def test_gemma4_video(built):
    """A video is one "mm:ss <|image> n x <|video|> <image|>" group per frame: 4 runs of 63 video tokens."""
    model, processor, _ = built["gemma4"]
    inputs = video_inputs(processor)
    ids = inputs["input_ids"][0]
    video = ids == model.config.video_token_id
    assert int(video.sum()) == 4 * 63
    starts = (video & ~torch.nn.functional.pad(video, (1, 0))[:-1]).nonzero().flatten()
    assert len(starts) == 4
    assert (inputs["mm_token_type_ids"][0][video] == 2).all()
    assert answer(model, inputs) != answer(model, video_inputs(processor, seed=10))


@pytest.mark.parametrize("arch", ARCHS)
def test_multi_turn_template(built, arch):
    model, processor, _ = built[arch]
    conversation = [user(), {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
                    {"role": "user", "content": [{"type": "text", "text": "is the circle left ?"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    expected = {
        "gemma3": "<bos><start_of_turn>user\n<start_of_image>what color is the circle ?<end_of_turn>\n"
                  "<start_of_turn>model\nred<end_of_turn>\n<start_of_turn>user\nis the circle left ?<end_of_turn>\n"
                  "<start_of_turn>model\n",
        "gemma4": "<bos><|turn>user\n<|image|>what color is the circle ?<turn|>\n<|turn>model\nred<turn|>\n"
                  "<|turn>user\nis the circle left ?<turn|>\n<|turn>model\n",
        "paligemma": "<image>what color is the circle ?\nred\nis the circle left ?",
    }[arch]
    assert text == expected
    inputs = processor(images=[random_image(3)], text=text, return_tensors="pt")
    assert processor.tokenizer.unk_token_id not in inputs["input_ids"][0].tolist()
    assert len(answer(model, inputs)) == 6


def captured_lm_kwargs(model, inputs):
    seen = {}
    hook = model.get_decoder().register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        hook.remove()
    return seen


def test_what_the_language_models_receive(built):
    """Gemma 3: per-layer-type bool masks, image block bidirectional in both kinds, position_ids None. Gemma 4:
    the full-attention mask is None (causal), the sliding one has the image block bidirectional; 1-D positions
    from 0. PaliGemma: one 4-D mask with the whole prefix (image + prompt) bidirectional, positions from 1."""
    model, processor, _ = built["gemma3"]
    inputs = image_inputs(processor)
    image = (inputs["input_ids"][0] == image_token_id(model)).nonzero().flatten()
    seen = captured_lm_kwargs(model, inputs)
    assert seen["position_ids"] is None and set(seen["attention_mask"]) == {"full_attention", "sliding_attention"}
    for mask in seen["attention_mask"].values():
        assert mask.dtype == torch.bool and bool(mask[0, 0, image[0], image[1]])

    model, processor, _ = built["gemma4"]
    inputs = image_inputs(processor)
    image = (inputs["input_ids"][0] == image_token_id(model)).nonzero().flatten()
    seen = captured_lm_kwargs(model, inputs)
    assert seen["attention_mask"]["full_attention"] is None
    assert bool(seen["attention_mask"]["sliding_attention"][0, 0, image[0], image[1]])
    assert seen["position_ids"][0, :3].tolist() == [0, 1, 2] and seen["per_layer_inputs"] is None
    full = model.get_decoder().layers[3].self_attn
    assert full.v_proj is None and full.head_dim == 32 and full.k_proj.out_features == 32  # k_eq_v, 1 kv head

    model, processor, _ = built["paligemma"]
    inputs = image_inputs(processor)
    seen = captured_lm_kwargs(model, inputs)
    mask, length = seen["attention_mask"], inputs["input_ids"].shape[1]
    assert mask.shape == (1, 1, length, length) and bool(mask[0, 0, 0, length - 1])
    assert seen["position_ids"][0, :3].tolist() == [1, 2, 3]
    assert (inputs["token_type_ids"] == 0).all()


@pytest.mark.parametrize("arch, kwargs", [("gemma4", {"per_layer_input": 8}), ("paligemma", {"text_model": "gemma2"})])
def test_variants(arch, kwargs):
    """Gemma 4 with E-model per-layer inputs (no KV sharing) and PaliGemma 2 (Gemma 2 text model, eager)."""
    model, processor = getattr(tiny_gemma, f"tiny_{arch}")(**kwargs)
    first, second = answer(model, image_inputs(processor, 1)), answer(model, image_inputs(processor, 2))
    assert len(first) == 6 and first != second
    seen = captured_lm_kwargs(model, image_inputs(processor))
    if arch == "gemma4":
        assert seen["per_layer_inputs"].shape == (1, seen["inputs_embeds"].shape[1], 4, 8)
    else:
        assert set(seen["attention_mask"]) == {"full_attention", "sliding_attention"}
        assert model.config.text_config._attn_implementation == "eager"

"""The tiny checkpoints of tests/tiny_qwen.py (Qwen3.5, Qwen3.5-MoE, Qwen3-VL-MoE, GLM-4.1V, GLM-4.6V): real
classes, small sizes, processors aligned with the models, answers that depend on the image or clip, a save /
reload through the Auto classes that generates the same ids, bfloat16, and the chat templates."""

import copy
import time

import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from tests import tiny_shared
from tests.conftest import random_image
from tests.tiny_qwen import ARCHITECTURES, BUILDERS
from tests.tiny_shared import QUESTION, prompt

KINDS = ["image", "video"]
PROCESSORS = {  # what AutoProcessor / AutoImageProcessor / AutoVideoProcessor / AutoTokenizer load for each
    "qwen3_5": ("Qwen3VLProcessor", "Qwen2VLImageProcessor", "Qwen3VLVideoProcessor", "Qwen3_5Tokenizer"),
    "qwen3_5_moe": ("Qwen3VLProcessor", "Qwen2VLImageProcessor", "Qwen3VLVideoProcessor", "Qwen3_5Tokenizer"),
    "qwen3_vl_moe": ("Qwen3VLProcessor", "Qwen2VLImageProcessor", "Qwen3VLVideoProcessor", "TokenizersBackend"),
    "glm4v": ("Glm4vProcessor", "Glm4vImageProcessor", "Glm4vVideoProcessor", "TokenizersBackend"),
    "glm46v": ("Glm46VProcessor", "Glm46VImageProcessor", "Glm46VVideoProcessor", "TokenizersBackend"),
}


@pytest.fixture(scope="module")
def built():
    """{arch: (model, processor, CPU seconds of the build)}, each built once, on first use."""
    cache = {}

    def get(arch):
        if arch not in cache:
            start = time.process_time()
            model, processor = BUILDERS[arch]()
            cache[arch] = (model, processor, time.process_time() - start)
        return cache[arch]

    return get


@pytest.fixture(scope="module")
def reloaded(built, tmp_path_factory):
    """{arch: (model, processor)} saved with save_pretrained and loaded back with the Auto classes."""
    cache = {}

    def get(arch):
        if arch not in cache:
            model, processor, _ = built(arch)
            cache[arch] = tiny_shared.reloaded(model, processor, tmp_path_factory.mktemp(arch))
        return cache[arch]

    return get


def media(kind, seed):
    if kind == "image":
        return {"images": [random_image(seed)]}
    return {"videos": [[random_image(100 * seed + i) for i in range(4)]]}


def encode(processor, kind, seed, history=()):
    return processor(text=prompt(processor, kind, history), return_tensors="pt", **media(kind, seed))


def answer(model, processor, kind, seed):
    return tiny_shared.answer(model, encode(processor, kind, seed))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_real_classes_small_sizes(arch, built):
    model, processor, seconds = built(arch)
    model_type = model.config.model_type
    assert model_type == arch
    assert type(model).__name__ == MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[arch]
    assert type(processor).__name__ == PROCESSOR_MAPPING_NAMES[arch] == PROCESSORS[arch][0]
    assert [type(processor.image_processor).__name__, type(processor.video_processor).__name__] == \
        list(PROCESSORS[arch][1:3])
    text, vision = model.config.get_text_config(), model.config.vision_config
    assert text.hidden_size <= 64 and text.num_hidden_layers == 4 and vision.depth <= 2
    if arch.startswith("qwen3_5"):  # both kinds of layer of the hybrid
        assert text.layer_types == ["linear_attention"] * 3 + ["full_attention"]
    assert model.config._attn_implementation == "sdpa" and not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert seconds < 2.0, f"{arch} took {seconds:.2f} s of CPU to build"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_processor_matches_the_model(arch, built):
    """A 90 x 70 image: one contiguous run of image tokens, as many as the vision tower's merged features."""
    model, processor, _ = built(arch)
    vision = model.config.vision_config
    for sub in (processor.image_processor, processor.video_processor):
        assert (sub.patch_size, sub.merge_size, sub.temporal_patch_size) == \
            (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size)
    inputs = encode(processor, "image", 0)
    ids = inputs["input_ids"][0]
    positions = (ids == model.config.image_token_id).nonzero().flatten()
    count = int(inputs["image_grid_thw"].prod()) // vision.spatial_merge_size ** 2
    assert 16 <= len(positions) == count <= 100
    assert positions.tolist() == list(range(positions[0], positions[0] + count))  # one run
    assert (inputs["mm_token_type_ids"][0] == 1).sum() == count
    with torch.inference_mode():
        features = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
    assert sum(f.shape[0] for f in features) == count


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_answer_depends_on_the_media(arch, kind, built):
    model, processor, _ = built(arch)
    first, second = answer(model, processor, kind, 1), answer(model, processor, kind, 2)
    assert len(first) == len(second) == 6  # the end tokens' lm_head rows are zero: no early stop
    assert first != second


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_reload_generates_the_same(arch, kind, built, reloaded):
    model, processor, _ = built(arch)
    model2, processor2 = reloaded(arch)
    assert type(model2) is type(model) and model2.dtype == torch.float32
    assert [type(p).__name__ for p in (processor2, processor2.image_processor, processor2.video_processor,
                                       processor2.tokenizer)] == list(PROCESSORS[arch])
    assert torch.equal(encode(processor, kind, 3)["input_ids"], encode(processor2, kind, 3)["input_ids"])
    assert answer(model2, processor2, kind, 3) == answer(model, processor, kind, 3)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bfloat16_generates(arch, built):
    model, processor, _ = built(arch)
    half = copy.deepcopy(model).to(torch.bfloat16)
    for kind in KINDS:
        assert len(answer(half, processor, kind, 4)) == 6


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_multi_turn_template(arch, built):
    """An earlier user / assistant exchange with an image, then a question on a second item (a video for Qwen; an
    image for GLM, see test_glm_cannot_take_an_image_and_a_video_together): both placeholders expand, the earlier
    answer sits before the new question, and the prompt ends with the generation prompt."""
    model, processor, _ = built(arch)
    history = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "is the circle red ?"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "yes"}]}]
    kind = "video" if arch.startswith("qwen") else "image"
    text = prompt(processor, kind, history)
    assert text.count(processor.image_token) == (1 if kind == "video" else 2)
    assert "yes" in text and text.index("yes") < text.rindex(QUESTION)
    assert text.startswith(processor.apply_chat_template(history, add_generation_prompt=False))
    items = {"images": [random_image(5)], "videos": media("video", 6)["videos"]} if kind == "video" else \
        {"images": [random_image(5), random_image(6)]}
    inputs = processor(text=text, return_tensors="pt", **items)
    assert processor.tokenizer.unk_token_id not in inputs["input_ids"][0].tolist()
    assert set(inputs["mm_token_type_ids"][0].tolist()) == ({0, 1, 2} if kind == "video" else {0, 1})
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 2


@pytest.mark.parametrize("arch", ["glm4v", "glm46v"])
def test_glm_cannot_take_an_image_and_a_video_together(arch, built):
    """transformers 5.23: GLM's video frames are written with the image token (<|image|>), and
    Glm4vModel.get_placeholder_mask counts every <|image|> for the images' features, so a prompt with both an image
    and a video fails. The processor's mm_token_type_ids (1 image, 2 video) are the only thing telling them apart."""
    model, processor, _ = built(arch)
    text = processor.apply_chat_template([{"role": "user", "content": [
        {"type": "image"}, {"type": "video"}, {"type": "text", "text": QUESTION}]}], add_generation_prompt=True)
    inputs = processor(text=text, return_tensors="pt", **media("image", 7), **media("video", 8))
    assert processor.video_token_id not in inputs["input_ids"][0].tolist()
    with pytest.raises(ValueError, match="Image features and image tokens do not match"), torch.inference_mode():
        model(**inputs)


def test_deepstack_changes_the_answer(built):
    """Qwen3-VL-MoE: the features injected after decoder layers 0 and 1 matter (a layer loop that dropped them would
    change the answer), so a test of an engine's DeepStack handling can bite."""
    model, processor, _ = built("qwen3_vl_moe")
    assert model.config.vision_config.deepstack_visual_indexes == [0, 1]
    stock = answer(model, processor, "image", 1)
    silent = copy.deepcopy(model)
    with torch.no_grad():
        for merger in silent.model.visual.deepstack_merger_list:
            merger.linear_fc2.weight.zero_()
            merger.linear_fc2.bias.zero_()
    assert answer(silent, processor, "image", 1) != stock

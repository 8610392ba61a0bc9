"""The tiny Mistral3, SmolVLM, Idefics3 and Llama4 checkpoints of tests/tiny_idefics.py: the real classes (what the
Auto mappings give), small sizes, the processors' image expansions for a 90 x 70 image (and a 4-frame SmolVLM
video), answers that depend on the image, a save / Auto reload that generates the same ids, bfloat16, and a
multi-turn chat template."""


import pytest
import torch
from transformers import AutoModelForImageTextToText
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

from tests import tiny_shared
from tests.conftest import random_image
from tests.tiny_idefics import BUILDERS, tiny_llama4
from tests.tiny_shared import answer, prompt, timed, user

torch.set_num_threads(1)

ARCHS = list(BUILDERS)
NEW = 6


def frames(seed, n=4):
    return [random_image(seed + i) for i in range(n)]


def encode(processor, image=None, video=None):
    kind = "image" if video is None else "video"
    text = prompt(processor, kind)
    if video is None:
        return processor(images=[image], text=text, return_tensors="pt")
    return processor(videos=[video], text=text, return_tensors="pt")


@pytest.fixture(scope="module")
def built():
    """{arch: (model, processor, seconds to build)}, each built once."""
    return {arch: timed(build) for arch, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def reloaded(built, tmp_path_factory):
    """{arch: (model, processor)} saved in the hub layout and loaded back with the Auto classes."""
    return {arch: tiny_shared.reloaded(model, processor, tmp_path_factory.mktemp(arch))
            for arch, (model, processor, _) in built.items()}


@pytest.mark.parametrize("arch", ARCHS)
def test_real_classes_and_small_sizes(built, arch):
    model, processor, seconds = built[arch]
    assert type(model) is MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(model.config)]
    assert type(processor) is PROCESSOR_MAPPING[type(model.config)]
    text = model.config.get_text_config()
    assert text.hidden_size <= 64 and text.num_hidden_layers == 4
    assert model.config.vision_config.num_hidden_layers <= 2
    assert model.config._attn_implementation == "sdpa" and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seconds < 5  # about 0.1 s each here; generous for a busy machine
    # every special token of the chat template and the expansions is one token, the question has no <unk>
    ids = encode(processor, random_image(1))["input_ids"][0].tolist()
    assert processor.tokenizer.unk_token_id not in ids


def tokens(processor, inputs):
    return processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())


def span(toks, first, last):
    """The tokens from the first `first` to the last `last`, both included."""
    start = toks.index(first)
    end = len(toks) - 1 - toks[::-1].index(last)
    return toks[start:end + 1]


def test_mistral3_image_rows(built):
    model, processor, _ = built["mistral3"]
    inputs = encode(processor, random_image(1))
    # 90 x 70 fits in 112 px; rounded up to 14 px tokens (patch 7 x merge 2): 98 x 70 px, 5 rows of 7
    assert inputs["image_sizes"].tolist() == [[70, 98]]
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 70, 98)
    toks = tokens(processor, inputs)
    assert span(toks, "[IMG]", "[IMG_END]") == (["[IMG]"] * 7 + ["[IMG_BREAK]"]) * 4 + ["[IMG]"] * 7 + ["[IMG_END]"]
    assert toks[:2] == ["<s>", "[INST]"] and toks[-1] == "[/INST]"
    assert model.config.image_token_id == processor.image_token_id == 10
    assert toks.count("[IMG]") == 35


def idefics_expansion(rows, cols, per_tile):
    out = []
    for row in range(1, rows + 1):
        for col in range(1, cols + 1):
            out += ["<fake_token_around_image>", f"<row_{row}_col_{col}>"] + ["<image>"] * per_tile
        out.append("\n")
    return out + ["\n", "<fake_token_around_image>", "<global-img>"] + ["<image>"] * per_tile + [
        "<fake_token_around_image>"]


@pytest.mark.parametrize("arch,tile", [("smolvlm", 112), ("idefics3", 56)])
def test_idefics_tiles(built, arch, tile):
    model, processor, _ = built[arch]
    inputs = encode(processor, random_image(1))
    assert tuple(inputs["pixel_values"].shape) == (1, 5, 3, tile, tile)  # 2 x 2 tiles, then the global image
    assert tuple(inputs["pixel_attention_mask"].shape) == (1, 5, tile, tile)
    assert "rows" not in inputs and "cols" not in inputs  # the processor drops them: read <row_i_col_j>
    rows_cols = processor.image_processor(images=[random_image(1)], return_row_col_info=True)
    assert (rows_cols["rows"], rows_cols["cols"]) == ([[2]], [[2]])
    toks = tokens(processor, inputs)
    assert span(toks, "<fake_token_around_image>", "<fake_token_around_image>") == idefics_expansion(2, 2, 16)
    assert toks.count("<image>") == 80
    assert model.config.image_token_id == processor.image_token_id
    assert model.model.image_seq_len == processor.image_seq_len == 16


def test_smolvlm_video_frames(built):
    model, processor, _ = built["smolvlm"]
    inputs = encode(processor, video=frames(20))
    assert tuple(inputs["pixel_values"].shape) == (1, 4, 3, 112, 112)  # one square tile per frame
    toks = tokens(processor, inputs)
    frame = ["<fake_token_around_image>", "<global-img>"] + ["<image>"] * 16 + ["<fake_token_around_image>"]
    run = span(toks, "Frame", "<fake_token_around_image>")
    expected = []
    for _ in range(4):
        expected += ["Frame", "from", "00", ":", "00", ":", *frame, "\n"]
    assert run == expected[:-1]
    assert toks.count("<image>") == 64 and processor.tokenizer.unk_token_id not in inputs["input_ids"][0]


def test_llama4_tiles(built):
    model, processor, _ = built["llama4"]
    inputs = encode(processor, random_image(1))
    assert tuple(inputs["pixel_values"].shape) == (5, 3, 56, 56)  # 2 x 2 tiles, then the global tile
    assert inputs["pixel_values"].dtype == torch.float32
    assert "aspect_ratios" not in inputs  # dropped by the processor: count the separators
    tiles = processor.image_processor(images=[random_image(1)], return_tensors="pt")
    assert tiles["aspect_ratios"].tolist() == [[2, 2]]
    toks = tokens(processor, inputs)
    tile = ["<|patch|>"] * 16
    row = tile + ["<|tile_x_separator|>"] + tile + ["<|tile_y_separator|>"]
    assert span(toks, "<|image_start|>", "<|image_end|>") == (
        ["<|image_start|>"] + row * 2 + ["<|image|>"] + tile + ["<|image_end|>"])
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|patch|>")
    assert processor.image_token_id != model.config.image_token_id  # the processor's is <|image|>
    text = model.config.get_text_config()
    assert text.layer_types == ["chunked_attention"] * 3 + ["full_attention"]
    assert text.no_rope_layers == [1, 1, 1, 0] and text.moe_layers == [1, 3]


@pytest.mark.parametrize("arch", ARCHS)
def test_answer_depends_on_the_image(built, arch):
    model, processor, _ = built[arch]
    first, second = (answer(model, encode(processor, random_image(seed))) for seed in (1, 2))
    assert len(first) == len(second) == NEW
    assert first != second


def test_smolvlm_answer_depends_on_the_video(built):
    model, processor, _ = built["smolvlm"]
    first, second = (answer(model, encode(processor, video=frames(seed))) for seed in (20, 40))
    assert len(first) == len(second) == NEW
    assert first != second


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_auto_reload_generate_the_same(built, reloaded, arch):
    model, processor, _ = built[arch]
    again, again_processor = reloaded[arch]
    assert type(again) is type(model) and type(again_processor) is type(processor)
    assert type(again_processor.image_processor) is type(processor.image_processor)
    inputs, inputs_again = encode(processor, random_image(1)), encode(again_processor, random_image(1))
    assert inputs.keys() == inputs_again.keys()
    assert all(torch.equal(inputs[key], inputs_again[key]) for key in inputs)
    assert answer(model, inputs) == answer(again, inputs_again)


def test_smolvlm_video_reload(built, reloaded):
    model, processor, _ = built["smolvlm"]
    again, again_processor = reloaded["smolvlm"]
    assert type(again_processor.video_processor) is type(processor.video_processor)
    video = frames(20)
    assert answer(model, encode(processor, video=video)) == answer(again, encode(again_processor, video=video))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.filterwarnings("ignore:Casting complex values to real discards the imaginary part")
def test_bfloat16(arch):
    """The model cast to bfloat16 generates; the inputs are cast as usual (BatchFeature.to casts the floating
    tensors only): Llama4's vision tower does not cast float32 pixel values itself. (Llama4: Module.to(bfloat16)
    also casts the complex vision rotary table vision_model.rotary_embedding.freqs_ci to a real bfloat16 one,
    dropping its imaginary part with a warning; the model still runs. from_pretrained(dtype=...) keeps it.)"""
    model, processor = BUILDERS[arch]()
    model.to(torch.bfloat16)
    assert len(answer(model, encode(processor, random_image(1)).to(torch.bfloat16))) == NEW
    if arch == "smolvlm":
        assert len(answer(model, encode(processor, video=frames(20)).to(torch.bfloat16))) == NEW


def test_llama4_hub_normalization_gives_bfloat16_pixels(reloaded, tmp_path):
    """The hub Llama4ImageProcessor (rescale + normalise) computes in bfloat16: its pixel values are bfloat16.
    Loading with dtype=bfloat16 keeps the vision rotary table complex (Module.to(bfloat16) would not)."""
    model, processor = tiny_llama4(hub_normalization=True)
    inputs = encode(processor, random_image(1))
    assert inputs["pixel_values"].dtype == torch.bfloat16
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert loaded.vision_model.rotary_embedding.freqs_ci.dtype == torch.complex64
    assert len(answer(loaded, inputs)) == NEW


def test_llama4_scout_like_qk_norm():
    model, processor = tiny_llama4(qk_norm=True, moe_step=1)
    layers = model.get_decoder().layers if hasattr(model.get_decoder(), "layers") else model.get_decoder().model.layers
    assert [hasattr(layer.self_attn, "qk_norm") for layer in layers] == [True, True, True, False]  # RoPE layers
    assert model.config.get_text_config().moe_layers == [0, 1, 2, 3]
    assert len(answer(model, encode(processor, random_image(1)))) == NEW


CHATS = {
    "mistral3": "<s>[INST][IMG]what color is the circle ?[/INST]red</s>[INST]is the circle left ?[/INST]",
    "smolvlm": "<|im_start|>User:<image>what color is the circle ?<end_of_utterance>\nAssistant: red"
               "<end_of_utterance>\nUser: is the circle left ?<end_of_utterance>\nAssistant:",
    "idefics3": "<|begin_of_text|>User:<image>what color is the circle ?<end_of_utterance>\nAssistant: red"
                "<end_of_utterance>\nUser: is the circle left ?<end_of_utterance>\nAssistant:",
    "llama4": "<|begin_of_text|><|header_start|>user<|header_end|>\n\n<|image|>what color is the circle ?<|eot|>"
              "<|header_start|>assistant<|header_end|>\n\nred<|eot|><|header_start|>user<|header_end|>\n\n"
              "is the circle left ?<|eot|><|header_start|>assistant<|header_end|>\n\n",
}


@pytest.mark.parametrize("arch", ARCHS)
def test_multi_turn_chat_template(built, arch):
    model, processor, _ = built[arch]
    chat = [user()] + [{"role": "assistant", "content": [{"type": "text", "text": "red"}]},
                             {"role": "user", "content": [{"type": "text", "text": "is the circle left ?"}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True)
    assert text == CHATS[arch]
    inputs = processor(images=[random_image(1)], text=text, return_tensors="pt")
    assert processor.tokenizer.unk_token_id not in inputs["input_ids"][0]
    assert len(answer(model, inputs)) == NEW
    without = processor.apply_chat_template(chat[:2])
    assert "red" in without and "left" not in without

"""Any model (issue 29): the fifteen named architectures on tiny checkpoints built in code with their real model
and processor classes (tests/tiny_qwen.py, tiny_idefics.py, tiny_gemma.py, tiny_misc.py), through the shared
defaults of models/base.py (models/generic.py) or the few lines a family file adds (Gemma 4's grid, Llama 4's
tiles and rotation, Qwen3-VL's DeepStack for its MoE variant).

Oracles: the stock model's own greedy `generate` (keep-all must equal it token for token, in float32 and
bfloat16), and a no-cache recompute of the pruned run (the prompt and the answer so far re-encoded by the stock
wrapper, then one prefill keeping the same visual tokens: its last logits must equal each cached decoding step).
Shapes that make the oracles bite: hybrid decoders get a full-attention layer before their last layer (Qwen3.5
8 layers in its 3:1 pattern, Llama 4 8 layers, MiniCPM-V alternating), Gemma's sliding window covers the prompt
(a window shorter than the prompt moves K after the first full-attention layer: tested below).
"""

from functools import partial

import os

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import models
from explorer.core.compare import compare
from explorer.core.engine import encode, run
from explorer.methods import registry
from explorer.methods.registry import Method
from models import gemma4, generic, llama4, qwen3_vl
from models.base import visual_token_ids
from tests import tiny_gemma, tiny_idefics, tiny_misc, tiny_qwen
from tests.conftest import random_image

QUESTION = "what color is the circle ?"
BUILDERS = {
    "qwen3_5": partial(tiny_qwen.tiny_qwen3_5, layers=8),
    "qwen3_5_moe": partial(tiny_qwen.tiny_qwen3_5_moe, layers=8),
    "gemma3": partial(tiny_gemma.tiny_gemma3, sliding_window=512),
    "gemma4": partial(tiny_gemma.tiny_gemma4, sliding_window=512),
    "paligemma": tiny_gemma.tiny_paligemma,
    "mistral3": tiny_idefics.tiny_mistral3,
    "smolvlm": tiny_idefics.tiny_smolvlm,
    "idefics3": tiny_idefics.tiny_idefics3,
    "glm4v": tiny_qwen.tiny_glm4v,
    "glm46v": tiny_qwen.tiny_glm46v,
    "molmo2": tiny_misc.tiny_molmo2,
    "llama4": partial(tiny_idefics.tiny_llama4, chunk=512),  # chunks cover the prompt: see models/llama4.py
    "lfm2_vl": tiny_misc.tiny_lfm2_vl,
    "qwen3_vl_moe": tiny_qwen.tiny_qwen3_vl_moe,
    "minicpmv4_6": partial(tiny_misc.tiny_minicpmv4_6, layer_types=("linear_attention", "full_attention") * 2),
}
FAMILY = {"gemma4": gemma4, "llama4": llama4, "qwen3_vl_moe": qwen3_vl}  # the rest: models/generic.py
VIDEO = ["qwen3_5", "qwen3_5_moe", "qwen3_vl_moe", "glm4v", "glm46v", "smolvlm", "gemma4", "molmo2", "minicpmv4_6"]
ALL = list(BUILDERS)


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            model, processor = BUILDERS[name]()
            cache[name] = (model, processor, models.family_of(model))
        return cache[name]
    return get


def frames(seed, count=4):
    return [random_image(seed + i, size=(96, 96)) for i in range(count)]


def stock_generate(model, inputs, max_new_tokens=6):
    inputs = inputs.to(model.dtype)  # pixels in the model's dtype (Llama 4's tower needs it), as users do
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("name", ALL)
def test_each_architecture_is_served_by_its_family_or_the_generic_path(built, name):
    model, _, family = built(name)
    assert family is FAMILY.get(name, generic)
    assert models.claims()  # no class claimed twice (claims raises)


@pytest.mark.parametrize("name", ALL)
def test_keep_all_equals_the_stock_generate(built, name):
    model, processor, family = built(name)
    image = random_image(0)
    inputs = family.build_inputs(processor, [image], QUESTION)
    stock = stock_generate(model, inputs)
    every = sum(g.count for g in family.visual_groups(model, inputs))  # a count: the image's every token
    records = compare(model, processor, family, [image], QUESTION, methods=["clse", "fastv"], keep=every,
                      max_new_tokens=6)
    for method, record in records.items():
        assert record.answer_ids == stock, method
        assert record.kept_indices == list(range(record.visual_tokens)), method


@pytest.mark.parametrize("name", ALL)
def test_a_pruned_run_keeps_each_grids_budget_and_every_separator(built, name):
    model, processor, family = built(name)
    image = random_image(3)
    inputs = family.build_inputs(processor, [image], QUESTION)
    placeholders = set(visual_token_ids(model).values())
    for group in family.visual_groups(model, inputs):  # visual tokens only: separators carry other ids
        assert set(inputs["input_ids"][0, group.positions].tolist()) <= placeholders
        assert group.count == group.grid[0] * group.grid[1] * group.grid[2]
    records = compare(model, processor, family, [image], QUESTION, methods=["clse", "fastv"], keep=0.5,
                      max_new_tokens=4)
    for method in ("clse", "fastv"):
        record = records[method]
        k, kept = record.prune_layer, len(record.kept_indices)
        assert record.stages[0].keep_counts == record.budget["keep_per_group"], method
        assert 0 < kept < record.visual_tokens
        assert record.visual_per_layer[k] == kept
        assert record.tokens_per_layer[k] == record.tokens_per_layer[0] - (record.visual_tokens - kept)
        assert record.tokens_per_layer[k] - record.visual_per_layer[k] == record.text_tokens  # text all kept
        assert record.answer_ids


@pytest.mark.parametrize("name", ALL)
def test_pruned_cached_decoding_equals_a_no_cache_recompute(built, name, monkeypatch):
    """The cached run (early layers keep their cache) against a prefill, without any cache, of the prompt plus
    the answer so far, re-encoded by the stock wrapper and pruned at the same layer to the same tokens."""
    model, processor, family = built(name)
    image = random_image(4)
    inputs = family.build_inputs(processor, [image], QUESTION)
    encoded = encode(model, family, inputs)
    record = run(model, processor, encoded, "fastv", keep=0.5, max_new_tokens=4, early_kv="keep",
                 keep_logits=True)
    assert len(record.answer_ids) >= 2
    kept_positions = set(torch.cat([g.positions for g in encoded.groups])[record.kept_indices].tolist())
    monkeypatch.setitem(registry.METHODS, "fixed", Method(
        lambda inp: torch.tensor([float(int(p) in kept_positions) for p in inp.positions]), label="fixed"))
    for step, logits in enumerate(record.step_logits):
        longer = extended(inputs, record.answer_ids[:step], name)
        again = run(model, processor, encode(model, family, longer), "fixed", keep=0.5, max_new_tokens=1,
                    prune_layer=record.prune_layer, early_kv="keep", keep_logits=True)
        assert again.kept_indices == record.kept_indices
        difference = (again.step_logits[0] - logits).abs().max()
        assert torch.allclose(again.step_logits[0], logits, atol=1e-4), (step, difference)


def extended(inputs, tokens, name):
    """The processor's tensors with `tokens` appended as text (prefix-LM PaliGemma: generated text is suffix)."""
    longer = dict(inputs)
    extra = torch.tensor([tokens], dtype=inputs["input_ids"].dtype)
    longer["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0), ("token_type_ids", int(name == "paligemma"))):
        if key in inputs:
            longer[key] = torch.cat([inputs[key], torch.full_like(extra, fill).to(inputs[key].dtype)], dim=1)
    return type(inputs)(longer)


@pytest.mark.parametrize("name", ALL)
def test_bfloat16_keep_all_equals_the_stock_generate(built, name, tmp_path):
    model, processor, _ = built(name)
    model.save_pretrained(tmp_path)
    half = AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()  # as users load it
    family = models.family_of(half)
    image = random_image(5)
    stock = stock_generate(half, family.build_inputs(processor, [image], QUESTION))
    records = compare(half, processor, family, [image], QUESTION, methods=["fastv"], keep=0.5, max_new_tokens=6)
    assert records["none"].answer_ids == stock
    assert records["none"].dtype == "bfloat16" and records["fastv"].answer_ids


@pytest.mark.parametrize("name", VIDEO)
def test_video_keep_all_equals_the_stock_generate_and_prunes_per_clip(built, name):
    model, processor, family = built(name)
    clip = frames(10)
    inputs = family.build_inputs(processor, clip, QUESTION, kind="video")
    stock = stock_generate(model, inputs)
    records = compare(model, processor, family, clip, QUESTION, kind="video", methods=["fastv"], keep=0.5,
                      max_new_tokens=6)
    assert records["none"].answer_ids == stock
    video = [g for g in records["none"].groups if g["kind"] == "video"]
    assert video and all(g["grid"][0] > 1 for g in video)  # frames (or temporal patches) of one grid
    assert 0 < len(records["fastv"].kept_indices) < records["fastv"].visual_tokens


def test_a_hybrid_decoder_prunes_after_its_first_full_attention_layer(built):
    model, processor, family = built("qwen3_5")  # linear x 3, full, linear x 3, full
    records = compare(model, processor, family, [random_image(6)], QUESTION, methods=["fastv"], keep=0.5,
                      max_new_tokens=2)
    record = records["fastv"]
    assert record.prune_layer == 4 and record.tokens_per_layer[3] > record.tokens_per_layer[4]
    assert any("layer 3 is this decoder's first full-attention layer" in note for note in record.notes)
    assert any("frees little or no per-token cache" in note for note in record.notes)


def test_no_full_attention_layer_before_the_last_one_gets_a_sentence():
    model, processor = tiny_gemma.tiny_gemma3(sliding_window=16)  # sliding x 3 (shorter than the prompt), full
    family = models.family_of(model)
    with pytest.raises(models.BadInput, match="reads a full-attention layer's attention row"):
        compare(model, processor, family, [random_image(6)], QUESTION, methods=["fastv"], keep=0.5,
                max_new_tokens=2)
    records = compare(model, processor, family, [random_image(6)], QUESTION, methods=["clse_spectral"], keep=0.5,
                      max_new_tokens=2)  # a score that reads no attention row still runs
    assert len(records["clse_spectral"].kept_indices) < records["clse_spectral"].visual_tokens


def test_pyramiddrop_is_refused_where_layer_k_is_not_full_attention(built):
    model, processor, family = built("qwen3_5")
    with pytest.raises(models.BadInput, match="not a full-attention layer"):
        compare(model, processor, family, [random_image(7)], QUESTION, methods=["pyramiddrop"], keep=0.5,
                prune_layer=5, max_new_tokens=2)


def test_kv_sharing_models_are_refused_with_the_reason():
    model, _ = tiny_gemma.tiny_gemma4()
    model.config.get_text_config().num_kv_shared_layers = 2  # as Gemma 4's E-models
    with pytest.raises(models.ModelLoadError, match="shares its key/value cache across layers"):
        models.family_of(model)


@pytest.mark.parametrize("name", ALL)
def test_a_checkpoint_directory_runs_on_the_command_line(built, name, tmp_path, capsys):
    import json

    from explorer.cli import main

    model, processor, _ = built(name)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    random_image(8).save(tmp_path / "image.png")
    assert main(["--model", str(tmp_path / "model"), "--image", str(tmp_path / "image.png"), "--question",
                 QUESTION, "--methods", "clse,fastv", "--keep", "0.5", "--max-new-tokens", "3", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["results"]
    assert set(records) == {"none", "clse", "fastv"}
    assert 0 < len(records["fastv"]["kept_indices"]) < records["fastv"]["visual_tokens"]
    assert records["none"]["answer_ids"] == stock_generate(
        AutoModelForImageTextToText.from_pretrained(tmp_path / "model").eval(),
        models.family_of(model).build_inputs(AutoProcessor.from_pretrained(tmp_path / "model"),
                                             [random_image(8).convert("RGB")], QUESTION), 3)


PAGE_MODELS = ALL


@pytest.mark.slow  # a real page server (python app.py)
def test_the_page_runs_checkpoint_directories_of_new_architectures(built, tmp_path):
    """The real page (python app.py) with EXPLORER_MODEL_DIRS holding saved checkpoints, called by gradio_client
    as a visitor would: each answers three ways, and the unpruned answer is the stock model's."""
    from gradio_client import Client, handle_file

    from explorer.page.api import compare_arguments
    from explorer.serve.launch import start_page

    root = tmp_path / "models"
    for name in PAGE_MODELS:
        model, processor, _ = built(name)
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    random_image(9).save(tmp_path / "image.png")
    with start_page({"EXPLORER_MODEL_DIRS": str(root), "EXPLORER_MODEL": ""}, str(tmp_path / "app.log")) as (url, _):
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        for name in PAGE_MODELS:
            outputs = client.predict(*compare_arguments(
                image=handle_file(str(tmp_path / "image.png")), question=QUESTION, method_a="clse", method_b="fastv",
                keep=0.5, model_id=name), api_name="/compare")  # by its name, as the page's menu lists it
            payload = next(o for o in outputs if isinstance(o, dict) and "results" in o)
            results = payload["results"]
            assert set(results) == {"none", "clse", "fastv"} and payload["model"] == name
            model, processor, family = built(name)
            stock = stock_generate(model, family.build_inputs(processor, [random_image(9)], QUESTION),
                                   results["none"]["settings"]["max_new_tokens"])
            assert results["none"]["answer_ids"] == stock, name
            for method in ("clse", "fastv"):
                assert 0 < len(results[method]["kept_indices"]) < results[method]["visual_tokens"], (name, method)


def test_a_q_former_model_is_refused_with_the_reason():
    """BLIP-2 built tiny from its config: its decoder sees 4 learned queries, not the image's patches."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration

    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        qformer_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            encoder_hidden_size=32),
        text_config=dict(model_type="opt", hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=2,
                         vocab_size=100, word_embed_proj_dim=32), num_query_tokens=4, image_token_index=99)
    with pytest.raises(models.ModelLoadError, match="learned queries"):
        models.family_of(Blip2ForConditionalGeneration(config))


def test_the_architecture_table_says_what_the_code_does():
    """docs/families.md's table of the 97 architectures: every family file it names claims a class, every
    refusal it states is the code's."""
    import os
    import re

    text = open(os.path.join(os.path.dirname(__file__), "..", "docs", "families.md")).read()
    rows = re.findall(r"^\| (\d+) \| ([\w.\-]+) \| [\w\-]+ \| ([^|]+) \|", text, flags=re.M)
    assert len(rows) == 97
    files = {f"`{family.__name__.split('.')[-1]}.py`" for family in models.FAMILIES}
    for _, name, how in rows:
        if how.startswith("family file"):
            assert how.split()[-1] in files, name
        if how.strip() == "refused":
            assert name in models.REFUSED_TYPES or name == "gemma3n", name
    assert {name for _, name, how in rows if how.strip() == "refused"} >= set(models.REFUSED_TYPES)


def test_the_model_menu_lists_only_what_the_deployment_serves(tmp_path, monkeypatch):
    from explorer.serve import access

    (tmp_path / "qwen3_5").mkdir()
    (tmp_path / "qwen3_5" / "config.json").write_text("{}")
    (tmp_path / "not-a-model").mkdir()
    monkeypatch.setenv("EXPLORER_MODEL_DIRS", str(tmp_path))
    monkeypatch.delenv("EXPLORER_MODEL", raising=False)
    monkeypatch.delenv("EXPLORER_ALLOW_DOWNLOAD", raising=False)
    assert access.model_choices() == [models.EMBEDDED_ID, "qwen3_5"]  # no hub id: nothing is downloaded here
    assert access.canonical_model("qwen3_5") == os.path.realpath(tmp_path / "qwen3_5")
    monkeypatch.setenv("EXPLORER_ALLOW_DOWNLOAD", "1")
    assert set(models.hub_ids()) <= set(access.model_choices())


@pytest.mark.parametrize("name", ["qwen3_5_moe", "gemma3", "glm4v", "lfm2_vl"])
def test_a_follow_up_on_the_unpruned_cache_equals_stock_generate_on_the_whole_conversation(built, name):
    """Hybrid (recurrent states continue), bidirectional-block, M-RoPE and convolution decoders: the second
    turn prefilled on the first turn's cache answers as the stock model does on the whole conversation."""
    model, processor, family = built(name)
    image, second = random_image(11), "what color is the square ?"
    if name == "qwen3_5_moe":  # its template opens a thinking block after the question and drops it from history
        with pytest.raises(models.BadInput, match="use the follow-up mode reprune"):
            compare(model, processor, family, [image], QUESTION, methods=[], keep=0.5, max_new_tokens=4,
                    follow_ups=[second], diagnostics=False)
        records = compare(model, processor, family, [image], QUESTION, methods=["fastv"], keep=0.5,
                          max_new_tokens=4, follow_ups=[second], follow_up_mode="reprune", diagnostics=False)
        inputs = family.build_inputs(processor, [image], second, history=((QUESTION, records["none"].answer),))
        assert records["none"].turns[1]["answer_ids"] == stock_generate(model, inputs, 4)  # run again, exactly
        assert records["fastv"].turns[1]["answer_ids"]
        return
    records = compare(model, processor, family, [image], QUESTION, methods=["fastv"], keep=0.5, max_new_tokens=4,
                      follow_ups=[second], diagnostics=False)
    turns = records["none"].turns
    inputs = family.build_inputs(processor, [image], second, history=((QUESTION, turns[0]["answer"]),))
    assert turns[1]["answer_ids"] == stock_generate(model, inputs, 4)
    assert records["fastv"].turns[1]["answer_ids"]  # the pruned cache answers the follow-up too

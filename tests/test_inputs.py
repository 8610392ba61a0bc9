"""Method inputs by name (explorer/methods/inputs.py): a registry line names what its method reads; a name not
in the table is refused when the Method is made; an input is computed only when a requested method reads it,
once per group and stage; reading an input the line does not name is an error; a method with a new input is
its function, its line and the input's line."""

import pytest
import torch

from explorer.core.compare import compare
from explorer.core.stage import lowest_layer, unmet_need
from explorer.methods import inputs, registry
from tests.conftest import random_image

QUESTION = "what color is the circle ?"


def counted(monkeypatch, name):
    """Count the calls of one input's function (the engine computes it through the table)."""
    calls = []
    entry = inputs.INPUTS[name]

    def compute(at):
        calls.append(at.group)
        return entry.compute(at)

    monkeypatch.setitem(inputs.INPUTS, name, inputs.Input(compute, entry.lowest_layer, entry.unmet, entry.about))
    return calls


def test_an_unknown_input_is_refused_when_the_method_is_made():
    with pytest.raises(ValueError, match=r"method 'typo' needs unknown input\(s\) 'atention'; the inputs are z_cur"):
        registry.Method(lambda inp: inp.atention, label="typo", needs=("atention",))


def test_every_registered_method_names_known_inputs():
    for name, method in registry.METHODS.items():
        assert set(method.needs) <= set(inputs.INPUTS), name


def test_an_input_is_computed_only_for_the_methods_that_read_it(tiny, monkeypatch):
    """SparseVLM's raters (and their attention rows) are computed for SparseVLM only, once per group and stage;
    FastV's attention row once per group at its one stage."""
    raters, attention = counted(monkeypatch, "raters"), counted(monkeypatch, "attention")
    compare(tiny.model, tiny.processor, tiny.family, [random_image(5)], QUESTION, methods=["fastv"], keep=6,
            max_new_tokens=2, diagnostics=False)
    assert raters == [] and attention == [0]
    compare(tiny.model, tiny.processor, tiny.family, [random_image(5)], QUESTION, methods=["sparsevlm"], keep=6,
            max_new_tokens=2, diagnostics=False)
    assert raters == [0] and attention == [0]


def test_reading_an_input_the_line_does_not_name_is_an_error(tiny, monkeypatch):
    monkeypatch.setitem(registry.METHODS, "sneaky", registry.Method(lambda inp: inp.attention, label="sneaky"))
    with pytest.raises(AttributeError, match=r"sneaky reads 'attention', which its registry line does not name"):
        compare(tiny.model, tiny.processor, tiny.family, [random_image(5)], QUESTION, methods=["sneaky"], keep=6,
                max_new_tokens=2, diagnostics=False)


def test_the_table_gives_the_layer_rules():
    assert lowest_layer("clse") == lowest_layer("fastv") == lowest_layer("sparsevlm") == 1
    assert lowest_layer("divprune") == lowest_layer("visionzip") == lowest_layer("random") == 0

    class Encoded:
        attention_layers, vision_scores = [3], None

    assert "reads the vision encoder's [CLS] attention" in unmet_need("visionzip", Encoded, None)
    assert unmet_need("fastv", Encoded, None) is None  # no layer named: only what the model lacks at any layer
    assert "needs a layer before the pruning layer (K >= 1)" in unmet_need("fastv", Encoded, 0)
    assert "has none before layer 2" in unmet_need("sparsevlm", Encoded, 2)
    assert unmet_need("fastv", Encoded, 4) is None and unmet_need("divprune", Encoded, 0) is None
    Encoded.attention_layers = [1, 3]
    assert "the pruning layer 2 itself, which is not a full-attention" in unmet_need("pyramiddrop", Encoded, 2)


def test_a_method_with_a_new_input_is_its_function_its_line_and_the_inputs_line(tiny, monkeypatch):
    monkeypatch.setitem(inputs.INPUTS, "norms", inputs.Input(
        lambda at: at.view.hidden[0, at.rows].float().norm(dim=-1), about="[n] L2 norms of the states entering K"))
    monkeypatch.setitem(registry.METHODS, "loudest", registry.Method(
        lambda inp: inp.norms, label="loudest", description="the largest states", needs=("norms",)))
    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(5)], QUESTION,
                      methods=["loudest"], keep=4, max_new_tokens=2)
    stage = records["loudest"].stages[0]
    assert len(stage.keep_indices) == 4
    top = torch.tensor(stage.scores).argsort(descending=True)[:4].sort().values.tolist()
    assert stage.keep_indices == top
    assert "loudest" in records["none"].reference_scores


def test_the_decoder_shape_is_read_once_per_model(tiny, monkeypatch):
    """finish_record's gated-MLP fact comes from models.base.decoder_shape, memoised per model: a second run
    does not walk the first layer's parameter names again."""
    from models import base

    base._SHAPES.pop(tiny.model, None)
    layer, walks = tiny.family.text_model(tiny.model).layers[0], []
    real = layer.named_parameters
    monkeypatch.setattr(layer, "named_parameters", lambda *a, **k: walks.append(1) or real(*a, **k))
    for _ in range(2):
        compare(tiny.model, tiny.processor, tiny.family, [random_image(5)], QUESTION, methods=["random"], keep=6,
                max_new_tokens=2, diagnostics=False)
    assert len(walks) == 1
    shape = base.decoder_shape(tiny.model)
    assert shape.gated and shape.hidden == tiny.model.config.text_config.hidden_size

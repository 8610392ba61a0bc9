"""A request whose visitor left stops within one decoder layer (explorer/core/interrupt.py): in the prefill, in
a decoding step and in a follow-up's prefill; no layer runs after the test says stop. On the page the test is
"the visitor's event stream closed" (explorer/serve/access.client_gone; a real server's dead event is tested in
test_hardening.py): the Compare handler then ends without a result and logs one line."""

import logging

import pytest
import torch

from explorer.core import interrupt
from explorer.core.compare import compare
from explorer.core.settings import check_settings
from explorer.page import events
from explorer.serve import access
from tests.conftest import Tiny, random_image


@pytest.fixture(scope="module")
def talkative():
    t = Tiny()
    with torch.no_grad():  # random weights: keep the end token from ending answers early
        t.model.lm_head.weight[t.tokenizer.eos_token_id] = 0.0
    return t


def stop_at(t, when):
    """Forward hooks counting every decoder layer call: `when(layer index, sequence length, calls so far)` true
    raises the flag; returns (the flag's test, the calls made after the flag rose, the hooks)."""
    state = {"stop": False, "calls": 0, "after": 0}

    def hook(index):
        def count(module, args, kwargs, output):
            state["calls"] += 1
            if state["stop"]:
                state["after"] += 1
            elif when(index, args[0].shape[1] if args else kwargs["hidden_states"].shape[1], state["calls"]):
                state["stop"] = True
        return count

    layers = t.family.text_model(t.model).layers
    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    return (lambda: state["stop"]), state, handles


@pytest.mark.parametrize("where, when, follow_ups", [
    ("prefill", lambda i, n, calls: i == 1 and n > 1, []),
    ("decoding step", lambda i, n, calls: i == 2 and n == 1 and calls > 3 * 4, []),  # the third step or later
    ("follow-up's prefill", lambda i, n, calls: i == 0 and n > 1 and calls > 4, ["what color is the square ?"]),
], ids=["prefill", "decoding", "follow-up"])
def test_the_engine_stops_within_one_layer(talkative, where, when, follow_ups):
    t = talkative
    settings = check_settings(methods=["clse"], keep=8, max_new_tokens=12, follow_ups=follow_ups)
    should_stop, state, handles = stop_at(t, when)
    try:
        with interrupt.stop_when(should_stop), pytest.raises(interrupt.Stopped) as stopped:
            compare(t.model, t.processor, t.family, [random_image(3)], "what color is the circle ?", settings)
    finally:
        for handle in handles:
            handle.remove()
    assert state["stop"] and state["after"] == 0, state  # not one layer ran after the flag
    assert where in str(stopped.value), str(stopped.value)


def test_without_a_test_nothing_stops_and_the_test_ends_with_its_block(talkative):
    t = talkative
    settings = check_settings(methods=["fastv"], keep=8, max_new_tokens=6)
    with interrupt.stop_when(lambda: False):
        inside = compare(t.model, t.processor, t.family, [random_image(4)], "what color is the circle ?", settings)
    with interrupt.stop_when(lambda: True):
        pass
    after = compare(t.model, t.processor, t.family, [random_image(4)], "what color is the circle ?", settings)
    assert [r.answer_ids for r in inside.values()] == [r.answer_ids for r in after.values()]
    assert len(after["none"].answer_ids) == 6  # a whole answer: nothing stopped it


def test_the_compare_handler_ends_quietly_when_the_visitor_left(monkeypatch, caplog):
    """The page's handler on the embedded model, its visitor leaving after the encoding: no result, one line."""
    calls = {"n": 0}

    def gone(request):
        calls["n"] += 1
        return calls["n"] > 3  # a few checks in: inside the first run's prefill

    monkeypatch.setattr(access, "client_gone", gone)
    image = random_image(5, (224, 224))
    with caplog.at_level(logging.INFO, logger="explorer"):
        outputs = list(events.compare_click(image=image, question="what color is the circle ?", keep=28,
                                            visitor=object()))
    assert outputs == [] and calls["n"] > 3
    assert any("visitor left: stopped before layer" in r.getMessage() for r in caplog.records), caplog.text

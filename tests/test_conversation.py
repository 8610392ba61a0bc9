"""Follow-up questions on a pruned cache (explorer/core/conversation.py): on the unpruned cache a follow-up
equals the stock model's greedy generate on the whole conversation; on a pruned cache it equals a no-cache
recompute over the same kept tokens, both early_kv modes; M-RoPE positions continue (Qwen2-VL); reprune mode
chooses again, question-agnostic methods keep their set."""

import pytest
import torch

from explorer.core import conversation
from explorer.core.compare import compare
from explorer.core.engine import encode_input, run
from explorer.core.settings import check_settings
from models.base import BadInput
from tests.conftest import Tiny, TinyQwen, no_cache_logits, random_image

FIRST, SECOND = "what color is the circle ?", "what color is the square ?"


def stock_conversation(t, images, turns, kind="image", max_new_tokens=5):
    """The stock model's greedy generate on the whole conversation: turns [(question, answer)] then a last
    question; returns (prompt ids, generated ids, logits)."""
    *history, (question, _) = turns
    inputs = t.family.build_inputs(t.processor, images, question, kind=kind, history=tuple(history))
    with torch.inference_mode():
        out = t.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
    prompt = inputs["input_ids"].shape[1]
    return inputs["input_ids"][0].tolist(), out.sequences[0, prompt:].tolist(), [s[0].float() for s in out.logits]


@pytest.mark.parametrize("make, kind", [(Tiny, "image"), (lambda: TinyQwen("2"), "image"),
                                        (lambda: TinyQwen("2.5"), "video")], ids=["llava", "qwen2", "qwen2.5-video"])
def test_a_follow_up_on_the_unpruned_cache_equals_stock_generate_on_the_whole_conversation(make, kind):
    t = make()
    images = [random_image(20, (300, 200))] if kind == "image" else [random_image(21 + i, (300, 200)) for i in range(4)]
    settings = check_settings(methods=[], keep=4, max_new_tokens=5, follow_ups=[SECOND, "is there a circle ?"])
    records = compare(t.model, t.processor, t.family, images, FIRST, settings, kind=kind, diagnostics=False)
    turns = records["none"].turns
    assert [turn["question"] for turn in turns] == [FIRST, SECOND, "is there a circle ?"]
    for j in (1, 2):  # every follow-up, against generate on the conversation up to it
        asked = [(turn["question"], turn["answer"]) for turn in turns[:j]] + [(turns[j]["question"], None)]
        _, ids, _ = stock_conversation(t, images, asked, kind)
        assert turns[j]["answer_ids"] == ids, (j, turns[j]["answer"])


@pytest.mark.parametrize("early_kv", ["keep", "prune"])
@pytest.mark.parametrize("method", ["clse", "fastv"])
def test_a_follow_up_on_a_pruned_cache_equals_a_no_cache_recompute(method, early_kv):
    t = Tiny()
    images = [random_image(22)]
    settings = check_settings(methods=[method], keep=9, prune_layer=2, max_new_tokens=4, early_kv=early_kv)
    encoded = encode_input(t.model, t.processor, t.family, images, FIRST)
    record = run(t.model, t.processor, encoded, method, settings, question=FIRST, keep_state=True)
    record.turns = [conversation.first_turn(record)]
    turn = conversation.continue_keep(t.model, t.processor, encoded, record, images, SECOND, settings, "image",
                                      keep_logits=True)
    prompt = encoded.input_ids.shape[1]
    assert turn["ids"][:prompt] == encoded.input_ids[0].tolist()
    tail = turn["ids"][prompt:] + turn["answer_ids"]  # the answer, the template's tokens, the follow-up's answer
    kept = encoded.groups[0].positions[record.kept_indices]
    with torch.inference_mode():
        reference = no_cache_logits(t, encoded, kept, 2, tail, early_kv)
    start = len(turn["ids"]) - prompt  # the logits after the follow-up's prompt, then after each new token
    assert len(turn["step_logits"]) == len(turn["answer_ids"]) >= 2
    for ours, theirs in zip(turn["step_logits"], reference[start:]):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert turn["kept_indices"] == record.kept_indices  # keep mode: the first question's set


def test_reprune_chooses_again_and_question_agnostic_methods_keep_their_set():
    t = Tiny()
    images = [random_image(23)]
    settings = check_settings(methods=["clse_spectral", "fastv"], keep=9, prune_layer=2, max_new_tokens=3,
                              follow_ups=[SECOND, "how many circles are there ?"], follow_up_mode="reprune")
    records = compare(t.model, t.processor, t.family, images, FIRST, settings, diagnostics=False)
    spectral = [turn["kept_indices"] for turn in records["clse_spectral"].turns]
    assert spectral[0] == spectral[1] == spectral[2]  # the visual tokens come first: their scores cannot change
    fastv = records["fastv"].turns
    # reprune runs the whole conversation again: the follow-up's answer equals a fresh run on it
    history = ((FIRST, fastv[0]["answer"]),)
    again = run(t.model, t.processor, encode_input(t.model, t.processor, t.family, images, SECOND, history=history),
                "fastv", settings)
    assert fastv[1]["answer_ids"] == again.answer_ids and fastv[1]["kept_indices"] == again.kept_indices
    assert len(records["none"].turns) == 3 and all(len(turn["kept_indices"]) == 36 for turn in records["none"].turns)


def test_follow_ups_are_checked_and_carried_in_the_json():
    with pytest.raises(BadInput, match="5 follow-up questions; the limit is 4"):
        check_settings(follow_ups=["a ?"] * 5)
    with pytest.raises(BadInput, match="follow-up question 2 is empty"):
        check_settings(follow_ups=["a ?", "   "])
    with pytest.raises(BadInput, match="follow-up mode must be"):
        check_settings(follow_up_mode="forget")
    assert check_settings(follow_ups="a ?\n\nb ?").follow_ups == ("a ?", "b ?")
    t = Tiny()
    records = compare(t.model, t.processor, t.family, [random_image(24)], FIRST, methods=["clse"], keep=9,
                      max_new_tokens=2, follow_ups=[SECOND], diagnostics=False)
    turns = records["clse"].to_json()["turns"]
    assert [set(turn) for turn in turns] == [{"question", "answer", "answer_ids", "answer_margins", "kept_indices",
                                              "timings_ms", "kv_cache_bytes"}] * 2
    assert [len(turn["answer_margins"]) for turn in turns] == [len(turn["answer_ids"]) for turn in turns]
    assert turns[0]["question"] == FIRST and turns[1]["question"] == SECOND and records["clse"].state is None


def test_roll_back_takes_back_tokens_and_refuses_a_window_that_let_older_ones_go():
    """roll_back drops an answer's last tokens from a full-attention layer and from a sliding window that still
    holds everything it saw; once the window has let older tokens go, taking tokens back would leave it short of
    what it should see (those tokens are gone): BadInput, so the conversation is run again (reprune)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    def cache_after(tokens, window):
        cache = DynamicCache()
        cache.layers = [DynamicLayer(), DynamicSlidingWindowLayer(sliding_window=window)]
        states = torch.arange(tokens, dtype=torch.float32).view(1, 1, tokens, 1)
        for layer in cache.layers:
            layer.update(states, states)
        return cache

    cache = cache_after(6, window=8)  # the window holds all 6 (it keeps window - 1)
    conversation.roll_back(cache, 2)
    for layer in cache.layers:
        assert layer.keys[0, 0, :, 0].tolist() == [0, 1, 2, 3]
    assert cache.layers[1].cumulative_length == 4
    cache = cache_after(10, window=8)  # the window let tokens 0-2 go
    with pytest.raises(BadInput, match="follow-up mode reprune"):
        conversation.roll_back(cache, 2)
    assert cache.layers[0].keys.shape[-2] == 10  # nothing taken back from any layer

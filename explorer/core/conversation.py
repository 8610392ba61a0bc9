"""Follow-up questions: a run's conversation continued with more user turns, through the family's chat template
(each earlier answer as the assistant's turn).

Two modes (Settings.follow_up_mode):
- "keep" (the default, what a deployed pruner does): the new tokens are prefilled on top of the method's KV
  cache, pruned as it was at the first question, then decoded: a follow-up about another object answers from
  what the FIRST question's pruning kept. The unpruned run keeps its full cache.
- "reprune": the conversation so far is run again from the full prompt, and every method chooses its tokens
  for the latest question (question-aware methods choose again; question-agnostic ones keep their set, since
  their scores depend only on the visual tokens, which come first). The unpruned run continues its cache.

Positions continue exactly as the stock model numbers the whole conversation: text after the image takes the
next position ids in turn (every row of multimodal ids alike), so a follow-up on the unpruned cache equals the
stock model's greedy generate on the whole conversation (tested).

Each turn is a plain dict: {"question", "answer", "answer_ids", "answer_margins", "kept_indices", "timings_ms",
"kv_cache_bytes"};
record.turns lists them, the first being the record's own question and answer.
"""

import torch

from explorer.core import engine
from explorer.core.devices import clock, device_of
from explorer.methods.registry import METHODS
from models.base import BadInput

MAX_FOLLOW_UPS = 4


def first_turn(record):
    return {"question": record.question, "answer": record.answer, "answer_ids": list(record.answer_ids),
            "answer_margins": list(record.answer_margins), "kept_indices": list(record.kept_indices),
            "timings_ms": dict(record.timings_ms), "kv_cache_bytes": record.kv_cache_bytes}


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def roll_back(cache, count):
    """Drop the last `count` tokens of every layer's cache (text appended after the prompt: last in every
    layer, whatever was pruned before it). A linear-attention or convolution layer's state has taken them in
    for good: BadInput then (the conversation can still be run again, follow-up mode reprune)."""
    if not count:
        return
    if any(not torch.is_tensor(getattr(layer, "keys", None)) for layer in cache.layers):
        raise BadInput("this model's linear-attention or convolution layers cannot take back the tokens of an answer "
                       "that its chat template writes differently: use the follow-up mode reprune")
    if any(getattr(layer, "cumulative_length", 0) > layer.keys.shape[-2] for layer in cache.layers):
        raise BadInput("this model's sliding-window layers have already let go of the tokens that taking back the "
                       "answer's last tokens would bring back into their window: use the follow-up mode reprune")
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[:, :, :-count], layer.values[:, :, :-count]
        if hasattr(layer, "cumulative_length"):  # a sliding window counts what it has seen
            layer.cumulative_length -= count


def history_of(record):
    """[(question, answer)] of the record's turns so far."""
    return [(turn["question"], turn["answer"]) for turn in record.turns]


def continue_keep(model, processor, encoded, record, images, question, settings, kind, keep_logits=False):
    """One follow-up on the record's own cache (record.state): the conversation's new tokens prefilled, then
    decoded. The cache holds the prompt and the answer; the chat template's rendering of the conversation is
    matched against it token by token (an answer that tokenises differently when re-read is rolled back)."""
    family, state = encoded.family, record.state
    inputs = family.build_inputs(processor, images, question, kind=kind, prompt=settings.prompt,
                                 timing=getattr(images, "timing", None), history=tuple(history_of(record)))
    full = inputs["input_ids"][0].tolist()
    shared = common_prefix(full, state.ids)
    if shared < encoded.input_ids.shape[1]:
        raise BadInput("this model's chat template writes the first turn differently once the conversation goes on "
                       "(Qwen3.5's drops the opening of its thinking block, for one), so the cached prompt cannot be "
                       "continued: use the follow-up mode reprune")
    roll_back(state.cache, len(state.ids) - shared)
    start = state.next_position - (len(state.ids) - shared)
    device = device_of(family.text_model(model))
    with torch.inference_mode():
        begin = clock(device)
        logits = engine.extend(model, encoded, state.cache, full[shared:], start, state.shifts)
        prefill_ms = (clock(device) - begin) * 1e3
        begin = clock(device)
        tokens, gaps, step_logits, next_position = engine.decode(
            model, encoded, state.cache, logits, engine.eos_ids(model, processor), settings.max_new_tokens,
            keep_logits, start_position=start + len(full) - shared, shifts=state.shifts)
        decode_ms = (clock(device) - begin) * 1e3
    state.ids, state.next_position = full + tokens[:-1], next_position
    turn = {"question": question, "answer": processor.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
            "answer_ids": tokens, "answer_margins": gaps, "kept_indices": list(record.kept_indices),
            "timings_ms": {"prefill": prefill_ms, "decode": decode_ms, "total": prefill_ms + decode_ms},
            "kv_cache_bytes": engine.cache_bytes(state.cache)}
    if keep_logits:  # the tests' oracles; never serialised
        turn["step_logits"], turn["ids"] = step_logits, full
    return turn


def continue_reprune(model, processor, family, record, images, question, settings, kind):
    """One follow-up run again from the whole conversation (this method's own earlier answers in it): the
    method chooses its tokens for the latest question."""
    encoded = engine.encode_input(model, processor, family, images, question, kind, settings.prompt,
                           history=history_of(record))
    again = engine.run(model, processor, encoded, record.method, settings, question=question)
    return {"question": question, "answer": again.answer, "answer_ids": again.answer_ids,
            "answer_margins": again.answer_margins, "kept_indices": again.kept_indices,
            "timings_ms": dict(again.timings_ms), "kv_cache_bytes": again.kv_cache_bytes}


def converse(model, processor, encoded, record, images, settings, kind):
    """Every follow-up of settings.follow_ups on one method's record (run with keep_state=True): record.turns
    gets one entry per turn; the cache is released at the end."""
    record.turns = [first_turn(record)]
    reprune = settings.follow_up_mode == "reprune" and METHODS[record.method].prunes
    for question in settings.follow_ups:
        if reprune:
            turn = continue_reprune(model, processor, encoded.family, record, images, question, settings, kind)
        else:
            try:
                turn = continue_keep(model, processor, encoded, record, images, question, settings, kind)
            except BadInput:  # the cache cannot be continued (a template rewriting the first turn, a recurrent
                if settings.follow_up_mode != "reprune":  # state): in reprune mode the unpruned run is run again
                    raise
                turn = continue_reprune(model, processor, encoded.family, record, images, question, settings, kind)
        record.turns.append(turn)
    record.state = None

"""One floor above the engine: one input through the processor and the vision tower once (`encode_input`),
then the unpruned reference and every method of a request's Settings on it (`compare`), then the diagnostics
of the unpruned run. The page, the command line, the benchmarks and the evaluations all start here.
"""

from PIL import Image

from explorer.core.diagnostics import attach
from explorer.core import batch, conversation
from explorer.core.engine import encode_input, run
from explorer.core.settings import check_settings
from explorer.core.stage import method_plan
from explorer.methods.registry import METHODS
from models.base import BadInput


def summarize(runs):
    """One record from the timed repeats of a method: the first run's record (the answers are the same: the
    run is deterministic), timings as the median over repeats and their spread [min, max]."""
    record = runs[0]
    if len(runs) > 1:
        spread = {}
        for name in record.timings_ms:
            values = sorted(r.timings_ms[name] for r in runs)
            record.timings_ms[name] = values[len(values) // 2] if len(values) % 2 else sum(
                values[len(values) // 2 - 1:len(values) // 2 + 1]) / 2
            spread[name] = [values[0], values[-1]]
        record.timings_spread_ms = spread
        record.peak_memory_bytes = max(r.peak_memory_bytes for r in runs)
    record.repeats = len(runs)
    return record


def unknown_words_note(tokenizer, question, listed=300):
    """A note naming the question's words the tokenizer maps to its unknown token (word-level vocabularies,
    like the embedded model's), with the words it knows when the vocabulary is small enough to list."""
    if tokenizer.unk_token_id is None:
        return None
    encoding = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    unknown = [question[a:b] for token, (a, b) in zip(encoding["input_ids"], encoding["offset_mapping"])
               if token == tokenizer.unk_token_id]
    if not unknown:
        return None
    note = f"the model does not know the word(s) {', '.join(repr(w) for w in dict.fromkeys(unknown))}"
    vocabulary = [w for w in tokenizer.get_vocab() if w not in tokenizer.all_special_tokens]
    if len(vocabulary) <= listed:
        note += f"; it knows: {' '.join(sorted(vocabulary))}"
    return note


def reserved_tokens(processor):
    """The strings a question may not contain: the tokenizer's special tokens (its image and video
    placeholders, vision start / end, begin / end of text), which would change the prompt's structure."""
    tokenizer = processor.tokenizer
    specials = set(tokenizer.all_special_tokens)
    specials |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    specials |= {getattr(processor, name) for name in ("image_token", "video_token") if getattr(processor, name, None)}
    return sorted(t for t in specials if t and len(t) > 1)


def check_question_tokens(processor, text):
    """BadInput when the text holds a reserved token (compared without case: some tokenizers lower-case)."""
    lowered = text.lower()
    for token in reserved_tokens(processor):
        if token.lower() in lowered:
            raise BadInput(f"the question contains {token!r}, which this model reserves for the structure of its "
                           "prompt (images, video, turns); leave it out: the image goes into the prompt by itself")


def compare(model, processor, family, images, question, settings=None, kind="image", diagnostics=True,
            progress=None, keep_logits=False, **raw):
    """The unpruned run and each method of settings.methods on one input, encoded once. With repeats > 1 the
    methods run in an order rotated between repeats and the timings are medians. Returns {method: Record}.
    keep_logits: every record keeps its step logits (tests)."""
    settings = settings or check_settings(**raw)
    say = progress or (lambda text: None)
    question = (question or "").strip()
    if not question:
        raise BadInput("the question is empty")
    if not images:
        raise BadInput("no image or video frames were given")
    for text in (question, *settings.follow_ups):
        check_question_tokens(processor, text)
    say("encoding the input")
    encoded = encode_input(model, processor, family, images, question, kind, settings.prompt)
    names = ["none"] + [m for m in settings.methods if METHODS[m].prunes]
    num_layers = len(family.text_model(model).layers)
    for name in names[1:] + names[:1]:  # checked before any run, so nothing is half-done (methods first: their
        # limits are the stricter ones, e.g. K >= 1 for attention)
        method_plan(encoded, settings, num_layers, name)
    runs = {name: [] for name in names}
    for repeat in range(settings.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            say(f"running {name}" + (f" (repeat {repeat + 1} of {settings.repeats})" if settings.repeats > 1 else ""))
            record = run(model, processor, encoded, name, settings, question=question, keep_logits=keep_logits,
                         capture=diagnostics and name == "none" and repeat == 0,
                         keep_state=bool(settings.follow_ups) and repeat == 0)
            if repeat == 0:  # the conversation goes on from the first repeat's cache, which it then releases
                if settings.follow_ups:
                    say(f"{name}: the follow-up question(s)")
                conversation.converse(model, processor, encoded, record, images, settings, kind)
            runs[name].append(record)
    records = {name: summarize(runs[name]) for name in names}
    notes = [*settings.notes, *(unknown_words_note(processor.tokenizer, q) for q in (question, *settings.follow_ups))]
    for record in records.values():
        record.notes[:0] = [note for note in notes if note]
    if diagnostics:
        say("computing the diagnostics (spectra, every method's scores)")
        attach(records["none"], model, encoded, settings)
    return records


def batch_item(item):
    """(images, question, kind) of one compare_batch item: a dict with images, question and optionally kind, or
    a tuple (images, question[, kind])."""
    if isinstance(item, dict):
        return item["images"], item["question"], item.get("kind", "image")
    images, question, *kind = item
    return images, question, kind[0] if kind else "image"


def compare_batch(model, processor, family, items, settings=None, diagnostics=False, progress=None,
                  keep_logits=False, prefill="auto", **raw):
    """compare() over several inputs at once: each item (a dict {images, question, kind}, or a tuple) is
    encoded alone (its own processor call and vision tower), then the unpruned run and each method run as one
    batch over all items (explorer/core/batch.py: each item its own plan, budget, scores and kept set; answers
    equal to the batch-of-one runs'). Returns one {method: Record} per item, in order. Where a batch cannot be
    formed (explorer.core.batch.batchable: the decoder's layers or wrapper's inputs; diagnostics or follow-up
    questions, which run one input at a time) the items run one by one through compare(), each record noting
    why. One item is compare() itself. With repeats > 1 the methods' order rotates between repeats and the
    timings are medians (of the batch's timings: a batched record's timings are its whole batch's). prefill:
    explorer.core.batch.run_batch's (the answers are the same)."""
    settings = settings or check_settings(**raw)
    say = progress or (lambda text: None)
    items = [batch_item(item) for item in items]
    if not items:
        raise BadInput("no inputs were given")
    alone = "diagnostics and follow-up questions run one input at a time" if diagnostics or settings.follow_ups \
        else None
    if len(items) == 1 or alone:
        out = [compare(model, processor, family, images, question, settings, kind=kind, diagnostics=diagnostics,
                       progress=progress, keep_logits=keep_logits) for images, question, kind in items]
        if len(items) > 1:
            for records in out:
                for record in records.values():
                    record.notes.append(batch.ONE_BY_ONE_NOTE.format(n=len(items), why=alone))
        return out
    questions = []
    for images, question, _ in items:
        question = (question or "").strip()
        if not question:
            raise BadInput("the question is empty")
        if not images:
            raise BadInput("no image or video frames were given")
        check_question_tokens(processor, question)
        questions.append(question)
    encodeds = []
    for n, ((images, _, kind), question) in enumerate(zip(items, questions)):
        say(f"encoding input {n + 1} of {len(items)}")
        encodeds.append(encode_input(model, processor, family, images, question, kind, settings.prompt))
    names = ["none"] + [m for m in settings.methods if METHODS[m].prunes]
    num_layers = len(family.text_model(model).layers)
    for encoded in encodeds:  # checked before any run, as compare does
        for name in names[1:] + names[:1]:
            method_plan(encoded, settings, num_layers, name)
    runs = [{name: [] for name in names} for _ in items]
    for repeat in range(settings.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            say(f"running {name} on {len(items)} inputs" +
                (f" (repeat {repeat + 1} of {settings.repeats})" if settings.repeats > 1 else ""))
            records = batch.run_batch(model, processor, encodeds, name, settings, questions=questions,
                                      keep_logits=keep_logits, prefill=prefill)
            for n, record in enumerate(records):
                if repeat == 0:
                    conversation.converse(model, processor, encodeds[n], record, items[n][0], settings, items[n][2])
                runs[n][name].append(record)
    out = []
    for n, question in enumerate(questions):
        records = {name: summarize(runs[n][name]) for name in names}
        notes = [*settings.notes, unknown_words_note(processor.tokenizer, question)]
        for record in records.values():
            record.notes[:0] = [note for note in notes if note]
        out.append(records)
    return out


def warm_up(model, processor, family, progress=None):
    """One short unpruned run on a blank image right after loading, so that no method of the first request
    pays for the first kernels, allocations and caches."""
    if progress:
        progress("warming up")
    compare(model, processor, family, [Image.new("RGB", (64, 64), (128, 128, 128))], "warm up",
            check_settings(methods=[], keep=1, max_new_tokens=2), diagnostics=False)

"""Train the embedded model from scratch on generated scenes and clips.

    python -m models.shapes_llava.train --seed 0 --steps 3800 --threads 1 --minutes 118 \
        --out models/shapes_llava/weights

Deterministic from the seed (single process, fixed thread count). The model and processor are built by
`build()` below from CONFIG (data, not code) and saved with save_pretrained, the layout a hub checkpoint has.

Several conversations share one image: the sequence is [USER : <image>...] followed by one segment per
conversation of one to three turns ("{question} ASSISTANT : {answer} </s>", then "USER : {question}
ASSISTANT : {answer} </s>" per follow-up turn, as the chat template writes a conversation). A block mask lets
each conversation see the image prefix and itself only, and every conversation gets the position ids it
would have alone after the image, so each one is exactly the prompt the model sees at inference (a first
question, or a follow-up with the earlier turns before it), at a fraction of the cost. Consecutive turns ask
about different objects where the scene allows it; a clip's conversations mix its motion question with
questions about its objects (scenes.clip_scene_questions).

Visual tokens are dropped at a pruning layer K in training (see `sample_drops`): dropping token j from layer K
on is, in one forward, masking key column j for every query at layers >= K (a forward pre-hook on each decoder
layer swaps in that layer's mask), so the model learns to answer from the tokens it still has.

`--init DIR` starts from a saved model (the previous weights) instead of random weights, for a shorter run
that teaches an already trained model something new (conversations); training.json records it.

Resumable: every --checkpoint-every steps the model, the patch head, the optimizer, the numpy and torch RNG
states and the step go to --checkpoint-dir (default artifacts/train_ckpt); `--resume DIR` continues from there
with the checkpoint's own settings. The weights directory (--out) is written once, at the end.
"""

import argparse
import copy
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from models.shapes_llava import scenes
from models.shapes_llava.build import llava_processor, random_llava, word_tokenizer

CONFIG = {  # the embedded model's architecture
    "image_size": scenes.IMAGE_SIZE,  # 224 / 14 -> a 16 x 16 grid of 256 visual tokens
    "patch_size": scenes.PATCH,
    "vision_width": 128,  # 4 heads of 32
    "vision_layers": 5,  # LLaVA reads the second-to-last layer: 4 layers feed the projector
    "text_width": 128,
    "text_layers": 6,
    "heads": 4,
    "kv_heads": 4,
    "mlp_width": 384,
}
TRAIN = {"batch_images": 16, "batch_clips": 4, "clip_every": 4, "questions_per_image": 8, "lr": 1.5e-3,
         "weight_decay": 0.01, "warmup": 100, "min_lr_ratio": 0.05,
         "curriculum": 0.3,  # scenes grow from 1 to 5 objects over this share of the steps
         "feature_penalty": 0.01,  # keeps the projected visual features' scale in check (see main)
         "feature_target": 64.0,  # their mean square is pulled to this (0: towards zero, an earlier recipe)
         "vision_lr_scale": 1.0,  # < 1: the vision tower and projector learn slower (was 0.2 before patch_loss)
         "grounded_only": 0.15,  # first share of the steps: only questions that need the image (color, shape)
         "patch_loss": 0.5,  # weight of the dense per-patch auxiliary loss (see patch_labels)
         "grounding_loss": 0.5,  # weight of the attention-grounding loss (see grounding_loss)
         "grounding_layer": 3,  # its decoder layer (head 0)
         "variant": 0.3,  # share of training scenes and clips drawn with scenes' variant option
         # visual-token drops at a pruning layer (see sample_drops): per sequence, the probability of each mode
         "drop_none": 0.4, "drop_random": 0.3, "drop_keep_object": 0.2, "drop_object": 0.1,
         "drop_two_stages": 0.3,  # of the dropping sequences: two nested stages
         "unknowable_loss": 0.5,  # weight of the uniform target for a question whose object was dropped entirely
         "no_question_mark": 0.1,  # share of training questions typed without the final "?"
         "drop_start": 0.6,  # drops begin after this share of the steps (the unpruned task is learned first)
         # conversations: the share of them with two and with three turns (the rest are single questions)
         "dialogue_two": 0.35, "dialogue_three": 0.35}
DROP_LAYERS = (1, 2, 3)  # the explorer prunes images at K = 1 and video at K = 3 by default; FastV uses 2

# Dense auxiliary targets for every visual token, read by a linear head on the projector's output that is
# used in training only (it is not part of the saved model, which stays a stock LLaVA). One answer word per
# question is a thin signal for a vision tower learning from scratch: with it alone the tower learned colour
# but not shape, and counting and positions stalled near 50%. Per patch: the colour, shape and quadrant of
# the object covering it (0 = background), whether the object's centre falls in it (what counting needs),
# and the patch's own row and column (what "where" and motion need).
PATCH_TARGETS = {"color": 1 + len(scenes.COLORS), "shape": 1 + len(scenes.SHAPES), "quadrant": 5, "center": 2,
                 "row": scenes.IMAGE_SIZE // scenes.PATCH, "col": scenes.IMAGE_SIZE // scenes.PATCH}


def build(seed=0):
    # Questions as people type them: lower-cased, "?" and ":" split off words, ".,!;" dropped (no question
    # uses them); training also drops the final "?" from some questions (TRAIN["no_question_mark"]).
    tokenizer = word_tokenizer(scenes.vocabulary(), lowercase=True, ignore=".,!;")
    processor = llava_processor(tokenizer, CONFIG["image_size"], CONFIG["patch_size"])
    model = random_llava(tokenizer, seed=seed, **CONFIG)
    # CLIP's default init (std 0.02) makes the position embeddings ~1/35 of a patch's content: a tower trained
    # from scratch then barely knows where a patch is (a linear probe for the patch's row stayed at chance
    # after 100 steps), and "where" and motion questions stall. Start them as 2-D sin-cos (as MAE does, at the
    # scale of the content); they stay trainable and the architecture is stock CLIP.
    embedding = model.model.vision_tower.embeddings.position_embedding.weight
    with torch.no_grad():
        embedding[1:] = sincos_2d(CONFIG["image_size"] // CONFIG["patch_size"], embedding.shape[1])
        embedding[0] = 0  # the class token
    return model, processor


def sincos_2d(side, dim):
    """[side * side, dim] 2-D sin-cos position embedding in raster order: half the channels code the row,
    half the column, each with dim / 4 frequencies."""
    quarter = dim // 4
    freqs = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    pos = torch.arange(side, dtype=torch.float32)[:, None] * freqs[None]
    code = torch.cat([pos.sin(), pos.cos()], dim=1)  # [side, dim / 2]
    rows = code[:, None, :].expand(side, side, -1)
    cols = code[None, :, :].expand(side, side, -1)
    return torch.cat([rows, cols], dim=-1).reshape(side * side, -1)


def image_tokens():
    return (CONFIG["image_size"] // CONFIG["patch_size"]) ** 2  # 16 x 16 = 256


def encode_text(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def encode_example(tokenizer, n_image_tokens, dialogues, target_masks=None, bare=()):
    """(ids, positions, blocks, labels, grounding, answer_rows) for one image or clip and its conversations.
    dialogues: a list of conversations, each a list of questions (its turns; a bare Question is a one-turn
    conversation). target_masks, bare and the returned lists run over the questions in that order (every
    conversation's turns in turn). grounding lists (row of the turn's last prompt token, boolean mask over the
    image tokens of the queried objects) for the questions that have target_masks; answer_rows the row whose
    label is each answer. Text goes through the tokenizer itself (as the chat template's text does at inference:
    "USER:", "... ASSISTANT:" and "USER: ... ASSISTANT:" for a follow-up), so the sequence is exactly what the
    processor produces; main() checks it. bare: the indices of questions written without their final "?"."""
    dialogues = [d if isinstance(d, (list, tuple)) else [d] for d in dialogues]
    ids = encode_text(tokenizer, "USER:") + [tokenizer.image_token_id] * n_image_tokens
    prefix = len(ids)
    positions, blocks, labels = list(range(prefix)), [0] * prefix, [-100] * prefix
    grounding, answer_rows = [], []
    k = 0  # the question's index over all conversations
    for block, turns in enumerate(dialogues, start=1):
        position = prefix  # every conversation starts right after the image, as it would alone
        for turn, q in enumerate(turns):
            text = q.text[:-2] if k in bare and q.text.endswith(" ?") else q.text
            prompt = encode_text(tokenizer, ("USER: " if turn else "") + text + " ASSISTANT:")
            answer = encode_text(tokenizer, q.answer) + [tokenizer.eos_token_id]
            assert len(answer) == 2 and tokenizer.unk_token_id not in prompt + answer, (q.text, q.answer)
            segment = prompt + answer
            answer_rows.append(len(ids) + len(prompt) - 1)
            if target_masks is not None and target_masks[k] is not None:
                grounding.append((len(ids) + len(prompt) - 1, target_masks[k]))
            ids += segment
            positions += list(range(position, position + len(segment)))
            position += len(segment)
            blocks += [block] * len(segment)
            seg_labels = [-100] * len(segment)
            seg_labels[len(prompt) - 1] = answer[0]  # ":" predicts the answer
            seg_labels[len(prompt)] = answer[1]  # the answer predicts </s>
            labels += seg_labels
            k += 1
    return ids, positions, blocks, labels, grounding, answer_rows


def turn_count(rng):
    u = rng.random()
    return 3 if u < TRAIN["dialogue_three"] else 2 if u < TRAIN["dialogue_three"] + TRAIN["dialogue_two"] else 1


def image_dialogues(rng, questions):
    """An image's questions (already in random order) split into conversations of 1-3 turns; each next turn
    asks about other objects than the turn before it where such a question is left."""
    pool, dialogues = list(questions), []
    while pool:
        dialogue, turns = [pool.pop(0)], turn_count(rng)
        while len(dialogue) < turns and pool:
            before = set(dialogue[-1].targets)
            other = next((i for i, q in enumerate(pool) if not before & set(q.targets)), 0)
            dialogue.append(pool.pop(other))
        dialogues.append(dialogue)
    return dialogues


def clip_dialogues(rng, clip):
    """Two conversations about one clip: one opening with its motion question (then up to two questions
    about its objects), one asking the motion question after one or two of them."""
    motion, extra = clip.questions[0], scenes.clip_scene_questions(clip)
    extra = [extra[i] for i in rng.permutation(len(extra))[:4]]
    first = [motion] + extra[:turn_count(rng) - 1]
    rest = extra[len(first) - 1:]
    return [first, rest[:int(rng.integers(1, 3))] + [motion]] if rest else [first]


def collate(examples, pad_id):
    length = max(len(e[0]) for e in examples)
    B = len(examples)
    ids = torch.full((B, length), pad_id)
    positions = torch.zeros((B, length), dtype=torch.long)
    blocks = torch.full((B, length), -1)
    labels = torch.full((B, length), -100)
    for b, (i, p, k, lab, *_) in enumerate(examples):
        n = len(i)
        ids[b, :n], positions[b, :n], blocks[b, :n], labels[b, :n] = map(torch.tensor, (i, p, k, lab))
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = (blocks[:, :, None] == blocks[:, None, :]) | (blocks[:, None, :] == 0)
    mask = causal & same & (blocks[:, None, :] >= 0)
    mask |= torch.eye(length, dtype=torch.bool)  # padding rows attend to themselves (no empty softmax)
    return ids, positions, mask[:, None], labels


def patch_labels(objects):
    """[len(PATCH_TARGETS), grid * grid] int64 targets for one image (see PATCH_TARGETS)."""
    side = scenes.IMAGE_SIZE // scenes.PATCH
    labels = np.zeros((len(PATCH_TARGETS), side * side), dtype=np.int64)
    labels[4] = np.repeat(np.arange(side), side)
    labels[5] = np.tile(np.arange(side), side)
    colors, shapes = list(scenes.COLORS), list(scenes.SHAPES)
    for obj in objects:
        mask = scenes.object_token_mask(obj)
        cx, cy = obj.center
        half = scenes.IMAGE_SIZE / 2
        labels[0, mask] = 1 + colors.index(obj.color)
        labels[1, mask] = 1 + shapes.index(obj.shape)
        labels[2, mask] = 1 + 2 * (cy >= half) + (cx >= half)
        labels[3, int(cy) // scenes.PATCH * side + int(cx) // scenes.PATCH] = 1
    return labels


def pixel_values_of(images, image_processor):
    """What the CLIP processor gives for images already at its size: rescale and normalise, without its
    resize/crop round trip (much faster). main() checks the two agree before training."""
    pixels = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) for im in images])).permute(0, 3, 1, 2)
    mean = torch.tensor(image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std).view(1, 3, 1, 1)
    return (pixels * image_processor.rescale_factor - mean) / std


# The answers a question of each kind can have: a question whose queried object was dropped entirely is trained
# towards the uniform distribution over these (the model cannot know; see sample_drops).
KIND_ANSWERS = {"color": list(scenes.COLORS), "shape": list(scenes.SHAPES), "where": list(scenes.QUADRANTS),
                "exists": ["yes", "no"], "motion": list(scenes.DIRECTIONS)}


def sample_drops(rng, n_tokens, object_masks, opening_masks=None):
    """The visual tokens dropped in one training sequence: a list of stages (layer K, boolean [n_tokens] mask of
    the tokens dropped from K on), nested (a later stage drops a superset), or [] for no drop.

    object_masks: per question, the list of its queried objects' token masks (may be empty); opening_masks the
    same for the questions that open a conversation (a question-aware pruner keeps what the FIRST question
    asks about: the keep-object mode keeps one of those, so follow-ups learn what was lost). The drops are
    random or object-based, never computed from the model (no attention or spectral score), so no pruning
    method is favoured by the training: the model only learns to answer from whatever tokens remain.
    Modes (TRAIN's drop_* probabilities): none; a random subset (keep 5%-70%); everything but one question's
    queried objects (plus a random 0-30% of the rest); one question's queried objects (plus a random share of
    the rest)."""
    u = rng.random()
    p_none, p_random, p_keep = TRAIN["drop_none"], TRAIN["drop_random"], TRAIN["drop_keep_object"]
    with_objects = [np.any(m, axis=0) for m in object_masks if len(m)]
    openers = [np.any(m, axis=0) for m in (opening_masks or []) if len(m)] or with_objects
    if u < p_none:
        return []
    if u < p_none + p_random or not with_objects:
        keep = rng.random(n_tokens) < rng.uniform(0.05, 0.7)
    elif u < p_none + p_random + p_keep:
        target = openers[int(rng.integers(len(openers)))]
        keep = target | (rng.random(n_tokens) < rng.uniform(0.0, 0.3))
    else:
        target = with_objects[int(rng.integers(len(with_objects)))]
        keep = ~target & (rng.random(n_tokens) < rng.uniform(0.05, 0.9))
    if not keep.any():
        keep[int(rng.integers(n_tokens))] = True
    drop = ~keep
    if rng.random() < TRAIN["drop_two_stages"]:
        first, second = sorted(rng.choice(DROP_LAYERS, size=2, replace=False).tolist())
        early = drop & (rng.random(n_tokens) < rng.uniform(0.2, 0.8))
        return [(first, early), (second, drop)]
    return [(int(rng.choice(DROP_LAYERS)), drop)]


def sample_batch(kind, rng, tokenizer, processor, tokens_per_image, max_objects=5, kinds=None, n_layers=6,
                 drops=True):
    """One batch. Returns ids, positions, mask, labels, pixel values, patch targets, grounding (b, row, target
    mask), unknowable (b, row, candidate answer ids) and dropped ([n_layers, B, length] boolean: key columns
    dropped at each decoder layer). drops=False: no visual token is dropped (before TRAIN["drop_start"])."""
    n_tokens = tokens_per_image * (scenes.FRAMES if kind == "clip" else 1)
    if kind == "clip":
        items = [scenes.make_clip(int(rng.integers(scenes.TRAIN_SEED_START, 2**31)),
                                  variant=bool(rng.random() < TRAIN["variant"])) for _ in range(TRAIN["batch_clips"])]
        images = [frame for clip in items for frame in clip.frames]
        objects = [objs for clip in items for objs in clip.frames_objects]
        per_item = []
        for clip in items:
            dialogues = clip_dialogues(rng, clip)
            masks = [[np.concatenate([scenes.object_token_mask(objs[i]) for objs in clip.frames_objects])
                      for i in q.targets] for d in dialogues for q in d]
            per_item.append((dialogues, masks))
    else:
        items = [scenes.make_scene(int(rng.integers(scenes.TRAIN_SEED_START, 2**31)), max_objects,
                                   variant=bool(rng.random() < TRAIN["variant"]))
                 for _ in range(TRAIN["batch_images"])]
        images = [scene.image for scene in items]
        objects = [scene.objects for scene in items]
        per_item = []
        for scene in items:
            questions = [q for q in scene.questions if kinds is None or q.kind in kinds] or scene.questions
            chosen = [questions[i] for i in rng.permutation(len(questions))[: TRAIN["questions_per_image"]]]
            dialogues = image_dialogues(rng, chosen)
            per_item.append((dialogues, [[scenes.object_token_mask(scene.objects[i]) for i in q.targets]
                                         for d in dialogues for q in d]))
    examples, stages_of, unknowable = [], [], []
    for b, (dialogues, object_masks) in enumerate(per_item):
        questions = [q for d in dialogues for q in d]
        opening = list(np.cumsum([0] + [len(d) for d in dialogues[:-1]]))  # the first turns' indices
        stages = sample_drops(rng, n_tokens, object_masks, [object_masks[i] for i in opening]) if drops else []
        final = stages[-1][1] if stages else np.zeros(n_tokens, dtype=bool)
        bare = [k for k in range(len(questions)) if rng.random() < TRAIN["no_question_mark"]]
        example = encode_example(tokenizer, n_tokens, dialogues,
                                 [np.any(m, axis=0) if len(m) else None for m in object_masks], bare)
        labels = example[3]
        for q, masks, row in zip(questions, object_masks, example[5]):
            if not masks:
                continue
            gone = [not (m & ~final).any() for m in masks]  # objects with every token dropped
            if q.kind == "count" and any(gone):
                labels[row] = -100  # the true count is not what is left to see; no honest one-word target
            elif q.kind != "count" and all(gone):
                labels[row] = -100
                unknowable.append((b, row, [encode_text(tokenizer, a)[0] for a in KIND_ANSWERS[q.kind]]))
        examples.append(example)
        stages_of.append(stages)
    ids, positions, mask, labels = collate(examples, tokenizer.pad_token_id)
    dropped = torch.zeros((n_layers, len(examples), ids.shape[1]), dtype=torch.bool)
    image_start = len(encode_text(tokenizer, "USER:"))
    for b, stages in enumerate(stages_of):
        for layer, drop in stages:
            dropped[layer:, b, image_start: image_start + n_tokens] |= torch.from_numpy(drop)
    targets = torch.from_numpy(np.stack([patch_labels(objs) for objs in objects]))
    grounding = [(b, row, m) for b, e in enumerate(examples) for row, m in e[4]]
    return (ids, positions, mask, labels, pixel_values_of(images, processor.image_processor), targets, grounding,
            unknowable, dropped)


def drop_hooks(model, state):
    """Forward pre-hooks on the decoder layers: while state["dropped"] is set ([n_layers, B, L] boolean), layer
    l's attention mask also hides the key columns dropped at l, for every query. Equivalent to removing those
    tokens from layer l on (their own rows still run, but nothing reads them; they still see the text prefix,
    so no softmax is empty). Returns the hook handles."""
    def hook(index):
        def pre(module, args, kwargs):
            dropped = state.get("dropped")
            mask = kwargs.get("attention_mask")
            if dropped is None or mask is None or not dropped[index].any():
                return None
            hide = dropped[index][:, None, None, :]  # [B, 1, 1, L]
            if mask.dtype == torch.bool:
                mask = mask & ~hide
            else:
                mask = mask.masked_fill(hide, torch.finfo(mask.dtype).min)
            kwargs["attention_mask"] = mask
            return args, kwargs
        return pre
    layers = model.model.language_model.layers
    return [layer.register_forward_pre_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]


def grounding_loss(layer, captured, grounding, image_start, head=0, dropped=None):
    """Teach one attention head where to look: -log of the attention mass that the last prompt token of each
    question puts on the queried object's visual tokens (softmax over the visual tokens), at one decoder
    layer and head. Training only; the saved model is stock. Without it the decoder learned answer priors
    and single-object questions but not to pick one object among several (accuracy stalled near 50%).
    dropped: [B, L] key columns dropped at this layer; they leave the softmax and the target (a question
    whose target is entirely dropped does not count)."""
    attn = layer.self_attn
    hidden = captured["hidden_states"]  # the layer's normalised input, [B, L, D]
    cos, sin = captured["position_embeddings"]
    B, L, _ = hidden.shape
    q = attn.q_proj(hidden).view(B, L, -1, attn.head_dim)[:, :, head].unsqueeze(1)  # [B, 1, L, hd]
    kv_head = head * attn.k_proj.out_features // attn.q_proj.out_features
    k = attn.k_proj(hidden).view(B, L, -1, attn.head_dim)[:, :, kv_head].unsqueeze(1)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    losses = []
    for b, row, mask in grounding:
        keys = k[b, 0, image_start: image_start + len(mask)]
        target = torch.from_numpy(mask)
        scores = (keys @ q[b, 0, row]) * attn.scaling
        if dropped is not None:
            gone = dropped[b, image_start: image_start + len(mask)]
            target = target & ~gone
            if not target.any():
                continue
            scores = scores.masked_fill(gone, float("-inf"))
        logp = scores.log_softmax(-1)
        losses.append(-torch.logsumexp(logp[target], dim=0))
    return torch.stack(losses).mean() if losses else hidden.new_zeros(())


def learning_rate(step, total):
    if step < TRAIN["warmup"]:
        return TRAIN["lr"] * (step + 1) / TRAIN["warmup"]
    progress = (step - TRAIN["warmup"]) / max(1, total - TRAIN["warmup"])
    floor = TRAIN["min_lr_ratio"]
    return TRAIN["lr"] * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def save(model, processor, out, meta):
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(meta, f, indent=1)


def save_checkpoint(directory, model, processor, patch_head, optimizer, rng, state):
    """Everything needed to continue: the model (also as a loadable save_pretrained directory, model/),
    the patch head, the optimizer, the numpy and torch RNG states, the step, history and settings. Written to a
    temporary file and renamed, so an interrupted save leaves the previous checkpoint intact."""
    os.makedirs(directory, exist_ok=True)
    payload = {"model": model.state_dict(), "patch_head": patch_head.state_dict(),
               "optimizer": optimizer.state_dict(), "numpy_rng": rng.bit_generator.state,
               "torch_rng": torch.get_rng_state(), **state}
    tmp = os.path.join(directory, "state.pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, os.path.join(directory, "state.pt"))
    save(model, processor, os.path.join(directory, "model"),
         {k: state[k] for k in ("seed", "steps", "steps_done", "config", "train", "history", "init")})


def file_digest(path):
    import hashlib  # noqa: PLC0415

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_encoding(tokenizer, processor, tokens_per_image):
    """The training sequence of a three-turn conversation equals what the processor's chat template gives at
    inference at every turn (questions typed with capitals and glued punctuation, as people type them; the
    earlier answers as assistant turns)."""
    scene = scenes.make_scene(0)
    turns = scene.questions[:3]
    ids, *_, answer_rows = encode_example(tokenizer, tokens_per_image, [turns])
    messages = []
    for q, row in zip(turns, answer_rows):
        typed = q.text[:-2].capitalize() + "?"  # "What color is the circle?"
        content = ([{"type": "image"}] if not messages else []) + [{"type": "text", "text": typed}]
        messages.append({"role": "user", "content": content})
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        expected = processor(images=[scene.image], text=prompt, return_tensors="pt")["input_ids"][0].tolist()
        assert ids[: row + 1] == expected, (prompt, expected[-12:], ids[row - 11: row + 1])
        assert tokenizer.unk_token_id not in expected
        messages.append({"role": "assistant", "content": [{"type": "text", "text": q.answer}]})


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "weights"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=90,
                        help="safety cap: stop and save after this long (training time summed over resumes)")
    parser.add_argument("--checkpoint-every", type=int, default=150)
    parser.add_argument("--checkpoint-dir", default=os.path.join("artifacts", "train_ckpt"),
                        help="where checkpoints go (not --out, which is written once, at the end)")
    parser.add_argument("--init", default=None, metavar="DIR",
                        help="start from the model saved in DIR (save_pretrained layout) instead of random weights")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue from the checkpoint in DIR (its seed, steps and TRAIN settings apply)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a TRAIN entry, e.g. --set lr=0.002 patch_loss=0 (recorded in training.json)")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a CONFIG entry (the architecture), e.g. --config vision_layers=4")
    args = parser.parse_args(argv)
    for table, name, items in ((CONFIG, "CONFIG", args.config), (TRAIN, "TRAIN", args.set)):
        for item in items:
            key, value = item.split("=", 1)
            if key not in table or key in ("image_size", "patch_size"):  # the grid is fixed by the scenes
                parser.error(f"unknown or fixed {name} key {key!r}; known: {', '.join(table)}")
            table[key] = type(table[key])(float(value)) if not isinstance(table[key], str) else value
    return args


@dataclass
class Run:
    """Everything one training run holds: the model and its training-only parts, and the loop's state."""

    model: object
    processor: object
    patch_head: object
    optimizer: object
    rng: object
    captured: dict  # the projector's output (forward hook)
    attn_inputs: dict  # the grounded layer's attention inputs (forward pre-hook)
    drop_state: dict  # the tokens each decoder layer may not attend to (drop_hooks)
    history: list = field(default_factory=list)
    recent: dict = field(default_factory=lambda: {"image": [], "clip": []})
    first_step: int = 0
    done_minutes: float = 0.0


def setup(args, resumed=None):
    """The model, its optimizer and the training-only hooks, from the seed (and a checkpoint to resume)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model, processor = build(args.seed)
    model.train()
    vision = [p for n, p in model.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n]
    decoder = [p for n, p in model.named_parameters() if not ("vision_tower" in n or "multi_modal_projector" in n)]
    patch_head = torch.nn.Linear(CONFIG["text_width"], sum(PATCH_TARGETS.values()))  # training only, not saved
    optimizer = torch.optim.AdamW([{"params": decoder, "scale": 1.0},
                                   {"params": vision, "scale": TRAIN["vision_lr_scale"]},
                                   {"params": patch_head.parameters(), "scale": 1.0}],
                                  lr=TRAIN["lr"], weight_decay=TRAIN["weight_decay"], betas=(0.9, 0.98))
    check = [scenes.make_scene(seed).image for seed in range(3)]
    reference = processor.image_processor(images=check, return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixel_values_of(check, processor.image_processor), reference, atol=1e-4)
    check_encoding(processor.tokenizer, processor, image_tokens())
    if args.init and resumed is None:  # a resumed run's model comes from its checkpoint
        from transformers import LlavaForConditionalGeneration  # noqa: PLC0415

        model.load_state_dict(LlavaForConditionalGeneration.from_pretrained(args.init).state_dict())
    run = Run(model, processor, patch_head, optimizer, rng, {}, {}, {})
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        patch_head.load_state_dict(resumed["patch_head"])
        optimizer.load_state_dict(resumed["optimizer"])
        rng.bit_generator.state = resumed["numpy_rng"]
        torch.set_rng_state(resumed["torch_rng"])
        run.history, run.recent = resumed["history"], resumed["recent"]
        run.first_step, run.done_minutes = resumed["steps_done"], resumed["minutes"]
    # The projected visual features' scale. Free, they drift to one huge constant vector (norm ~200, every
    # token alike after the decoder's RMSNorm) and grounding never starts. Pulled towards zero, they enter at
    # norm ~12 while the residual stream reaches ~140 in two layers: the visual tokens' high-pass magnitude then
    # grows ~4x by layer 2, CLSE's evolution intensity clamps to 1 everywhere and every CLSE score ties. Pulled
    # to a mean square of feature_target (norm ~90), both are avoided; the architecture stays stock LLaVA.
    model.model.multi_modal_projector.register_forward_hook(
        lambda module, args, out: run.captured.update(features=out))
    model.model.language_model.layers[TRAIN["grounding_layer"]].self_attn.register_forward_pre_hook(
        lambda module, args, kwargs: run.attn_inputs.update(kwargs), with_kwargs=True)
    drop_hooks(model, run.drop_state)
    return run


def losses(run, batch, kind):
    """(the weighted total loss, the parts logged) of one batch."""
    ids, positions, mask, labels, pixel_values, patch_targets, grounding, unknowable, dropped = batch
    run.drop_state["dropped"] = dropped
    logits = run.model(input_ids=ids, pixel_values=pixel_values, attention_mask=mask, position_ids=positions).logits
    run.drop_state["dropped"] = None
    targets = labels != -100
    loss = torch.nn.functional.cross_entropy(logits[targets], labels[targets])
    if unknowable:  # uniform over the kind's answers: cross-entropy against it
        logp = torch.stack([logits[b, row].log_softmax(-1) for b, row, _ in unknowable])
        unknown = torch.stack([-lp[cands].mean() for lp, (_, _, cands) in zip(logp, unknowable)]).mean()
    else:
        unknown = logits.new_zeros(())
    features = run.captured["features"]
    feature_scale = features.pow(2).mean()
    target = TRAIN["feature_target"]
    feature_term = (feature_scale - target).pow(2) / target if target > 0 else feature_scale
    patch_logits = run.patch_head(features.reshape(-1, features.shape[-1])).split(list(PATCH_TARGETS.values()), -1)
    patch_loss = sum(torch.nn.functional.cross_entropy(part, patch_targets[:, k].reshape(-1))
                     for k, part in enumerate(patch_logits)) / len(PATCH_TARGETS)
    grounded_layer = run.model.model.language_model.layers[TRAIN["grounding_layer"]]
    image_start = len(encode_text(run.processor.tokenizer, "USER:"))
    ground = grounding_loss(grounded_layer, run.attn_inputs, grounding, image_start=image_start,
                            dropped=dropped[TRAIN["grounding_layer"]])
    total = (loss + TRAIN["feature_penalty"] * feature_term + TRAIN["patch_loss"] * patch_loss
             + TRAIN["grounding_loss"] * ground + TRAIN["unknowable_loss"] * unknown)
    # answer accuracy: the positions whose label is not </s>
    answer_positions = targets & (labels != run.processor.tokenizer.eos_token_id)
    correct = (logits[answer_positions].argmax(-1) == labels[answer_positions]).float().mean().item()
    run.recent[kind] = (run.recent[kind] + [correct])[-20:]
    parts = {"loss": round(loss.item(), 4), "feature_ms": round(feature_scale.item(), 3),
             "patch_loss": round(patch_loss.item(), 4), "grounding": round(ground.item(), 3),
             "unknowable": round(unknown.item(), 3)}
    return total, parts


def train_step(run, step, total_steps):
    """One optimizer step; returns the logged parts."""
    kind = "clip" if step % TRAIN["clip_every"] == TRAIN["clip_every"] - 1 else "image"
    max_objects = min(5, 1 + int(4 * step / (TRAIN["curriculum"] * total_steps))) if TRAIN["curriculum"] else 5
    kinds = ("color", "shape") if step < TRAIN["grounded_only"] * total_steps else None
    batch = sample_batch(kind, run.rng, run.processor.tokenizer, run.processor, image_tokens(), max_objects, kinds,
                         CONFIG["text_layers"], drops=step >= TRAIN["drop_start"] * total_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(step, total_steps) * group["scale"]
    total, parts = losses(run, batch, kind)
    run.optimizer.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_([*run.model.parameters(), *run.patch_head.parameters()], 1.0)
    run.optimizer.step()
    return parts


def main(argv=None):
    args = parse_args(argv)
    resumed = None
    if args.resume:
        resumed = torch.load(os.path.join(args.resume, "state.pt"), weights_only=False)
        TRAIN.update(resumed["train"])
        CONFIG.update(resumed["config"])
        args.seed, args.steps, args.init = resumed["seed"], resumed["steps"], resumed.get("init")
        print(f"resuming from {args.resume} at step {resumed['steps_done']} of {args.steps}", flush=True)
    run = setup(args, resumed)
    init_digest = file_digest(os.path.join(args.init, "model.safetensors")) if args.init else None
    start = time.time()
    step = run.first_step - 1
    meta = lambda: {"seed": args.seed, "steps_done": step + 1, "steps": args.steps, "config": CONFIG,  # noqa: E731
                    "train": copy.deepcopy(TRAIN), "history": run.history, "init": args.init,
                    "init_sha256": init_digest}
    for step in range(run.first_step, args.steps):
        parts = train_step(run, step, args.steps)
        minutes = run.done_minutes + (time.time() - start) / 60
        if step % 10 == 0 or step == args.steps - 1:
            entry = {"step": step, **parts, "acc_image": round(float(np.mean(run.recent["image"] or [0])), 3),
                     "acc_clip": round(float(np.mean(run.recent["clip"] or [0])), 3),
                     "lr": round(learning_rate(step, args.steps), 6), "minutes": round(minutes, 2)}
            run.history.append(entry)
            print(json.dumps(entry), flush=True)
        if (step + 1) % args.checkpoint_every == 0 and step + 1 < args.steps:
            save_checkpoint(args.checkpoint_dir, run.model, run.processor, run.patch_head, run.optimizer, run.rng,
                            {**meta(), "recent": run.recent, "minutes": minutes})
        if minutes > args.minutes:
            print(f"stopping at the {args.minutes}-minute cap after {step + 1} steps", flush=True)
            break
    run.model.eval()
    save(run.model, run.processor, args.out,
         {**meta(), "minutes": round(run.done_minutes + (time.time() - start) / 60, 1)})


if __name__ == "__main__":
    main()

"""Train the embedded model from scratch on generated scenes and clips.

    python -m models.shapes_llava.train --seed 0 --steps 4000 --threads 1 --minutes 120 --out models/shapes_llava/weights

Deterministic from the seed (single process, fixed thread count). The model and processor are built by
`build()` below from CONFIG (data, not code) and saved with save_pretrained, the layout a hub checkpoint has.

Several questions share one image: the sequence is [USER : <image>...] followed by one segment per question
("{question} ASSISTANT : {answer} </s>"). A block mask lets each segment see the image prefix and itself
only, and every segment gets the position ids it would have alone after the image, so each segment is
exactly the single-question prompt the model sees at inference, at a fraction of the cost.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from models.shapes_llava import scenes
from models.toy import llava_processor, tiny_llava, word_tokenizer

CONFIG = {  # the embedded model's architecture
    "image_size": scenes.IMAGE_SIZE,  # 224 / 14 -> a 16 x 16 grid of 256 visual tokens
    "patch_size": scenes.PATCH,
    "vision_width": 96,
    "vision_layers": 3,
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
         "grounding_layer": 3}  # its decoder layer (head 0)

# Dense auxiliary targets for every visual token, read by a linear head on the projector's output that is
# used in training only (it is not part of the saved model, which stays a stock LLaVA). One answer word per
# question is a thin signal for a vision tower learning from scratch: with it alone the tower learned colour
# but not shape, and counting and positions stalled near 50%. Per patch: the colour, shape and quadrant of
# the object covering it (0 = background), whether the object's centre falls in it (what counting needs),
# and the patch's own row and column (what "where" and motion need).
PATCH_TARGETS = {"color": 1 + len(scenes.COLORS), "shape": 1 + len(scenes.SHAPES), "quadrant": 5, "center": 2,
                 "row": scenes.IMAGE_SIZE // scenes.PATCH, "col": scenes.IMAGE_SIZE // scenes.PATCH}


def build(seed=0):
    tokenizer = word_tokenizer(scenes.vocabulary())
    processor = llava_processor(tokenizer, CONFIG["image_size"], CONFIG["patch_size"])
    model = tiny_llava(tokenizer, seed=seed, **CONFIG)
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


def encode_example(tokenizer, n_image_tokens, questions, target_masks=None):
    """(ids, positions, blocks, labels, grounding) for one image or clip and its questions. grounding lists
    (row of the segment's last prompt token, boolean mask over the image tokens of the queried objects) for
    the questions that have target_masks."""
    ids = tokenizer.convert_tokens_to_ids(["USER", ":"]) + [tokenizer.image_token_id] * n_image_tokens
    prefix = len(ids)
    positions, blocks, labels = list(range(prefix)), [0] * prefix, [-100] * prefix
    grounding = []
    for k, q in enumerate(questions, start=1):
        prompt = tokenizer.convert_tokens_to_ids(q.text.split() + ["ASSISTANT", ":"])
        answer = tokenizer.convert_tokens_to_ids([q.answer]) + [tokenizer.eos_token_id]
        segment = prompt + answer
        if target_masks is not None and target_masks[k - 1] is not None:
            grounding.append((len(ids) + len(prompt) - 1, target_masks[k - 1]))
        ids += segment
        positions += list(range(prefix, prefix + len(segment)))
        blocks += [k] * len(segment)
        seg_labels = [-100] * len(segment)
        seg_labels[len(prompt) - 1] = answer[0]  # ":" predicts the answer
        seg_labels[len(prompt)] = answer[1]  # the answer predicts </s>
        labels += seg_labels
    return ids, positions, blocks, labels, grounding


def collate(examples, pad_id):
    length = max(len(e[0]) for e in examples)
    B = len(examples)
    ids = torch.full((B, length), pad_id)
    positions = torch.zeros((B, length), dtype=torch.long)
    blocks = torch.full((B, length), -1)
    labels = torch.full((B, length), -100)
    for b, (i, p, k, lab, _) in enumerate(examples):
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


def sample_batch(kind, rng, tokenizer, processor, tokens_per_image, max_objects=5, kinds=None):
    if kind == "clip":
        items = [scenes.make_clip(int(rng.integers(scenes.TRAIN_SEED_START, 2**31))) for _ in
                 range(TRAIN["batch_clips"])]
        images = [frame for clip in items for frame in clip.frames]
        objects = [objs for clip in items for objs in clip.frames_objects]
        examples = [encode_example(tokenizer, tokens_per_image * scenes.FRAMES, clip.questions,
                                   [np.concatenate([scenes.object_token_mask(objs[0]) for objs in clip.frames_objects])])
                    for clip in items]
    else:
        items = [scenes.make_scene(int(rng.integers(scenes.TRAIN_SEED_START, 2**31)), max_objects) for _ in
                 range(TRAIN["batch_images"])]
        images = [scene.image for scene in items]
        objects = [scene.objects for scene in items]
        examples = []
        for scene in items:
            questions = [q for q in scene.questions if kinds is None or q.kind in kinds] or scene.questions
            chosen = [questions[i] for i in rng.permutation(len(questions))[: TRAIN["questions_per_image"]]]
            masks = [np.any([scenes.object_token_mask(scene.objects[i]) for i in q.targets], axis=0) if q.targets
                     else None for q in chosen]
            examples.append(encode_example(tokenizer, tokens_per_image, chosen, masks))
    targets = torch.from_numpy(np.stack([patch_labels(objs) for objs in objects]))
    grounding = [(b, row, mask) for b, e in enumerate(examples) for row, mask in e[4]]
    return (*collate(examples, tokenizer.pad_token_id), pixel_values_of(images, processor.image_processor), targets,
            grounding)


def grounding_loss(layer, captured, grounding, image_start, head=0):
    """Teach one attention head where to look: -log of the attention mass that the last prompt token of each
    question puts on the queried object's visual tokens (softmax over the visual tokens), at one decoder
    layer and head. Training only; the saved model is stock. Without it the decoder learned answer priors
    and single-object questions but not to pick one object among several (accuracy stalled near 50%)."""
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
        logp = ((keys @ q[b, 0, row]) * attn.scaling).log_softmax(-1)
        losses.append(-torch.logsumexp(logp[torch.from_numpy(mask)], dim=0))
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "weights"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=90, help="safety cap: stop and save after this long")
    parser.add_argument("--checkpoint-every", type=int, default=150)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a TRAIN entry, e.g. --set lr=0.002 patch_loss=0 (recorded in training.json)")
    args = parser.parse_args(argv)
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in TRAIN:
            parser.error(f"unknown TRAIN key {key!r}; known: {', '.join(TRAIN)}")
        TRAIN[key] = type(TRAIN[key])(float(value)) if not isinstance(TRAIN[key], str) else value

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model, processor = build(args.seed)
    model.train()
    tokenizer = processor.tokenizer
    tokens_per_image = (CONFIG["image_size"] // CONFIG["patch_size"]) ** 2
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
    # The projected visual features' scale. Free, they drift to one huge constant vector (norm ~200, every
    # token alike after the decoder's RMSNorm) and grounding never starts. Pulled towards zero, they enter at
    # norm ~12 while the residual stream reaches ~140 in two layers: the visual tokens' high-pass magnitude then
    # grows ~4x by layer 2, CLSE's evolution intensity clamps to 1 everywhere and every CLSE score ties. Pulled
    # to a mean square of feature_target (norm ~90), both are avoided; the architecture stays stock LLaVA.
    captured = {}
    model.model.multi_modal_projector.register_forward_hook(lambda module, args, out: captured.update(features=out))
    grounded_layer = model.model.language_model.layers[TRAIN["grounding_layer"]]
    attn_inputs = {}
    grounded_layer.self_attn.register_forward_pre_hook(lambda module, args, kwargs: attn_inputs.update(kwargs),
                                                       with_kwargs=True)
    start = time.time()
    history = []
    recent = {"image": [], "clip": []}
    step = 0
    for step in range(args.steps):
        kind = "clip" if step % TRAIN["clip_every"] == TRAIN["clip_every"] - 1 else "image"
        max_objects = min(5, 1 + int(4 * step / (TRAIN["curriculum"] * args.steps)))
        kinds = ("color", "shape") if step < TRAIN["grounded_only"] * args.steps else None
        ids, positions, mask, labels, pixel_values, patch_targets, grounding = sample_batch(kind, rng, tokenizer, processor, tokens_per_image,
                                                                  max_objects, kinds)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps) * group["scale"]
        logits = model(input_ids=ids, pixel_values=pixel_values, attention_mask=mask, position_ids=positions).logits
        targets = labels != -100
        loss = torch.nn.functional.cross_entropy(logits[targets], labels[targets])
        features = captured["features"]
        feature_scale = features.pow(2).mean()
        target = TRAIN["feature_target"]
        feature_term = (feature_scale - target).pow(2) / target if target > 0 else feature_scale
        patch_logits = patch_head(features.reshape(-1, features.shape[-1])).split(list(PATCH_TARGETS.values()), -1)
        patch_loss = sum(torch.nn.functional.cross_entropy(part, patch_targets[:, k].reshape(-1))
                         for k, part in enumerate(patch_logits)) / len(PATCH_TARGETS)
        ground = grounding_loss(grounded_layer, attn_inputs, grounding, image_start=2)
        optimizer.zero_grad(set_to_none=True)
        (loss + TRAIN["feature_penalty"] * feature_term + TRAIN["patch_loss"] * patch_loss
         + TRAIN["grounding_loss"] * ground).backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *patch_head.parameters()], 1.0)
        optimizer.step()
        # answer accuracy: the positions whose label is not </s>
        answer_positions = targets & (labels != tokenizer.eos_token_id)
        correct = (logits[answer_positions].argmax(-1) == labels[answer_positions]).float().mean().item()
        recent[kind] = (recent[kind] + [correct])[-20:]
        elapsed = time.time() - start
        if step % 10 == 0 or step == args.steps - 1:
            entry = {"step": step, "loss": round(loss.item(), 4), "feature_ms": round(feature_scale.item(), 3),
                     "patch_loss": round(patch_loss.item(), 4), "grounding": round(ground.item(), 3), "acc_image": round(float(np.mean(recent["image"] or [0])), 3),
                     "acc_clip": round(float(np.mean(recent["clip"] or [0])), 3), "lr": round(learning_rate(step, args.steps), 6),
                     "minutes": round(elapsed / 60, 2)}
            history.append(entry)
            print(json.dumps(entry), flush=True)
        if (step + 1) % args.checkpoint_every == 0:
            save(model, processor, args.out, {"seed": args.seed, "steps_done": step + 1, "steps": args.steps,
                                              "config": CONFIG, "train": TRAIN, "history": history})
        if elapsed > args.minutes * 60:
            print(f"stopping at the {args.minutes}-minute cap after {step + 1} steps", flush=True)
            break
    model.eval()
    save(model, processor, args.out, {"seed": args.seed, "steps_done": step + 1, "steps": args.steps,
                                      "config": CONFIG, "train": TRAIN, "history": history,
                                      "minutes": round((time.time() - start) / 60, 1)})


if __name__ == "__main__":
    main()

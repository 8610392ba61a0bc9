"""The object sweep on the embedded model (its scenes are the ground truth): identical objects at different
heights compete for one budget. Two scenes of four identical red circles each (48 px, about 12 tokens apiece,
48 of the 256 tokens per scene, more than the page's default budget of 28) on a diagonal, the second scene's
circles between the first's, give eight heights from the top of the frame to the bottom; the question counts
them, so every circle matters equally. For each height, the share of that circle's visual tokens each method
keeps. A content-driven method spreads the budget over the circles whatever their height; a position-biased
one keeps the circles late in the sequence (bottom rows), or early ones, more."""

import dataclasses

import numpy as np

from explorer.core.engine import encode_input, run
from models.shapes_llava import scenes

SIZE = 48
HEIGHTS = 8  # two scenes of four


def sweep_scenes(heights=HEIGHTS, size=SIZE):
    """[(scene, [height of each object as a share of the frame])]: heights evenly spaced from top to bottom,
    alternating between two scenes; each scene's objects on a diagonal so they never overlap."""
    half = size / 2
    rows = np.linspace(half, scenes.IMAGE_SIZE - half, heights)
    out = []
    for part in (0, 1):
        ys = rows[part::2]
        xs = np.linspace(half, scenes.IMAGE_SIZE - half, len(ys))[::1 if part == 0 else -1]
        scene = scenes.identical_objects_scene(list(zip(xs, ys)), size=size)
        out.append((scene, [round(float(y / scenes.IMAGE_SIZE), 3) for y in ys]))
    return out


def positional_sweep(model, processor, family, settings):
    """{"positions": [height], "recall": {method: [share of that object's tokens kept]}, "object"} for every
    method of settings.methods (with every other setting of the request: K, L, early_kv, invert, ...)."""
    methods = list(settings.methods)
    settings = dataclasses.replace(settings, max_new_tokens=1, repeats=1, follow_ups=())
    found = {}
    for scene, heights in sweep_scenes():
        encoded = encode_input(model, processor, family, [scene.image], scene.questions[0].text, "image",
                               settings.prompt)
        records = {m: run(model, processor, encoded, m, settings) for m in methods}
        budget = sum(len(records[m].kept_indices) for m in methods) / max(len(methods), 1) / encoded.groups[0].count
        for obj, height in zip(scene.objects, heights):
            target = scenes.object_token_mask(obj)
            found[height] = {}
            for method, record in records.items():
                kept = np.zeros(record.visual_tokens, dtype=bool)
                kept[record.kept_indices] = True
                found[height][method] = round(float(kept[target].mean()), 4)
    positions = sorted(found)
    return {"positions": positions, "recall": {m: [found[p][m] for p in positions] for m in methods},
            "object": f"{HEIGHTS // 2} identical red circles of {SIZE} px per scene, counted",
            "kept_share": round(float(budget), 4)}

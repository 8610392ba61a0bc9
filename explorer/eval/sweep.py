"""Positional sweep on the embedded model (its scenes are the ground truth): one object moved from the top of
the frame to the bottom; for each place, the share of the object's visual tokens each method keeps. A
content-driven method keeps the object wherever it is; a position-biased one keeps it more when it sits late in
the sequence (bottom rows)."""

import dataclasses

import numpy as np

from explorer.core.engine import encode_input
from explorer.core.engine import run
from models.shapes_llava import scenes


def positional_sweep(model, processor, family, settings, steps=8, shape="circle", color="red", size=56):
    """For each of `steps` places from top to bottom, the share of the object's tokens each of
    settings.methods keeps (with every other setting of the request: K, L, early_kv, invert, ...)."""
    methods = list(settings.methods)
    settings = dataclasses.replace(settings, max_new_tokens=1, repeats=1)
    half = size / 2
    rows = np.linspace(half, scenes.IMAGE_SIZE - half, steps)
    sweep = {"positions": [], "recall": {m: [] for m in methods}, "object": f"{color} {shape}, {size} px"}
    for y in rows:
        scene = scenes.single_object_scene(shape, color, (scenes.IMAGE_SIZE / 2, y), size)
        target = scenes.object_token_mask(scene.objects[0])
        encoded = encode_input(model, processor, family, [scene.image], scene.questions[0].text, "image",
                               settings.prompt)
        sweep["positions"].append(round(float(y / scenes.IMAGE_SIZE), 3))
        for method in methods:
            record = run(model, processor, encoded, method, settings)
            kept = np.zeros(record.visual_tokens, dtype=bool)
            kept[record.kept_indices] = True
            sweep["recall"][method].append(round(float(kept[target].mean()), 4))
    return sweep

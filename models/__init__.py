"""Model families and loading. One file per family; each knows where its visual tokens are and what grid
they form. `load` takes a hub id or a local directory (save_pretrained layout) and returns the model, its
processor and its family module."""

import os
import time

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from models import llava, qwen2_vl

FAMILIES = [llava, qwen2_vl]
EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "shapes_llava", "weights")
EMBEDDED_ID = "shapes-llava"


class ModelLoadError(RuntimeError):
    pass


def family_of(model):
    name = type(model).__name__
    for family in FAMILIES:
        if name in family.MODEL_CLASSES:
            return family
    supported = ", ".join(c for f in FAMILIES for c in f.MODEL_CLASSES)
    raise ModelLoadError(f"{name} is not supported (supported: {supported})")


def hub_ids():
    return [hub_id for family in FAMILIES for hub_id in family.HUB_IDS]


def resolve(model_id):
    """The embedded model's name, a local directory, or a hub id -> what from_pretrained should get."""
    if model_id in (None, "", EMBEDDED_ID):
        return EMBEDDED_DIR
    return model_id


def load(model_id=None, dtype=torch.float32):
    """Load model + processor exactly as a hub checkpoint is loaded (safetensors only, no remote code)."""
    source = resolve(model_id)
    start = time.perf_counter()
    try:
        processor = AutoProcessor.from_pretrained(source)
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, use_safetensors=True, attn_implementation="sdpa"
        )
    except OSError as error:
        if os.path.isdir(source):
            raise ModelLoadError(f"cannot load model from directory {source}: {error}") from None
        raise ModelLoadError(
            f"cannot load {source!r}: it is not a local directory and the Hugging Face hub could not provide it "
            f"({str(error).splitlines()[0]}). Download it where the hub is reachable "
            f"(e.g. `huggingface-cli download {source} --local-dir DIR`) and pass the directory instead."
        ) from None
    model.eval()
    family = family_of(model)
    model.load_seconds = time.perf_counter() - start
    return model, processor, family

"""Model families and loading. One file per family (the contract is in models/base.py); adding a family is one
file and one line in FAMILIES. `load` takes a hub id or a local directory (save_pretrained layout) and returns
the model, its processor and its family module, on the device and in the dtype asked for."""

import os
import time

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from models import internvl, llava, llava_next, llava_next_video, llava_onevision, qwen2_vl, qwen3_vl, video_llava
from models.base import BadInput

FAMILIES = [llava, qwen2_vl, qwen3_vl, internvl, video_llava, llava_onevision, llava_next, llava_next_video]
EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "shapes_llava", "weights")
EMBEDDED_ID = "shapes-llava"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(BadInput):
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


def pick_device(device=None):
    """"auto"/None: CUDA if present, then Apple MPS, else the CPU; otherwise the device named."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise BadInput(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}") from None


def pick_dtype(dtype, device):
    """"auto"/None: bfloat16 on a CUDA device that supports it, else float16 on CUDA and MPS, float32 on the
    CPU (bfloat16 matmuls are several times slower than float32 on most CPUs)."""
    if dtype in (None, "", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise BadInput(f"dtype must be auto, {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def load(model_id=None, device=None, dtype=None, device_map=None, progress=None):
    """Load model + processor exactly as a hub checkpoint is loaded (safetensors only, no remote code). With
    device_map (e.g. "auto", accelerate) the model may span several devices; device is then ignored."""
    source = resolve(model_id)
    target = pick_device(device)
    dtype = pick_dtype(dtype, target if device_map is None else torch.device("cuda" if torch.cuda.is_available()
                                                                                else "cpu"))
    start = time.perf_counter()
    if progress:
        progress(f"loading {model_id or EMBEDDED_ID} ({str(dtype).removeprefix('torch.')})")
    try:
        processor = AutoProcessor.from_pretrained(source)
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, use_safetensors=True, attn_implementation="sdpa", device_map=device_map)
    except (OSError, ValueError, KeyError) as error:
        if os.path.isdir(source):
            raise ModelLoadError(f"cannot load a model from directory {source}: {str(error).splitlines()[0]}") from None
        raise ModelLoadError(
            f"cannot load {source!r}: it is not a local directory and the Hugging Face hub could not provide it "
            f"({str(error).splitlines()[0]}). Download it where the hub is reachable "
            f"(e.g. `huggingface-cli download {source} --local-dir DIR`) and pass the directory instead."
        ) from None
    if device_map is None:
        model.to(target)
    model.eval()
    family = family_of(model)
    model.load_seconds = time.perf_counter() - start
    return model, processor, family

"""Model families and loading. A family file says only what differs from the shared defaults of models/base.py
(SHARED, filled in here); a model no file claims runs on those defaults alone (models/generic.py) when its
visual tokens enter the decoder's sequence, and is refused with a sentence when they do not. Adding a family is
one file and one line in FAMILIES. `load` takes a hub id or a local directory (save_pretrained layout) and
returns the model, its processor and its family module, on the device and in the dtype asked for."""

import os
import time

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from models import (gemma4, generic, internvl, llama4, llava, llava_next, llava_next_video, llava_onevision, qwen2_vl,
                    qwen3_vl, video_llava)
from models.base import SHARED, BadInput, stock_text_model, visual_token_ids

FAMILIES = [llava, qwen2_vl, qwen3_vl, internvl, video_llava, llava_onevision, llava_next, llava_next_video, gemma4,
            llama4]
for _module in [*FAMILIES, generic]:
    for _name, _default in SHARED.items():
        if not hasattr(_module, _name):
            setattr(_module, _name, _default)
EMBEDDED_DIR = os.path.join(os.path.dirname(__file__), "shapes_llava", "weights")
EMBEDDED_ID = "shapes-llava"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(BadInput):
    pass


def claims():
    """{model class name: the family file claiming it}; ValueError if two files claim one class."""
    owner = {}
    for family in FAMILIES:
        for name in family.MODEL_CLASSES:
            if name in owner:
                raise ValueError(f"{name} is claimed by both {owner[name].__name__} and {family.__name__}")
            owner[name] = family
    return owner


CROSS = "its images enter through cross-attention layers, not as tokens in the decoder's sequence"
QUERIES = ("a fixed set of learned queries (a Q-former or resampler) stands for the image in the decoder, not its "
           "patches: there is no grid of visual tokens to prune")
ENCODER = "the image goes into an encoder whose output a separate decoder cross-attends to (an encoder-decoder)"
# Architectures of transformers' image-text-to-text mapping whose visual tokens do not enter a decoder's sequence
# as image patches (docs/families.md has the table of all of them).
REFUSED_TYPES = {
    "idefics": CROSS, "mllama": CROSS, "evolla": CROSS, "blip": CROSS,
    "blip-2": QUERIES, "instructblip": QUERIES, "instructblipvideo": QUERIES, "kosmos-2": QUERIES,
    "kosmos-2.5": QUERIES,
    "florence2": ENCODER, "pix2struct": ENCODER, "udop": ENCODER, "vision-encoder-decoder": ENCODER,
    "t5gemma2": ENCODER, "pp_formulanet": ENCODER, "diffusion_gemma": ENCODER,
    "git": "its image features are prepended to a BERT-style decoder's input with no placeholder token to find them by",
    "pi0": "a robot action model: its action expert, not a text decoder, produces the output",
    "mistral4": "a text-only language model registered under image-text-to-text (its vision path is Mistral 3's)",
}


def refusal(model):
    """Why the explorer cannot prune this model's visual tokens inside its decoder (a sentence), or None."""
    name = type(model).__name__
    model_type = getattr(model.config, "model_type", "")
    if model_type in REFUSED_TYPES:
        return f"{name} cannot be pruned here: {REFUSED_TYPES[model_type]}"
    if not visual_token_ids(model):
        return (f"{name} has no image or video placeholder token in its config: its visual features do not enter "
                "the decoder's sequence as tokens (cross-attention, a Q-former or an encoder-decoder), so there are "
                "no visual tokens in the decoder to prune")
    try:
        stock_text_model(model)
    except BadInput as error:
        return str(error)
    text_config = model.config.get_text_config()
    if getattr(text_config, "num_kv_shared_layers", 0):
        return (f"{name} shares its key/value cache across layers (num_kv_shared_layers = "
                f"{text_config.num_kv_shared_layers}): its later layers read keys computed for the whole sequence "
                "by earlier ones, so tokens cannot be pruned between them")
    if getattr(text_config, "altup_num_inputs", None):
        return (f"{name} carries several streams of hidden states between its layers (AltUp), which a pruning "
                "stage cannot restrict together with the cache it shares across layers")
    return None


def family_of(model):
    """The family file claiming the model's class, else the generic path; ModelLoadError with the reason where
    the model's visual tokens cannot be pruned in its decoder."""
    why = refusal(model)
    if why:
        raise ModelLoadError(why)
    return claims().get(type(model).__name__, generic)


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

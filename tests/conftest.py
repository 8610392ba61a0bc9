import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models gain nothing from threads; robust when the machine is busy

from explorer.serve.launch import ROOT, app_server  # noqa: E402, F401  (the page tests start the real app)
from models import llava, qwen2_vl  # noqa: E402
from models.shapes_llava.build import llava_processor, random_llava, word_tokenizer  # noqa: E402
from tests.tiny_models import qwen2_vl_processor, qwen_tokenizer, tiny_qwen2_vl  # noqa: E402

WORDS = "what color is the circle square ? red green blue yes no one two three".split()

# The fast tier, `pytest -m "not slow"`: every test but these files (real page servers, a browser, lmms-eval's
# command line, the embedded model's accuracy evaluation) and the tests marked @pytest.mark.slow in the other
# files (the command line or the page in a fresh process, lmms-eval imported, the example notebook, a fresh
# virtual environment, and the few in-process tests that take seconds each on the 2-core machine).
# The whole suite (`pytest tests`, tests/run.sh) runs them all, as before.
SLOW_FILES = {"test_app.py", "test_browser.py", "test_embedded.py", "test_hardening.py", "test_lmms_eval.py",
              "test_public_page.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


class Tiny:
    """A tiny random-weight LLaVA built from a config in code, with its real processor."""

    def __init__(self, image_size=84, patch_size=14, **kwargs):
        self.tokenizer = word_tokenizer(WORDS)
        self.processor = llava_processor(self.tokenizer, image_size, patch_size)
        self.model = random_llava(self.tokenizer, image_size=image_size, patch_size=patch_size, **kwargs)
        self.family = llava
        self.side = image_size // patch_size


class TinyQwen:
    """Processor: 28 px per merged token, 4 to 24 merged tokens per image (300 x 200 -> 4 x 6 merged tokens)."""

    def __init__(self, version, **kwargs):
        self.version = version
        self.tokenizer = qwen_tokenizer(WORDS)
        self.processor = qwen2_vl_processor(self.tokenizer, version=version)
        self.model = tiny_qwen2_vl(self.tokenizer, version=version, **kwargs)
        self.family = qwen2_vl
        with torch.no_grad():  # random weights: keep <|im_end|> from ending answers after a token or two
            self.model.lm_head.weight[self.tokenizer.eos_token_id] = 0.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread is as fast, and immune to the other core being busy (an OpenMP barrier waiting
    for a descheduled thread turns each small matmul into a ~16 ms stall). Restored after each module, since a
    test may run a command's main() with --threads."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    return Tiny()  # 6 x 6 grid, 4 layers, GQA (4 heads, 2 kv heads)


def on_meta_default_device(make):
    """make() with torch's default device set to "meta": a tensor the code creates without naming a device
    lands there and fails loudly (the trap is checked armed first)."""
    torch.set_default_device("meta")
    try:
        assert torch.empty(1).device.type == "meta"
        return make()
    finally:
        torch.set_default_device(None)


def save_tiny(directory):
    """A tiny LLaVA checkpoint (model and processor) written to directory, as a model folder the page can load."""
    tiny = Tiny()
    tiny.model.save_pretrained(directory)
    tiny.processor.save_pretrained(directory)
    return str(directory)


def wait_until(condition, timeout=30):
    """Poll condition() every 0.1 s until it is true (True) or timeout seconds have passed (False)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def random_image(seed, size=(90, 70)):
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))


def write_clip(path, frames=6, size=96):
    """A small VP8 clip of a red circle moving right, written with OpenCV."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 4, (size, size))
    for i in range(frames):
        frame = np.full((size, size, 3), 230, np.uint8)
        cv2.circle(frame, (12 + i * 12, size // 2), 10, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="session")
def embedded():
    import models

    return models.load()  # no id: the embedded model, from its save_pretrained directory


@pytest.fixture(scope="session")
def page_model(tmp_path_factory):
    """The model the page tests run on: a tiny LLaVA saved in the hub layout (loaded like a hub checkpoint)."""
    directory = tmp_path_factory.mktemp("page_model")
    t = Tiny()
    t.model.save_pretrained(directory)
    t.processor.save_pretrained(directory)
    return str(directory)


# ------------------------------------------------------------------------------------------------ oracles


def no_cache_logits(t, encoded, kept_positions, prune_layer, tokens, early_kv="keep", renumber=False):
    """Reference: recompute everything without a cache. Layers < K see every prompt token (early_kv "keep":
    the generated tokens see them too; "prune": the generated tokens do not see the dropped visual tokens),
    layers >= K only the text, the kept visual tokens and the generated tokens (numbered 0.. again where
    `renumber`); returns the logits after each prefix."""
    lm = t.model.model.language_model
    outputs = []
    prompt = encoded.inputs_embeds.shape[1]
    for step in range(len(tokens)):
        extra = lm.embed_tokens(torch.tensor([tokens[:step]], dtype=torch.long))
        hidden = torch.cat([encoded.inputs_embeds, extra], dim=1)
        seq = hidden.shape[1]
        positions = torch.arange(seq).unsqueeze(0)
        is_visual = torch.zeros(seq, dtype=torch.bool)
        for g in encoded.groups:
            is_visual[g.positions] = True
        keep = ~is_visual
        keep[kept_positions] = True
        early = torch.full((seq, seq), float("-inf")).triu(1)
        if early_kv == "prune":
            early[prompt:, ~keep] = float("-inf")
        for i, layer in enumerate(lm.layers):
            if i == prune_layer:
                hidden, positions = hidden[:, keep], positions[:, keep]
                if renumber:
                    positions = torch.arange(hidden.shape[1]).unsqueeze(0)
            cos, sin = lm.rotary_emb(hidden, positions)
            n = hidden.shape[1]
            mask = early if i < prune_layer else torch.full((n, n), float("-inf")).triu(1)
            hidden = layer(hidden, attention_mask=mask[None, None], position_embeddings=(cos, sin))
        outputs.append(t.model.lm_head(lm.norm(hidden[:, -1]))[0].float())
    return outputs

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

from models import llava  # noqa: E402
from models.shapes_llava.build import llava_processor, random_llava, word_tokenizer  # noqa: E402

WORDS = "what color is the circle square ? red green blue yes no one two three".split()


class Tiny:
    """A tiny random-weight LLaVA built from a config in code, with its real processor."""

    def __init__(self, image_size=84, patch_size=14, **kwargs):
        self.tokenizer = word_tokenizer(WORDS)
        self.processor = llava_processor(self.tokenizer, image_size, patch_size)
        self.model = random_llava(self.tokenizer, image_size=image_size, patch_size=patch_size, **kwargs)
        self.family = llava
        self.side = image_size // patch_size


@pytest.fixture(scope="session")
def tiny():
    return Tiny()  # 6 x 6 grid, 4 layers, GQA (4 heads, 2 kv heads)


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
def page_model(tmp_path_factory):
    """The model the page tests run on: a tiny LLaVA saved in the hub layout (loaded like a hub checkpoint)."""
    directory = tmp_path_factory.mktemp("page_model")
    t = Tiny()
    t.model.save_pretrained(directory)
    t.processor.save_pretrained(directory)
    return str(directory)

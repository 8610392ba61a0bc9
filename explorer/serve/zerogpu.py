"""Hugging Face ZeroGPU, as its maintainers document it (shared docs, engineering notes "ZeroGPU"):

- two processes: the web process (this one, never with a CUDA context) and GPU workers forked per
  `@spaces.GPU` call; arguments and results cross by pickle;
- the deployment's models are loaded at import, at module scope, onto "cuda" (`preload`, called by app.py):
  `import spaces` intercepts the move, packs the weights at start-up and a worker streams them in; a model
  that was not loaded then is refused on ZeroGPU (loading it inside a call would pay the whole load in every
  cold worker, inside the visitor's GPU time);
- the decorated functions (explorer/page/service.py: gpu_answer, gpu_diagnose) take and return only
  picklable, CPU-side values: the checked request (PIL images, text, a Settings dataclass) and the payload
  (plain numbers and lists) with the pictures the model saw; no gr.Progress, gr.Request or lock crosses, so
  on ZeroGPU the page reports its progress, and stops for a visitor who left, between the two calls only;
- the duration asked for is sized to the request (request_seconds), checked against the visitor's quota.

`spaces` is imported plainly (requirements.txt): off ZeroGPU its GPU decorator returns the function as it
is. ZeroGPU exists only in Spaces of the Gradio SDK (docs/deployment.md).
"""

import os

import spaces

BASE_SECONDS = 30  # encoding on the GPU, with margin
PER_RUN_SECONDS = 10  # one method's prefill and decode on a 7B model, with margin
MAX_SECONDS = 300


def active():
    """Whether this process serves a ZeroGPU Space (the Space sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def device():
    """Where the deployment's models go: "cuda" on ZeroGPU (intercepted by spaces), else as configured."""
    return os.environ.get("EXPLORER_DEVICE") or ("cuda" if active() else None)


def request_seconds(settings, frames=1):
    """A GPU duration for one comparison: the runs it makes (unpruned + methods, times repeats, plus the flip
    test's runs and each follow-up), longer for more video frames, capped."""
    runs = (1 + len(settings.methods)) * (settings.repeats + 1 + len(settings.follow_ups))
    return min(MAX_SECONDS, BASE_SECONDS + PER_RUN_SECONDS * runs * max(1, frames // 4))


def gpu(duration):
    """spaces.GPU(duration=duration): a worker process on ZeroGPU, the function unchanged elsewhere."""
    return spaces.GPU(duration=duration)

"""Hugging Face ZeroGPU: on a ZeroGPU Space (the `spaces` package importable and SPACES_ZERO_GPU set, as the
Space sets it), the page's model work runs inside `spaces.GPU` with a duration sized to the request; anywhere
else the function runs as it is. ZeroGPU exists only in Spaces of the Gradio SDK (README, "Deploy on a GPU
Space")."""

import os

BASE_SECONDS = 30  # loading a cached model onto the GPU and encoding
PER_RUN_SECONDS = 10  # one method's prefill and decode on a 7B model, with margin
MAX_SECONDS = 300


def active():
    if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "true"):
        return False
    try:
        import spaces  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def request_seconds(settings, frames=1):
    """A GPU duration for one comparison: the runs it makes (unpruned + methods, times repeats, plus the flip
    test's runs), longer for more video frames, capped."""
    runs = (1 + len(settings.methods)) * (settings.repeats + 1)
    return min(MAX_SECONDS, BASE_SECONDS + PER_RUN_SECONDS * runs * max(1, frames // 4))


def on_gpu(duration):
    """Decorator: spaces.GPU(duration=duration) on ZeroGPU (duration may be a function of the call's
    arguments, as spaces allows), the function unchanged elsewhere."""
    if not active():
        return lambda fn: fn
    import spaces  # noqa: PLC0415

    return spaces.GPU(duration=duration)

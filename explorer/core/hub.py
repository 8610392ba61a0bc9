"""Whether a model id can come from the Hugging Face hub, decided in about a second before anything is loaded.
When the hub cannot be reached, huggingface_hub retries every file of a checkpoint with back-off (about 150 s
before the load fails). So a model id is first sorted (`access`): a local directory or the embedded model; the
hub, reachable; the local cache, loaded in offline mode (`offline`); or refused at once with one sentence.
Torch-free: the command line asks before it imports torch.
"""

import contextlib
import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3.0
EMBEDDED_ID = "shapes-llava"  # models.EMBEDDED_ID (models/ imports torch; tests/test_cli.py checks the two)


class Unavailable(ValueError):
    """A hub id that cannot be loaded: the hub cannot be reached and the local cache does not have it."""


def endpoint():
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def reachable(timeout=TIMEOUT_S):
    """True when the hub's endpoint answers HTTP at all (any status, through the environment's proxies)."""
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):  # URLError, a timeout, a refused connection, a malformed HF_ENDPOINT
        return False
    return True


def needs_hub(model_id):
    """A model id that from_pretrained would look up on the hub: neither the embedded model nor a directory."""
    return bool(model_id) and model_id != EMBEDDED_ID and not os.path.isdir(model_id)


def offline_mode():
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set, as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


def cached(model_id):
    """Whether the local hub cache holds the model's config (a download that at least started)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except ValueError:  # not a valid repo id (huggingface_hub's HFValidationError)
        return False


def access(model_id, timeout=TIMEOUT_S):
    """How model_id will be loaded: "local" (the embedded model or a directory), "hub" (reachable), or "cache"
    (offline mode is on, or the hub cannot be reached: load it with `offline()`). Raises Unavailable with the
    sentence the user sees when the model needs the hub, cannot have it and is not in the local cache."""
    if not needs_hub(model_id):
        return "local"
    if not offline_mode() and reachable(timeout):
        return "hub"
    if cached(model_id):
        return "cache"
    why = "offline mode is on (HF_HUB_OFFLINE)" if offline_mode() else f"the hub ({endpoint()}) cannot be reached"
    raise Unavailable(f"cannot load {model_id!r}: it is not a local directory, {why} and the local hub cache does "
                      f"not have it. Download it where the hub is reachable (e.g. `huggingface-cli download "
                      f"{model_id} --local-dir DIR`) and pass the directory instead.")


@contextlib.contextmanager
def offline(on=True):
    """Inside (when on): huggingface_hub in offline mode, through its environment variable and, when it is
    already imported, its constant (read at each call); both restored on exit."""
    if not on:
        yield
        return
    saved = os.environ.get("HF_HUB_OFFLINE")
    constants = sys.modules.get("huggingface_hub.constants")
    saved_constant = getattr(constants, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_constant if saved_constant is not None else offline_mode()

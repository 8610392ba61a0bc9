"""What a deployment serves: the models it allows, the loaded-model cache, and what a request may cost it.

Allowed models: the embedded one, the hub ids the families offer, the deployment's default (EXPLORER_MODEL)
and directories under the roots named in EXPLORER_MODEL_DIRS (os.pathsep-separated). Every spelling of a
model resolves to one canonical key (directories by realpath), so one model is loaded once; the page names a
model folder by its name (the Model list shows the default's and those under the roots; a name is taken back
to its folder), never by the server's path to it. Anything else is
refused with one sentence, the same whatever the reason, so the page cannot be used to probe the server's
files. Hub ids are downloaded on a visitor's request only where EXPLORER_ALLOW_DOWNLOAD=1 (the deployment's
own default, EXPLORER_MODEL, always may); otherwise only a copy already in the local Hugging Face cache is
used (as with HF_HUB_OFFLINE=1).

At most EXPLORER_MAX_MODELS (default 2) models are loaded at once; the least recently used is unloaded.

The server log gets one line per user error (log_user_error); real faults keep their traceback. While a
request runs, client_gone(request) says whether its visitor has left (Gradio marks the event dead when the
client's event stream closes); the handler hands it to the engine (explorer/core/interrupt.py), which stops
within one decoder layer, and logs one line (log_visitor_left).
"""

import collections
import gc
import logging
import os
import threading

import models
from explorer.core.compare import warm_up
from explorer.serve import env, zerogpu
from models.base import BadInput

REFUSED = ("This model is not available on this page: choose one from the Model list, or a model folder "
           "that this deployment serves.")
DEFAULT_MAX_MODELS = 2
MAX_LISTED_FOLDERS = 50  # model folders the Model list shows (any allowed folder can still be named)
MAX_MODEL_NAME_CHARS = 1024

log = logging.getLogger("explorer")

_loaded = collections.OrderedDict()  # (key, device, dtype) -> (model, processor, family), oldest first
_locks = {}  # (key, device, dtype) -> the lock held while a request uses that model
_cache_lock = threading.Lock()  # guards _loaded and _locks; held while loading, so two loads never overlap


class ModelRefused(BadInput):
    """A model this deployment does not serve, or cannot serve now; the message is for the visitor."""


def model_roots():
    """Real paths of the folders whose subfolders may be loaded (EXPLORER_MODEL_DIRS)."""
    entries = os.environ.get("EXPLORER_MODEL_DIRS", "").split(os.pathsep)
    return [os.path.realpath(entry) for entry in entries if entry.strip()]


def default_model():
    return os.environ.get("EXPLORER_MODEL") or models.EMBEDDED_ID


def downloads_allowed():
    return os.environ.get("EXPLORER_ALLOW_DOWNLOAD") == "1"


def max_models():
    return env.whole_number("EXPLORER_MAX_MODELS", DEFAULT_MAX_MODELS, minimum=1)


def offered_hub_ids():
    """The hub ids this page offers: the families' list, plus the default when it is a hub id."""
    ids = list(models.hub_ids())
    default = default_model()
    if default != models.EMBEDDED_ID and not os.path.isdir(default) and default not in ids:
        ids.append(default)
    return ids


def model_folders(limit=MAX_LISTED_FOLDERS):
    """The names of the model folders (checkpoints: a config.json) under EXPLORER_MODEL_DIRS (the first root holding
    a name wins), sorted, at most `limit`."""
    names = {}
    for root in model_roots():
        try:
            entries = sorted(entry.name for entry in os.scandir(root)
                             if entry.is_dir() and not entry.name.startswith(".")
                             and os.path.isfile(os.path.join(entry.path, "config.json")))  # checkpoints only
        except OSError:
            continue
        for name in entries:
            names.setdefault(name, os.path.join(root, name))
    return sorted(names)[:limit]


def default_choice():
    """The deployment's default as the Model list shows it: a folder by its name, never the server's path."""
    default = default_model()
    return display_name(default) if os.path.isdir(default) else default


def model_choices():
    """What the page's Model list shows, only what this deployment serves: the default first, then the embedded
    model, the model folders, each by its name (canonical_model takes the name back), and the families' hub ids
    only where visitors may download (EXPLORER_ALLOW_DOWNLOAD=1)."""
    hub = offered_hub_ids() if downloads_allowed() else []
    return list(dict.fromkeys([default_choice(), models.EMBEDDED_ID, *model_folders(), *hub]))


def folder_by_name(name):
    """The path of an allowed model folder named `name` (the default's, or one under a root), or None."""
    if name in ("", ".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        return None
    default = default_model()
    if os.path.isdir(default) and display_name(default) == name:
        return default
    for root in model_roots():
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return None


def inside(path, root):
    return os.path.commonpath([path, root]) == root


def canonical_model(model_id):
    """Any spelling of an allowed model -> its one key: EMBEDDED_ID, an offered hub id as the families spell
    it, or the real path of an allowed directory (named by its path, or by its folder's name); None or "" is the
    deployment's default (EXPLORER_MODEL). Raises
    ModelRefused(REFUSED) for anything else."""
    text = "" if model_id is None else str(model_id).strip()
    if text == "" and default_model() != models.EMBEDDED_ID:
        text = default_model()  # none named (an API call leaving it out): the deployment's default, as the page's menu
    if text in ("", models.EMBEDDED_ID):
        return models.EMBEDDED_ID
    if len(text) > MAX_MODEL_NAME_CHARS or "\0" in text:
        raise ModelRefused(REFUSED)
    hub_ids = {hub_id.lower(): hub_id for hub_id in offered_hub_ids()}  # the hub treats ids case-insensitively
    if text.lower() in hub_ids:
        return hub_ids[text.lower()]
    text = folder_by_name(text) or text  # a model folder by its name, as the Model list shows it
    if not os.path.isabs(text):  # a relative path would depend on the server's working directory
        raise ModelRefused(REFUSED)
    path = os.path.realpath(text)  # symlinks, "..", "//" and trailing slashes all resolved
    if path == os.path.realpath(models.EMBEDDED_DIR):
        return models.EMBEDDED_ID
    default = default_model()
    allowed = os.path.isdir(default) and path == os.path.realpath(default)
    allowed = allowed or any(inside(path, root) for root in model_roots())
    if not allowed or not os.path.isdir(path):
        raise ModelRefused(REFUSED)
    return path


def source_of(key):
    """What models.load gets for a canonical key: a directory, or a hub id only where downloads are allowed."""
    if key == models.EMBEDDED_ID:
        return models.EMBEDDED_DIR
    if os.path.isabs(key) or downloads_allowed() or key == default_model():
        return key  # the deployment's own default may download: the deployer chose it, not a visitor
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(key, local_files_only=True)  # the local cache only: never the network
    except LocalEntryNotFoundError:
        raise ModelRefused(f"{key} is offered but not downloaded on this server, and this deployment does not "
                           f"download models on request; choose another model.") from None


def load_allowed(key, device=None, dtype=None, progress=None):
    """models.load on an allowed key, then one warm-up run (so that no method of the first request pays for
    it). A folder that holds no loadable model gets the one refusal sentence (the log line has the real
    reason); faults of the embedded model or the machine keep their traceback. The progress it reports names a
    folder by its name (models.load says what it loads by the path it was given)."""
    source = source_of(key)
    if progress is not None and os.path.isabs(source):
        say = progress

        def progress(text):
            return say(str(text).replace(source, display_name(key)))
    try:
        loaded = models.load(source, device=device, dtype=dtype, progress=progress)
    except (models.ModelLoadError, ValueError, OSError, KeyError) as error:
        if key == models.EMBEDDED_ID:
            raise
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        log_user_error(f"model {key} did not load: {type(error).__name__}: {first_line}")
        if os.path.isabs(key):
            raise ModelRefused(REFUSED) from None
        raise ModelRefused(first_line) from None
    warm_up(*loaded, progress=progress)
    return loaded


def unload_oldest():
    """Drop the least recently used model and give its memory back (a request still using it keeps it alive
    until it finishes)."""
    (key, _, _), entry = _loaded.popitem(last=False)
    del entry  # the cache's reference; gc then frees the weights unless a running request still holds them
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.info("unloaded model %s (least recently used; at most %d loaded)", key, max_models())


def get_model(model_id=None, device=None, dtype=None, progress=None):
    """(model, processor, family, lock) for an allowed model, loaded once per canonical key and reused, on
    EXPLORER_DEVICE in EXPLORER_DTYPE unless device / dtype say otherwise (auto: models.pick_device and
    pick_dtype; "cuda" on ZeroGPU). Hold lock while using the model. On ZeroGPU only the models preloaded at
    start are served: a model is never loaded inside a GPU call."""
    key = canonical_model(model_id)
    device = device or zerogpu.device()
    dtype = dtype or os.environ.get("EXPLORER_DTYPE") or None
    cache_key = (key, None if device is None else str(device), None if dtype is None else str(dtype))
    with _cache_lock:
        lock = _locks.setdefault(cache_key, threading.Lock())
        if cache_key in _loaded:
            _loaded.move_to_end(cache_key)
        elif zerogpu.active() and not _preloading:
            served = ", ".join(display_name(k) for k, _, _ in _loaded) or "none"
            raise ModelRefused(f"On this ZeroGPU Space only the models loaded at its start run ({served}); "
                               "choose one of them.")
        else:
            while len(_loaded) >= max_models():
                unload_oldest()
            _loaded[cache_key] = load_allowed(key, device, dtype, progress)
        model, processor, family = _loaded[cache_key]
    return model, processor, family, lock


_preloading = False


def preload():
    """Load the deployment's models now, at import (app.py, module scope): on ZeroGPU what the GPU calls may
    use (EXPLORER_MODEL, or the embedded model), moved to "cuda" where `spaces` intercepts it."""
    global _preloading
    _preloading = True
    try:
        return get_model(default_model())
    finally:
        _preloading = False


def display_name(key):
    """How a result names a model: the embedded model's name, a hub id, or a local folder's name (never the
    server's path to it)."""
    return os.path.basename(key.rstrip(os.sep)) if os.path.isabs(key) else key


def unload_all():
    """Drop every loaded model (tests, and a deployment that wants its memory back)."""
    with _cache_lock:
        while _loaded:
            unload_oldest()


def loaded_models():
    """Canonical keys of the loaded models, least recently used first."""
    with _cache_lock:
        return [key for key, _, _ in _loaded]


def log_user_error(message):
    """One line in the server log for something the visitor can fix (no traceback)."""
    log.info("user error: %s", " ".join(str(message).split())[:500])


def client_gone(request):
    """Whether the visitor of this running request has left: Gradio marks a session's running events dead
    (event.alive = False) when its event stream closes. Reads Gradio 6's queue (pinned in requirements.txt);
    False when that cannot be read (no queue, or called outside a queued event)."""
    session_hash = getattr(request, "session_hash", None)
    http_request = getattr(request, "request", None)
    app = getattr(http_request, "app", None) if http_request is not None else None
    if session_hash is None or app is None or not hasattr(app, "get_blocks"):
        return False
    queue = app.get_blocks()._queue
    events = [event for job in queue.active_jobs if job for event in job if event.session_hash == session_hash]
    return bool(events) and not any(event.alive for event in events)


def log_visitor_left(stopped):
    """One line in the server log for a request stopped because its visitor left (where it stopped)."""
    log.info("visitor left: %s", stopped)

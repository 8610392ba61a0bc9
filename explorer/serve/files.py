"""The files the page hands out (result JSON) and the cleanup of old files: a deployment's disk stays bounded.

A served page works in folders of its own (`use_own_folders`, called by app.py before Gradio starts): Gradio's
uploads and copies go to a fresh subfolder of GRADIO_TEMP_DIR (or the system's temporary folder), the result
files into it too, so the cleaner only ever deletes files this server made, and the whole folder is removed
when the server stops.
"""

import atexit
import json
import os
import shutil
import tempfile
import time

RESULTS_DIR = os.path.join(tempfile.gettempdir(), "pruning-explorer-results")
RESULT_MAX_AGE_S = int(os.environ.get("EXPLORER_FILE_MAX_AGE_S", 30 * 60))  # result files (and, in app.py,
# Gradio's uploads and copies) live this long


def use_own_folders():
    """Point Gradio (GRADIO_TEMP_DIR) and the result files at a new folder of this server's own, removed at
    exit; returns it."""
    global RESULTS_DIR
    base = os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    own = tempfile.mkdtemp(prefix=f"pruning-explorer-{os.getpid()}-", dir=base)
    os.environ["GRADIO_TEMP_DIR"] = own
    RESULTS_DIR = os.path.join(own, "results")
    atexit.register(shutil.rmtree, own, ignore_errors=True)
    return own


def save_result_json(payload):
    """The whole result as a JSON file for download, in our own folder; older results are removed first."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    remove_old_results()
    handle, path = tempfile.mkstemp(prefix="pruning-explorer-", suffix=".json", dir=RESULTS_DIR)
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out)
    return path


def remove_old_results(max_age_s=None, now=None):
    """Delete result files older than max_age_s (default RESULT_MAX_AGE_S); returns how many were removed."""
    return remove_old_files(RESULTS_DIR, RESULT_MAX_AGE_S if max_age_s is None else max_age_s, now)


def remove_old_files(directory, max_age_s, now=None, keep=frozenset()):
    """Delete the files under directory older than max_age_s (by the later of mtime and ctime, as Gradio ages
    its cache), except those in keep, then the emptied subfolders; returns how many entries were removed."""
    now = time.time() if now is None else now
    removed = 0
    for folder, subfolders, files in os.walk(directory, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
                if path not in keep and now - max(info.st_mtime, info.st_ctime) > max_age_s:
                    os.remove(path)
                    removed += 1
            except OSError:  # removed by another thread meanwhile
                continue
        for name in subfolders:
            path = os.path.join(folder, name)
            try:
                if not os.path.islink(path) and not os.listdir(path):
                    os.rmdir(path)
                    removed += 1
            except OSError:  # filled or removed meanwhile
                continue
    return removed

"""The files the page hands out (result JSON) and the cleanup of old files: a deployment's disk stays bounded.

A served page works in folders of its own (`use_own_folders`, called by app.py before Gradio starts): Gradio's
uploads and copies go to a fresh subfolder of GRADIO_TEMP_DIR (or the system's temporary folder), the result
files into it too, so the cleaner only ever deletes files this server made, and the whole folder is removed
when the server stops.
"""

import atexit
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time

RESULTS_DIR = os.path.join(tempfile.gettempdir(), "pruning-explorer-results")
OWN_PREFIX = "pruning-explorer-page-"  # a served page's own folder: pruning-explorer-page-<random>
LEGACY_NAME = re.compile(r"^pruning-explorer-(\d+)-[A-Za-z0-9_]+$")  # before: pruning-explorer-<pid>-<random>
STALE_AFTER_S = 60  # a folder nobody holds is removed at start once it is this old
_own_lock = None  # the open folder whose flock this server holds while it runs
RESULT_MAX_AGE_S = int(os.environ.get("EXPLORER_FILE_MAX_AGE_S", 30 * 60))  # result files (and, in app.py,
# Gradio's uploads and copies) live this long


def use_own_folders():
    """Point Gradio (GRADIO_TEMP_DIR) and the result files at a new folder of this server's own, removed at
    exit; returns it. Its name carries nothing about the server (no pid): a random suffix. The server holds a lock
    on it (flock on the folder itself) for as long as it runs, released by the kernel however it ends; the folders
    of servers that ended without removing theirs (SIGKILL, a crash, a full disk) are removed here first."""
    global RESULTS_DIR, _own_lock
    base = os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    remove_stale_folders(base)
    own = tempfile.mkdtemp(prefix=OWN_PREFIX, dir=base)
    _own_lock = os.open(own, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(_own_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.environ["GRADIO_TEMP_DIR"] = own
    RESULTS_DIR = os.path.join(own, "results")
    atexit.register(shutil.rmtree, own, ignore_errors=True)
    return own


def remove_stale_folders(base, min_age_s=STALE_AFTER_S, now=None):
    """Remove the folders of this page's servers under base that no running server holds (nobody has their lock)
    and that are older than min_age_s (a server that has just made its folder has not locked it yet); older
    folders named with a pid (pruning-explorer-<pid>-...) are removed when that process no longer exists. Nothing
    else under base is touched (the name must be one of ours), links never followed. Returns the names removed."""
    now = time.time() if now is None else now
    removed = []
    for entry in os.scandir(base):
        ours = entry.name.startswith(OWN_PREFIX) or LEGACY_NAME.match(entry.name)
        if not ours or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s or _held(entry.path, entry.name):
                continue
            shutil.rmtree(entry.path)
            removed.append(entry.name)
        except OSError:  # removed or changed meanwhile
            continue
    if removed:
        logging.getLogger("explorer").info("removed %d temporary folders of servers no longer running", len(removed))
    return removed


def _held(path, name):
    """Whether a running server holds this folder: its lock is taken, or (folders named before the lock) the
    pid in its name is a live process."""
    legacy = LEGACY_NAME.match(name)
    if legacy:
        try:
            os.kill(int(legacy.group(1)), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)  # closing releases a lock taken here
    return False


def save_result_json(payload):
    """The whole result as a JSON file for download, in our own folder; older results are removed first. Written
    atomically: into a .part file, flushed to disk, then renamed to its .json name, so a .json file is always
    whole; when the write fails (a full disk), the .part file is removed and the OSError raised."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    remove_old_results()
    handle, partial = tempfile.mkstemp(prefix="pruning-explorer-", suffix=".json.part", dir=RESULTS_DIR)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out)
            out.flush()
            os.fsync(out.fileno())
        path = partial[:-len(".part")]  # unique: mkstemp made the .part name
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
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

"""Start the explorer page: python app.py (then open http://127.0.0.1:7860).

Environment: EXPLORER_MODEL picks the default model (a hub id or a directory; the embedded model otherwise);
EXPLORER_MODEL_DIRS lists folders whose model directories visitors may choose; EXPLORER_ALLOW_DOWNLOAD=1 lets
a visitor's request download an offered hub id; EXPLORER_MAX_MODELS (default 2) bounds the models loaded at
once (explorer/serve/access.py). GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address (Docker and Spaces
use 0.0.0.0:7860). What one visitor can cost the server (queue, per-visitor limit, files, sessions, malloc's mmap
threshold: EXPLORER_PER_ADDRESS, EXPLORER_PER_ADDRESS_EVENTS, EXPLORER_STATE_SESSIONS, EXPLORER_MMAP_THRESHOLD_KB,
...): explorer/serve/limits.py; a video's reading time (EXPLORER_VIDEO_READ_S): explorer/media/read.py.
"""

import atexit
import gc
import logging
import os
import signal
import sys

import spaces  # noqa: F401  (first: on ZeroGPU it must see torch's CUDA before anything initialises it)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from explorer.serve import access, files, limits, zerogpu  # noqa: E402

if __name__ == "__main__":
    limits.fix_mmap_threshold()  # before the model loads: the page's memory stays flat (explorer/serve/limits.py)
    files.use_own_folders()  # before Gradio reads GRADIO_TEMP_DIR: the cleaner then deletes only our files

from explorer.page.ui import build_app  # noqa: E402

if __name__ == "__main__" and zerogpu.active():
    access.preload()  # at module scope, onto "cuda": ZeroGPU packs the weights now and streams them to workers


def configure_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per gradio_client poll otherwise


def stop_on_sigterm(demo):
    """SIGTERM (a container or a test stopping the server): the requests stop (within one decoder layer) and the
    queue empties, at most limits.DRAIN_S seconds, then the process exits 0 through Python, so our folder is
    removed. Should a request not stop in time, the exit handlers run and the process ends without finalising
    the interpreter under a thread still inside the model (which aborts it: exit -6)."""
    def stop(*_):
        logging.getLogger("explorer").info("SIGTERM: the server is stopping (new requests refused, running ones "
                                           "stopped)")
        if limits.stop_serving(demo):
            sys.exit(0)
        logging.getLogger("explorer").warning("a request did not stop within %d s: exiting without it", limits.DRAIN_S)
        atexit._run_exitfuncs()
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    configure_logging()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # while starting: exit through Python (our folder removed)
    demo = limits.prepare(build_app())
    stop_on_sigterm(demo)
    gc.freeze()  # what start-up made lives as long as the server: the collection after each request skips it
    # only gr.Error sentences reach the page, the page's middleware, no monitoring, no run history: limits.py
    demo.launch(**limits.launch_arguments())

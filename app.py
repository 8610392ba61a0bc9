"""Start the explorer page: python app.py (then open http://127.0.0.1:7860).

Environment: EXPLORER_MODEL picks the default model (a hub id or a directory; the embedded model otherwise);
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address (Docker and Spaces use 0.0.0.0:7860).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from explorer.ui import build_app  # noqa: E402

MAX_UPLOAD = "50mb"

if __name__ == "__main__":
    demo = build_app()
    demo.queue(default_concurrency_limit=1, max_size=32)  # model work runs one request at a time
    demo.launch(max_file_size=MAX_UPLOAD, show_error=True)

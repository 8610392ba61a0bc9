"""The real page (python app.py) in a subprocess on a free loopback port: what the page tests, the page benchmark
and the stress script start."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_page(env_extra=None, log_path=None, timeout=180, root=ROOT):
    """The real app (python app.py) in a subprocess on a free loopback port, with extra environment variables;
    yields (url, process). The page tests, this benchmark and the stress script start the page through it (the
    stress script may start another checkout's, `root`, to measure it the same way)."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", **(env_extra or {}))
    if root != ROOT:
        env["PYTHONPATH"] = root
    log = open(log_path or os.devnull, "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout
        while True:
            if process.poll() is not None:
                see = f"; see {log_path}" if log_path else ""
                raise RuntimeError(f"app.py exited with {process.returncode}{see}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError(f"app.py did not answer on {url} within {timeout} s") from None
                time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def app_server(model=None, timeout=180, log_path=None):
    """The page serving `model` (default: EXPLORER_MODEL's default, the embedded model); yields its URL."""
    with start_page({"EXPLORER_MODEL": model} if model else None, log_path, timeout) as (url, _):
        yield url

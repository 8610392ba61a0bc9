"""What one visitor of the public page can cost, on real servers (README, "A public page: what one visitor can
cost"): the per-address limit whatever the session ids, bounded uploads, the server's own temporary folders
(removed on SIGTERM; the cleaner never touches anyone else's files), progressive JPEGs refused by the memory
their decode needs, the prompt's reserved tokens refused in a question, results that name models by id, the
Benchmark tab's report bounds, the examples loader, and the session state Gradio keeps.

Three servers: a small page of our own prepared exactly as app.py prepares the explorer page (limits.prepare,
limits.upload_guard, the same launch arguments) whose `compare` runs until the test releases it, so requests
can be held running or waiting for as long as a check needs (in this process, so the upload bounds can be
lowered for a check); the real page (python app.py through explorer.serve.launch.start_page), one for the
module, its files aging out in seconds, stopped with SIGTERM by its last check; and the explorer page built
in this process (ui.build_app, prepared and launched as app.py does) where a constant read at build time
(STATE_TTL_S) is lowered.
"""

import collections
import contextlib
import http.client
import io
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import threading
import time

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import models
from explorer.media import read as media
from explorer.media.read import MAX_UPLOAD_MB
from explorer.page import events, service
from explorer.page.api import compare_arguments
from explorer.serve import access, files, limits
from explorer.serve.launch import ROOT, free_port, start_page
from tests.conftest import save_tiny, wait_until

SCENE = os.path.join(ROOT, "assets", "scene_205.png")
QUESTION = "where is the red circle ?"
TINY_QUESTION = "what color is the circle ?"


def forwarded(address):
    """Headers that make a client come from `address` behind the trusted proxy (EXPLORER_TRUST_PROXY=1)."""
    return {"X-Forwarded-For": address}


def detail(error):
    """The sentence of a refused join (an HTTP error raised by gradio_client)."""
    return error.response.json()["detail"]


def fn_index(config, api_name):
    for i, dependency in enumerate(config["dependencies"]):
        if dependency.get("api_name") == api_name:
            return dependency.get("id", i)
    raise KeyError(api_name)


def join(url, session, fn, data, headers=None):
    """A private event joined as the browser joins it (POST queue/join, then the session's event stream): the
    join's HTTP status and the stream's messages up to the event's completion."""
    response = httpx.post(url + "gradio_api/queue/join", headers=headers,
                          json={"data": data, "fn_index": fn, "session_hash": session, "event_data": None})
    if response.status_code != 200:
        return response.status_code, [response.json()]
    messages = []
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                messages.append(message)
                if message.get("msg") == "process_completed":
                    break
    return response.status_code, messages


def completed(messages):
    return next(m for m in messages if m.get("msg") == "process_completed")


def warnings_in(messages):
    return [m["log"] for m in messages if m.get("msg") == "log" and m.get("level") == "warning"]


def upload(url, path, headers=None):
    """One file through Gradio's upload route, as the page uploads: the server's path of it."""
    with open(path, "rb") as data:
        response = httpx.post(url + "gradio_api/upload", headers=headers,
                              files={"files": (os.path.basename(path), data)})
    response.raise_for_status()
    return response.json()[0]


def file_data(server_path):
    return {"path": server_path, "orig_name": os.path.basename(server_path), "meta": {"_type": "gradio.FileData"}}


def payload_of(outputs):
    """The result JSON among /compare's outputs."""
    return next(o for o in outputs if isinstance(o, dict) and "results" in o)


def files_under(folder):
    return [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]


# ------------------------------------------------------------------- a page prepared as app.py prepares it


class HeldPublicPage:
    """A real Gradio server prepared exactly as app.py prepares the explorer page (limits.prepare, the upload
    guard, the same launch arguments), whose `compare` (the model group, as the page's) runs until released."""

    def __init__(self, cache):
        self.release = threading.Event()
        self.started = threading.Event()
        self.cache = cache
        with gr.Blocks() as demo:
            seconds = gr.Number()
            gr.Button().click(self.hold, seconds, seconds, api_name="compare", concurrency_id="model")
        self.demo = limits.prepare(demo, file_max_age_s=600)
        self.port = free_port()
        self.demo.launch(server_name="127.0.0.1", server_port=self.port, prevent_thread_lock=True, quiet=True,
                         max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=False, app_kwargs=limits.upload_guard(),
                         state_session_capacity=limits.STATE_SESSIONS)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.compare_fn = fn_index(httpx.get(self.url + "config").json(), "compare")

    def hold(self, seconds):
        self.started.set()
        self.release.wait(timeout=seconds)
        return seconds

    def pending(self, **match):
        return limits.pending_requests(self.demo._queue, limits.LIMITED_CONCURRENCY_ID, **match)

    def idle(self):
        queue = self.demo._queue
        waiting = queue.event_queue_per_concurrency_id.get(limits.LIMITED_CONCURRENCY_ID)
        return not (waiting is not None and waiting.queue) and not any(job for job in queue.active_jobs if job)

    def fresh(self):
        """Nothing held from an earlier check: released, finished, then closed again for the next one."""
        self.release.set()
        assert wait_until(self.idle)
        self.release.clear()
        self.started.clear()


@pytest.fixture(scope="module")
def held_page(tmp_path_factory):
    cache = tmp_path_factory.mktemp("held-public-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(cache))  # read by Gradio at build and at every upload
        patch.setenv("EXPLORER_TRUST_PROXY", "1")  # read at every request: X-Forwarded-For names the visitor
        patch.delenv("EXPLORER_PER_ADDRESS", raising=False)  # the default, 2
        patch.delenv("SPACE_ID", raising=False)
        # uvicorn itself replaces the connection's address by X-Forwarded-For's when the connection comes from
        # FORWARDED_ALLOW_IPS (default: loopback, where these tests connect from): trust no connection of
        # this test, so that the address is only what limits.address_of makes of the connection and headers
        patch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
        page = HeldPublicPage(cache)
        yield page
        page.release.set()
        page.demo.close()


# ------------------------------------------------------------------- 1. the per-address limit


def test_address_is_the_connections_unless_the_proxy_is_trusted(monkeypatch):
    monkeypatch.delenv("EXPLORER_TRUST_PROXY", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    connection = ("127.0.0.1", 50000)
    assert not limits.trusted_proxy()
    assert limits.address_of({"x-forwarded-for": "1.2.3.4"}, connection) == "127.0.0.1"
    assert limits.address_of({"x-forwarded-for": "1.2.3.4, 5.6.7.8"}, connection) == "127.0.0.1"
    assert limits.address_of({}, None) == "unknown"
    monkeypatch.setenv("EXPLORER_TRUST_PROXY", "1")
    assert limits.trusted_proxy()
    # the last entry is the one the proxy appended; the ones before it are the client's to choose
    assert limits.address_of({"x-forwarded-for": "1.2.3.4, 5.6.7.8"}, connection) == "5.6.7.8"
    assert limits.address_of({"x-forwarded-for": " 9.9.9.9 "}, connection) == "9.9.9.9"
    assert limits.address_of({"x-forwarded-for": "1.2.3.4, 5.6.7.8, "}, connection) == "5.6.7.8"
    for empty in ({"x-forwarded-for": ""}, {"x-forwarded-for": " , "}, {}):
        assert limits.address_of(empty, connection) == "127.0.0.1"
    monkeypatch.setenv("EXPLORER_TRUST_PROXY", "0")
    assert limits.address_of({"x-forwarded-for": "1.2.3.4"}, connection) == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "someone/explorer")  # a Space sits behind its own proxy
    assert limits.address_of({"x-forwarded-for": "1.2.3.4, 5.6.7.8"}, connection) == "5.6.7.8"


def test_per_address_limit_setting(monkeypatch):
    for value, limit in (("", 2), ("3", 3), ("0", 1), ("1", 1), ("-4", 2), ("two", 2), (" 5 ", 5)):
        monkeypatch.setenv("EXPLORER_PER_ADDRESS", value)
        assert limits.per_address_limit() == limit, value
    monkeypatch.delenv("EXPLORER_PER_ADDRESS")
    assert limits.per_address_limit() == 2
    assert limits.per_address_refusal(2).startswith("Your network address already has 2 comparison(s)")


def test_state_sessions_setting(monkeypatch):
    for value, count in (("", 10), ("4", 4), ("0", 1), ("-3", 10), ("many", 10)):
        monkeypatch.setenv("EXPLORER_STATE_SESSIONS", value)
        assert limits.state_sessions() == count, value
    monkeypatch.delenv("EXPLORER_STATE_SESSIONS")
    assert limits.state_sessions() == limits.STATE_SESSIONS == 10  # the page's default (this run sets none)


MMAP_PROBE = """
import ctypes, ctypes.util, sys
from explorer.serve import limits
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
took = limits.fix_mmap_threshold()
libc.free(libc.malloc(3 << 20))  # freeing an mmap'd 3 MB block raises glibc's own threshold to 3 MB
before = libc.mallinfo2().hblkhd
held = libc.malloc(2 << 20)
print(took, (libc.mallinfo2().hblkhd - before) >> 20)
"""


@pytest.mark.parametrize("setting, took, mapped_mb", [("", True, 2), ("0", False, 0)])
def test_the_served_page_fixes_mallocs_mmap_threshold(setting, took, mapped_mb):
    """limits.fix_mmap_threshold (app.py calls it): a 2 MB block freed and asked again gets memory of its own
    (mmap, handed back when freed) instead of a place in the heap, where glibc's dynamic threshold would put it
    once a larger block had been freed (EXPLORER_MMAP_THRESHOLD_KB=0 leaves glibc's)."""
    env = dict(os.environ, EXPLORER_MMAP_THRESHOLD_KB=setting)
    out = subprocess.run([sys.executable, "-c", MMAP_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(took), str(mapped_mb)]


def test_one_address_holds_at_most_the_limit_whatever_its_session_ids(held_page):
    page = held_page
    page.fresh()
    address, other = "10.1.0.1", "10.1.0.2"
    running = Client(page.url, verbose=False, headers=forwarded(address)).submit(60, api_name="/compare")
    assert page.started.wait(30)
    waiting = Client(page.url, verbose=False, headers=forwarded(address)).submit(60, api_name="/compare")
    assert wait_until(lambda: page.pending(client_address=address) == 2)
    refusal = limits.per_address_refusal(2)
    # a third session (a new gradio_client) from the same address; the entries before the proxy's are the
    # client's to choose, and choosing them gives no new address
    with pytest.raises(Exception) as refused:
        Client(page.url, verbose=False, headers=forwarded(f"66.6.6.6, {address}")).predict(0, api_name="/compare")
    assert refused.value.response.status_code == 400 and detail(refused.value) == refusal
    # a session id of the caller's choosing in the body of a REST call, and in the browser's queue/join
    for i in range(3):
        response = httpx.post(page.url + "gradio_api/call/compare", headers=forwarded(address),
                              json={"data": [0], "session_hash": f"rotating-{i}"})
        assert response.status_code == 400 and response.json()["detail"] == refusal
    status, messages = join(page.url, "rotating-join", page.compare_fn, [0], headers=forwarded(address))
    assert status == 400 and messages[0]["detail"] == refusal
    assert page.pending(client_address=address) == 2  # nothing refused joined the queue
    # another address is still served (it waits in the same queue)
    served = Client(page.url, verbose=False, headers=forwarded(other)).submit(0, api_name="/compare")
    response = httpx.post(page.url + "gradio_api/call/compare", headers=forwarded(other),
                          json={"data": [0], "session_hash": "rotating-other"})
    assert response.status_code == 200 and "event_id" in response.json()
    assert wait_until(lambda: page.pending(client_address=other) == 2)
    page.release.set()
    assert running.result(timeout=60) == 60 and waiting.result(timeout=60) == 60 and served.result(timeout=60) == 0
    assert wait_until(page.idle)
    # the limit counts what runs or waits: once those finished, the address is served again
    assert Client(page.url, verbose=False, headers=forwarded(address)).predict(0, api_name="/compare") == 0


def test_forwarded_for_gives_no_new_address_without_a_trusted_proxy(held_page, monkeypatch):
    page = held_page
    page.fresh()
    monkeypatch.delenv("EXPLORER_TRUST_PROXY")
    running = Client(page.url, verbose=False, headers=forwarded("10.2.0.1")).submit(60, api_name="/compare")
    assert page.started.wait(30)
    waiting = Client(page.url, verbose=False, headers=forwarded("10.2.0.2")).submit(60, api_name="/compare")
    assert wait_until(lambda: page.pending(client_address="127.0.0.1") == 2)  # both counted on the connection
    with pytest.raises(Exception) as refused:
        Client(page.url, verbose=False, headers=forwarded("10.2.0.3")).predict(0, api_name="/compare")
    assert detail(refused.value) == limits.per_address_refusal(2)
    page.release.set()
    assert running.result(timeout=60) == 60 and waiting.result(timeout=60) == 60


# ------------------------------------------------------------------- 2. uploads


def names_in(folder, prefix):
    return [path for path in files_under(folder) if os.path.basename(path).startswith(prefix)]


def test_more_files_than_allowed_in_one_upload_are_refused_and_deleted(held_page):
    url, n = held_page.url, limits.UPLOAD_FILES_PER_REQUEST
    allowed = [("files", (f"fourfiles-{i}.txt", b"a small file")) for i in range(n)]
    response = httpx.post(url + "gradio_api/upload", headers=forwarded("10.3.0.1"), files=allowed)
    assert response.status_code == 200 and len(response.json()) == n
    assert all(os.path.exists(path) for path in response.json())
    too_many = [("files", (f"fivefiles-{i}.txt", b"a small file")) for i in range(n + 1)]
    response = httpx.post(url + "gradio_api/upload", headers=forwarded("10.3.0.2"), files=too_many)
    assert response.status_code == 413
    assert response.json()["detail"] == f"At most {n} files per upload."
    assert names_in(held_page.cache, "fivefiles-") == []  # stored by Gradio, then deleted by the guard
    many = [("files", (f"manyfiles-{i}.txt", b"x")) for i in range(50)]
    response = httpx.post(url + "gradio_api/upload", headers=forwarded("10.3.0.3"), files=many)
    assert response.status_code == 413 and names_in(held_page.cache, "manyfiles-") == []


def raw_upload_response(port, headers, body=b""):
    """(status, JSON body) of a POST to the upload route with exactly these headers, sending `body` only."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", "/gradio_api/upload")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if body:
            connection.send(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_upload_declaring_too_large_a_size_is_refused_before_its_body_is_read(held_page):
    limit = (MAX_UPLOAD_MB + 1) * 2**20
    sentence = f"An upload must say its size and be at most {MAX_UPLOAD_MB} MB."
    # 2 GB declared and not one byte of it sent: refused from the header alone
    for declared in (limit + 1, 2 * 2**30):
        status, body = raw_upload_response(held_page.port, {
            "Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": str(declared),
            "X-Forwarded-For": "10.4.0.1"})
        assert status == 413 and body["detail"] == sentence
    # no declared size (chunked): refused too

    def chunks():
        yield (b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="chunked-upload.txt"\r\n\r\n'
               b"abc\r\n--xyz--\r\n")

    response = httpx.post(held_page.url + "gradio_api/upload", content=chunks(),
                          headers={"Content-Type": "multipart/form-data; boundary=xyz", **forwarded("10.4.0.1")})
    assert response.status_code == 413 and response.json()["detail"] == sentence
    assert names_in(held_page.cache, "chunked-upload.txt") == []


def test_the_deep_link_route_is_refused_and_writes_nothing(held_page):
    """Gradio's /gradio_api/deep_link saves a session's whole page under the upload folder; the page offers no
    deep links (and keeps no values for one: limits.keep_no_output_values)."""
    client = Client(held_page.url, verbose=False)
    before = files_under(held_page.cache)
    for path in ("gradio_api/deep_link", "gradio_api/deep_link/"):
        response = httpx.get(held_page.url + path, params={"session_hash": client.session_hash})
        assert response.status_code == 404 and response.json()["detail"] == limits.NO_DEEP_LINKS
    assert files_under(held_page.cache) == before


def test_uploads_per_address_are_bounded_in_files_and_bytes_within_the_window(held_page, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "UPLOAD_FILES", 3)
    small = tmp_path / "window-small.txt"
    small.write_bytes(b"small")
    url, address = held_page.url, "10.5.0.1"
    for _ in range(3):
        upload(url, small, forwarded(address))
    response = httpx.post(url + "gradio_api/upload", headers=forwarded(address),
                          files={"files": ("window-refused.txt", b"one too many")})
    assert response.status_code == 429
    assert response.json()["detail"] == ("Too many uploads from your network address: at most 3 files and "
                                        f"{limits.UPLOAD_MB} MB in {limits.UPLOAD_WINDOW_S // 60} minutes.")
    assert names_in(held_page.cache, "window-refused") == []
    assert upload(url, small, forwarded("10.5.0.2"))  # another address is not counted with it
    # the window moves on: the address's old uploads stop counting
    monkeypatch.setattr(limits, "UPLOAD_WINDOW_S", 1)
    time.sleep(1.2)
    assert upload(url, small, forwarded(address))
    # bytes: two uploads of 0.6 MB from one address with a 1 MB bound
    monkeypatch.setattr(limits, "UPLOAD_WINDOW_S", 600)
    monkeypatch.setattr(limits, "UPLOAD_MB", 1)
    big = tmp_path / "window-big.bin"
    big.write_bytes(os.urandom(600_000))
    assert upload(url, big, forwarded("10.5.0.3"))
    with open(big, "rb") as data:
        response = httpx.post(url + "gradio_api/upload", headers=forwarded("10.5.0.3"),
                              files={"files": ("window-big-refused.bin", data)})
    assert response.status_code == 429 and "at most 3 files and 1 MB in 10 minutes" in response.json()["detail"]
    assert upload(url, big, forwarded("10.5.0.4"))


def test_uploads_are_deleted_after_their_age_used_or_not(held_page, tmp_path, monkeypatch):
    monkeypatch.setattr(limits.UploadGuard, "uploads", collections.deque())  # only this check's uploads
    sources = [tmp_path / "aging-1.txt", tmp_path / "aging-2.txt"]
    for i, source in enumerate(sources):
        source.write_bytes(b"an upload nobody used %d" % i)  # Gradio stores the same bytes at the same path
    came = time.time()
    first, second = (upload(held_page.url, source, forwarded("10.6.0.1")) for source in sources)
    assert os.path.exists(first) and os.path.exists(second)
    assert first != second and [path for _, path in limits.UploadGuard.uploads] == [first, second]
    assert limits.remove_old_uploads(max_age_s=600, now=came + 590) == 0 and os.path.exists(first)
    assert limits.remove_old_uploads(max_age_s=600, now=time.time() + 601) == 2
    assert not os.path.exists(first) and not os.path.exists(second) and not limits.UploadGuard.uploads
    assert limits.remove_old_uploads(max_age_s=0) == 0


# ------------------------------------------------------------------- 3. the cleaner on a shared folder


def test_remove_old_files_deletes_only_old_files_under_its_folder(tmp_path):
    own, outside = tmp_path / "own", tmp_path / "outside"
    (own / "upload" / "deep").mkdir(parents=True)
    (own / "kept-folder").mkdir()
    outside.mkdir()
    old = own / "upload" / "deep" / "old.png"
    example = own / "example.png"
    young = own / "kept-folder" / "young.json"
    foreign = outside / "someone-elses.bin"
    for path in (old, example, young, foreign):
        path.write_bytes(b"data")
    os.symlink(outside, own / "link-to-outside")  # a link is never followed
    os.symlink(foreign, own / "link-to-a-file")
    now = time.time()
    os.utime(young, (now + 3600, now + 3600))  # modified later than the others: young at `later`
    later = now + 1000
    removed = files.remove_old_files(str(own), 600, now=later, keep={str(example)})
    assert not old.exists() and not (own / "upload").exists()  # the file, then its two emptied folders
    assert removed == 4  # old.png, link-to-a-file (the link, not its target), deep/, upload/
    assert example.exists() and young.exists() and (own / "kept-folder").exists()
    assert foreign.exists() and os.path.islink(own / "link-to-outside")
    assert not os.path.lexists(own / "link-to-a-file")


# ------------------------------------------------------------------- 4. progressive JPEGs


def jpeg_claiming(path, mode, width, height, progressive=True):
    """A small JPEG whose frame header says width x height: its pixels cannot be decoded to that size, so a
    refusal by size proves the decision was made from the header."""
    buffer = io.BytesIO()
    colour = {"RGB": (90, 120, 200), "CMYK": (20, 40, 60, 0), "L": 128}[mode]
    Image.new(mode, (16, 16), colour).save(buffer, "JPEG", progressive=progressive)
    data = bytearray(buffer.getvalue())
    at = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("mode, bands", [("RGB", 3), ("CMYK", 4), ("L", 1)])
def test_progressive_jpeg_is_refused_by_the_memory_its_decode_needs(tmp_path, mode, bands):
    # the smallest height over the bound (width x height x bands x 2 bytes > 128 MB) at the largest square's
    # width under it, and one pixel row less
    bound = media.MAX_PROGRESSIVE_BYTES
    width = int((bound / (bands * 2)) ** 0.5)
    height = bound // (width * bands * 2) + 1
    assert width * (height - 1) * bands * 2 <= bound < width * height * bands * 2
    media.check_image_header(jpeg_claiming(tmp_path / "under.jpg", mode, width, height - 1))
    over = jpeg_claiming(tmp_path / "over.jpg", mode, width, height)
    with pytest.raises(media.MediaError, match=rf"over.jpg is a progressive JPEG of {width} x {height} pixels "
                                               rf"\({mode}\): decoding it would hold about \d+ MB .* above the 128 MB"
                                               " limit; shrink it, or save it as a baseline JPEG or a PNG"):
        media.load_image(over)
    # the same size as a baseline JPEG is decoded at a reduced scale: no such bound
    media.check_image_header(jpeg_claiming(tmp_path / "baseline.jpg", mode, width, height, progressive=False))


def test_real_progressive_jpegs_large_refused_small_read(tmp_path):
    Image.new("RGB", (4800, 4800), (90, 120, 200)).save(tmp_path / "big.jpg", "JPEG", progressive=True, quality=50)
    Image.new("CMYK", (4200, 4200), (20, 40, 60, 0)).save(tmp_path / "cmyk.jpg", "JPEG", progressive=True,
                                                          quality=50)
    for name, size, mode in (("big.jpg", "4800 x 4800", "RGB"), ("cmyk.jpg", "4200 x 4200", "CMYK")):
        with pytest.raises(media.MediaError, match=rf"progressive JPEG of {size} pixels \({mode}\)"):
            media.load_image(tmp_path / name)
        data = (tmp_path / name).read_bytes()  # its scans cut off: still refused by the header, not unreadable
        (tmp_path / f"cut-{name}").write_bytes(data[:2000])
        with pytest.raises(media.MediaError, match="progressive JPEG"):
            media.check_image_header(tmp_path / f"cut-{name}")
    Image.new("RGB", (4800, 4800), (90, 120, 200)).save(tmp_path / "baseline.jpg", "JPEG", quality=50)
    assert media.load_image(tmp_path / "baseline.jpg").size == (2048, 2048)
    Image.new("RGB", (640, 480), (90, 120, 200)).save(tmp_path / "small.jpg", "JPEG", progressive=True)
    Image.new("CMYK", (300, 200), (20, 40, 60, 0)).save(tmp_path / "small-cmyk.jpg", "JPEG", progressive=True)
    assert Image.open(tmp_path / "small.jpg").info.get("progressive")
    for name, size in (("small.jpg", (640, 480)), ("small-cmyk.jpg", (300, 200))):
        image = media.load_image(tmp_path / name)
        assert image.size == size and image.mode == "RGB"


# ------------------------------------------------------------------- 5, 6. reserved tokens, the model's name


@pytest.fixture(scope="module")
def embedded_loaded():
    access.unload_all()
    yield
    access.unload_all()


@pytest.mark.parametrize("question", ["<image> where is the red circle ?", "<IMAGE> where is the red circle ?",
                                      "where is the red circle ? </s>", "where <Image> is the red circle ?"])
def test_reserved_tokens_in_a_question_are_refused(embedded_loaded, question):
    token = "'</s>'" if "</s>" in question else "'<image>'"
    with pytest.raises(models.base.BadInput, match=f"the question contains {token}, which this model reserves for "
                                                   "the structure of its prompt"):
        service.run_comparison(image=SCENE, video=None, question=question, method_a="clse", method_b="fastv",
                               keep=1 / 9)
    with pytest.raises(models.base.BadInput, match="the question contains '<image>'"):  # a follow-up too
        service.run_comparison(image=SCENE, video=None, question=QUESTION, method_a="clse", method_b="fastv",
                               keep=1 / 9, follow_ups="<image> and the square ?")


def test_results_name_the_embedded_model_by_its_id(embedded_loaded):
    for spelling in (None, models.EMBEDDED_ID, models.EMBEDDED_DIR + "/"):
        request = service.prepare(SCENE, None, QUESTION, "clse", "fastv", 1 / 9, model_id=spelling)
        payload = service.answer(request)
        assert payload["model"] == models.EMBEDDED_ID
        assert {r["model"] for r in payload["results"].values()} == {models.EMBEDDED_ID}
        text = json.dumps(payload)
        assert ROOT not in text and models.EMBEDDED_DIR not in text


# ------------------------------------------------------------------- 7. the Benchmark tab's reports


def run_entry(task, i):
    """One run of a report as explorer.eval.report writes it, with what its figures read."""
    return {"task": task, "main_metric": "exact_match", "accuracy": 0.5, "average_kept": 10.0 + i,
            "target_recall": None, "recall_by_third": {}, "score_position_spearman": 0.1, "method": "clse",
            "keep": 10 + i, "invert": False, "settings": {}, "records": 4,
            "density": {"share": [[0.5, 0.25], [0.0, 1.0]], "rows": [0.4, 0.5], "normalized": False}}


def write_report(tmp_path, report, name="report.json"):
    path = tmp_path / name
    path.write_text(report if isinstance(report, str) else json.dumps(report))
    return str(path)


def refused_report(path):
    """The sentence the Benchmark tab shows for a report (through the handler the tab calls)."""
    with pytest.raises(gr.Error) as caught:
        events.load_benchmark_click(path, [])
    return caught.value.message


def test_report_size_and_nesting_are_bounded_before_parsing(tmp_path):
    empty = {"runs": [], "tasks": []}
    padding = service.MAX_REPORT_BYTES - len(json.dumps({**empty, "pad": ""}))
    at_bound = write_report(tmp_path, {**empty, "pad": "x" * padding}, "at.json")
    assert os.path.getsize(at_bound) == service.MAX_REPORT_BYTES
    assert events.load_benchmark_click(at_bound, [])["tasks"] == []
    over = write_report(tmp_path, {**empty, "pad": "x" * (padding + 1)}, "over.json")
    assert refused_report(over) == "the report is larger than 2 MB"
    depth = service.MAX_REPORT_DEPTH
    nested = json.dumps({**empty, "deep": json.loads("[" * (depth - 1) + "]" * (depth - 1))})
    assert service.json_depth(nested) == depth and events.load_benchmark_click(write_report(tmp_path, nested), [])
    deeper = json.dumps({**empty, "deep": json.loads("[" * depth + "]" * depth)})
    sentence = "the file nests deeper than 24 levels: it is not a report"
    assert refused_report(write_report(tmp_path, deeper)) == sentence
    assert refused_report(write_report(tmp_path, "[" * 200_000 + "]" * 200_000)) == sentence  # no RecursionError
    brackets_in_a_string = json.dumps({**empty, "note": "[{" * 100 + '\\"[['})
    assert events.load_benchmark_click(write_report(tmp_path, brackets_in_a_string), [])["runs"] == []


def test_report_contents_are_bounded_and_checked_when_loaded(tmp_path):
    huge = '{"runs": [], "tasks": [' + "7" * 5000 + "]}"
    assert refused_report(write_report(tmp_path, huge)).startswith("the file is not a report: write one with")
    assert refused_report(write_report(tmp_path, "[1, 2]")) == (
        "the file is JSON but not a report of `python -m explorer.eval.report --json`")
    twelve = {"runs": [], "tasks": [f"task{i}" for i in range(service.MAX_REPORT_TASKS)]}
    assert len(service.benchmark_figures(events.load_benchmark_click(write_report(tmp_path, twelve), []))) == 36
    thirteen = {"runs": [], "tasks": [f"task{i}" for i in range(service.MAX_REPORT_TASKS + 1)]}
    assert refused_report(write_report(tmp_path, thirteen)) == (
        "the report has 13 tasks and 0 runs; the page draws at most 12 tasks and 300 runs: split it")
    assert events.load_benchmark_click(write_report(tmp_path, {"runs": [{}] * 300, "tasks": []}), [])
    assert refused_report(write_report(tmp_path, {"runs": [{}] * 301, "tasks": []})) == (
        "the report has 0 tasks and 301 runs; the page draws at most 12 tasks and 300 runs: split it")
    # runs its figures cannot be drawn from: refused when loaded, not when the tab draws them
    assert refused_report(write_report(tmp_path, {"runs": [{"task": "t"}], "tasks": ["t"]})).startswith(
        "the report's runs lack what its figures need (KeyError")
    # one task draws 3 figures and one density map per run: 77 runs draw 80, 78 runs 81
    fits = {"runs": [run_entry("t", i) for i in range(77)], "tasks": ["t"]}
    assert len(service.benchmark_figures(events.load_benchmark_click(write_report(tmp_path, fits), []))) == 80
    too_many = {"runs": [run_entry("t", i) for i in range(78)], "tasks": ["t"]}
    assert refused_report(write_report(tmp_path, too_many)) == (
        "the report would draw 81 figures; the page draws at most 80: split it")


def test_a_report_whose_upload_was_cleaned_away_gets_a_sentence(tmp_path):
    """Uploads are deleted UPLOAD_MAX_AGE_S after they came, used or not: a visitor who picked a report and
    presses "Show the report" later hands the tab a path that no longer exists."""
    gone = write_report(tmp_path, {"runs": [], "tasks": []})
    os.remove(gone)
    assert refused_report(gone)  # a gr.Error with a sentence, as for every other unreadable report


# ------------------------------------------------------------------- 8. the examples loader


def test_examples_loader_sentences():
    rows = service.examples()
    assert events.load_example(0) == rows[0] and os.path.exists(rows[0][0])
    for index in (len(rows), 99, -1, True, 1.0, "0", None):
        with pytest.raises(gr.Error) as caught:
            events.load_example(index)
        assert caught.value.message == f"there is no example {index!r}: the page has {len(rows)}"


# ------------------------------------------------------------------- the real page (python app.py)


class RealPage:
    """python app.py (start_page), one for the module, in a shared GRADIO_TEMP_DIR holding other programs'
    files, with its files aging out after a few seconds; started again if a check stopped it."""

    FILE_AGE_S = 4

    def __init__(self, work):
        self.work = work
        self.root = str(work / "models")
        self.model_dir = save_tiny(work / "models" / "tiny-llava")
        self.shared = work / "shared-temp"
        (self.shared / "another-app").mkdir(parents=True)
        self.foreign = [self.shared / "someone-elses.txt", self.shared / "another-app" / "cache.bin"]
        for path in self.foreign:  # made before the page starts: older than its file age once it runs
            path.write_bytes(b"not the explorer's")
        self.env = {"EXPLORER_MODEL_DIRS": self.root, "GRADIO_TEMP_DIR": str(self.shared),
                    "EXPLORER_FILE_MAX_AGE_S": str(self.FILE_AGE_S), "EXPLORER_TRUST_PROXY": "1",
                    "EXPLORER_MODEL": ""}
        self.stack = contextlib.ExitStack()
        self.process = None

    def running(self):
        if self.process is None or self.process.poll() is not None:
            self.stack.close()
            self.url, self.process = self.stack.enter_context(start_page(self.env, str(self.work / "app.log")))
            self.config = httpx.get(self.url + "config").json()
        return self


@pytest.fixture(scope="module")
def real_pages(tmp_path_factory):
    page = RealPage(tmp_path_factory.mktemp("real-page"))
    yield page
    page.stack.close()


@pytest.fixture
def real_page(real_pages):
    return real_pages.running()


def tiny_request(image, question=TINY_QUESTION, **more):
    return compare_arguments(image=handle_file(str(image)), question=question, keep=9, prune_layer=2, **more)


def test_a_call_naming_no_model_gets_the_deployments_default(monkeypatch, tmp_path):
    """The compare API's model_id left out (None, "") is the model the page's menu shows first: EXPLORER_MODEL."""
    assert access.canonical_model(None) == access.canonical_model("") == models.EMBEDDED_ID
    folder = tmp_path / "deployed-model"
    folder.mkdir()
    monkeypatch.setenv("EXPLORER_MODEL", str(folder))
    assert access.canonical_model(None) == access.canonical_model("  ") == os.path.realpath(folder)
    assert access.model_choices()[0] == "deployed-model"  # by its name: no server path in the page's config
    assert access.canonical_model("deployed-model") == os.path.realpath(folder)


def test_real_page_names_a_model_folder_by_its_name(real_page, tmp_path):
    client = Client(real_page.url, verbose=False, download_files=str(tmp_path))
    outputs = client.predict(*tiny_request(SCENE, model_id=real_page.model_dir + "/"), api_name="/compare")
    payload = payload_of(outputs)
    assert payload["model"] == "tiny-llava"
    assert {r["model"] for r in payload["results"].values()} == {"tiny-llava"}
    download = next(o for o in outputs if isinstance(o, str) and o.endswith(".json"))
    with open(download) as saved:
        downloaded = saved.read()
    for text in (json.dumps(payload), downloaded):
        assert real_page.root not in text and str(real_page.work) not in text and ROOT not in text


def test_real_page_refuses_reserved_tokens_and_large_progressive_jpegs(real_page, tmp_path):
    client = Client(real_page.url, verbose=False)
    with pytest.raises(AppError, match="the question contains '<image>', which this model reserves"):
        client.predict(*tiny_request(SCENE, question="<IMAGE> what color is the circle ?",
                                     model_id=real_page.model_dir), api_name="/compare")
    Image.new("RGB", (4800, 4800), (90, 120, 200)).save(tmp_path / "big.jpg", "JPEG", progressive=True, quality=50)
    with pytest.raises(AppError, match=r"big.jpg is a progressive JPEG of 4800 x 4800 pixels \(RGB\)"):
        client.predict(*tiny_request(tmp_path / "big.jpg", model_id=real_page.model_dir), api_name="/compare")


def test_real_page_examples_loader_answers_an_index_out_of_range_with_a_sentence(real_page):
    rows = service.examples()
    sentence = f"there is no example 99: the page has {len(rows)}"
    fn = fn_index(real_page.config, "load_example")
    status, messages = join(real_page.url, "example-visitor", fn, [99])  # as explorer.bench.stress calls it
    assert status == 200
    done = completed(messages)
    assert done["success"] is False and done["output"]["error"] == sentence
    # the browser calls this event (queue=False) with a direct POST: Gradio answers any error of such an event
    # with HTTP 500, here carrying the sentence (not Gradio's generic "Error")
    response = httpx.post(real_page.url + "gradio_api/run/predict",
                          json={"fn_index": fn, "data": [99], "session_hash": "example-visitor", "event_data": None})
    assert response.json()["error"] == sentence
    response = httpx.post(real_page.url + "gradio_api/run/predict",
                          json={"fn_index": fn, "data": [1], "session_hash": "example-visitor", "event_data": None})
    assert response.status_code == 200
    image, video, question = response.json()["data"]
    assert os.path.basename(image["path"]) == os.path.basename(rows[1][0]) and video is None
    assert question == rows[1][2]


def test_real_page_refuses_a_hostile_report_with_its_sentence(real_page, tmp_path):
    fn = fn_index(real_page.config, "load_benchmark_click")
    deep = write_report(tmp_path, "[" * 200_000 + "]" * 200_000, "deep.json")
    status, messages = join(real_page.url, "report-visitor", fn, [file_data(upload(real_page.url, deep)), []])
    assert status == 200 and completed(messages)["success"] is False
    assert completed(messages)["output"]["error"] == "the file nests deeper than 24 levels: it is not a report"


def test_real_page_report_cleaned_away_before_it_is_shown_gets_a_sentence(real_page, tmp_path):
    """A report picked (the browser uploads it at once), then deleted by the cleaner before "Show the report"
    (uploads live UPLOAD_MAX_AGE_S, used or not)."""
    fn = fn_index(real_page.config, "load_benchmark_click")
    stored = upload(real_page.url, write_report(tmp_path, {"runs": [], "tasks": []}, "late.json"))
    os.remove(stored)
    status, messages = join(real_page.url, "late-visitor", fn, [file_data(stored), []])
    assert status == 200 and completed(messages)["success"] is False
    assert completed(messages)["output"]["error"] == ("the uploaded report is no longer on the server (uploads are "
                                                      "kept 10 minutes): upload it again")


def test_real_page_keeps_at_most_state_sessions_sessions(real_page):
    """The page's last result lives in the visitor's Gradio session; app.py bounds the sessions Gradio keeps
    (state_session_capacity=STATE_SESSIONS, least recently used dropped): a visitor whose session was dropped
    gets the page's warning from the frame slider, not an error."""
    client = Client(real_page.url, verbose=False)
    client.predict(*tiny_request(SCENE, model_id=real_page.model_dir), api_name="/compare")
    fn = fn_index(real_page.config, "frame_change")
    data = [None, 1, None, 1]  # state (the session's own), frame (counted from 1, as the figures count), grid, turn

    def frame_slider(session):
        status, messages = join(real_page.url, session, fn, data)
        assert status == 200 and completed(messages)["success"] is True, messages
        return completed(messages), warnings_in(messages)

    done, warned = frame_slider(client.session_hash)
    assert warned == [] and done["output"]["data"][0]["type"] == "plotly"  # the result is there
    for i in range(limits.STATE_SESSIONS - 1):  # as many newer sessions as fit beside it
        assert frame_slider(f"newer-{i}")[1] == [events.NO_RESULT]  # nothing in a new session: the warning
    done, warned = frame_slider(client.session_hash)
    assert warned == [], "dropped before STATE_SESSIONS sessions were kept"
    for i in range(limits.STATE_SESSIONS):  # one more than fit beside it
        frame_slider(f"newest-{i}")
    done, warned = frame_slider(client.session_hash)
    assert warned == [events.NO_RESULT] and all(o == {"__type__": "update"} for o in done["output"]["data"])


def test_real_page_states_expire(real_page):
    states = [c for c in real_page.config["components"] if c.get("type") == "state"]
    assert len(states) == 2  # the result (frame, grid, turn) and the Benchmark tab's report
    assert {c["props"]["time_to_live"] for c in states} == {limits.STATE_TTL_S}


def test_real_page_works_in_folders_of_its_own_removed_on_sigterm(real_page, tmp_path):
    """Last of the real page's checks: it stops the page (the next check would start another)."""
    process, shared = real_page.process, real_page.shared
    own = [p for p in shared.iterdir() if p.name.startswith(f"pruning-explorer-{process.pid}-")]
    assert len(own) == 1 and own[0].is_dir(), sorted(os.listdir(shared))
    own = pathlib.Path(os.path.realpath(own[0]))
    inside = str(own) + os.sep
    image = tmp_path / "scene.png"
    Image.open(SCENE).save(image)
    stored = upload(real_page.url, image)
    assert os.path.realpath(stored).startswith(inside)
    # a comparison: Gradio's copies of its outputs and our result file, all in the page's own folder
    outputs = Client(real_page.url, verbose=False, download_files=False).predict(
        *tiny_request(image, model_id=real_page.model_dir), api_name="/compare")
    copies = [o["path"] for o in outputs if isinstance(o, dict) and isinstance(o.get("path"), str)]
    assert any(path.endswith(".json") for path in copies)
    assert all(os.path.realpath(path).startswith(inside) for path in copies), copies
    results = [p for p in files_under(own / "results") if p.endswith(".json")]
    assert results
    # the cleaner runs every second and deletes the page's files FILE_AGE_S after they came; nobody else's
    assert wait_until(lambda: not os.path.exists(stored) and not any(os.path.exists(p) for p in results), 30)
    assert all(path.exists() for path in real_page.foreign)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not own.exists()
    assert sorted(os.listdir(shared)) == ["another-app", "someone-elses.txt"]
    assert all(path.exists() for path in real_page.foreign)


# ------------------------------------------------------------------- the page in this process


@pytest.fixture(scope="module")
def page_here(tmp_path_factory):
    """The explorer page (ui.build_app) prepared and launched as app.py does, in this process, with a 3 s
    STATE_TTL_S (read when the page is built) and the tiny model's folder allowed."""
    from explorer.page.ui import build_app

    work = tmp_path_factory.mktemp("page-here")
    with pytest.MonkeyPatch.context() as patch:
        model_dir = save_tiny(work / "models" / "tiny-llava")
        patch.setenv("EXPLORER_MODEL_DIRS", str(work / "models"))
        patch.setenv("GRADIO_TEMP_DIR", str(work / "gradio"))
        patch.delenv("EXPLORER_MODEL", raising=False)
        patch.setattr(limits, "STATE_TTL_S", 3)
        patch.setattr(files, "RESULTS_DIR", str(work / "results"))
        demo = limits.prepare(build_app(), file_max_age_s=600)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=False, app_kwargs=limits.upload_guard(),
                    state_session_capacity=limits.STATE_SESSIONS)
        page = type("PageHere", (), {"demo": demo, "url": f"http://127.0.0.1:{port}/", "model_dir": model_dir})()
        page.config = httpx.get(page.url + "config").json()
        try:
            yield page
        finally:
            demo.close()
            access.unload_all()


def test_the_pages_state_expires_after_state_ttl(page_here):
    """The frame slider finds the result right after Compare, and the page's warning once it expired."""
    states = [b for b in page_here.demo.blocks.values() if isinstance(b, gr.State)]
    assert len(states) == 2 and {s.time_to_live for s in states} == {3}
    client = Client(page_here.url, verbose=False)
    client.predict(*tiny_request(SCENE, model_id=page_here.model_dir), api_name="/compare")
    fn = fn_index(page_here.config, "frame_change")
    _, messages = join(page_here.url, client.session_hash, fn, [None, 1, None, 1])
    assert warnings_in(messages) == [] and completed(messages)["success"]
    time.sleep(4.5)  # Gradio drops expired state every second
    _, messages = join(page_here.url, client.session_hash, fn, [None, 1, None, 1])
    assert warnings_in(messages) == [events.NO_RESULT] and completed(messages)["success"]


def test_a_session_keeps_its_state_and_none_of_the_outputs_values(page_here):
    """limits.keep_no_output_values: Gradio would keep every output's last value (the figures' JSON, the
    result's records: about 1.1 MB on the embedded model) in each session's copy of the page's config; the
    visitor still gets them, and the session keeps only its gr.State (the frame and turn controls)."""
    client = Client(page_here.url, verbose=False)
    outputs = client.predict(*tiny_request(SCENE, model_id=page_here.model_dir), api_name="/compare")
    assert payload_of(outputs)["results"]  # the visitor got the result
    session = page_here.demo.state_holder.session_data[client.session_hash]
    values = [c["props"].get("value") for c in session.components if "props" in c]
    assert not [v for v in values if isinstance(v, dict) and ("plot" in v or "results" in v)]
    assert any(isinstance(v, dict) and "analyses" in v for v in session.state_data.values())


def test_the_upload_cleaner_keeps_the_examples(page_here, monkeypatch):
    """files_to_keep: the examples are never removed by age. An upload of an example's bytes (gradio_client
    uploads the file again for every call; explorer.bench.stress sends assets/scene_205.png) is stored by
    Gradio at the example's own cached path, so the upload cleaner meets that path too."""
    monkeypatch.setattr(limits.UploadGuard, "uploads", collections.deque())
    keep = limits.files_to_keep(page_here.demo)
    example = next(path for path in keep if os.path.basename(path) == "scene_205.png")
    stored = upload(page_here.url, SCENE)
    assert os.path.exists(example) and stored == example
    limits.remove_old_uploads(now=time.time() + limits.UPLOAD_MAX_AGE_S + 1, keep=keep)  # as the cleaner does
    assert os.path.exists(example), "the upload cleaner deleted an example's cached file"

"""Load and fault script for the page: python -m explorer.bench.stress [--budget-s 290] [--file-age-s 40]
[--creep N [--creep-only | --allocators]] [--only TEXT,...] [--app-root DIR] (or --one-request: one request's
peak memory on the embedded model, in this process).

Starts the page (python app.py) on 127.0.0.1 with its own temporary folders, trusting X-Forwarded-For so that
each kind comes from an address of its own, sends it 60+ kinds of bad input through gradio_client and raw REST
calls, 20 concurrent clients (20 addresses, then one), 40 session ids from one address, upload floods, hostile
Benchmark reports, a client asking three times at once, abandoned clients (submit, then exit), killed clients
(SIGKILL mid-request), REST calls nobody reads and Gradio's deep-link route; issue 33's kinds: single-keyframe
videos (100 s, and the issue's 600 s), a video whose header lies about its frame size, 48 MB JPEG marker and PNG
chunk floods, values of the wrong type, a visitor leaving while their video is read, 36 report loads from one
address, images as data: URLs or web addresses, 400 MB and unbounded request bodies, Gradio's routes beside the
queue, the absolute paths in a visitor's responses, a full disk while the result file is written (the server's
file size limit lowered with prlimit), and last, SIGTERM while a comparison runs (it stops the page); with
--creep N sequential requests (a new session each, then one session; with --allocators, the new-session requests
on two fresh pages: glibc's dynamic mmap threshold, then the page's fixed one, with the ratio of their median
request times). Prints a table: per kind, how many calls were answered, refused with a message, or crashed (a
generic server error, an HTTP 5xx, raw Python text reaching the client, no answer, or an abort), the server's
peak RSS during that kind, its seconds, and the temporary folders' growth. --only runs the kinds whose names
hold one of the texts; --app-root starts another checkout's app.py (to measure an earlier version the same way).
Loopback only, bounded in count and time (each kind runs once; kinds left when the budget runs out are
listed as skipped). Not a test: a measurement to read.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np
from PIL import Image

from explorer.bench import crafted
from explorer.bench.memory import memory_mb, reset_peak
from explorer.page.api import compare_arguments
from explorer.serve import limits
from explorer.serve.launch import ROOT, start_page

ASSETS = os.path.join(ROOT, "assets")
QUESTION = "where is the red circle ?"
PYTHON_TEXT = re.compile(r"Traceback|NoneType|object has no attribute|cannot convert|int\(\) argument|"
                         r"invalid literal|unsupported operand|division by zero|index out of range|KeyError|"
                         r"TypeError|ValueError|RuntimeError|AttributeError|\bFile \"")
GENERIC_FAULT = "has raised an exception but has not enabled verbose error reporting"


# ---------------------------------------------------------------- the server


def folder_size(*folders):
    """(bytes, files) under the folders."""
    total, count = 0, 0
    for folder in folders:
        for directory, _, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.path.getsize(os.path.join(directory, name))
                    count += 1
    return total, count


# ---------------------------------------------------------------- inputs


def png_header_only(path, width, height):
    """A PNG whose header claims width x height and which holds no pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def write_clip(path, frames, size, fps, fourcc):
    """A clip with a red disc moving left to right (frame i's grey background level is i mod 256)."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 200, np.uint8)
        x = int((i + 0.5) / frames * size[0])
        cv2.circle(frame, (x, size[1] // 2), max(2, size[1] // 8), (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def make_inputs(work):
    """Every file the kinds send, written into work."""
    files = {"scene": os.path.join(ASSETS, "scene_205.png")}
    path = lambda name: os.path.join(work, name)  # noqa: E731
    Image.new("RGB", (10000, 1), (200, 30, 30)).save(files.setdefault("wide", path("wide.png")))
    Image.new("RGB", (1, 10000), (200, 30, 30)).save(files.setdefault("tall", path("tall.png")))
    files["bomb"] = png_header_only(path("bomb.png"), 100_000, 100_000)
    Image.new("P", (9000, 9000)).save(files.setdefault("palette81", path("palette81.png")))
    Image.open(files["scene"]).save(files.setdefault("truncated", path("truncated.png")))
    data = open(files["truncated"], "rb").read()
    open(files["truncated"], "wb").write(data[: len(data) // 3])
    open(files.setdefault("text", path("text.png")), "w").write("this is not an image")
    open(files.setdefault("empty_png", path("empty.png")), "wb").close()
    frames = [Image.new("P", (64, 64), i % 256) for i in range(300)]
    frames[0].save(files.setdefault("gif", path("many.gif")), save_all=True, append_images=frames[1:])
    files["clip"] = write_clip(path("clip.webm"), 12, (96, 96), 4, "VP80")
    files["hd"] = write_clip(path("hd.mp4"), 600, (1280, 720), 30, "mp4v")
    files["huge_frames"] = write_clip(path("huge.avi"), 2, (4096, 4096), 1, "MJPG")
    files["long"] = write_clip(path("long.avi"), 700, (32, 32), 1, "MJPG")
    files["wrong_count"] = write_clip(path("count.avi"), 120, (160, 120), 30, "MJPG")
    data = open(files["wrong_count"], "rb").read()
    open(files["wrong_count"], "wb").write(data[: len(data) // 2])  # the header still says 120 frames
    open(files.setdefault("garbage_mp4", path("garbage.mp4")), "wb").write(os.urandom(4096))
    # progressive JPEGs are decoded whole (every coefficient held): the header check refuses the large ones
    Image.new("CMYK", (9000, 9000), (20, 40, 60, 0)).save(files.setdefault("progressive_cmyk", path("cmyk.jpg")),
                                                         "JPEG", progressive=True, quality=50)
    Image.new("RGB", (9000, 9000), (90, 120, 200)).save(files.setdefault("progressive", path("progressive.jpg")),
                                                       "JPEG", progressive=True, quality=50, subsampling=2)
    open(files.setdefault("empty_mp4", path("empty.mp4")), "wb").close()
    # issue 33's files: single-keyframe 1080p videos (100 s, and the issue's 600 s), a video whose header lies
    # about its frame size, JPEG marker and PNG chunk floods (48 MB each), a report at the 2 MB bound
    files["one_keyframe"] = crafted.long_single_keyframe_video(path("one-keyframe.mp4"), 3000)
    files["issue_video"] = crafted.long_single_keyframe_video(path("issue-600s.mp4"), 18000)
    files["lying"] = crafted.lying_video(path("lying.ts"))
    files["marker_flood"] = crafted.jpeg_marker_flood(path("markers.jpg"), 12_000_000)
    files["chunk_flood"] = crafted.png_chunk_flood(path("chunks.png"), 4_000_000)
    with open(files.setdefault("report_2mb", path("report-2mb.json")), "w") as out:
        json.dump({"runs": [], "tasks": [], "pad": "x" * (2 * 2**20 - 60)}, out)
    return files


def request(image=None, video=None, question=QUESTION, keep=1 / 9, prune_layer=2, ref_layer=0, model=None,
            frames=4, method_a="clse", method_b="fastv", schedule="single"):
    """The /compare inputs this script sets, by the API's names (explorer.page.api); the rest are the page's
    defaults."""
    return dict(image=image, video=video, question=question, method_a=method_a, method_b=method_b, keep=keep,
                prune_layer=prune_layer, ref_layer=ref_layer, schedule=schedule, model_id=model, num_frames=frames)


def kinds(files, models_root):
    """(kind, request or a raw REST body builder) for every single-request kind."""
    f = files
    return [
        ("good image (control)", request(image=f["scene"])),
        ("good video (control)", request(video=f["clip"])),
        ("10000 x 1 PNG", request(image=f["wide"])),
        ("1 x 10000 PNG", request(image=f["tall"])),
        ("PNG header 100000 x 100000", request(image=f["bomb"])),
        ("9000 x 9000 palette PNG (81 MP)", request(image=f["palette81"])),
        ("truncated PNG", request(image=f["truncated"])),
        ("text file as .png", request(image=f["text"])),
        ("empty .png", request(image=f["empty_png"])),
        ("GIF with 300 frames", request(image=f["gif"])),
        ("720p mp4, 20 s, 600 frames", request(video=f["hd"], frames=16)),
        ("4096 x 4096 frames video", request(video=f["huge_frames"])),
        ("700 s video", request(video=f["long"])),
        ("AVI with a wrong frame count", request(video=f["wrong_count"])),
        ("random bytes as .mp4", request(video=f["garbage_mp4"])),
        ("empty .mp4", request(video=f["empty_mp4"])),
        ("image and video", request(image=f["scene"], video=f["clip"])),
        ("no media", request()),
        ("keep = Infinity (raw JSON)", ("rest", request(image=f["scene"]), {"keep": "Infinity"})),
        ("keep = 1e309 (raw JSON)", ("rest", request(image=f["scene"]), {"keep": "1e309"})),
        ("keep = NaN (raw JSON)", ("rest", request(image=f["scene"]), {"keep": "NaN"})),
        ("keep = None", request(image=f["scene"], keep=None)),
        ("keep = -1", request(image=f["scene"], keep=-1)),
        ("prune layer None", request(image=f["scene"], prune_layer=None)),
        ("reference layer None", request(image=f["scene"], ref_layer=None)),
        ("frames NaN with a video (raw JSON)", ("rest", request(video=f["clip"]), {"num_frames": "NaN"})),
        ("frames 1e6 with a video", request(video=f["clip"], frames=1e6)),
        ("model: unknown hub id", request(image=f["scene"], model="nobody/no-such-model")),
        ("model: /root/.ssh", request(image=f["scene"], model="/root/.ssh")),
        ("model: /nonexistent", request(image=f["scene"], model="/nonexistent")),
        ("model: relative path", request(image=f["scene"], model="models/shapes_llava/weights")),
        ("model: /etc", request(image=f["scene"], model="/etc")),
        ("model: allowed folder, no model", request(image=f["scene"], model=os.path.join(models_root, "empty"))),
        ("model: embedded dir respelled", request(image=f["scene"], model=os.path.join(
            ROOT, "models", "shapes_llava", ".", "weights", "..", "weights") + "/")),
        ("empty question", request(image=f["scene"], question="   ")),
        ("10000-character question", request(image=f["scene"], question="why " * 2500)),
        ("unknown method", request(image=f["scene"], method_a="bogus")),
        ("method as a list (raw JSON)", ("rest", request(image=f["scene"]), {"method_a": '["clse"]'})),
        ("'<image>' in the question", request(image=f["scene"], question="<image> where is the red circle ?")),
        ("'<IMAGE>' in the question", request(image=f["scene"], question="<IMAGE> where is the red circle ?")),
        ("progressive CMYK JPEG 9000 x 9000", request(image=f["progressive_cmyk"])),
        ("progressive JPEG 9000 x 9000 (4:2:0)", request(image=f["progressive"])),
        ("unknown schedule", request(image=f["scene"], schedule="bogus")),
        # issue 33: videos bounded in time, image floods, values of the wrong type
        ("single-keyframe 1080p video, 100 s (3,000 frames), 16 frames", request(video=f["one_keyframe"], frames=16)),
        ("the issue's video: single-keyframe 1080p, 600 s (18,000 frames), 16 frames",
         request(video=f["issue_video"], frames=16)),
        ("video whose header says 320 x 240, its frames 6000 x 6000", request(video=f["lying"])),
        ("JPEG of 12 million empty markers (48 MB)", request(image=f["marker_flood"])),
        ("PNG of 4 million empty chunks (48 MB)", request(image=f["chunk_flood"])),
        ("frames as text \"4\" (raw JSON)", ("rest", request(image=f["scene"]), {"num_frames": '"4"'})),
        ("frames null (raw JSON)", ("rest", request(image=f["scene"]), {"num_frames": "null"})),
        ("repeats as text \"3\" (raw JSON)", ("rest", request(image=f["scene"]), {"repeats": '"3"'})),
        ("keep = true (raw JSON)", ("rest", request(image=f["scene"]), {"keep": "true"})),
        ("invert = \"false\" (raw JSON)", ("rest", request(image=f["scene"]), {"invert": '"false"'})),
        ("a lone surrogate in the question (raw JSON)", ("rest", request(image=f["scene"]),
                                                         {"question": '"where is the \\ud800 circle ?"'})),
        ("the image as text (raw JSON)", ("rest", request(), {"image": '"scene.png"'})),
        ("the image's path a number (raw JSON)", ("rest", request(), {"image": '{"path": 5, "meta": {"_type": '
                                                                               '"gradio.FileData"}}'})),
    ]


# ---------------------------------------------------------------- calls and outcomes


def outcome_of_error(error):
    """("refused" | "crashed", message) for an exception a call raised."""
    response = getattr(error, "response", None)
    if response is not None:  # an HTTP error from joining the queue
        status = response.status_code
        try:
            message = str(response.json().get("detail", response.text))
        except ValueError:
            message = response.text
        return ("crashed" if status >= 500 or PYTHON_TEXT.search(message) else "refused"), f"{status}: {message}"
    message = str(error)
    if GENERIC_FAULT in message or PYTHON_TEXT.search(message) or not message.strip():
        return "crashed", message or type(error).__name__
    return "refused", message


def call(client, args):
    """One /compare call through gradio_client: (outcome, message)."""
    from gradio_client import handle_file

    inputs = compare_arguments(**{**args, "image": handle_file(args["image"]) if args["image"] else None,
                                  "video": handle_file(args["video"]) if args["video"] else None})
    try:
        outputs = client.predict(*inputs, api_name="/compare")
    except Exception as error:  # every failure is classified, none stops the run
        return outcome_of_error(error)
    if ROOT in json.dumps(outputs[-3]):  # the result JSON: it names models by their ids, never a server path
        return "crashed", "a server path in the result"
    return "answered", ""


def upload(url, path, address=None):
    """Upload a file the way the page does (from the given loopback address); returns Gradio's FileData dict
    for a raw call."""
    import httpx

    headers = address_headers(address) if address is not None else None
    with open(path, "rb") as data, httpx.Client(headers=headers) as http:
        response = http.post(url + "gradio_api/upload", files={"files": (os.path.basename(path), data)})
    response.raise_for_status()
    server_path = response.json()[0]
    return {"path": server_path, "orig_name": os.path.basename(path), "meta": {"_type": "gradio.FileData"}}


def rest_call(url, args, literals, address=None):
    """A raw REST call (POST /call/compare, then read its result stream), with some inputs written as JSON
    literals that gradio_client refuses to send (Infinity, NaN, 1e309): (outcome, message)."""
    import httpx

    data = rest_data(url, args, literals, address)
    body = json.dumps({"data": data})
    for name, literal in literals.items():
        body = body.replace(f'"@{name}@"', literal)
    response = httpx.post(url + "gradio_api/call/compare", content=body,
                          headers={"Content-Type": "application/json",
                                   **(address_headers(address) if address is not None else {})})
    if response.status_code != 200:
        return ("crashed" if response.status_code >= 500 else "refused"), f"{response.status_code}: {response.text}"
    event_id = response.json()["event_id"]
    with httpx.stream("GET", url + f"gradio_api/call/compare/{event_id}", timeout=300) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "complete":
                return "answered", ""
            elif line.startswith("data:") and event == "error":
                return rest_error(line.split(":", 1)[1].strip())
    return "crashed", "the result stream ended without a result"


def rest_data(url, args, literals=(), address=None):
    """Every /compare input for a raw REST call (which, unlike gradio_client, fills in no defaults), in the API's
    order: args (files uploaded; names in literals as placeholders), the page's defaults for the rest."""
    given = {name: f"@{name}@" if name in literals else value for name, value in args.items()}
    given.update({name: f"@{name}@" for name in literals if name not in given})  # the page's defaults otherwise
    for name in ("image", "video"):
        if name not in literals:
            given[name] = upload(url, args[name], address) if args[name] else None
    return compare_arguments(**given)


def rest_error(data):
    """The outcome of a REST error event: a sentence is a refusal; null or Python text is a crash."""
    try:
        message = json.loads(data)
    except ValueError:
        message = data
    if isinstance(message, dict):
        message = message.get("error")
    if not message or PYTHON_TEXT.search(str(message)):
        return "crashed", f"error event with {data}"
    return "refused", str(message)


# ---------------------------------------------------------------- phases with several clients


def address_headers(i):
    """Headers that make a client another visitor: the stress page trusts X-Forwarded-For (EXPLORER_TRUST_PROXY,
    as on a Space behind its proxy), so client i comes from 10.0.0.i."""
    return {"X-Forwarded-For": f"10.0.0.{i}"}


def concurrent_clients(url, image, count=20, distinct=True, first_address=150):
    """count clients, each in its own thread (and, distinct, from its own address), asking at the same moment:
    outcomes and latencies."""
    from gradio_client import Client

    results = [None] * count
    barrier = threading.Barrier(count)

    def one(i):
        client = Client(url, verbose=False, headers=address_headers(first_address + i) if distinct else None)
        barrier.wait()
        start = time.perf_counter()
        results[i] = (*call(client, request(image=image)), time.perf_counter() - start)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    done = [r for r in results if r is not None]
    latencies = sorted(r[2] for r in done if r[0] == "answered")
    notes = []
    if latencies:
        notes.append(f"latency p50 {statistics.median(latencies):.1f} s, max {latencies[-1]:.1f} s")
    refusals = [r[1] for r in done if r[0] != "answered"]
    if refusals:  # why the first one was not answered, since the note replaces the messages in the table
        notes.append("first refusal: " + " ".join(refusals[0].split())[:80])
    return [(r[0], r[1]) for r in done], "; ".join(notes)


def one_client_three_times(url, image):
    """One session submitting three requests at once: the per-client limit answers one, refuses two."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    jobs = []
    for _ in range(3):
        jobs.append(client.submit(*compare_arguments(**{**request(), "image": handle(image)}), api_name="/compare"))
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=300)
            outcomes.append(("answered", ""))
        except Exception as error:  # classified below
            outcomes.append(outcome_of_error(error))
    return outcomes, ""


def handle(path):
    from gradio_client import handle_file

    return handle_file(path)


def leaving_clients(url, image, how, count=3):
    """count clients in subprocesses that submit a request and then leave: "abandoned" exit as soon as the
    request is queued, "killed" are SIGKILLed while their request runs or waits. Then one visitor's latency."""
    # a running request reports PROGRESS (the page's progress bar) or ITERATING (its answers-first yield), hardly
    # ever PROCESSING: waiting for PROCESSING alone let every killed client's request finish before the kill
    running = "Status.PROCESSING, Status.PROGRESS, Status.ITERATING, Status.FINISHED"
    wait_for = f"Status.IN_QUEUE, {running}" if how == "abandoned" else running
    # a long request (10 timed repeats, a few seconds), so that the visitors leave while it runs: the server
    # stops it within one decoder layer and logs "visitor left" (counted in the summary)
    arguments = compare_arguments(**request(), repeats=10)[1:]  # after the image, which the client script uploads
    script = (f"from gradio_client import Client, handle_file; from gradio_client.utils import Status; import time\n"
              f"job = Client({url!r}, verbose=False).submit(handle_file({image!r}), *{arguments!r}, "
              f"api_name='/compare')\n"
              f"deadline = time.time() + 60\n"
              f"while job.status().code not in ({wait_for}) and time.time() < deadline: time.sleep(0.05)\n"
              f"print('ready', flush=True)\n" + ("" if how == "abandoned" else "time.sleep(600)\n"))
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
                 for _ in range(count)]
    for process in processes:  # each killed as soon as its own request runs (the next one waits behind it)
        process.stdout.readline()
        if how == "killed":
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    from gradio_client import Client

    start = time.perf_counter()
    outcome = call(Client(url, verbose=False, headers=address_headers(207)), request(image=image))
    return [outcome], f"next visitor answered in {time.perf_counter() - start:.1f} s"


def deep_links(url, image, folder, count=3):
    """A visitor with a result asks Gradio's deep-link route count times (each call would write the session's
    whole page, about 1 MB here, under the upload folder): refused with a sentence, nothing written."""
    import httpx
    from gradio_client import Client

    client = Client(url, verbose=False, headers=address_headers(209))
    outcomes = [call(client, request(image=image))]
    before = folder_size(folder)[0]
    for _ in range(count):
        response = httpx.get(url + "gradio_api/deep_link", params={"session_hash": client.session_hash},
                             headers=address_headers(209))
        refused = response.status_code == 404 and "detail" in response.text
        outcomes.append(("refused" if refused else "answered", f"{response.status_code}: {response.text}"))
    return outcomes[1:], (f"{outcomes[1][1][:70]}; {folder_size(folder)[0] - before} bytes written "
                          "(the result first: answered)" if outcomes[0][0] == "answered" else outcomes[0][1])


def fire_and_forget(url, image, count=3):
    """count raw REST calls from one address whose results nobody reads: the per-address limit keeps one."""
    import httpx

    outcomes = []
    for _ in range(count):
        response = httpx.post(url + "gradio_api/call/compare", json={"data": rest_data(url, request(image=image))})
        if response.status_code == 200:
            outcomes.append(("answered", ""))  # queued; nobody reads it
        else:
            outcomes.append(outcome_of_error(httpx.HTTPStatusError("", request=response.request,
                                                                   response=response)))
    time.sleep(1)
    from gradio_client import Client

    start = time.perf_counter()
    outcomes.append(call(Client(url, verbose=False, headers=address_headers(208)), request(image=image)))
    return outcomes, f"then a visitor answered in {time.perf_counter() - start:.1f} s (queued call counted)"


def many_sessions_one_address(url, image, count=40, address=200):
    """count REST calls from one address, each with a session id of its own in the body (a new session id is
    free): the per-address limit keeps two."""
    import httpx

    data = rest_data(url, request(image=image), address=address)
    outcomes = []
    http = httpx.Client(headers=address_headers(address))
    for i in range(count):
        response = http.post(url + "gradio_api/call/compare", json={"data": data, "session_hash": f"rotating{i}"})
        if response.status_code == 200:
            outcomes.append(("answered", ""))
        else:
            outcomes.append(outcome_of_error(httpx.HTTPStatusError("", request=response.request, response=response)))
    return outcomes, f"{sum(o[0] == 'answered' for o in outcomes)} of {count} accepted"


def upload_flood(url, work, count=10, megabytes=45, address=201):
    """count uploads of `megabytes` MB from one address, then one upload call carrying 200 small files (from
    another address)."""
    import httpx

    big = os.path.join(work, "big.bin")
    with open(big, "wb") as out:
        out.write(os.urandom(megabytes * 2**20))
    outcomes = []
    http = httpx.Client(headers=address_headers(address), timeout=120)
    for _ in range(count):
        with open(big, "rb") as data:
            response = http.post(url + "gradio_api/upload", files={"files": ("big.bin", data)})
        outcomes.append(("answered", "") if response.status_code == 200 else ("refused", response.json()["detail"]))
    many = [("files", (f"f{i}.txt", b"x")) for i in range(200)]
    client = httpx.Client(headers=address_headers(address + 1), timeout=120)
    response = client.post(url + "gradio_api/upload", files=many)
    outcomes.append(("answered", "") if response.status_code == 200 else ("refused", response.json()["detail"]))
    os.remove(big)
    return outcomes, f"{sum(o[0] == 'answered' for o in outcomes[:-1])} of {count} big uploads accepted"


def private_event(url, name, data):
    """Call one of the page's private events (the browser calls them by index) on a fresh session, as a raw
    client can: (outcome, message)."""
    import httpx

    config = httpx.get(url + "config").json()
    fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == name)
    session = f"raw{time.time_ns()}"
    response = httpx.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index,
                                                                "session_hash": session, "event_data": None})
    if response.status_code != 200:
        return outcome_of_error(httpx.HTTPStatusError("", request=response.request, response=response))
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    if message.get("success"):
                        return "answered", ""
                    error = (message.get("output") or {}).get("error")
                    return ("refused", str(error)) if error and not PYTHON_TEXT.search(str(error)) else (
                        "crashed", str(message)[:200])
    return "crashed", "the stream ended without a result"


def report_kinds(url, work):
    """The Benchmark tab's loader (a private event) on the reports the issue's probe sent: 19 MB of empty
    runs, 2,000 task names, nesting 200,000 deep, a 5,000-digit integer."""
    cases = {"19 MB report": json.dumps({"runs": [{}] * 4_700_000, "tasks": []}),
             "2,000 task names": json.dumps({"runs": [], "tasks": [f"task{i}" for i in range(2000)]}),
             "nested 200,000 deep": "[" * 200_000 + "]" * 200_000,
             "a 5,000-digit integer": '{"runs": [], "tasks": [' + "7" * 5000 + "]}"}
    outcomes = []
    for name, text in cases.items():
        path = os.path.join(work, "report.json")
        with open(path, "w") as out:
            out.write(text)
        outcomes.append(private_event(url, "load_benchmark_click", [upload(url, path, 203), []]))
        os.remove(path)
    return outcomes, "; ".join(o[1][:40] for o in outcomes)


def sequential_memory(url, image, count, new_sessions, block):
    """count requests one after another (each from a new session, or all from one): the server's RSS after the
    first and after the last. gradio_client uploads the image again for every call, so the address moves on
    every 50 requests (10.block.0.n) to stay inside the per-address upload bound this phase is not about."""
    from gradio_client import Client

    def address(i):
        return {"X-Forwarded-For": f"10.{block}.0.{i // 50}"}

    sequential_memory.median_s = None  # set only when every request was answered (--allocators compares them)
    client = Client(url, verbose=False, headers=address(0))
    rss, seconds = [], []
    for i in range(count):
        if new_sessions:
            client = Client(url, verbose=False, headers=address(i))
        else:
            client.headers.update(address(i))  # the same session (session hash), another address
        started = time.perf_counter()
        outcome = call(client, request(image=image))
        seconds.append(time.perf_counter() - started)
        if outcome[0] != "answered":
            return [outcome], f"stopped at request {i + 1}: " + " ".join(outcome[1].split())[:80]
        rss.append(sequential_memory.pid and memory_mb(sequential_memory.pid, "VmRSS"))
    marks = sorted({1, 10, 25, 50, count} & set(range(1, count + 1)))
    curve = ", ".join(f"{n}: {rss[n - 1]:.0f}" for n in marks)
    sequential_memory.median_s = statistics.median(seconds)
    return [("answered", "")] * count, (f"RSS (MB) after request {curve} ({rss[-1] - rss[0]:+.0f} MB); "
                                        f"median {sequential_memory.median_s:.2f} s per request")


# ---------------------------------------------------------------- issue 33: routes, bodies, floods, stopping


def raw_status(url, path, headers, chunks, timeout=20):
    """(status, detail) of a POST to path with these headers, sending the chunks as they come (HTTP/1.1)."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.putrequest("POST", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in chunks:
                connection.send(chunk)
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(text).get("detail", text)
        return response.status, str(text)
    except OSError as error:  # a server that waits for a body it was promised
        return 0, f"no answer within {timeout} s ({type(error).__name__})"
    finally:
        connection.close()


def large_bodies(url, pid):
    """A JSON body declaring 400 MB (nothing of it sent), and an 8 MB one sent without a declared length: the
    server's answers and its peak RSS above its resident size."""
    before = memory_mb(pid, "VmRSS")
    outcomes = []
    status, detail = raw_status(url, "/gradio_api/queue/join", {"Content-Type": "application/json",
                                                                "Content-Length": str(400 * 2**20)}, [])
    outcomes.append(("refused" if status == 413 else "crashed" if status == 0 else "answered", f"{status}: {detail}"))

    def chunked():
        yield b"a\r\n" + b'{"data": [' + b"\r\n"
        piece = b"0," * 32768
        for _ in range(128):  # 8 MB
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"

    status, detail = raw_status(url, "/gradio_api/queue/join", {"Content-Type": "application/json",
                                                                "Transfer-Encoding": "chunked"}, chunked())
    outcomes.append(("refused" if status == 413 else "answered", f"{status}: {detail}"))
    return outcomes, (f"{outcomes[0][1][:60]}; peak +{memory_mb(pid, 'VmHWM') - before:.0f} MB over the "
                      "resident size")


def side_routes(url, folders):
    """Gradio's routes beside the queue: the recording route (it spooled the upload to the temp folder), a direct
    call of a queued event (it ran outside the queue and its limits), monitoring, the run history."""
    import httpx

    outcomes = []
    before = folder_size(folders["tmp"])
    response = httpx.post(url + "gradio_api/process_recording", files={"video": ("r.webm", os.urandom(200_000))},
                          headers=address_headers(211))
    grew = folder_size(folders["tmp"])[0] - before[0]
    outcomes.append(("refused" if response.status_code in (403, 404) else "answered",
                     f"recording {response.status_code}, {grew} bytes spooled"))
    data = rest_data(url, request(image=os.path.join(ASSETS, "scene_205.png")), address=211)
    response = httpx.post(url + "gradio_api/run/compare", json={"data": data}, headers=address_headers(211),
                          timeout=300)
    outcomes.append(("refused" if response.status_code == 404 else "answered", f"run/compare {response.status_code}"))
    for route in ("monitoring/summary", "gradio_api/runs"):
        response = httpx.get(url + route, headers=address_headers(211))
        outcomes.append(("refused" if response.status_code in (403, 404) else "answered",
                         f"{route} {response.status_code}"))
    return outcomes, "; ".join(o[1] for o in outcomes)


def files_not_uploaded(url):
    """An image whose url is a data: URL (an 8000 x 8000 PNG: Gradio decoded it whole, unchecked), and one whose
    path is a web address (Gradio downloads it): raw queue joins."""
    import httpx

    config = httpx.get(url + "config").json()
    fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "compare")
    stored = upload(url, os.path.join(ASSETS, "scene_205.png"), 212)
    outcomes = []
    for i, image in enumerate([{**stored, "url": crafted.png_bomb_data_url()},
                               {**stored, "path": "https://example.com/image.png"}]):
        data = compare_arguments(**{**request(), "image": image})
        response = httpx.post(url + "gradio_api/queue/join", headers=address_headers(212), timeout=300,
                              json={"data": data, "fn_index": fn_index, "session_hash": f"notuploaded{i}"})
        if response.status_code == 200:
            outcomes.append(("answered", "joined the queue"))
        else:
            outcomes.append(outcome_of_error(httpx.HTTPStatusError("", request=response.request, response=response)))
    return outcomes, ""


def report_flood(url, report, count=36, address=213):
    """count report loads (the Benchmark tab's queued event) from one address, each with a new session id and a
    2 MB report, joined at once: the address's share of the queue is bounded; then another address's load."""
    import httpx

    config = httpx.get(url + "config").json()
    fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "load_benchmark_click")
    stored = upload(url, report, address)
    outcomes = []
    with httpx.Client(headers=address_headers(address)) as http:
        for i in range(count):
            response = http.post(url + "gradio_api/queue/join", json={"data": [stored, []], "fn_index": fn_index,
                                                                      "session_hash": f"reportflood{i}"})
            if response.status_code == 200:
                outcomes.append(("answered", ""))
            else:
                outcomes.append(outcome_of_error(httpx.HTTPStatusError("", request=response.request,
                                                                       response=response)))
    response = httpx.post(url + "gradio_api/queue/join", headers=address_headers(address + 1),
                          json={"data": [upload(url, report, address + 1), []], "fn_index": fn_index,
                                "session_hash": "reportflood-other"})
    accepted = sum(o[0] == "answered" for o in outcomes)
    return outcomes, (f"{accepted} of {count} accepted (loads end as others join: the bound is on those waiting "
                      f"or running at once); another address: HTTP {response.status_code}")


def leaving_while_reading(url, video, log_path):
    """A visitor who leaves (SIGKILL) while their single-keyframe video is being read: does the reading stop
    (the log's "visitor left: stopped: reading the video")? Then the next visitor's latency."""
    count = lambda: open(log_path, errors="replace").read().count("stopped: reading the video")  # noqa: E731
    seen = count()
    arguments = compare_arguments(**request(frames=16))[2:]  # after the image and the video
    script = (f"from gradio_client import Client, handle_file; from gradio_client.utils import Status; import time\n"
              f"job = Client({url!r}, verbose=False).submit(None, handle_file({video!r}), *{arguments!r}, "
              f"api_name='/compare')\n"
              f"while job.status().code not in (Status.PROGRESS, Status.FINISHED): time.sleep(0.02)\n"
              f"print('ready', flush=True); time.sleep(600)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    process.stdout.readline()
    killed = time.perf_counter()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    while count() == seen and time.perf_counter() - killed < 30:
        time.sleep(0.05)
    stopped = count() > seen
    note = (f"stopped while reading {time.perf_counter() - killed:.1f} s after the kill" if stopped
            else "not stopped while reading")
    from gradio_client import Client

    start = time.perf_counter()
    outcome = call(Client(url, verbose=False, headers=address_headers(214)), request(image=os.path.join(
        ASSETS, "scene_205.png")))
    return [outcome], f"{note}; the next visitor answered in {time.perf_counter() - start:.1f} s"


def visit_texts(url):
    """What a visitor's client receives (the HTML, /config, the API description, an upload's answer, a comparison
    through gradio_client): the absolute paths it names (none expected: the page says files/...)."""
    import httpx
    from gradio_client import Client

    texts = [httpx.get(url).text, httpx.get(url + "config").text, httpx.get(url + "gradio_api/info").text,
             httpx.post(url + "gradio_api/upload", headers=address_headers(215),
                        files={"files": ("scene.png", open(os.path.join(ASSETS, "scene_205.png"), "rb").read())}).text]
    client = Client(url, verbose=False, headers=address_headers(215), download_files=False)
    outcome = call(client, request(image=os.path.join(ASSETS, "scene_205.png")))
    scene = handle(os.path.join(ASSETS, "scene_205.png"))
    outputs = client.predict(*compare_arguments(**{**request(), "image": scene}), api_name="/compare")
    texts.append(json.dumps(outputs))
    server_path = r'(?<![\w.])/(?:tmp|root|home|work|var|usr)/[^"\s\\]*'
    found = sorted({m for text in texts for m in re.findall(server_path, text)})
    return [outcome if not found else ("crashed", f"server paths: {found[:3]}")], (
        f"{len(found)} absolute server paths in {sum(len(t) for t in texts) / 1e6:.1f} MB of responses"
        + (f": {found[:2]}" if found else ""))


def full_disk(url, pid, log_path):
    """A disk that fills while the result file is written: the server's file size limit lowered (prlimit) below
    the result's size for one comparison, then restored. Answered (the answers and panels) with a warning, and
    no half-written file left."""
    import resource

    from gradio_client import Client

    client = Client(url, verbose=False, headers=address_headers(216), download_files=False)
    image = handle(os.path.join(ASSETS, "scene_205.png"))
    arguments = compare_arguments(**{**request(), "image": image})
    limit = os.path.getsize(log_path) + 8 * 2**10  # the log may still grow a little; the result is larger
    old = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        job = client.submit(*arguments, api_name="/compare")
        try:
            outputs = job.result(timeout=300)
            outcome = ("answered", "")
        except Exception as error:  # classified below
            outputs, outcome = None, outcome_of_error(error)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, old)
    result, download = (outputs[-3], outputs[-2]) if outputs else (None, None)  # gradio_client leaves out the state
    shown = isinstance(result, dict) and "results" in result
    return [outcome], (f"answered: the result {'shown' if shown else 'missing'}, its download "
                       f"{'given' if download else 'withheld (the page warns)'}; log limit {limit // 1024} KB"
                       if outcome[0] == "answered" else outcome[1][:90])


def sigterm_during_a_request(url, process, log_path):
    """SIGTERM while a comparison (10 timed repeats) runs: the exit code, how long it took, the log's lines."""
    from gradio_client import Client
    from gradio_client.utils import Status

    client = Client(url, verbose=False, headers=address_headers(217))
    job = client.submit(*compare_arguments(**{**request(), "image": handle(os.path.join(ASSETS, "scene_205.png"))},
                                           repeats=10), api_name="/compare")
    deadline = time.time() + 120
    while job.status().code not in (Status.PROGRESS, Status.ITERATING, Status.FINISHED) and time.time() < deadline:
        time.sleep(0.05)
    start = time.perf_counter()  # at once: 0.5 s later could land past the model's work (issue 33's last point)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        code = "none within 60 s"
    took = time.perf_counter() - start
    text = open(log_path, errors="replace").read()
    said = [line for line in ("request stopped: the server is stopping",
                              "request answered while the server is stopping") if line in text]
    aborted = "terminate called" in text
    outcome = ("refused" if code == 0 and len(said) == 1 else "crashed", f"exit {code}")
    return [outcome], (f"exit {code} {took:.1f} s after SIGTERM; the log: {said[0] if said else 'no request line'}"
                       + ("; 'terminate called without an active exception'" if aborted else ""))


# ---------------------------------------------------------------- the run


def count_log(log_path):
    """(user-error lines, requests stopped because their visitor left, tracebacks) in the server's log."""
    text = open(log_path, errors="replace").read()
    return text.count("user error:"), text.count("visitor left:"), text.count("Traceback (most recent call last)")


def run_phase(rows, name, pid, phase):
    reset_peak(pid)
    started = time.perf_counter()
    try:
        outcomes, note = phase()
    except Exception as error:  # the script's own failure: shown in its row, the run goes on
        outcomes, note = [("crashed", "")], f"the kind itself failed: {type(error).__name__}: {error}"[:120]
    seconds = time.perf_counter() - started
    counts = {kind: sum(1 for o in outcomes if o[0] == kind) for kind in ("answered", "refused", "crashed")}
    messages = [o[1] for o in outcomes if o[1]]
    first = note or (" ".join(messages[0].split())[:90] if messages else "")
    peak = memory_mb(pid, "VmHWM") if os.path.exists(f"/proc/{pid}/status") else float("nan")  # nan: it ended
    rows.append((name, counts["answered"], counts["refused"], counts["crashed"], peak, first, seconds))
    print(f"  {name}: {counts} in {seconds:.1f} s ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)


def print_table(rows, summary):
    print("| kind | answered | refused with a message | crashed | server peak RSS (MB) | seconds | first message / "
          "note |")
    print("|---|---|---|---|---|---|---|")
    for name, answered, refused, crashed, peak, message, *seconds in rows:
        took = f"{seconds[0]:.1f}" if seconds else ""
        print(f"| {name} | {answered} | {refused} | {crashed} | {peak:.0f} | {took} | {message.replace('|', '/')} |")
    print()
    for line in summary:
        print(line)


def one_request_peaks(work):
    """In this process, on the embedded model: the peak RSS above the resident baseline of one request's media
    reading and model work (the comparison and the flipped run the page adds), for the largest inputs the
    bounds let through. (The page's analysis and drawing come on top; the server table shows the whole.)"""
    from PIL import ImageOps

    from explorer.core.compare import compare
    from explorer.core.settings import check_settings
    from explorer.media.read import read_media
    from explorer.serve import access

    gradient = np.add.outer(np.arange(4000, dtype=np.uint16), np.arange(4000, dtype=np.uint16))
    cases = [("PNG 4000 x 4000 (16 MP, the decode limit)", lambda: Image.fromarray(
        (gradient % 256).astype(np.uint8)).convert("RGB").save(os.path.join(work, "16mp.png"))),
        ("JPEG 8000 x 6000 (48 MP, decoded at 1/2 scale)", lambda: Image.new("RGB", (8000, 6000), (90, 120, 200)).save(
            os.path.join(work, "48mp.jpg"))),
        ("PNG 4000 x 400 (10:1)", lambda: Image.new("RGB", (4000, 400), (90, 120, 200)).save(
            os.path.join(work, "wide.png"))),
        ("progressive JPEG 4700 x 4700 (RGB, just under the 128 MB decode bound)", lambda: Image.fromarray(
            (np.add.outer(np.arange(4700), np.arange(4700)) % 256).astype(np.uint8)).convert("RGB").save(
            os.path.join(work, "progressive.jpg"), progressive=True)),
        ("progressive CMYK JPEG 4000 x 4000 (just under the bound)", lambda: Image.fromarray(
            (gradient % 256).astype(np.uint8)).convert("CMYK").save(os.path.join(work, "cmyk.jpg"), progressive=True)),
        ("baseline CMYK JPEG 8000 x 6000 (decoded at 1/2 scale)", lambda: Image.new(
            "CMYK", (8000, 6000), (90, 120, 200, 10)).save(os.path.join(work, "cmyk48.jpg"))),
        ("mp4 1280 x 720, 600 frames, 16 sampled", lambda: write_clip(os.path.join(work, "hd.mp4"), 600,
                                                                      (1280, 720), 30, "mp4v")),
        ("AVI 3840 x 2160 (4K), 64 frames, 16 sampled", lambda: write_clip(os.path.join(work, "4k.avi"), 64,
                                                                           (3840, 2160), 30, "MJPG"))]
    paths = ["16mp.png", "48mp.jpg", "wide.png", "progressive.jpg", "cmyk.jpg", "cmyk48.jpg", "hd.mp4", "4k.avi"]
    model, processor, family, _ = access.get_model(None)
    settings = check_settings(methods=["clse", "fastv"], keep=1 / 9, frames=16)
    pid = os.getpid()
    rows = []
    for (name, make), path in zip([(None, lambda: None)] + cases, ["warm-up"] + paths):
        make()
        is_video = path.endswith((".mp4", ".avi"))
        full = os.path.join(work, path) if path != "warm-up" else os.path.join(ASSETS, "scene_205.png")
        baseline = memory_mb(pid, "VmRSS")
        reset_peak(pid)
        images, kind = read_media(None if is_video else full, full if is_video else None, 16)
        after_media = memory_mb(pid, "VmHWM") - baseline
        compare(model, processor, family, images, QUESTION, settings, kind=kind)
        compare(model, processor, family, [ImageOps.flip(im) for im in images], QUESTION, settings,
                kind=kind, diagnostics=False)
        if name:
            rows.append((name, after_media, memory_mb(pid, "VmHWM") - baseline, baseline))
    print("| input | peak above baseline after reading the media (MB) | after the model work (MB) | "
          "baseline RSS (MB) |")
    print("|---|---|---|---|")
    for name, media_mb, total_mb, baseline in rows:
        print(f"| {name} | {media_mb:.0f} | {total_mb:.0f} | {baseline:.0f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=290, help="stop starting new kinds after this long")
    parser.add_argument("--file-age-s", type=int, default=40, help="the server's EXPLORER_FILE_MAX_AGE_S")
    parser.add_argument("--creep", type=int, default=0, help="also N sequential requests (new sessions, then one "
                        "session): the server's RSS after the first and the last")
    parser.add_argument("--creep-only", action="store_true",
                        help="with --creep N: only the sequential requests, on a freshly started page")
    parser.add_argument("--allocators", action="store_true",
                        help="with --creep N: the new-session requests on two fresh pages, glibc's dynamic mmap "
                             "threshold then the page's fixed one (explorer.serve.limits.fix_mmap_threshold)")
    parser.add_argument("--only", type=lambda text: [t.strip() for t in text.split(",") if t.strip()], default=None,
                        help="only the kinds whose names contain one of these comma-separated texts")
    parser.add_argument("--app-root", default=ROOT, help="the checkout whose app.py is started (default: this one; "
                        "another, to measure it the same way)")
    parser.add_argument("--one-request", action="store_true",
                        help="instead: one request's peak memory in this process, on the embedded model")
    args = parser.parse_args(argv)
    start = time.time()
    work = tempfile.mkdtemp(prefix="explorer-stress-")
    if args.one_request:
        import torch

        torch.set_num_threads(1)  # the page's machine may be busy; memory does not depend on threads
        one_request_peaks(work)
        shutil.rmtree(work, ignore_errors=True)
        return
    folders = {name: os.path.join(work, name) for name in ("gradio", "tmp", "models", "inputs", "client")}
    for folder in folders.values():
        os.makedirs(folder)
    os.makedirs(os.path.join(folders["models"], "empty"))
    os.environ["GRADIO_TEMP_DIR"] = folders["client"]  # this process's client files, apart from the server's
    files = make_inputs(folders["inputs"])
    log_path = os.path.join(work, "server.log")
    env = {"GRADIO_TEMP_DIR": folders["gradio"], "TMPDIR": folders["tmp"], "EXPLORER_MODEL_DIRS": folders["models"],
           "EXPLORER_FILE_MAX_AGE_S": str(args.file_age_s), "EXPLORER_TRUST_PROXY": "1"}
    rows, summary, medians = [], [], []
    pages = [("", {})]
    if args.allocators:  # the same requests on two fresh pages, which differ only in malloc's mmap threshold
        args.creep_only = True
        pages = [(", glibc's dynamic mmap threshold", {"EXPLORER_MMAP_THRESHOLD_KB": "0"}),
                 (f", the page's {limits.mmap_threshold_kb()} KB mmap threshold", {})]
    try:
        for label, setting in pages:
            with start_page({**env, **setting}, log_path, root=args.app_root) as (url, process):
                pid = process.pid
                run_all(url, pid, files, folders, rows, summary, start, args, label, process, log_path)
                medians.append(getattr(sequential_memory, "median_s", None))
                user_errors, stopped, tracebacks = count_log(log_path)
                summary.append(f"- server log{label}: {user_errors} user-error lines, {stopped} requests stopped "
                               f"because their visitor left, {tracebacks} tracebacks ({log_path})")
        if args.allocators and None not in medians:
            summary.append(f"- median time per request, the page's threshold / glibc's: "
                           f"{medians[1] / medians[0]:.2f} (measured in this run, the pages one after the other)")
    finally:
        print_table(rows, summary)
        shutil.rmtree(os.path.join(work, "inputs"), ignore_errors=True)
    print(f"\n{len(rows)} kinds in {time.time() - start:.0f} s")


def run_all(url, pid, files, folders, rows, summary, start, args, label="", process=None, log_path=None):
    from gradio_client import Client

    server_folders = (folders["gradio"], folders["tmp"])
    before = folder_size(*server_folders)
    # every kind from an address of its own (10.0.0.90 + i): one address's upload and request bounds apply to
    # the kinds that test them, not to the whole run
    singles = [(name, item) for name, item in kinds(files, folders["models"])]
    phases = [(name, (lambda item=item, i=i: ([rest_call(url, *item[1:], address=90 + i)] if isinstance(item, tuple)
                                              else [call(Client(url, verbose=False, headers=address_headers(90 + i)),
                                                         item)], ""))) for i, (name, item) in enumerate(singles)]
    phases += [("20 concurrent clients, 20 addresses", lambda: concurrent_clients(url, files["scene"])),
               ("20 concurrent clients, one address", lambda: concurrent_clients(url, files["scene"],
                                                                                 distinct=False)),
               ("40 session ids from one address", lambda: many_sessions_one_address(url, files["scene"])),
               ("upload flood: 10 x 45 MB, then 200 files", lambda: upload_flood(url, folders["inputs"])),
               ("Benchmark tab: 4 hostile reports", lambda: report_kinds(url, folders["inputs"])),
               ("frame slider at 1 with no result", lambda: ([private_event(url, "frame_change",
                                                                            [None, 1, None, 1])], "")),
               ("example 99", lambda: ([private_event(url, "load_example", [99])], "")),
               ("one client, 3 requests at once", lambda: one_client_three_times(url, files["scene"])),
               ("3 abandoned clients (submit, exit)", lambda: leaving_clients(url, files["scene"], "abandoned")),
               ("3 killed clients (SIGKILL mid-request)", lambda: leaving_clients(url, files["scene"], "killed")),
               ("3 REST calls nobody reads, one address", lambda: fire_and_forget(url, files["scene"])),
               ("3 deep-link calls after a result", lambda: deep_links(url, files["scene"], folders["gradio"])),
               # issue 33
               ("a visitor leaves while their single-keyframe video is read", lambda: leaving_while_reading(
                   url, files["one_keyframe"], log_path)),
               ("36 report loads (2 MB) from one address, new session ids", lambda: report_flood(
                   url, files["report_2mb"])),
               ("an image as a data: URL (8000 x 8000 PNG) / by a web address", lambda: files_not_uploaded(url)),
               ("request bodies: 400 MB declared / 8 MB without a length", lambda: large_bodies(url, pid)),
               ("routes beside the queue: recording, run/compare, monitoring, run history",
                lambda: side_routes(url, folders)),
               ("absolute server paths in a visitor's responses", lambda: visit_texts(url)),
               ("a full disk while the result file is written", lambda: full_disk(url, pid, log_path))]
    baseline = None
    sequential_memory.pid = pid
    if args.creep:
        phases += [(f"{args.creep} requests, a new session each", lambda: sequential_memory(
                        url, files["scene"], args.creep, True, 20)),
                   (f"{args.creep} requests, one session", lambda: sequential_memory(url, files["scene"], args.creep,
                                                                                       False, 21))]
    if args.creep_only:  # a freshly started page: the first requests fill its session store
        phases = phases[-2:-1] if args.allocators else phases[-2:]
    if args.only:
        phases = [(name, phase) for name, phase in phases if any(text in name for text in args.only)]
    phases = [(name + label, phase) for name, phase in phases]
    for name, phase in phases:
        if time.time() - start > args.budget_s - args.file_age_s - 20:
            rows.append((name, 0, 0, 0, float("nan"), "skipped: the time budget ran out"))
            continue
        run_phase(rows, name, pid, phase)
        baseline = baseline or memory_mb(pid, "VmRSS")
    after = folder_size(*server_folders)
    time.sleep(args.file_age_s + 2 * max(1, args.file_age_s // 6) + 2)  # a cleanup period past the bound
    cleaned = folder_size(*server_folders)
    loaded = f"{baseline:.0f} MB" if baseline else "no request ran"  # --only SIGTERM runs no kind before it
    summary.append(f"- server RSS{label} after the first request (model loaded): {loaded}; "
                   f"now {memory_mb(pid, 'VmRSS'):.0f} MB")
    summary.append(f"- temporary folders{label} (Gradio's cache + our results): {before[0] / 1e6:.2f} MB in "
                   f"{before[1]} files at start, {after[0] / 1e6:.2f} MB in {after[1]} files after the run, "
                   f"{cleaned[0] / 1e6:.2f} MB in {cleaned[1]} files {args.file_age_s} s later "
                   f"(EXPLORER_FILE_MAX_AGE_S={args.file_age_s})")
    name = "SIGTERM while a comparison runs (the last kind: it stops the page)"
    if process is not None and not args.creep_only and (not args.only or any(t in name for t in args.only)):
        run_phase(rows, name + label, pid, lambda: sigterm_during_a_request(url, process, log_path))


if __name__ == "__main__":
    main()

"""Issue 14 stays fixed: bounded work per request, allowed models only, cleaned files, a fair queue.

Media bounds are checked on real files (PIL, OpenCV); the model cache on tiny LLaVA checkpoints saved in the
hub layout; the queue, the per-client limit, leaving clients and Gradio's file cleanup on a real Gradio server
(app.prepare on a small page of our own, so a request can be held open for as long as a check needs it), and
the elongated image on the real page (python app.py).
"""

import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
import zlib

import cv2
import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from explorer.serve import limits as page_app
import models
from explorer.bench import crafted
from explorer.core import interrupt
from explorer.media import read as media
from explorer.serve import access, files
from explorer.serve.launch import free_port
from tests.conftest import random_image, save_tiny, wait_until
from tests.conftest import app_server


# ---------------------------------------------------------------- images


def png_header_only(path, width, height):
    """A PNG whose header says width x height but which holds no pixel data: any attempt to decode it fails,
    so a size-based refusal proves the decision was made from the header alone."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [(10000, 1), (1, 10000), (2241, 224)])
def test_elongated_image_is_refused_from_its_header(tmp_path, width, height):
    path = png_header_only(tmp_path / "long.png", width, height)
    with pytest.raises(media.MediaError, match=f"{width} x {height} pixels: one side is more than 10 times"):
        media.load_image(path)


def test_real_elongated_image_is_refused_and_a_10_to_1_image_is_bounded(tmp_path):
    Image.new("RGB", (10000, 1), (200, 30, 30)).save(tmp_path / "line.png")  # the 110-byte file
    with pytest.raises(media.MediaError, match="crop it closer to a square"):
        media.load_image(tmp_path / "line.png")
    Image.new("RGB", (5000, 500), (200, 30, 30)).save(tmp_path / "wide.png")
    image = media.load_image(tmp_path / "wide.png")
    assert image.size == (media.MAX_IMAGE_SIDE, 205) and image.mode == "RGB"


@pytest.mark.parametrize("width, height", [(5000, 4000), (100_000, 100_000)])
def test_oversized_image_is_refused_from_its_header(tmp_path, width, height):
    path = png_header_only(tmp_path / "big.png", width, height)  # 100k x 100k trips PIL's own bomb check
    with pytest.raises(media.MediaError, match="larger than the 16 megapixel limit"):
        media.load_image(path)


def test_page_can_refuse_an_upload_before_anything_decodes_it(tmp_path):
    png_header_only(tmp_path / "wide.png", 10000, 1)
    png_header_only(tmp_path / "big.png", 9000, 9000)
    for name, message in (("wide.png", "more than 10 times"), ("big.png", "larger than the 16 megapixel limit")):
        with pytest.raises(media.MediaError, match=message):
            media.check_image_header(tmp_path / name)
    Image.new("RGB", (8000, 6000)).save(tmp_path / "photo.jpg")  # 48 MP, but decoded at half scale: 12 MP
    media.check_image_header(tmp_path / "photo.jpg")


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    Image.fromarray(np.full((4000, 6000, 3), 90, np.uint8)).save(tmp_path / "photo.jpg", quality=80)
    decoded = media.open_image_file(str(tmp_path / "photo.jpg"))
    assert decoded.size == (3000, 2000)  # JPEG draft: the 24 MP file was decoded at half scale
    assert media.load_image(tmp_path / "photo.jpg").size == (2048, 1365)


def test_unreadable_images_get_a_sentence(tmp_path):
    (tmp_path / "text.png").write_bytes(b"this is not an image")
    truncated = tmp_path / "cut.png"
    random_image(0, size=(300, 200)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:400])
    for path in (tmp_path / "text.png", truncated):
        with pytest.raises(media.MediaError, match="is not a readable image"):
            media.load_image(path)


# ---------------------------------------------------------------- videos


def write_counting_clip(path, frames, size=(320, 240), fps=30, fourcc="MJPG"):
    """Frame i is filled with grey level i (mod 256), so a sampled frame tells which frame it was."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i % 256, np.uint8))
    writer.release()
    return path


def sampled_with_peak(path, num_frames):
    """The sampled frames and the peak of numpy memory (OpenCV's decoded frames) while sampling."""
    tracemalloc.start()
    try:
        frames = media.sample_video_frames(path, num_frames)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return frames, peak


def test_video_frames_are_decoded_in_one_pass_and_only_the_requested_ones_held(tmp_path):
    clip = write_counting_clip(tmp_path / "clip.avi", 240)
    frames, peak = sampled_with_peak(clip, 4)
    levels = [int(np.asarray(f)[..., 0].mean().round()) for f in frames]
    assert np.allclose(levels, [0, 80, 159, 239], atol=3)  # evenly spaced over the whole clip
    frame_bytes = 320 * 240 * 3
    assert peak < 4 * frame_bytes  # decoding all 240 frames, as before, held 240 x frame_bytes


def test_wrong_frame_count_falls_back_without_holding_more_frames(tmp_path):
    clip = write_counting_clip(tmp_path / "clip.avi", 240)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])  # the header still says 240 frames
    assert cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT) == 240
    frames, peak = sampled_with_peak(cut, 4)
    levels = [int(np.asarray(f)[..., 0].mean().round()) for f in frames]
    assert len(frames) == 4 and levels[0] <= 3 and 60 < levels[-1] < 90  # spread over the ~79 frames left
    assert peak < 4 * 320 * 240 * 3


def test_video_with_too_large_frames_is_refused_before_decoding(tmp_path):
    clip = write_counting_clip(tmp_path / "huge.avi", 2, size=(4000, 2400))
    frames_bytes = 4000 * 2400 * 3
    with pytest.raises(media.MediaError, match="4000 x 2400 frames: larger than the 8.3 megapixel"):
        sampled_with_peak(clip, 2)
    tracemalloc.start()
    with pytest.raises(media.MediaError):
        media.sample_video_frames(clip, 2)
    assert tracemalloc.get_traced_memory()[1] < frames_bytes / 10  # not one frame was decoded
    tracemalloc.stop()


def test_video_needing_too_much_decoding_is_refused_before_decoding(tmp_path, monkeypatch):
    """The decoding a video's picks need (from the keyframe before each) is bounded before any of it starts."""
    video = crafted.long_single_keyframe_video(tmp_path / "one-keyframe.mp4", 1200, size=(640, 360))
    monkeypatch.setattr(media, "MAX_VIDEO_DECODE_PIXELS", 1000 * 640 * 360)
    start = time.perf_counter()
    with pytest.raises(media.MediaError, match=r"one-keyframe.mp4 would need 1200 frames decoded to sample 16 \(1 "
                                               r"keyframe\(s\) in its 1200 frames of 640 x 360\): more than the page"):
        media.sample_video_frames(video, 16)
    assert time.perf_counter() - start < 1.0  # the packets listed, none decoded
    # frequent keyframes: the same 16 picks of a file of the same length need 16 frames decoded
    frequent = write_counting_clip(tmp_path / "frequent.avi", 1200, size=(640, 360))  # MJPEG: every frame a keyframe
    assert len(media.sample_video_frames(frequent, 16)) == 16


def test_video_reading_is_bounded_in_time(tmp_path, monkeypatch):
    video = crafted.long_single_keyframe_video(tmp_path / "long.mp4", 3000)  # 1080p: about 3-5 s of decoding
    monkeypatch.setenv("EXPLORER_VIDEO_READ_S", "1")
    start = time.perf_counter()
    with pytest.raises(media.MediaError, match=r"long.mp4 took more than 1 s to read \(\d+ frames decoded to sample "
                                               r"16\), the page's limit: cut it shorter, re-encode it"):
        media.sample_video_frames(video, 16)
    assert time.perf_counter() - start < 2.0


def test_a_video_reading_stops_when_its_request_is_no_longer_wanted(tmp_path):
    video = crafted.long_single_keyframe_video(tmp_path / "long.mp4", 3000, size=(1280, 720))
    asked = []
    start = time.perf_counter()
    with interrupt.stop_when(lambda: asked.append(time.perf_counter()) or len(asked) > 3):
        with pytest.raises(interrupt.Stopped, match="stopped: reading the video"):
            media.sample_video_frames(video, 16)
    assert time.perf_counter() - start < 1.5  # asked every 0.1 s, not after the whole reading (several seconds)


def test_too_long_video_is_refused_from_its_container(tmp_path):
    clip = write_counting_clip(tmp_path / "slow.avi", 61, size=(32, 32), fps=0.1)  # 610 s at 0.1 fps
    with pytest.raises(media.MediaError, match="610 s long; the limit is 600 s"):
        media.sample_video_frames(clip, 4)


def write_phone_clip(path, matrix, size=(64, 32), frames=5):
    """An MP4 recorded as a phone records it: landscape pictures (a red 8 x 8 corner at the top left) with the
    track header's display matrix (QuickTime 'tkhd', a b / c d in 16.16) saying how players turn it."""
    import av  # noqa: PLC0415

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        picture = np.zeros((size[1], size[0], 3), np.uint8)
        picture[:8, :8] = (255, 0, 0)
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd") - 4
    version = data[box + 8]
    at = box + 8 + 4 + (32 if version == 1 else 20) + 8 + 8  # times, track id, duration; reserved, layer, volume
    a, b, c, d = (round(v * 0x10000) for v in matrix)
    struct.pack_into(">9i", data, at, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("matrix, shown, corner", [
    ((0, 1, -1, 0), (32, 64), "top right"),  # a phone held upright: the picture turned 90 degrees clockwise
    ((-1, 0, 0, -1), (64, 32), "bottom right"),  # held upside down
    ((0, -1, 1, 0), (32, 64), "bottom left"),  # 90 degrees counter-clockwise
    ((1, 0, 0, 1), (64, 32), "top left"),  # no turn
])
def test_phone_videos_are_read_as_players_show_them(tmp_path, matrix, shown, corner):
    """A portrait phone video is stored landscape with a display matrix: its frames reach the model upright, as
    a player shows them (the red corner where the turn puts it), not lying on their side."""
    frames = media.sample_video_frames(write_phone_clip(tmp_path / "phone.mp4", matrix), 2)
    assert len(frames) == 2
    for frame in frames:
        assert frame.size == shown
        pixels = np.asarray(frame).astype(int)
        rows = slice(None, 6) if corner.startswith("top") else slice(-6, None)
        columns = slice(None, 6) if corner.endswith("left") else slice(-6, None)
        assert pixels[rows, columns, 0].mean() > 200 and pixels[rows, columns, 1].mean() < 60  # red there
        assert (pixels[..., 0] > 128).mean() < 0.05  # and nowhere else: the corner alone


@pytest.mark.parametrize("frames", [float("nan"), float("inf"), None, 0, 17, 2.5, "4", True])
def test_bad_frame_counts_get_a_sentence(tmp_path, frames):
    clip = write_counting_clip(tmp_path / "clip.avi", 8, size=(32, 32))
    with pytest.raises(media.MediaError, match="video frames must be a whole number from 1 to 16"):
        media.read_media(None, str(clip), frames)


def test_read_media_keeps_the_service_sentences(tmp_path):
    image = tmp_path / "a.png"
    random_image(0).save(image)
    with pytest.raises(media.MediaError, match="give an image or a video, not both"):
        media.read_media(str(image), str(image), 4)
    with pytest.raises(media.MediaError, match="upload an image or a video first"):
        media.read_media(None, None, 4)
    images, kind = media.read_media(str(image), None, 4)
    assert kind == "image" and images[0].size == (90, 70)
    clip = write_counting_clip(tmp_path / "clip.avi", 8, size=(32, 32))
    images, kind = media.read_media(None, str(clip), 4.0)
    assert kind == "video" and len(images) == 4


# ---------------------------------------------------------------- models


@pytest.fixture
def model_root(tmp_path, monkeypatch):
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("EXPLORER_MODEL_DIRS", os.pathsep.join([str(root), str(tmp_path / "absent-root")]))
    monkeypatch.delenv("EXPLORER_MODEL", raising=False)
    monkeypatch.delenv("EXPLORER_ALLOW_DOWNLOAD", raising=False)
    access.unload_all()
    yield root
    access.unload_all()


def test_every_spelling_of_a_model_resolves_to_one_key(model_root, tmp_path):
    target = model_root / "m"
    target.mkdir()
    (model_root / "other").mkdir()
    os.symlink(target, tmp_path / "link-outside-root")
    key = os.path.realpath(target)
    spellings = [f"{model_root}/m", f"{model_root}/m/", f"{model_root}//m", f"{model_root}/./m",
                 f"{model_root}/other/../m", f"  {model_root}/m  ", str(tmp_path / "link-outside-root")]
    assert {access.canonical_model(s) for s in spellings} == {key}
    embedded = [None, "", "shapes-llava", " shapes-llava ", models.EMBEDDED_DIR, models.EMBEDDED_DIR + "/",
                os.path.join(models.EMBEDDED_DIR, "..", "weights")]
    assert {access.canonical_model(s) for s in embedded} == {models.EMBEDDED_ID}
    hub_id = models.hub_ids()[0]
    assert {access.canonical_model(s) for s in (hub_id, hub_id.upper(), f" {hub_id} ")} == {hub_id}


def test_refused_models_share_one_message(model_root, tmp_path):
    os.symlink("/etc", model_root / "escape")  # inside the root by name, outside after realpath
    (model_root / "file").write_text("not a directory")
    refused = ["/root/.ssh", "/nonexistent", "/etc", "/", "etc", "models/shapes_llava/weights",
               "../../etc", f"{model_root}/../", str(model_root / "escape"), str(model_root / "missing"),
               str(model_root / "file"), "someone/some-model", "x" * 5000, "a\0b", str(tmp_path)]
    messages = set()
    for name in refused:
        with pytest.raises(access.ModelRefused) as caught:
            access.canonical_model(name)
        messages.add(str(caught.value))
    assert messages == {access.REFUSED}


def test_directory_without_a_model_gets_the_one_sentence_and_one_log_line(model_root, caplog):
    (model_root / "empty").mkdir()
    (model_root / "junk").mkdir()
    (model_root / "junk" / "config.json").write_text("{not json")
    for name in ("empty", "junk"):
        with caplog.at_level("INFO", logger="explorer"), pytest.raises(access.ModelRefused) as caught:
            access.get_model(str(model_root / name))
        assert str(caught.value) == access.REFUSED
    lines = [r for r in caplog.records if r.name == "explorer"]
    assert len(lines) == 2 and all(r.exc_info is None and "did not load" in r.getMessage() for r in lines)


def test_hub_id_is_never_downloaded_unless_the_deployment_allows_it(model_root, tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    hub_id = models.hub_ids()[0]
    with pytest.raises(access.ModelRefused, match="offered but not downloaded on this server"):
        access.get_model(hub_id)
    monkeypatch.setenv("EXPLORER_MODEL", hub_id)  # the deployment's own default may download: its choice
    assert access.source_of(hub_id) == hub_id
    monkeypatch.delenv("EXPLORER_MODEL")
    # the same id already in the local cache (the hub's layout) loads without the network
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    save_tiny(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("EXPLORER_MAX_MODELS", "1")
    model, processor, family, lock = access.get_model(hub_id.upper())
    assert type(model).__name__ == "LlavaForConditionalGeneration" and access.loaded_models() == [hub_id]


def test_least_recently_used_model_is_unloaded(model_root, monkeypatch):
    monkeypatch.setenv("EXPLORER_MAX_MODELS", "2")
    a, b, c = (save_tiny(model_root / name) for name in "abc")
    first = access.get_model(a)[0]
    assert access.get_model(a + "/")[0] is first  # another spelling: no second copy
    second = weakref.ref(access.get_model(b)[0])
    access.get_model(a)  # a is now the most recently used
    access.get_model(c)
    assert access.loaded_models() == [os.path.realpath(a), os.path.realpath(c)]
    assert second() is None  # b's weights were freed, not only forgotten
    assert access.get_model(a)[0] is first


# ---------------------------------------------------------------- files


def test_result_files_are_removed_after_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "RESULTS_DIR", str(tmp_path / "results"))
    first = files.save_result_json({"results": {}})
    created = time.time()
    assert files.remove_old_results(now=created + files.RESULT_MAX_AGE_S - 5) == 0 and os.path.exists(first)
    assert files.remove_old_results(now=created + files.RESULT_MAX_AGE_S + 5) == 1 and not os.path.exists(first)
    monkeypatch.setattr(files, "RESULT_MAX_AGE_S", 0)
    older = files.save_result_json({"results": {}})
    time.sleep(0.05)
    newer = files.save_result_json({"results": {"none": {}}})  # saving sweeps out the results past the bound
    assert not os.path.exists(older) and os.path.exists(newer)


# ---------------------------------------------------------------- queue, clients, Gradio's files


class HeldPage:
    """A real Gradio server whose `hold` event runs until released, prepared exactly as app.py prepares the
    explorer page (queue, per-client limit, file cleanup)."""

    def __init__(self, cache_dir, file_max_age_s):
        self.release = threading.Event()
        self.started = threading.Event()
        self.gone = []
        with gr.Blocks() as demo:
            upload = gr.File()
            seconds = gr.Number()
            out = gr.File()
            gr.Button().click(self.hold, [upload, seconds], out, api_name="hold", concurrency_id="model")
            gr.Button().click(self.watch, seconds, seconds, api_name="watch", concurrency_id="model")
            gr.Button().click(lambda x: x, seconds, seconds, api_name="echo")
        self.demo = page_app.prepare(demo, file_max_age_s=file_max_age_s)
        self.port = free_port()
        self.demo.launch(server_name="127.0.0.1", server_port=self.port, prevent_thread_lock=True, quiet=True)
        self.url = f"http://127.0.0.1:{self.port}/"

    def hold(self, upload, seconds):
        self.started.set()
        self.release.wait(timeout=seconds)
        return files.save_result_json({"upload": os.path.basename(upload) if upload else None})

    def watch(self, seconds, request: gr.Request):
        self.started.set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if access.client_gone(request):
                self.gone.append(request.session_hash)
                raise gr.Error("the visitor left")
            time.sleep(0.1)
        return seconds


@pytest.fixture(scope="module")
def held_page(tmp_path_factory):
    cache = tmp_path_factory.mktemp("gradio-cache")
    saved = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # where uploads and output copies go, read at build and upload
    page = HeldPage(str(cache), file_max_age_s=2)
    page.cache = cache
    yield page
    page.release.set()
    page.demo.close()
    if saved is None:
        del os.environ["GRADIO_TEMP_DIR"]
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved


def test_one_request_per_client_others_still_served(held_page, tmp_path):
    held_page.release.clear()
    held_page.started.clear()
    first, other = Client(held_page.url, verbose=False), Client(held_page.url, verbose=False)
    job = first.submit(None, 60, api_name="/hold")
    assert held_page.started.wait(30)
    with pytest.raises(Exception) as refused:
        first.predict(None, 1, api_name="/hold")
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["detail"] == page_app.ONE_AT_A_TIME
    assert first.predict(5, api_name="/echo") == 5  # events outside the model group are not limited
    waiting = other.submit(None, 60, api_name="/hold")  # another visitor queues behind
    held_page.release.set()
    assert os.path.exists(job.result(timeout=60)) and os.path.exists(waiting.result(timeout=60))
    assert first.predict(None, 0, api_name="/hold")  # once finished, the same visitor may ask again


def client_listening(url, status):
    """A client in a subprocess that submits a /watch request, says so once Gradio reports `status` for it on
    the client's event stream (so the server can see the stream close), and then waits to be killed."""
    script = (f"from gradio_client import Client; from gradio_client.utils import Status; import time\n"
              f"job = Client({url!r}, verbose=False).submit(60, api_name='/watch')\n"
              f"while job.status().code != Status.{status}: time.sleep(0.05)\n"
              f"print('{status}', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == status
    return process


def test_a_killed_client_is_seen_gone_and_its_waiting_requests_dropped(held_page):
    held_page.release.clear()
    blocker = Client(held_page.url, verbose=False)
    held_page.started.clear()
    blocker_job = blocker.submit(None, 60, api_name="/hold")
    assert held_page.started.wait(30)
    queue = held_page.demo._queue
    killed = client_listening(held_page.url, "IN_QUEUE")  # waits behind the blocker
    assert len(queue) == 1
    killed.kill()
    killed.wait()
    assert wait_until(lambda: len(queue) == 0)  # Gradio dropped it when the client's event stream closed
    held_page.release.set()
    blocker_job.result(timeout=60)
    # a running request: the handler asks client_gone, sees the client gone and stops
    killed = client_listening(held_page.url, "PROCESSING")
    killed.kill()
    killed.wait()
    assert wait_until(lambda: len(held_page.gone) == 1)


def test_gradio_files_and_results_are_removed_after_the_bound(held_page, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(files, "RESULT_MAX_AGE_S", 2)
    held_page.release.set()
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(50_000))
    # the client runs in its own process so that none of its temporary files land in the server's cache
    script = (f"from gradio_client import Client, handle_file; "
              f"print(Client({held_page.url!r}, verbose=False, download_files={str(tmp_path)!r})"
              f".predict(handle_file({str(upload)!r}), 0, api_name='/hold'))")
    env = {name: value for name, value in os.environ.items() if name != "GRADIO_TEMP_DIR"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert os.path.exists(result.stdout.strip())

    def cached_files():
        return [os.path.join(d, f) for d, _, files in os.walk(held_page.cache) for f in files]

    assert any(f.endswith("upload.bin") for f in cached_files())
    # uploads and output copies (Gradio's delete_cache), the stray top-level files and emptied folders (ours)
    assert wait_until(lambda: not os.listdir(held_page.cache)), os.listdir(held_page.cache)
    assert wait_until(lambda: not os.listdir(files.RESULTS_DIR))  # our result file, after the same 2 s


# ---------------------------------------------------------------- the real page


def test_real_page_refuses_the_elongated_image_and_keeps_serving(page_model, tmp_path):
    Image.new("RGB", (10000, 1), (200, 30, 30)).save(tmp_path / "line.png")
    good = tmp_path / "good.png"
    random_image(1).save(good)
    with app_server(model=page_model) as url:
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="one side is more than 10 times the other"):
            client.predict(handle_file(str(tmp_path / "line.png")), None, "what ?", "clse", "fastv", 9, 2,
                           api_name="/compare")
        outputs = client.predict(handle_file(str(good)), None, "what color is the circle ?", "clse", "fastv",
                                 9, 2, api_name="/compare")
        assert any(isinstance(o, dict) and "results" in o for o in outputs)

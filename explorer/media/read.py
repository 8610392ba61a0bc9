"""Reading media into PIL images with bounded work: the first step of the flow (media -> model inputs ->
engine). The page, the command line and the benchmark harness read images and videos here.

Every bound is decided from what a file says about itself before its pixels are decoded: an image's header
gives its size (JPEG can even be decoded at 1/2, 1/4 or 1/8 scale); a video's packets are listed without
decoding (their count and keyframes), then only the frames the picks need are decoded, in one pass, each
checked against the 4K bound by the decoder itself whatever the container says, and the whole reading is
bounded in time. So one request never holds more than one decoded image of at most MAX_DECODE_PIXELS, or one 4K
video frame per decoding thread plus the frames it keeps.
A benchmark's own videos (lmms-eval) are read the same way without the upload limits (`bounded=False`).
"""

import bisect
import math
import os
import time
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.core import interrupt
from explorer.core.options import MAX_FRAMES  # torch-free: the frame bound of Settings
from models.base import BadInput  # the one error type for anything the user can fix

MAX_DECODE_PIXELS = 16_000_000  # e.g. 4000 x 4000: at most 64 MB decoded (RGBA), whatever the file's size
# A progressive JPEG is held whole while it is decoded (libjpeg buffers every DCT coefficient, 2 bytes per
# sample at full size, whatever scale it is drawn at): its decode costs about width x height x bands x 2 bytes.
MAX_PROGRESSIVE_BYTES = 128 * 2**20
MAX_IMAGE_SIDE = 2048  # larger images are shrunk (aspect kept) before they reach a processor
MAX_ASPECT_RATIO = 10  # processors resize the short side up: a 10000 x 1 image would become 2.24M x 224 px
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")  # what the page opens (PIL knows many more formats)
MAX_JPEG_SEGMENTS = 512  # segments before a JPEG's image data (a photo has 10-20; an ICC profile in pieces a few more)
MAX_JPEG_FILL = 64  # fill bytes before one marker
MAX_JPEG_SCANS = 100  # libjpeg makes a pass over the whole picture per scan (a progressive photo has about 10)
MAX_PNG_DATA_CHUNKS = 20_000  # image data chunks (a 50 MB PNG in libpng's 8 KB chunks has 6,400)
MAX_PNG_OTHER_CHUNKS = 512
MAX_GIF_BLOCKS = 4096  # extension sub-blocks before a GIF's first image
MAX_UPLOAD_MB = 50  # the page's upload limit (app.py), also the video file limit here
MAX_VIDEO_BYTES = MAX_UPLOAD_MB * 2**20
MAX_VIDEO_SECONDS = 600
MAX_VIDEO_FRAMES = 30 * MAX_VIDEO_SECONDS  # frames (packets) a video may have
MAX_FRAME_PIXELS = 3840 * 2160  # a 4K frame (25 MB decoded); larger frames are refused before decoding
DECODER_MAX_PIXELS = MAX_FRAME_PIXELS * 21 // 20  # FFmpeg's own bound (max_pixels) counts its aligned sizes
DECODER_THREADS = 2  # each decoding thread holds frames of its own (at 4K about 12 MB each)
# The frames one request may decode to reach its picks (a pick needs the frames from the keyframe before it): about
# 3,900 frames of 1080p, 960 of 4K; more is refused before decoding, with the sentence saying why
MAX_VIDEO_DECODE_PIXELS = 8 * 10**9
LOST_FRAME_RETRIES = 2  # a pick lost to a damaged packet is replaced by the frame before it, at most this often
DEFAULT_VIDEO_READ_S = 20  # one upload's whole video reading (EXPLORER_VIDEO_READ_S): past it, a sentence
MAX_FRAME_SIDE = 1024  # kept frames are shrunk to this, so 16 frames hold at most 16 x 3 MB


class MediaError(BadInput):
    """An image or video the page cannot use; the message says why and what to do."""


def check_image_shape(width, height, what="the image"):
    """Refuse shapes whose processed form would be huge, from the size alone (no pixels needed)."""
    if width < 1 or height < 1:
        raise MediaError(f"{what} is empty ({width} x {height} pixels)")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise MediaError(f"{what} is {width} x {height} pixels: one side is more than {MAX_ASPECT_RATIO} times "
                         f"the other; crop it closer to a square (at most {MAX_ASPECT_RATIO}:1)")


def shrink(image, max_side=MAX_IMAGE_SIDE):
    """The image with its longer side at most max_side (aspect ratio kept; a new image, the input untouched)."""
    scale = max_side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def check_image_structure(path, name):
    """Refuse an image whose structure would make its header's parsing slow or large, before PIL reads it: PIL
    parses every JPEG marker and PNG chunk before the image data in Python (a 48 MB JPEG of 12 million empty
    markers took 76 s and 1.5 GB to open), GIF extension blocks likewise, and libjpeg runs a whole pass over the
    picture for every scan of a progressive JPEG. Counted here with a bounded walk (at most a few thousand steps,
    the scans counted in C over the file): JPEG segments before the image data and scans, PNG chunks, GIF blocks
    before the first image. Other formats pass (PIL refuses the ones the page does not open: IMAGE_FORMATS)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:2] == b"\xff\xd8":
            _check_jpeg(f, name)
        elif head == b"\x89PNG\r\n\x1a\n":
            _check_png(f, name)
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            _check_gif(f, name)


def _malformed(name, kind, why):
    return MediaError(f"{name} is not a well-formed {kind} ({why}); save it again with an image editor")


def _check_jpeg(f, name):
    f.seek(2)
    segments = 0
    while True:
        if f.read(1) != b"\xff":
            raise _malformed(name, "JPEG", "bytes between its segments that are no marker")
        code, fill = 0xFF, 0
        while code == 0xFF:  # fill bytes before the marker's code
            byte = f.read(1)
            if not byte:
                return  # cut before its image data: PIL says it is not readable
            code, fill = byte[0], fill + 1
            if fill > MAX_JPEG_FILL:
                raise _malformed(name, "JPEG", "a run of fill bytes")
        if code == 0xD9:
            return  # its end before any image data: PIL says it is not readable
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _malformed(name, "JPEG", f"more than {MAX_JPEG_SEGMENTS} segments before its image data; a photo "
                                           "has about 10 to 20")
        if code == 0x01 or 0xD0 <= code <= 0xD8:
            continue  # markers without a segment
        size = f.read(2)
        if len(size) < 2:
            return
        if code == 0xDA:  # the first scan: the image data follows
            break
        f.seek(int.from_bytes(size, "big") - 2, 1)
    scans, tail = 1, b""
    while chunk := f.read(2**20):
        data = tail + chunk
        scans += data.count(b"\xff\xda")  # in the image data a 0xFF byte is followed by 0x00 or a marker
        tail = data[-1:]
        if scans > MAX_JPEG_SCANS:
            raise _malformed(name, "JPEG", f"more than {MAX_JPEG_SCANS} scans, each a pass over the whole picture; "
                                           "a progressive photo has about 10")


def _check_png(f, name):
    data_chunks = other_chunks = 0
    while True:
        header = f.read(8)
        if len(header) < 8:
            return  # cut: PIL says it is not readable
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        if kind in (b"IDAT", b"fdAT"):
            data_chunks += 1
        else:
            other_chunks += 1
        if data_chunks > MAX_PNG_DATA_CHUNKS or other_chunks > MAX_PNG_OTHER_CHUNKS:
            raise _malformed(name, "PNG", f"more than {MAX_PNG_DATA_CHUNKS} image data chunks or "
                                          f"{MAX_PNG_OTHER_CHUNKS} other chunks")
        if kind == b"IEND":
            return
        f.seek(length + 4, 1)  # the chunk's data and its CRC


def _check_gif(f, name):
    flags = f.read(7)[4:5]
    if flags and flags[0] & 0x80:
        f.seek(3 << ((flags[0] & 7) + 1), 1)  # the global colour table
    blocks = 0
    while True:
        introducer = f.read(1)
        if introducer != b"!":  # the first image (","), the end (";"), or something PIL judges
            return
        f.read(1)  # the extension's label
        while True:
            size = f.read(1)
            if not size or size[0] == 0:
                break
            f.seek(size[0], 1)
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise _malformed(name, "GIF", f"more than {MAX_GIF_BLOCKS} extension blocks before its first image")


def check_image_header(path):
    """Refuse an image file from its header alone (nothing decoded): for a page component to call before
    anything else opens the upload (Gradio's gr.Image decodes and converts non-RGB files itself)."""
    name = os.path.basename(str(path))
    try:
        check_image_structure(path, name)
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            check_image_shape(image.width, image.height, what=name)
            if image.format == "JPEG" and (image.info.get("progressive") or image.info.get("progression")):
                need = image.width * image.height * len(image.getbands()) * 2
                if need > MAX_PROGRESSIVE_BYTES:
                    raise MediaError(f"{name} is a progressive JPEG of {image.width} x {image.height} pixels "
                                     f"({image.mode}): decoding it would hold about {need // 2**20} MB (a "
                                     f"progressive file is decoded whole), above the {MAX_PROGRESSIVE_BYTES // 2**20}"
                                     " MB limit; shrink it, or save it as a baseline JPEG or a PNG")
            scale = min(1.0, MAX_IMAGE_SIDE / max(image.size))
            if image.format == "JPEG":  # decoded at 1/2, 1/4 or 1/8 scale when that still covers MAX_IMAGE_SIDE
                scale = 1 / 2 ** max(0, min(3, int(math.log2(1 / scale)))) if scale < 1 else 1.0
            else:
                scale = 1.0
            if image.width * image.height * scale * scale > MAX_DECODE_PIXELS:
                raise MediaError(f"{name} is {image.width} x {image.height} pixels: larger than the "
                                 f"{MAX_DECODE_PIXELS // 10**6} megapixel limit; shrink it first")
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaError(f"{name} is larger than the {MAX_DECODE_PIXELS // 10**6} megapixel limit; "
                         f"shrink it first") from None
    except UnidentifiedImageError:
        raise MediaError(f"{name} is not a readable image (the page reads JPEG, PNG, WebP, GIF and BMP "
                         "files)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise MediaError(f"{name} is not a readable image ({type(error).__name__})") from None


def open_image_file(path):
    """Decode an image file once its header says the decode is bounded (JPEG at a reduced scale)."""
    check_image_header(path)
    try:
        image = Image.open(path, formats=IMAGE_FORMATS)
        scale = MAX_IMAGE_SIDE / max(image.size)
        if scale < 1:  # JPEG decodes at 1/2, 1/4 or 1/8 scale, still at least this size; other formats ignore it
            image.draft(None, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
        image.load()
        return ImageOps.exif_transpose(image)  # phone photos: upright as the user sees them
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise MediaError(f"{os.path.basename(path)} is not a readable image ({type(error).__name__})") from None


def load_image(source):
    """A path -> RGB PIL image within the bounds (aspect ratio, decoded pixels, MAX_IMAGE_SIDE), decided from
    the file's header. A PIL image or H x W (x 3) array (already in memory: a caller's own data, never an
    upload) is only converted to RGB."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise MediaError(f"an image array must be H x W (x 3), got shape {source.shape}")
        image = Image.fromarray(source.astype(np.uint8))
    else:
        path = str(source)
        if not os.path.isfile(path):
            raise MediaError(f"image file not found: {os.path.basename(path)}")
        image = shrink(open_image_file(path))
    if image.width < 1 or image.height < 1:
        raise MediaError("the image is empty")
    return image.convert("RGB")


def check_frame_count(num_frames):
    """The number of video frames as an int in 1..MAX_FRAMES; NaN, infinities, fractions and text refused."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, float, np.integer, np.floating)):
        raise MediaError(f"video frames must be a whole number from 1 to {MAX_FRAMES}, got {num_frames!r}")
    if not math.isfinite(num_frames) or num_frames != int(num_frames) or not 1 <= num_frames <= MAX_FRAMES:
        raise MediaError(f"video frames must be a whole number from 1 to {MAX_FRAMES}, got {num_frames!r}")
    return int(num_frames)


def video_read_seconds():
    """The time one uploaded video's reading may take (EXPLORER_VIDEO_READ_S, default DEFAULT_VIDEO_READ_S): it
    runs in the model's queue, before the model work."""
    value = os.environ.get("EXPLORER_VIDEO_READ_S", "").strip()
    return max(1, int(value)) if value.isdigit() else DEFAULT_VIDEO_READ_S


class VideoReading:
    """One video's reading: its name, its clock (bounded: the page's time limit) and the frames decoded so far.
    `check` is called between packets: past the time limit it refuses with a sentence, and every 0.1 s it asks
    whether the request is still wanted (explorer.core.interrupt: the page stops it when its visitor left)."""

    def __init__(self, name, num_frames, bounded):
        self.name, self.num_frames = name, num_frames
        self.limit_s = video_read_seconds() if bounded else None
        self.deadline = time.monotonic() + self.limit_s if bounded else None
        self.next_check = 0.0
        self.decoded = 0

    def check(self):
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise MediaError(f"{self.name} took more than {self.limit_s} s to read ({self.decoded} frames decoded to "
                             f"sample {self.num_frames}), the page's limit: cut it shorter, re-encode it with a "
                             "keyframe every few seconds, or ask for fewer frames")
        if now >= self.next_check:
            interrupt.check("reading the video")
            self.next_check = now + 0.1


def open_video(path, name):
    """(container, its first video stream) opened with PyAV; a sentence when it is no readable video."""
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{name} is not a readable video ({type(error).__name__})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{name} is not a readable video (it holds no video stream)")
    return container, container.streams.video[0]


def too_large_frames(name, width, height, said=None):
    stated = f" (its container says {said[0]} x {said[1]})" if said and tuple(said) != (width, height) else ""
    return MediaError(f"{name} has {width} x {height} frames{stated}: larger than the "
                      f"{MAX_FRAME_PIXELS / 10**6:.1f} megapixel (4K) limit")


def video_header(container, stream, name, bounded=True):
    """(width, height, fps, seconds) as the container states them (a file may lie: each decoded frame is checked
    again); bounded: a frame size over 4K or a duration over MAX_VIDEO_SECONDS is refused here, before decoding."""
    width, height = stream.codec_context.width, stream.codec_context.height
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    if container.duration:
        seconds = container.duration / 1e6
    elif stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = 0.0
    if bounded and width * height > MAX_FRAME_PIXELS:
        raise too_large_frames(name, width, height)
    if bounded and seconds > MAX_VIDEO_SECONDS:
        raise MediaError(f"{name} is {seconds:.0f} s long; the limit is {MAX_VIDEO_SECONDS} s")
    return width, height, fps, seconds


def video_packets(container, stream, reading, bounded=True):
    """Every frame's packet as (pts, is keyframe), in the file's (decoding) order, read without decoding anything
    (a few milliseconds per thousand frames). A damaged end of file ends the list."""
    packets = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            packets.append((packet.pts, bool(packet.is_keyframe)))
            if bounded and len(packets) > MAX_VIDEO_FRAMES:
                raise MediaError(f"{reading.name} has more than {MAX_VIDEO_FRAMES} frames; that is the limit")
            if len(packets) % 256 == 0:
                reading.check()
    except av.error.FFmpegError:
        pass  # a damaged or cut file: the frames before the damage are used
    return packets


def evenly_spaced(total, count):
    return [int(i) for i in np.linspace(0, total - 1, min(count, total)).round()]


def decode_plan(packets, picks):
    """What to decode to get the frames `picks` (indices in display order) of a video whose packets are
    `packets`, each packet decoded at most once, in one pass in file order. A pick needs the packets from the
    last keyframe before it to its own; the spans merge those ranges, so a single-keyframe file is decoded
    forward once up to its last pick, never from its start again for every pick (the cost of seeking: about 8
    times the decoding for 16 picks), and a file with frequent keyframes decodes only a few frames per pick.
    Returns (picks, {pts: display index} of every frame, the spans of packet indices to decode); the times are
    None when the container gives no usable ones: then the frames are counted as they come out of the decoder,
    from the first packet on."""
    total = len(packets)
    times = [pts for pts, _ in packets]
    if None in times or len(set(times)) != total:
        return picks, None, [(0, total - 1)]
    display = sorted(range(total), key=times.__getitem__)  # packet (decoding) index of each frame in display order
    keys = [j for j, (_, key) in enumerate(packets) if key]
    ranges = []
    for i in picks:
        end = display[i]
        k = bisect.bisect_right(keys, end) - 1
        while k >= 0 and times[keys[k]] > times[end]:  # a keyframe shown after the pick cannot start it
            k -= 1
        ranges.append((keys[k] if k >= 0 else 0, end))
    spans = []
    for start, end in sorted(ranges):
        if spans and start <= spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return picks, {times[j]: i for i, j in enumerate(display)}, spans


def frame_image(frame, name, said, bounded=True):
    """A decoded frame -> an RGB PIL image of at most MAX_FRAME_SIDE px, scaled straight from the decoder's
    picture (no full-size RGB copy), turned as the file says it is shown (phone videos). Bounded: the frame's
    real size is checked against the 4K limit, whatever the container said."""
    width, height = frame.width, frame.height
    if bounded and width * height > MAX_FRAME_PIXELS:
        raise too_large_frames(name, width, height, said)
    if bounded:
        check_image_shape(width, height, what=f"a frame of {name}")
    scale = min(1.0, MAX_FRAME_SIDE / max(width, height))
    image = frame.to_image(width=max(1, round(width * scale)), height=max(1, round(height * scale)),
                           interpolation="AREA")
    rotation = getattr(frame, "rotation", 0) or 0
    return image.rotate(rotation, expand=True) if rotation % 360 else image


def decode_picks(path, name, said, plan, reading, bounded=True):
    """{pick's display index: RGB image}: the spans of the plan decoded in one pass in file order (packets
    outside them are read, not decoded), the decoder drained at the end of each span and reset before the next.
    Bounded, the decoder refuses any frame over the 4K limit (FFmpeg's max_pixels) before it holds it: a file
    whose header says 320 x 240 cannot make it decode 16000 x 16000 frames."""
    picks, display_of, spans = plan
    wanted = set(picks)
    images = {}
    container, stream = open_video(path, name)
    context = stream.codec_context
    if bounded:
        context.options = {"max_pixels": str(DECODER_MAX_PIXELS)}
    stream.thread_type = "AUTO"
    context.thread_count = DECODER_THREADS
    shown = 0  # frames out of the decoder so far: their display index where the file gives no usable times

    def take(frames):
        nonlocal shown
        for frame in frames:
            reading.decoded += 1
            index = display_of.get(frame.pts) if display_of is not None else shown
            shown += 1
            if index in wanted and index not in images:
                images[index] = frame_image(frame, name, said, bounded)

    def decode(packet):
        try:
            take(context.decode(packet))
        except av.error.FFmpegError:
            if bounded and context.width * context.height > MAX_FRAME_PIXELS:
                raise too_large_frames(name, context.width, context.height, said) from None
            # a damaged packet: its frame is lost, the next keyframe decodes again

    try:
        span = 0
        for j, packet in enumerate(p for p in container.demux(stream) if p.size):
            start, end = spans[span]
            if j >= start:
                decode(packet)
                reading.check()
                if wanted <= images.keys():
                    break
            if j == end:
                decode(None)  # drain: the frames the decoder still holds (reordering, threads)
                context.flush_buffers()
                span += 1
                if span == len(spans) or wanted <= set(images):
                    break
        else:
            decode(None)
    except av.error.FFmpegError:
        decode(None)  # a damaged end of file: the frames decoded so far are used
    finally:
        container.close()
    return images


@dataclass
class Clip:
    """The frames sampled from a video file and where they came from (processors that write timestamps, such
    as Qwen3-VL's, need the true times): frame indices in the file, its frame rate (0 when the container does
    not say) and frame count."""

    frames: list  # RGB PIL images
    indices: list
    fps: float
    total: int


def sample_video(path, num_frames=4, bounded=True):
    """num_frames evenly spaced RGB frames of a video file (at most MAX_FRAME_SIDE px), as a Clip, read with PyAV:
    the packets are listed first without decoding (their count and keyframes), then only what the picks need is
    decoded, in one pass (decode_plan). bounded (uploads): the file size, duration, frame count and frame size
    limits apply (the frame size to every decoded frame, whatever the container says), the decoding needed is
    bounded before it starts (MAX_VIDEO_DECODE_PIXELS) and the whole reading in time (EXPLORER_VIDEO_READ_S); the
    request stops while reading when its visitor leaves (explorer.core.interrupt). bounded=False is for a
    benchmark's own videos (Video-MME's are often longer than 10 minutes and larger than 50 MB)."""
    path = str(path)
    name = os.path.basename(path)
    num_frames = check_frame_count(num_frames)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {name}")
    if bounded and os.path.getsize(path) > MAX_VIDEO_BYTES:
        raise MediaError(f"{name} is larger than {MAX_UPLOAD_MB} MB")
    reading = VideoReading(name, num_frames, bounded)
    container, stream = open_video(path, name)
    try:
        width, height, fps, seconds = video_header(container, stream, name, bounded)
        packets = video_packets(container, stream, reading, bounded)
    finally:
        container.close()
    total = len(packets)
    if total == 0:
        raise MediaError(f"{name} has no decodable frames (empty or corrupt video)")
    if bounded and not seconds and fps and total / fps > MAX_VIDEO_SECONDS:
        raise MediaError(f"{name} is {total / fps:.0f} s long; the limit is {MAX_VIDEO_SECONDS} s")
    picks, images = evenly_spaced(total, num_frames), {}
    for _ in range(LOST_FRAME_RETRIES + 1):
        plan = decode_plan(packets, picks)
        needed = sum(end - start + 1 for start, end in plan[2])
        if bounded and needed * max(1, width * height) > MAX_VIDEO_DECODE_PIXELS:
            keyframes = sum(1 for _, key in packets if key)
            raise MediaError(f"{name} would need {needed} frames decoded to sample {len(picks)} ({keyframes} "
                             f"keyframe(s) in its {total} frames of {width} x {height}): more than the page decodes "
                             "for one request; re-encode it with a keyframe every few seconds, cut it shorter, or ask "
                             "for fewer frames")
        images.update(decode_picks(path, name, (width, height), plan, reading, bounded))
        # a pick whose frame could not be decoded (a damaged packet, a cut file): the frame before it instead
        picks = sorted({i - 1 for i in picks if i not in images and i > 0} - set(images))
        if not picks:
            break
    if not images:
        raise MediaError(f"{name} has no decodable frames (empty or corrupt video)")
    indices = sorted(images)
    return Clip([images[i] for i in indices], indices, fps, total)


class Frames(list):
    """A sampled clip's frames (a list of RGB PIL images) that remember when they were taken: timing
    {"fps", "frames_indices", "total_num_frames"}, what processors that write timestamps need (Qwen3-VL)."""

    timing = None


def sample_video_frames(path, num_frames=4, bounded=True):
    """The frames of sample_video, as Frames (a list of RGB PIL images with their timing)."""
    clip = sample_video(path, num_frames, bounded)
    frames = Frames(clip.frames)
    frames.timing = {"fps": clip.fps, "frames_indices": list(clip.indices), "total_num_frames": clip.total}
    return frames


def read_media(image_path, video_path, num_frames=4):
    """(images, kind) from the page's inputs: an image, or a video sampled into frames."""
    if image_path and video_path:
        raise MediaError("give an image or a video, not both")
    if image_path:
        return [load_image(image_path)], "image"
    if video_path:
        return sample_video_frames(video_path, num_frames), "video"
    raise MediaError("upload an image or a video first")

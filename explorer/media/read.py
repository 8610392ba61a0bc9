"""Reading media into PIL images with bounded work: the first step of the flow (media -> model inputs ->
engine). The page, the command line and the benchmark harness read images and videos here.

Every bound is decided from what a file says about itself before its pixels are decoded: an image's header
gives its size (JPEG can even be decoded at 1/2, 1/4 or 1/8 scale), a video container gives its frame size,
count and rate, and only the frames that are used are decoded (by seeking). So one request never holds more
than one decoded image of at most MAX_DECODE_PIXELS, or one full video frame plus the frames it keeps.
A benchmark's own videos (lmms-eval) are read the same way without the upload limits (`bounded=False`).
"""

import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.core.settings import MAX_FRAMES
from models.base import BadInput  # the one error type for anything the user can fix

MAX_DECODE_PIXELS = 16_000_000  # e.g. 4000 x 4000: at most 64 MB decoded (RGBA), whatever the file's size
# A progressive JPEG is held whole while it is decoded (libjpeg buffers every DCT coefficient, 2 bytes per
# sample at full size, whatever scale it is drawn at): its decode costs about width x height x bands x 2 bytes.
MAX_PROGRESSIVE_BYTES = 128 * 2**20
MAX_IMAGE_SIDE = 2048  # larger images are shrunk (aspect kept) before they reach a processor
MAX_ASPECT_RATIO = 10  # processors resize the short side up: a 10000 x 1 image would become 2.24M x 224 px
MAX_UPLOAD_MB = 50  # the page's upload limit (app.py), also the video file limit here
MAX_VIDEO_BYTES = MAX_UPLOAD_MB * 2**20
MAX_VIDEO_SECONDS = 600
MAX_VIDEO_FRAMES = 30 * MAX_VIDEO_SECONDS  # frames counted when the container does not say how many it has
MAX_FRAME_PIXELS = 3840 * 2160  # a 4K frame (25 MB decoded); larger frames are refused before decoding
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


def check_image_header(path):
    """Refuse an image file from its header alone (nothing decoded): for a page component to call before
    anything else opens the upload (Gradio's gr.Image decodes and converts non-RGB files itself)."""
    name = os.path.basename(str(path))
    try:
        with Image.open(path) as image:
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
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise MediaError(f"{name} is not a readable image ({type(error).__name__})") from None


def open_image_file(path):
    """Decode an image file once its header says the decode is bounded (JPEG at a reduced scale)."""
    check_image_header(path)
    try:
        image = Image.open(path)
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


def video_properties(capture, name, bounded=True):
    """(frame count, fps, width, height) as the container states them; the count may be 0 or wrong."""
    import cv2

    total = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    fps = capture.get(cv2.CAP_PROP_FPS)
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(total) if math.isfinite(total) and total > 0 else 0
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    if not bounded:
        return total, fps, width, height
    if width * height > MAX_FRAME_PIXELS:
        raise MediaError(f"{name} has {width} x {height} frames: larger than the "
                         f"{MAX_FRAME_PIXELS / 10**6:.1f} megapixel (4K) limit")
    if total and fps and total / fps > MAX_VIDEO_SECONDS:
        raise MediaError(f"{name} is {total / fps:.0f} s long; the limit is {MAX_VIDEO_SECONDS} s")
    if total > MAX_VIDEO_FRAMES:
        raise MediaError(f"{name} has {total} frames; the limit is {MAX_VIDEO_FRAMES}")
    return total, fps, width, height


def keep_frame(frame, name, bounded=True):
    """A decoded BGR frame -> a small RGB PIL image (the full-size frame is dropped right away)."""
    height, width = frame.shape[:2]
    if bounded and width * height > MAX_FRAME_PIXELS:  # the container may not have said
        raise MediaError(f"{name} has {width} x {height} frames: larger than the "
                         f"{MAX_FRAME_PIXELS / 10**6:.1f} megapixel (4K) limit")
    if bounded:
        check_image_shape(width, height, what=f"a frame of {name}")
    return bgr_to_rgb_image(frame, MAX_FRAME_SIDE)


def bgr_to_rgb_image(frame, max_side):
    """A decoded BGR frame (OpenCV) -> an RGB PIL image, shrunk (aspect kept) to at most max_side px."""
    import cv2

    height, width = frame.shape[:2]
    scale = max_side / max(width, height)
    if scale < 1:
        frame = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def evenly_spaced(total, count):
    return [int(i) for i in np.linspace(0, total - 1, min(count, total)).round()]


def frames_by_seeking(capture, picks, name, bounded=True):
    """Decode only the picked frames; None when a seek fails (the container's frame count was wrong)."""
    import cv2

    frames = []
    for index in picks:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        if not ok:
            return None
        frames.append(keep_frame(frame, name, bounded))
    return frames


def frames_by_counting(path, num_frames, name, bounded=True):
    """Two passes for containers without a usable frame count: count the frames without converting them
    (grab), then decode only the picked ones. Never holds more than num_frames frames. Returns (frames,
    their indices, the frame count)."""
    import cv2

    capture = cv2.VideoCapture(path)
    total = 0
    try:
        while capture.grab():
            total += 1
            if bounded and total > MAX_VIDEO_FRAMES:
                raise MediaError(f"{name} has more than {MAX_VIDEO_FRAMES} frames; that is the limit")
    finally:
        capture.release()
    if total == 0:
        raise MediaError(f"{name} has no decodable frames (empty or corrupt video)")
    picks = set(evenly_spaced(total, num_frames))
    frames, indices = [], []
    capture = cv2.VideoCapture(path)
    try:
        for index in range(max(picks) + 1):
            if not capture.grab():
                break
            if index in picks:
                ok, frame = capture.retrieve()
                if ok:
                    frames.append(keep_frame(frame, name, bounded))
                    indices.append(index)
    finally:
        capture.release()
    if not frames:
        raise MediaError(f"{name} has no decodable frames (empty or corrupt video)")
    return frames, indices, total


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
    """num_frames evenly spaced RGB frames of a video file (at most MAX_FRAME_SIDE px), as a Clip. bounded
    (uploads): the file size, duration, frame size and frame count limits apply; bounded=False is for a
    benchmark's own videos (Video-MME's are often longer than 10 minutes and larger than 50 MB)."""
    import cv2

    path = str(path)
    name = os.path.basename(path)
    num_frames = check_frame_count(num_frames)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {name}")
    if bounded and os.path.getsize(path) > MAX_VIDEO_BYTES:
        raise MediaError(f"{name} is larger than {MAX_UPLOAD_MB} MB")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise MediaError(f"{name} is not a readable video")
        total, fps, _, _ = video_properties(capture, name, bounded)
        picks = evenly_spaced(total, num_frames) if total else []
        frames = frames_by_seeking(capture, picks, name, bounded) if total else None
    finally:
        capture.release()
    if frames is None:
        frames, picks, total = frames_by_counting(path, num_frames, name, bounded)
    return Clip(frames, picks, fps, total)


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

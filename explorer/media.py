"""Reading user media into PIL images, with clear errors. Video frames are sampled evenly with OpenCV."""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # about 6300 x 6300: beyond this, refuse rather than exhaust memory
MAX_VIDEO_BYTES = 200 * 2**20
MAX_VIDEO_SECONDS = 600


class MediaError(ValueError):
    pass


def load_image(source):
    """A path, PIL image or HxWx3 array -> RGB PIL image."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise MediaError(f"an image array must be H x W (x 3), got shape {source.shape}")
        image = Image.fromarray(source.astype(np.uint8))
    else:
        path = str(source)
        if not os.path.isfile(path):
            raise MediaError(f"image file not found: {path}")
        try:
            image = Image.open(path)
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise MediaError(f"image {os.path.basename(path)} is {image.width} x {image.height}: larger than "
                                 f"the {MAX_IMAGE_PIXELS // 10**6} megapixel limit")
            image.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise MediaError(f"{os.path.basename(path)} is not a readable image ({type(error).__name__})") from None
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise MediaError(f"image is {image.width} x {image.height}: larger than the "
                         f"{MAX_IMAGE_PIXELS // 10**6} megapixel limit")
    if image.width < 1 or image.height < 1:
        raise MediaError("image is empty")
    return image.convert("RGB")


def sample_video_frames(path, num_frames=4):
    """Evenly spaced RGB frames of a video file, as PIL images."""
    import cv2

    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {path}")
    if os.path.getsize(path) > MAX_VIDEO_BYTES:
        raise MediaError(f"video is larger than {MAX_VIDEO_BYTES // 2**20} MB")
    if not 1 <= num_frames <= 32:
        raise MediaError(f"frame count must be between 1 and 32, got {num_frames}")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise MediaError(f"{os.path.basename(path)} is not a readable video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS) or 0
        if fps > 0 and total / fps > MAX_VIDEO_SECONDS:
            raise MediaError(f"video is {total / fps:.0f} s long; the limit is {MAX_VIDEO_SECONDS} s")
        frames = []
        while True:  # decode all frames: frame counts in containers are often wrong
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
            if len(frames) > 30 * MAX_VIDEO_SECONDS:
                raise MediaError("video has too many frames")
    finally:
        capture.release()
    if not frames:
        raise MediaError(f"{os.path.basename(path)} has no decodable frames (empty or corrupt video)")
    height, width = frames[0].shape[:2]
    if height * width > MAX_IMAGE_PIXELS:
        raise MediaError(f"video frames are {width} x {height}: too large")
    picks = np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round().astype(int)
    return [Image.fromarray(frames[i][:, :, ::-1].copy()) for i in picks]

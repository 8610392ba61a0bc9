"""Files made to probe the page's bounds, small and quick to write: the tests (tests/test_public_page.py) and the
stress script (explorer/bench/stress.py) send them. Videos are written with PyAV (a runtime dependency: the page
reads videos with it, explorer/media/read.py)."""

from fractions import Fraction

import av
import numpy as np

CYCLE = 32  # the inter frames long_single_keyframe_video encodes once and repeats

def long_single_keyframe_video(path, frames, size=(1920, 1080), fps=30, codec="libx264"):
    """A video of `frames` frames with a single keyframe, the first (as a screen recording or a static camera
    can be), made in about a second whatever its length: 33 frames (a red square moving right) are encoded once,
    then their 32 inter frames are muxed again and again; each decodes as an inter frame does, from the frame
    before it (H.264 numbers its frames modulo a power of two: a cycle of 32 keeps the numbering continuous, so
    the decoder drops none). Sampling 16 frames of it by seeking decodes it from its start for every pick."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "yuv420p"
    encoder.time_base, encoder.framerate, encoder.gop_size = Fraction(1, fps), Fraction(fps), 10**6
    if codec == "libx264":
        encoder.options = {"preset": "ultrafast"}  # no B-frames: the packets can be muxed again in any number
    encoder.open()
    encoded = []
    for i in range(CYCLE + 1):
        image = np.full((size[1], size[0], 3), 120, np.uint8)
        x = int(i / (CYCLE + 1) * (size[0] - size[1] // 16))
        image[size[1] // 2 - size[1] // 32: size[1] // 2 + size[1] // 32, x:x + size[1] // 16] = (255, 0, 0)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        encoded += [bytes(packet) for packet in encoder.encode(frame)]
    encoded += [bytes(packet) for packet in encoder.encode(None)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if encoder.extradata:
            stream.codec_context.extradata = encoder.extradata
        stream.time_base = Fraction(1, fps)
        for i in range(frames):
            packet = av.Packet(encoded[0] if i == 0 else encoded[1 + (i - 1) % CYCLE])
            packet.pts = packet.dts = i
            packet.time_base = stream.time_base
            packet.stream = stream
            packet.is_keyframe = i == 0
            out.mux(packet)
    return str(path)


def _segment(size, frames, fps):
    """MPEG-TS bytes of `frames` plain H.264 frames of `size`."""
    import io

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 60 + 10 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def lying_video(path, said=(320, 240), real=(6000, 6000), said_frames=10, real_frames=2, fps=10):
    """An MPEG-TS video whose container says `said` (its first frames are that size, which is what a reader's
    probe sees) and whose later frames are `real`: two H.264 streams one after the other, as cutting and joining
    TS files makes them. A reader that trusts the header decodes the large frames (36 MP each here)."""
    with open(path, "wb") as out:
        out.write(_segment(said, said_frames, fps) + _segment(real, real_frames, fps))
    return str(path)


def _small_image_bytes(kind):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, kind)
    return buffer.getvalue()


def jpeg_marker_flood(path, markers):
    """A valid 64 x 64 JPEG with `markers` empty APP0 markers (4 bytes each) before its own: PIL parses each in
    Python when it opens the file (the issue's 48 MB file of 12 million took 76 s and 1.5 GB)."""
    jpeg = _small_image_bytes("JPEG")
    with open(path, "wb") as out:
        out.write(jpeg[:2] + b"\xff\xe0\x00\x02" * markers + jpeg[2:])
    return str(path)


def png_chunk_flood(path, chunks):
    """A valid 64 x 64 PNG with `chunks` empty private ancillary chunks (12 bytes each) after its header: PIL
    reads each in Python when it opens the file."""
    import struct
    import zlib

    png = _small_image_bytes("PNG")
    empty = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", zlib.crc32(b"prVt"))
    with open(path, "wb") as out:
        out.write(png[:33] + empty * chunks + png[33:])  # 33: the signature and the IHDR chunk
    return str(path)


def png_bomb_data_url(width=8000, height=8000):
    """A data: URL of a plain PNG of width x height (8000 x 8000: 64 MP, about 190 KB of base64): what Gradio's
    image component decodes, converts and saves whole when a caller sends it as a file's url."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 0).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

"""Write the page's example scenes and clip to assets/ (python -m models.shapes_llava.make_assets)."""

import os

import cv2
import numpy as np

from models.shapes_llava import scenes

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets")
SCENES = {101: "color", 205: "where", 333: "count"}  # evaluation-range seeds and the question kind to show
CLIP_SEED = 7  # the unpruned model answers it right from the VP8-encoded file (17 did from its frames, not the file)
PHOTOS = [("cat.jpg", "what color is the cat ?"), ("coffee.jpg", "what is on the table ?"),
          ("rocket.jpg", "what is in the sky ?"), ("astronaut.jpg", "who is in the picture ?")]


def write_webm(frames, path, fps=2):
    """VP8 WebM: OpenCV writes it and browsers play it."""
    height, width = np.asarray(frames[0]).shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"VP80"), fps, (width, height))
    for frame in frames:
        writer.write(np.asarray(frame)[:, :, ::-1].copy())
    writer.release()


def main():
    lines = []
    for seed, kind in SCENES.items():
        scene = scenes.make_scene(seed)
        question = next(q for q in scene.questions if q.kind == kind)
        name = f"scene_{seed}.png"
        scene.image.save(os.path.join(ASSETS, name))
        lines.append(f"{name}\t{question.text}")
    clip = scenes.make_clip(CLIP_SEED)
    name = f"clip_{CLIP_SEED}.webm"
    write_webm(clip.frames, os.path.join(ASSETS, name))
    lines.append(f"{name}\t{clip.questions[0].text}")
    lines += [f"{photo}\t{question}" for photo, question in PHOTOS]
    with open(os.path.join(ASSETS, "examples.txt"), "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Write the shapes tasks' datasets: held-out scenes and clips of the embedded model's world, one question each.

    python -m explorer.eval.tasks.shapes.make --out DIR --n 200 [--clips 50] [--seed 0]

Writes into DIR (nothing is downloaded):
- test.parquet and shapes.yaml: the task `shapes`, n scenes (image, question, answer, kind, and the queried
  object's visual tokens `target_tokens` on the embedded model's 16 x 16 grid);
- motion.parquet, videos/clip_<i>.avi and shapes_motion.yaml: the task `shapes_motion`, clips of 4 frames as
  lossless (FFV1) video files, which a model reads as lmms-eval's video tasks give them (a file path), with
  the motion question and the moving object's tokens in every frame.
Run both with `python -m explorer.eval.lmms_eval --tasks DIR ...` (lmms-eval 0.7.3 loads every YAML in a folder given
as --tasks; a single YAML file given as --tasks is refused by its task-name check). The tables hold absolute
paths to the videos: regenerate rather than move DIR. Without --out it writes into explorer/eval/tasks/shapes/data,
which the tasks `shapes` and `shapes_motion` of explorer/eval/tasks read.

Scenes and clips come from models.shapes_llava.scenes (make_scene, make_clip) with seeds seed, seed + 1, ...,
below TRAIN_SEED_START (never seen in training); each scene's question is scenes.question_in_turn (kinds in
turn: colour, shape, count, exists, where), as in the project's evaluation.
"""

import argparse
import os
import sys

import numpy as np

from models.shapes_llava import scenes

HERE = os.path.dirname(os.path.abspath(__file__))
GRID_SIDE = scenes.IMAGE_SIZE // scenes.PATCH  # the embedded model's grid, on which the target is drawn


def scene_row(i, seed):
    """The i-th document: scene seed + i and its question (scenes.question_in_turn)."""
    scene = scenes.make_scene(seed + i)
    question = scenes.question_in_turn(scene, i)
    target = np.zeros(GRID_SIDE * GRID_SIDE, bool)
    for index in question.targets:
        target |= scenes.object_token_mask(scene.objects[index], grid_side=GRID_SIDE)
    return {"id": i, "seed": seed + i, "image": scene.image, "question": question.text, "answer": question.answer,
            "kind": question.kind, "target_tokens": np.flatnonzero(target).tolist(),
            "target_grid": [GRID_SIDE, GRID_SIDE]}


def clip_row(i, seed, video_dir):
    """The i-th clip (seed + i) written as a lossless video file, with its motion question."""
    import cv2  # noqa: PLC0415

    clip = scenes.make_clip(seed + i)
    path = os.path.join(video_dir, f"clip_{i}.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"FFV1"), scenes.FRAMES, clip.frames[0].size)
    for frame in clip.frames:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    question = clip.questions[0]
    masks = [scenes.object_token_mask(objects[0], grid_side=GRID_SIDE) for objects in clip.frames_objects]
    return {"id": i, "seed": seed + i, "video": os.path.abspath(path), "question": question.text,
            "answer": question.answer, "kind": question.kind,
            "target_tokens": np.flatnonzero(np.concatenate(masks)).tolist(), "target_grid": [GRID_SIDE, GRID_SIDE]}


def task_yaml(task, data_file):
    return (f"# The {task} task on {data_file} (written by explorer.eval.tasks.shapes.make)\n"
            f"include: {os.path.join(HERE, '_default_template_yaml')}\n"
            f"task: {task}\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data_file}\n")


def write_table(rows, features, path):
    import datasets  # noqa: PLC0415  (a dependency of lmms-eval, not of the app)

    table = datasets.Dataset.from_dict({key: [row[key] for row in rows] for key in features},
                                       features=datasets.Features(features))
    table.to_parquet(path)


def make(out, n, clips=0, seed=0):
    """Write the tables, videos and task YAMLs into out; returns the YAML paths."""
    import datasets  # noqa: PLC0415

    if n < 1 or clips < 0 or seed < 0 or seed + max(n, clips) > scenes.TRAIN_SEED_START:
        raise ValueError(f"need n >= 1, clips >= 0 and seeds from {seed} up to below {scenes.TRAIN_SEED_START} "
                         "(the training seeds)")
    common = {"id": datasets.Value("int32"), "seed": datasets.Value("int64"), "question": datasets.Value("string"),
              "answer": datasets.Value("string"), "kind": datasets.Value("string"),
              "target_tokens": datasets.Sequence(datasets.Value("int32")),
              "target_grid": datasets.Sequence(datasets.Value("int32"))}
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    write_table([scene_row(i, seed) for i in range(n)], {**common, "image": datasets.Image()},
                os.path.join(out, "test.parquet"))
    written = {"shapes.yaml": task_yaml("shapes", os.path.join(out, "test.parquet"))}
    if clips:
        os.makedirs(os.path.join(out, "videos"), exist_ok=True)
        rows = [clip_row(i, seed, os.path.join(out, "videos")) for i in range(clips)]
        write_table(rows, {**common, "video": datasets.Value("string")}, os.path.join(out, "motion.parquet"))
        written["shapes_motion.yaml"] = task_yaml("shapes_motion", os.path.join(out, "motion.parquet"))
    for name, text in written.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    return [os.path.join(out, name) for name in written]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "data"), help="folder for test.parquet and shapes.yaml")
    parser.add_argument("--n", type=int, default=200, help="scenes (one question each)")
    parser.add_argument("--clips", type=int, default=50, help="clips (one motion question each); 0: none")
    parser.add_argument("--seed", type=int, default=0, help="first scene and clip seed")
    args = parser.parse_args(argv)
    try:
        print("\n".join(make(args.out, args.n, args.clips, args.seed)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

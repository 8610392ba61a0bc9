"""Write the shapes task's dataset: held-out scenes of the embedded model's world, one question each.

    python -m explorer.tasks.shapes.make --out DIR --n 200 [--seed 0]

Writes DIR/test.parquet (a datasets-loadable table: image, question, answer, kind, the queried object's tokens)
and DIR/shapes.yaml (the task, reading that table), then: `python -m explorer.lmms_eval --tasks DIR/shapes.yaml
...`. Without --out it writes into explorer/tasks/shapes/data, which the task `shapes` reads. Scenes come from
models.shapes_llava.scenes.make_scene with seeds seed .. seed + n - 1, below TRAIN_SEED_START (never seen in
training); question kinds are taken in turn (colour, shape, count, exists, where), as in the project's
evaluation. Nothing is downloaded.
"""

import argparse
import os
import sys

import numpy as np

from models.shapes_llava import scenes

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("color", "shape", "count", "exists", "where")
GRID_SIDE = scenes.IMAGE_SIZE // scenes.PATCH  # the embedded model's grid, on which the target is drawn


def scene_row(i, seed):
    """The i-th document: scene seed + i and its question of kind KINDS[i % 5] (any question if it has none)."""
    scene = scenes.make_scene(seed + i)
    wanted = KINDS[i % len(KINDS)]
    options = [q for q in scene.questions if q.kind == wanted] or scene.questions
    question = options[i // len(KINDS) % len(options)]
    target = np.zeros(GRID_SIDE * GRID_SIDE, bool)
    for index in question.targets:
        target |= scenes.object_token_mask(scene.objects[index], grid_side=GRID_SIDE)
    return {"id": i, "seed": seed + i, "image": scene.image, "question": question.text, "answer": question.answer,
            "kind": question.kind, "target_tokens": np.flatnonzero(target).tolist(),
            "target_grid": [GRID_SIDE, GRID_SIDE]}


def task_yaml(data_file):
    return (f"# The shapes task on {data_file} (written by explorer.tasks.shapes.make)\n"
            f"include: {os.path.join(HERE, '_default_template_yaml')}\n"
            "task: shapes\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data_file}\n")


def make(out, n, seed=0):
    """Write out/test.parquet and out/shapes.yaml; returns the YAML's path."""
    import datasets  # noqa: PLC0415  (a dependency of lmms-eval, not of the app)

    if n < 1 or seed < 0 or seed + n > scenes.TRAIN_SEED_START:
        raise ValueError(f"need n >= 1 and seeds {seed}..{seed + n - 1} below {scenes.TRAIN_SEED_START} "
                         "(the training seeds)")
    features = datasets.Features({
        "id": datasets.Value("int32"), "seed": datasets.Value("int64"), "image": datasets.Image(),
        "question": datasets.Value("string"), "answer": datasets.Value("string"), "kind": datasets.Value("string"),
        "target_tokens": datasets.Sequence(datasets.Value("int32")),
        "target_grid": datasets.Sequence(datasets.Value("int32"))})
    rows = [scene_row(i, seed) for i in range(n)]
    table = datasets.Dataset.from_dict({key: [row[key] for row in rows] for key in features}, features=features)
    os.makedirs(out, exist_ok=True)
    table.to_parquet(os.path.join(out, "test.parquet"))
    yaml_path = os.path.join(out, "shapes.yaml")
    with open(yaml_path, "w") as f:
        f.write(task_yaml(os.path.join(os.path.abspath(out), "test.parquet")))
    return yaml_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "data"), help="folder for test.parquet and shapes.yaml")
    parser.add_argument("--n", type=int, default=200, help="scenes (one question each)")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed")
    args = parser.parse_args(argv)
    try:
        print(make(args.out, args.n, args.seed))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

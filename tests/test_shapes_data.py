"""The embedded model's world: the generator is reproducible, its boxes match the pixels, its answers are
unambiguous, and clips move the way their answer says."""

import numpy as np
import pytest

from models.shapes_llava import scenes

SEEDS = range(60)


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = scenes.make_scene(7), scenes.make_scene(7), scenes.make_scene(8)
    assert a.image.tobytes() == b.image.tobytes() and a.questions == b.questions
    assert a.image.tobytes() != c.image.tobytes()
    assert scenes.make_clip(3).frames[2].tobytes() == scenes.make_clip(3).frames[2].tobytes()


@pytest.mark.parametrize("seed", SEEDS)
def test_boxes_match_the_drawn_pixels(seed):
    scene = scenes.make_scene(seed)
    pixels = np.asarray(scene.image).astype(int)
    assert 1 <= len(scene.objects) <= 5
    covered = np.zeros(pixels.shape[:2], dtype=bool)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 < x1 <= scenes.IMAGE_SIZE and 0 <= y0 < y1 <= scenes.IMAGE_SIZE
        assert x1 - x0 >= 3 * scenes.PATCH  # at least a few patches across
        mask = scenes.object_pixels(obj)
        ys, xs = np.nonzero(mask)
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        assert (pixels[mask] == scenes.COLORS[obj.color]).all()  # every pixel of the shape has its colour
        cx, cy = int(obj.center[0]), int(obj.center[1])
        if obj.shape != "triangle":
            assert tuple(pixels[cy, cx]) == scenes.COLORS[obj.color]
        assert not (covered & mask).any()  # shapes do not overlap
        covered |= mask
    # nothing of any object colour outside the objects
    background = pixels[~covered]
    for rgb in scenes.COLORS.values():
        assert not (background == rgb).all(axis=1).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_answers_are_unambiguous(seed):
    scene = scenes.make_scene(seed)
    objs = scene.objects
    for q in scene.questions:
        words = q.text.split()
        if q.kind == "color":
            shape = words[-2]
            assert [o.shape for o in objs].count(shape) == 1 and objs[q.targets[0]].color == q.answer
        elif q.kind == "shape":
            color = words[-3]
            assert [o.color for o in objs].count(color) == 1 and objs[q.targets[0]].shape == q.answer
        elif q.kind == "count":
            shape = words[2][:-1]
            assert scenes.NUMBERS.index(q.answer) == [o.shape for o in objs].count(shape)
        elif q.kind == "exists":
            color, shape = words[3], words[4]
            present = any(o.color == color and o.shape == shape for o in objs)
            assert q.answer == ("yes" if present else "no")
        elif q.kind == "where":
            color, shape = words[3], words[4]
            same = [o for o in objs if o.color == color and o.shape == shape]
            assert len(same) == 1
            cx, cy = same[0].center
            half = scenes.IMAGE_SIZE / 2
            assert q.answer == ("top" if cy < half else "bottom") + "-" + ("left" if cx < half else "right")
            assert min(abs(cx - half), abs(cy - half)) >= 0.08 * scenes.IMAGE_SIZE  # clearly in a quadrant
        assert q.answer in scenes.vocabulary() and all(w in scenes.vocabulary() for w in words)


def test_positions_cover_the_whole_frame_including_corners_and_top_rows():
    centers = np.array([o.center for s in range(400) for o in scenes.make_scene(s).objects])
    assert centers[:, 1].min() < 40 and centers[:, 1].max() > scenes.IMAGE_SIZE - 40
    assert centers[:, 0].min() < 40 and centers[:, 0].max() > scenes.IMAGE_SIZE - 40
    kinds = {q.kind for s in range(50) for q in scenes.make_scene(s).questions}
    assert kinds == {"color", "shape", "count", "exists", "where"}
    answers = [q.answer for s in range(200) for q in scenes.make_scene(s).questions if q.kind == "exists"]
    assert answers.count("yes") == answers.count("no")


@pytest.mark.parametrize("seed", range(30))
def test_clip_moves_as_its_answer_says(seed):
    clip = scenes.make_clip(seed)
    assert len(clip.frames) == scenes.FRAMES
    q = clip.questions[0]
    assert q.kind == "motion" and q.answer in scenes.DIRECTIONS
    path = [objs[0].center for objs in clip.frames_objects]
    dx, dy = np.subtract(path[-1], path[0])
    expected = scenes.DIRECTIONS[q.answer]
    assert np.sign(dx) == expected[0] and np.sign(dy) == expected[1]
    assert abs(dx) + abs(dy) >= 3 * scenes.PATCH  # visible: at least 3 patches in all
    for frame, objs in zip(clip.frames, clip.frames_objects):
        pixels = np.asarray(frame)
        target = objs[0]
        assert (pixels[scenes.object_pixels(target)] == scenes.COLORS[target.color]).all()
        assert q.text == f"which way does the {target.color} {target.shape} move ?"
        assert not any((o.color, o.shape) == (target.color, target.shape) for o in objs[1:])


def test_target_token_mask_matches_the_object():
    scene = scenes.make_scene(11)
    obj = scene.objects[0]
    side = scenes.IMAGE_SIZE // scenes.PATCH
    mask = scenes.object_token_mask(obj).reshape(side, side)
    x0, y0, x1, y1 = obj.box
    rows, cols = np.nonzero(mask)
    assert rows.min() >= y0 // 14 and rows.max() <= (y1 - 1) // 14
    assert cols.min() >= x0 // 14 and cols.max() <= (x1 - 1) // 14
    assert mask.sum() >= 4

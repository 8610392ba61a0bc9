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


# ------------------------------------------------------------------------------- the variant option


def test_variant_scenes_are_reproducible_and_leave_plain_scenes_alone():
    plain, variant = scenes.make_scene(5), scenes.make_scene(5, variant=True)
    assert variant.image.tobytes() == scenes.make_scene(5, variant=True).image.tobytes()
    assert plain.image.tobytes() == scenes.make_scene(5, variant=False).image.tobytes()
    assert variant.image.tobytes() != plain.image.tobytes()
    assert all(o.rgb is None for o in plain.objects)
    clip = scenes.make_clip(4, variant=True)
    assert clip.frames[1].tobytes() == scenes.make_clip(4, variant=True).frames[1].tobytes()


@pytest.mark.parametrize("seed", range(20))
def test_variant_scenes_stay_in_the_documented_world(seed):
    scene = scenes.make_scene(seed, variant=True)
    pixels = np.asarray(scene.image).astype(int)
    assert pixels.shape == (scenes.IMAGE_SIZE, scenes.IMAGE_SIZE, 3)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        assert scenes.VARIANT_MIN_SIZE <= x1 - x0 <= scenes.VARIANT_MAX_SIZE
        assert np.abs(np.subtract(obj.rgb, scenes.COLORS[obj.color])).max() <= scenes.COLOR_JITTER
        # the object's inner pixels are its colour up to jitter and JPEG (nearest named colour: its own)
        inner = scenes.object_pixels(obj)
        inner = inner & np.roll(inner, 3, 0) & np.roll(inner, -3, 0) & np.roll(inner, 3, 1) & np.roll(inner, -3, 1)
        mean = pixels[inner].mean(axis=0)
        nearest = min(scenes.COLORS, key=lambda c: np.abs(mean - scenes.COLORS[c]).sum())
        assert nearest == obj.color
    for q in scene.questions:
        assert q.answer in scenes.vocabulary() and all(w in scenes.vocabulary() for w in q.text.split())
    clip = scenes.make_clip(seed, variant=True)
    path = [objs[0].center for objs in clip.frames_objects]
    dx, dy = np.subtract(path[-1], path[0])
    expected = scenes.DIRECTIONS[clip.questions[0].answer]
    assert np.sign(dx) == expected[0] and np.sign(dy) == expected[1]


@pytest.mark.slow  # seconds: draws 300 variant scenes
def test_variant_scenes_differ_in_the_documented_ways():
    sizes = [o.box[2] - o.box[0] for s in range(300) for o in scenes.make_scene(s, variant=True).objects]
    assert min(sizes) < scenes.MIN_SIZE and max(sizes) > scenes.MAX_SIZE
    edges = np.asarray(scenes.make_scene(2, variant=True).image).astype(int)
    plain = np.asarray(scenes.make_scene(2).image).astype(int)
    # anti-aliasing and JPEG: many more distinct colours than the flat plain image
    assert len(np.unique(edges.reshape(-1, 3), axis=0)) > 10 * len(np.unique(plain.reshape(-1, 3), axis=0))


# ------------------------------------------------------------------------------- tokenizer and training


def test_questions_as_people_type_them_tokenise_without_unknown_words():
    from models.shapes_llava import train

    _, processor = train.build(0)
    tok = processor.tokenizer
    for typed, plain in [("What color is the circle?", "what color is the circle ?"),
                         ("How many squares are there?", "how many squares are there ?"),
                         ("Where is the RED circle ?!", "where is the red circle ?")]:
        assert tok.tokenize(typed) == plain.split()
        assert tok.unk_token_id not in tok.encode(typed, add_special_tokens=False)
    assert tok.tokenize("what colour is the cat ?").count("<unk>") == 2  # unknown words stay visible
    # the training sequence is exactly the processor's (chat template, capitals, glued "?")
    train.check_encoding(tok, processor, train.image_tokens())


def test_training_drop_mask_equals_the_engines_pruned_run():
    """Dropping tokens in training (key columns masked from layer K on, in one forward) gives the same answer
    logits as the explorer's pruned run at layer K keeping the same tokens."""
    import torch

    from explorer.core import engine
    from explorer.methods import registry as methods
    from models import llava
    from models.shapes_llava import train

    torch.manual_seed(0)
    model, processor = train.build(0)
    model.eval()
    tok = processor.tokenizer
    scene = scenes.make_scene(3)
    question = scene.questions[0]
    n = train.image_tokens()
    keep = np.random.default_rng(1).random(n) < 0.3
    state = {}
    handles = train.drop_hooks(model, state)
    try:
        for layer in (1, 3):
            example = train.encode_example(tok, n, [question])
            ids, positions, mask, _ = train.collate([example], tok.pad_token_id)
            row = example[5][0]
            ids, positions, mask = ids[:, : row + 1], positions[:, : row + 1], mask[:, :, : row + 1, : row + 1]
            dropped = torch.zeros((len(model.model.language_model.layers), 1, row + 1), dtype=torch.bool)
            start = len(train.encode_text(tok, "USER:"))
            dropped[layer:, 0, start: start + n] = torch.from_numpy(~keep)
            pixels = train.pixel_values_of([scene.image], processor.image_processor)
            state["dropped"] = dropped
            with torch.no_grad():
                ours = model(input_ids=ids, pixel_values=pixels, attention_mask=mask, position_ids=positions).logits
            state["dropped"] = None
            def fixed(inp):  # a "method" that keeps exactly the chosen tokens
                return torch.from_numpy(keep)[inp.alive].double()

            methods.METHODS["fixed_test_set"] = methods.Method(fixed, description="test: a fixed kept set")
            try:
                inputs = llava.build_inputs(processor, [scene.image], question.text)
                encoded = engine.encode(model, llava, inputs)
                record = engine.run(model, processor, encoded, "fixed_test_set", keep=int(keep.sum()), keep_logits=True,
                                    prune_layer=layer, max_new_tokens=1)
            finally:
                del methods.METHODS["fixed_test_set"]
            assert sorted(record.stages[0].keep_indices) == np.nonzero(keep)[0].tolist()
            assert torch.allclose(ours[0, row], record.step_logits[0], atol=1e-4), \
                (ours[0, row] - record.step_logits[0]).abs().max()
    finally:
        for h in handles:
            h.remove()


def test_training_overrides_change_only_what_they_name_and_the_grid_is_fixed():
    """--config and --set override the architecture and the recipe (recorded in training.json); the grid
    (image and patch size) is the scenes' and cannot be overridden; drops start at TRAIN["drop_start"]."""
    import copy

    import pytest

    from models.shapes_llava import train

    saved = copy.deepcopy(train.CONFIG), copy.deepcopy(train.TRAIN)
    try:
        train.parse_args(["--config", "vision_layers=4", "--set", "drop_start=0.5"])
        assert train.CONFIG["vision_layers"] == 4 and isinstance(train.CONFIG["vision_layers"], int)
        assert train.TRAIN["drop_start"] == 0.5
        assert {k: v for k, v in train.CONFIG.items() if k != "vision_layers"} == \
            {k: v for k, v in saved[0].items() if k != "vision_layers"}
        for bad in (["--config", "patch_size=7"], ["--config", "depth=3"], ["--set", "nothing=1"]):
            with pytest.raises(SystemExit):
                train.parse_args(bad)
    finally:
        train.CONFIG.clear(), train.CONFIG.update(saved[0])
        train.TRAIN.clear(), train.TRAIN.update(saved[1])
    # no drops before drop_start: a batch sampled with drops=False drops nothing
    _, processor = train.build(0)
    rng = np.random.default_rng(0)
    n = train.image_tokens()
    batch = train.sample_batch("image", rng, processor.tokenizer, processor, n, drops=False)
    assert not batch[-1].any() and not batch[7]
    batch = train.sample_batch("image", rng, processor.tokenizer, processor, n, drops=True)
    assert batch[-1].any()


def test_training_conversations_are_what_the_chat_template_makes():
    """The training sequence of a three-turn conversation equals the processor's chat template at every turn
    (train.check_encoding asserts it), follow-ups ask about other objects than the turn before where the scene
    allows it, and a clip's conversations mix its motion question with questions about its objects."""
    from models.shapes_llava import train

    _, processor = train.build(0)
    train.check_encoding(processor.tokenizer, processor, train.image_tokens())
    rng = np.random.default_rng(0)
    for seed in range(20):
        scene = scenes.make_scene(seed)
        for dialogue in train.image_dialogues(rng, scene.questions):
            for before, after in zip(dialogue, dialogue[1:]):
                others = [q for q in scene.questions if not set(q.targets) & set(before.targets)]
                assert not set(after.targets) & set(before.targets) or not others
    clip = scenes.make_clip(3)
    dialogues = train.clip_dialogues(rng, clip)
    assert dialogues[0][0] is clip.questions[0]  # one conversation opens with the motion question
    assert all(q.kind != "where" for d in dialogues for q in d)
    assert scenes.make_clip(3).frames[0].tobytes() == clip.frames[0].tobytes()  # clip questions draw nothing

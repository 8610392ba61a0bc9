"""The world the embedded model knows: procedurally generated shape scenes and clips with one-word answers.

Everything is a pure function of a seed (numpy's default_rng), so anyone can regenerate the same data:
- `make_scene(seed)`: a 224 x 224 image, light background, 1 to 5 non-overlapping filled shapes (circle,
  square, triangle) in five colours, anywhere in the frame (corners and top rows included), with questions.
- `make_clip(seed)`: 4 frames in which one shape (the target) moves left, right, up or down by several
  patches, with the motion question.
Seeds: training uses seeds >= TRAIN_SEED_START; evaluation and tests use seeds below it.

`variant=True` (both functions) draws the same kind of world slightly differently, for robustness in training
and for a "variant set" in evaluation: object sizes 36-80 px (the plain range is 42-72), each object's colour
jittered by up to 14 levels per channel, anti-aliased edges (drawn at 3x and downsampled), a background with
a gentle gradient and faint noise, and JPEG compression at a random quality 35-95. The variation is drawn
from a second generator seeded from the scene's seed, so a variant scene is still a pure function of its seed;
without the option nothing changes (the plain held-out scenes are exactly as before).

Each object records its box and can draw its own pixel mask, so the visual tokens covering the object a
question is about are known (`object_token_mask`).
"""

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 224  # with 14 px patches: a 16 x 16 grid of 256 visual tokens
PATCH = 14
TRAIN_SEED_START = 1_000_000
SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (150, 60, 190),
}
NUMBERS = ("zero", "one", "two", "three", "four", "five")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
MIN_SIZE, MAX_SIZE = 42, 72  # 3 to 5 patches across
VARIANT_MIN_SIZE, VARIANT_MAX_SIZE = 36, 80  # variant scenes: a little outside the plain range
COLOR_JITTER = 14  # variant scenes: each object's colour moves by up to this much per channel
SUPERSAMPLE = 3  # variant scenes: drawn at 3x and downsampled (anti-aliased edges)
GAP = 6  # pixels between shapes


@dataclass
class Shape:
    shape: str
    color: str
    box: tuple  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive
    rgb: tuple = None  # drawn colour when it differs from COLORS[color] (variant scenes)

    @property
    def center(self):
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


@dataclass
class Question:
    text: str
    answer: str
    kind: str  # color, shape, count, exists, where, motion
    targets: list  # indices of the objects the question is about (may be empty)


@dataclass
class Scene:
    seed: int
    background: tuple
    objects: list
    questions: list = field(default_factory=list)
    image: Image.Image = None


@dataclass
class Clip:
    seed: int
    background: tuple
    frames_objects: list  # per frame, the list of Shape (same order)
    questions: list = field(default_factory=list)
    frames: list = None  # PIL images


def draw(draw_ctx, obj, fill, scale=1):
    x0, y0, x1, y1 = (v * scale for v in obj.box)
    if obj.shape == "circle":
        draw_ctx.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif obj.shape == "square":
        draw_ctx.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
    else:  # triangle pointing up, filling its box
        draw_ctx.polygon([((x0 + x1 - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)


def render(background, objects):
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    ctx = ImageDraw.Draw(image)
    for obj in objects:
        draw(ctx, obj, COLORS[obj.color])
    return image


class Variation:
    """The variant option's randomness for one scene or clip: a generator of its own (seeded from the scene's
    seed), so the plain layout draws are untouched by it."""

    def __init__(self, seed):
        self.rng = np.random.default_rng([seed, 0x5EED])
        rng = self.rng
        # background: a gentle linear gradient (up to +-8 levels across the frame) and faint noise
        self.gradient = rng.uniform(-8, 8, size=(2, 3))
        self.noise = float(rng.uniform(0, 3))
        self.quality = int(rng.integers(35, 96))
        self.noise_seed = int(rng.integers(2**31))

    def color(self, name):
        base = np.array(COLORS[name])
        return tuple(int(v) for v in np.clip(base + self.rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, 3), 0, 255))

    def render(self, background, objects):
        """Anti-aliased objects over a varied background, then JPEG at this scene's quality."""
        big = IMAGE_SIZE * SUPERSAMPLE
        image = Image.new("RGB", (big, big), background)
        ctx = ImageDraw.Draw(image)
        for obj in objects:
            draw(ctx, obj, obj.rgb or COLORS[obj.color], scale=SUPERSAMPLE)
        pixels = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), dtype=np.float32)
        ramp = np.linspace(-1, 1, IMAGE_SIZE, dtype=np.float32)
        shade = ramp[None, :, None] * self.gradient[0] + ramp[:, None, None] * self.gradient[1]
        noise = np.random.default_rng(self.noise_seed).normal(0, self.noise, pixels.shape).astype(np.float32)
        # the shading and noise apply to the background only (objects keep their own colour)
        background_share = 1 - np.asarray(_coverage(objects), dtype=np.float32)[:, :, None]
        pixels = np.clip(pixels + background_share * (shade + noise), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=self.quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")


def _coverage(objects):
    """[H, W] share of each pixel covered by some object, at the anti-aliased resolution."""
    big = IMAGE_SIZE * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    ctx = ImageDraw.Draw(canvas)
    for obj in objects:
        draw(ctx, obj, 255, scale=SUPERSAMPLE)
    return np.asarray(canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), dtype=np.float32) / 255


def object_pixels(obj):
    """Boolean [H, W] mask of the pixels the object covers."""
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw(ImageDraw.Draw(canvas), obj, 255)
    return np.asarray(canvas) > 0


def object_token_mask(obj, grid_side=IMAGE_SIZE // PATCH, min_cover=0.2):
    """Boolean [grid_side * grid_side] raster mask of the patches at least `min_cover` covered by the object."""
    pixels = object_pixels(obj)
    cell = IMAGE_SIZE // grid_side
    cover = pixels[: cell * grid_side, : cell * grid_side].reshape(grid_side, cell, grid_side, cell).mean(axis=(1, 3))
    return (cover >= min_cover).reshape(-1)


def _overlaps(box, others):
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + GAP and b[0] < x1 + GAP and y0 < b[3] + GAP and b[1] < y1 + GAP for b in others)


def _place(rng, boxes, size, limits=(0, 0, IMAGE_SIZE, IMAGE_SIZE), tries=200):
    lx0, ly0, lx1, ly1 = limits
    for _ in range(tries):
        x0 = int(rng.integers(lx0, lx1 - size + 1))
        y0 = int(rng.integers(ly0, ly1 - size + 1))
        box = (x0, y0, x0 + size, y0 + size)
        if not _overlaps(box, boxes):
            return box
    return None


def _background(rng):
    return tuple(int(v) for v in rng.integers(228, 252, size=3))


def _random_objects(rng, count, boxes=None, sizes=(MIN_SIZE, MAX_SIZE)):
    boxes = list(boxes or [])
    objects = []
    for _ in range(count):
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        box = _place(rng, boxes, size)
        if box is None:
            continue
        boxes.append(box)
        objects.append(Shape(str(rng.choice(SHAPES)), str(rng.choice(list(COLORS))), box))
    return objects


def quadrant(obj, margin=0.08):
    """The quadrant of the object's centre, or None when the centre is near a midline (ambiguous)."""
    cx, cy = obj.center
    half = IMAGE_SIZE / 2
    if abs(cx - half) < margin * IMAGE_SIZE or abs(cy - half) < margin * IMAGE_SIZE:
        return None
    return ("top" if cy < half else "bottom") + "-" + ("left" if cx < half else "right")


def scene_questions(objects, rng):
    """Every unambiguous question about the scene (exists: one yes and one no, for balance)."""
    questions = []
    for shape in SHAPES:
        matches = [i for i, o in enumerate(objects) if o.shape == shape]
        if len(matches) == 1:
            questions.append(Question(f"what color is the {shape} ?", objects[matches[0]].color, "color", matches))
        questions.append(Question(f"how many {shape}s are there ?", NUMBERS[len(matches)], "count", matches))
    for color in COLORS:
        matches = [i for i, o in enumerate(objects) if o.color == color]
        if len(matches) == 1:
            questions.append(Question(f"what shape is the {color} object ?", objects[matches[0]].shape, "shape",
                                      matches))
    combos = {}
    for i, o in enumerate(objects):
        combos.setdefault((o.color, o.shape), []).append(i)
    present = sorted(combos)
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in combos]
    yes = present[int(rng.integers(len(present)))]
    questions.append(Question(f"is there a {yes[0]} {yes[1]} ?", "yes", "exists", combos[yes]))
    no = absent[int(rng.integers(len(absent)))]
    questions.append(Question(f"is there a {no[0]} {no[1]} ?", "no", "exists", []))
    for (color, shape), idx in combos.items():
        if len(idx) == 1 and quadrant(objects[idx[0]]):
            questions.append(Question(f"where is the {color} {shape} ?", quadrant(objects[idx[0]]), "where", idx))
    return questions


QUESTION_KINDS = ("color", "shape", "count", "exists", "where")  # a scene's question kinds, in turn


def question_in_turn(scene, i):
    """The question the i-th held-out item asks of its scene (the evaluation and the offline tasks): kinds taken
    in turn (QUESTION_KINDS[i % 5], any question where the scene has none of that kind), the (i // 5)-th of the
    kind's questions, cycling."""
    options = [q for q in scene.questions if q.kind == QUESTION_KINDS[i % len(QUESTION_KINDS)]] or scene.questions
    return options[i // len(QUESTION_KINDS) % len(options)]


def make_scene(seed, max_objects=5, variant=False):
    """A scene of 1 to max_objects shapes (training's curriculum starts with fewer); `variant`: drawn slightly
    differently (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    background = _background(rng)
    sizes = (VARIANT_MIN_SIZE, VARIANT_MAX_SIZE) if variant else (MIN_SIZE, MAX_SIZE)
    objects = []
    while not objects:
        objects = _random_objects(rng, int(rng.integers(1, max_objects + 1)), sizes=sizes)
    scene = Scene(seed, background, objects)
    scene.questions = scene_questions(objects, rng)
    if variant:
        variation = Variation(seed)
        for obj in objects:
            obj.rgb = variation.color(obj.color)
        scene.image = variation.render(background, objects)
    else:
        scene.image = render(background, objects)
    return scene


FRAMES = 4


def make_clip(seed, variant=False):
    """4 frames; the target moves 14-28 px per frame (3 to 6 patches in all); up to 2 static distractors.
    `variant`: drawn slightly differently (see the module's docstring; every frame gets its own JPEG)."""
    rng = np.random.default_rng(seed)
    background = _background(rng)
    sizes = (VARIANT_MIN_SIZE, VARIANT_MAX_SIZE) if variant else (MIN_SIZE, MAX_SIZE)
    while True:
        direction = str(rng.choice(list(DIRECTIONS)))
        dx, dy = DIRECTIONS[direction]
        step = int(rng.integers(14, 29))
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        travel = step * (FRAMES - 1)
        # the whole path must fit in the frame
        lx0, ly0 = max(0, -dx * travel), max(0, -dy * travel)
        lx1, ly1 = IMAGE_SIZE - max(0, dx * travel), IMAGE_SIZE - max(0, dy * travel)
        start = _place(rng, [], size, (lx0, ly0, lx1, ly1))
        if start is None:
            continue
        path = [(start[0] + dx * step * f, start[1] + dy * step * f) for f in range(FRAMES)]
        sweep = (min(p[0] for p in path), min(p[1] for p in path), max(p[0] for p in path) + size,
                 max(p[1] for p in path) + size)
        target = Shape(str(rng.choice(SHAPES)), str(rng.choice(list(COLORS))), start)
        others = [o for o in _random_objects(rng, int(rng.integers(0, 3)), boxes=[sweep], sizes=sizes)
                  if (o.color, o.shape) != (target.color, target.shape)]
        break
    variation = Variation(seed) if variant else None
    if variant:
        target.rgb = variation.color(target.color)
        for obj in others:
            obj.rgb = variation.color(obj.color)
    frames_objects = [[Shape(target.shape, target.color, (x, y, x + size, y + size), target.rgb)] + others
                      for x, y in path]
    clip = Clip(seed, background, frames_objects)
    clip.questions = [Question(f"which way does the {target.color} {target.shape} move ?", direction, "motion", [0])]
    clip.frames = [variation.render(background, objs) if variant else render(background, objs)
                   for objs in frames_objects]
    return clip


def clip_scene_questions(clip):
    """Questions about a clip's objects other than the motion question (colour, shape, count, exists), for
    conversations about one clip: the objects are the same in every frame, so these answers hold for the whole
    clip; "where" is left out (the target moves between quadrants). Drawn with a generator of their own seeded
    from the clip's seed, so the clip itself (frames, motion question) is exactly make_clip's."""
    rng = np.random.default_rng([clip.seed, 0xC11F])
    return [q for q in scene_questions(clip.frames_objects[0], rng) if q.kind != "where"]


def vocabulary():
    """Every word the questions and answers use (the tokenizer's vocabulary)."""
    words = ["what", "color", "is", "the", "shape", "object", "how", "many", "are", "there", "where", "a", "which",
             "way", "does", "move", "?", "yes", "no"]
    words += list(SHAPES) + [s + "s" for s in SHAPES] + list(COLORS) + list(NUMBERS) + list(QUADRANTS)
    words += list(DIRECTIONS)
    return list(dict.fromkeys(words))


def single_object_scene(shape="circle", color="red", center=(168, 168), size=56, background=(240, 240, 240)):
    """One object at a chosen place (for the positional sweep); the question asks about it."""
    x0, y0 = int(round(center[0] - size / 2)), int(round(center[1] - size / 2))
    x0 = min(max(x0, 0), IMAGE_SIZE - size)
    y0 = min(max(y0, 0), IMAGE_SIZE - size)
    obj = Shape(shape, color, (x0, y0, x0 + size, y0 + size))
    scene = Scene(seed=-1, background=background, objects=[obj])
    scene.questions = [Question(f"what color is the {shape} ?", color, "color", [0])]
    scene.image = render(background, [obj])
    return scene


def identical_objects_scene(centers, shape="circle", color="red", size=48, background=(240, 240, 240)):
    """Identical objects at the given centres (for the object sweep: they compete for one budget); the question
    counts them."""
    objects = []
    for cx, cy in centers:
        x0 = min(max(int(round(cx - size / 2)), 0), IMAGE_SIZE - size)
        y0 = min(max(int(round(cy - size / 2)), 0), IMAGE_SIZE - size)
        objects.append(Shape(shape, color, (x0, y0, x0 + size, y0 + size)))
    scene = Scene(seed=-1, background=background, objects=objects)
    scene.questions = [Question(f"how many {shape}s are there ?", NUMBERS[len(objects)], "count",
                                list(range(len(objects))))]
    scene.image = render(background, objects)
    return scene


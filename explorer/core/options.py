"""Every setting's choices, bounds and default (Settings), and the checks of a raw value that need no model:
without torch, so that the command line answers --help and refuses a bad argument before it imports torch.

The checks raise InvalidSetting; explorer.core.settings, which everything else calls, raises them as the
project's one error type for what the user can fix (models.base.BadInput, whose package imports torch). Method
names are checked there, against the registry; `registered_methods` reads the registry's names without
importing it.
"""

import ast
import functools
import math
import os
import sys
from dataclasses import asdict, dataclass

REGISTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "methods", "registry.py")


class InvalidSetting(ValueError):
    """A setting the user can fix; explorer.core.settings raises it as models.base.BadInput."""


# The choices and bounds of every setting: the page's menus and sliders, the command line and the benchmark
# harness take them from here.
SCHEDULES = ("single", "paper", "official")  # controlled (one K, one count), CLSE's paper, each as its authors
EARLY_KV = ("keep", "prune")  # layers before a pruning stage keep / drop the pruned tokens in their KV cache
BUDGET_PER = ("image", "grid")  # one budget per image over its grids (split by size), or each grid its own
POSITIONS = ("original", "renumber")  # kept tokens keep their position ids (gaps), or are numbered 0.. again
RANKS = ("per_grid", "joint")  # an image's grids keep fixed quotas each, or one budget ranked over all of them
SCORING_POINTS = ("after", "before")  # Qwen3-VL: score the states entering K after / before layer K-1's DeepStack
PROMPTS = ("chat", "official")  # the hub chat template, or the official evaluation prompt where a family has one
MAX_FRAMES = 16  # video frames sampled, at most
MAX_NEW_TOKENS = 256
MAX_REPEATS = 10  # timed repeats per method, at most
MAX_LAYER = 10_000  # a layer index beyond any decoder (the plan checks it against the model)
MAX_FOLLOW_UPS = 4  # follow-up questions of one conversation
MAX_QUESTION_CHARS = 500
FOLLOW_UP_MODES = ("keep", "reprune")  # continue the pruned cache, or prune again for each question


@dataclass(frozen=True)
class Settings:
    methods: tuple = ("clse", "fastv")  # the unpruned reference "none" is always run as well
    keep: float = 64  # visual tokens kept per image / video: a whole count >= 1, or a ratio in (0, 1)
    budget_per: str = "image"  # an image of several grids (base + tiles): one budget over them, or one per grid
    prune_layer: int = None  # K of a single stage; None: the family's official setting for the input kind
    ref_layer: int = None  # CLSE's reference layer L; None: the family's official setting
    schedule: str = "single"  # "single" (controlled: one stage at K), "paper" (CLSE's stages), "official"
    early_kv: str = None  # "keep" | "prune"; None: as the family's official code
    invert: bool = False  # the falsification ablation: keep the lowest-ranked tokens instead of the highest
    frames: int = 4  # video frames sampled
    max_new_tokens: int = 20
    seed: int = 0  # random's seed, mixed with the input's pixels: every input its own reproducible subset
    cutoff: float = 0.1  # CLSE's high-pass cutoff
    temp: float = 0.1  # CLSE's sigmoid temperature
    prompt: str = "chat"
    repeats: int = 1  # timed repeats per method (median reported)
    follow_ups: tuple = ()  # later questions of the conversation, in order
    follow_up_mode: str = "keep"  # "keep": on the first question's pruned cache; "reprune": chosen again per question
    positions: str = None  # "original" | "renumber"; None: "original" (controlled), each method's own (official)
    rank: str = None  # "per_grid" | "joint"; None: "per_grid" (controlled), each method's own (official)
    scoring_point: str = "after"  # Qwen3-VL: the states entering K after (stock) or before layer K-1's DeepStack
    notes: tuple = ()  # what the check changed (an old method name), for the records' notes

    def to_json(self):
        return {**asdict(self), "methods": list(self.methods), "notes": list(self.notes),
            "follow_ups": list(self.follow_ups)}


def _number(name, value, whole=False, low=None, high=None):
    """A finite number from a raw value, or InvalidSetting naming the setting and the allowed range."""
    allowed = f"{'a whole number' if whole else 'a number'}" + (
        f" from {low} to {high}" if low is not None and high is not None else f" >= {low}" if low is not None else "")
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidSetting(f"{name} must be {allowed}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidSetting(f"{name} must be {allowed}, got {value!r}") from None
    if not math.isfinite(number) or (whole and number != int(number)):
        raise InvalidSetting(f"{name} must be {allowed}, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidSetting(f"{name} must be {allowed}, got {value!r}")
    return int(number) if whole else number


def _keep(value):
    """A count (int >= 1) or a ratio (0 < r < 1). Gradio numbers arrive as floats: 64.0 means 64 tokens."""
    try:
        keep = float(value)
    except (TypeError, ValueError):
        raise InvalidSetting(f"keep must be a number (a count >= 1 or a ratio in (0, 1)), got {value!r}") from None
    if not math.isfinite(keep) or not keep > 0:
        raise InvalidSetting(f"keep must be a count >= 1 or a ratio in (0, 1), got {value!r}")
    if keep < 1:
        return keep
    if keep != int(keep):
        raise InvalidSetting(f"keep {keep:g} is neither a whole count nor a ratio below 1")
    return int(keep)


def _optional_layer(name, value):
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "default")):
        return None
    return _number(name, value, whole=True, low=0, high=MAX_LAYER)


def _choice(name, value, choices, optional=False):
    if optional and value in (None, "", "auto", "default"):
        return None
    if value not in choices:
        raise InvalidSetting(f"{name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_question(question, what="the question"):
    """A question as the model gets it (stripped), or InvalidSetting: empty, too long, or not text."""
    if question is not None and not isinstance(question, str):
        raise InvalidSetting(f"{what} must be text, got {type(question).__name__}")
    question = (question or "").strip()
    if not question:
        raise InvalidSetting(f"{what} is empty")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: nothing downstream could encode it
        raise InvalidSetting(f"{what} holds text that is not valid Unicode (a lone surrogate, "
                             f"U+{ord(question[error.start]):04X})") from None
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidSetting(f"{what} is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    return question


def follow_ups(value):
    """Follow-up questions from a list, or one string with one question per line; at most MAX_FOLLOW_UPS."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, (list, tuple)):
        raise InvalidSetting(f"follow-ups must be questions (a list, or one per line), got {value!r}")
    if len(value) > MAX_FOLLOW_UPS:
        raise InvalidSetting(f"{len(value)} follow-up questions; the limit is {MAX_FOLLOW_UPS}")
    return tuple(check_question(q, f"follow-up question {i + 1}") for i, q in enumerate(value))


def check_values(**raw):
    """Every setting but the methods, checked: {name: value} for Settings; every missing value takes its
    default. Raises InvalidSetting with the sentence the user sees."""
    d = Settings()
    get = raw.get
    return dict(
        keep=_keep(get("keep", d.keep)),
        budget_per=_choice("budget per", get("budget_per", d.budget_per), BUDGET_PER),
        prune_layer=_optional_layer("prune layer", get("prune_layer")),
        ref_layer=_optional_layer("reference layer", get("ref_layer")),
        schedule=_choice("schedule", get("schedule", d.schedule), SCHEDULES),
        early_kv=_choice("early_kv", get("early_kv"), EARLY_KV, optional=True),
        invert=bool(get("invert", d.invert)),
        frames=_number("frame count", get("frames", d.frames), whole=True, low=1, high=MAX_FRAMES),
        max_new_tokens=_number("max new tokens", get("max_new_tokens", d.max_new_tokens), whole=True, low=1,
                               high=MAX_NEW_TOKENS),
        seed=_number("seed", get("seed", d.seed), whole=True, low=0, high=2**31 - 1),
        cutoff=_number("cutoff", get("cutoff", d.cutoff), low=1e-3, high=1.0),
        temp=_number("temperature", get("temp", d.temp), low=1e-3, high=100.0),
        prompt=_choice("prompt", get("prompt", d.prompt), PROMPTS),
        repeats=_number("repeats", get("repeats", d.repeats), whole=True, low=1, high=MAX_REPEATS),
        follow_ups=follow_ups(get("follow_ups", d.follow_ups)),
        follow_up_mode=_choice("follow-up mode", get("follow_up_mode", d.follow_up_mode), FOLLOW_UP_MODES),
        positions=_choice("positions", get("positions"), POSITIONS, optional=True),
        rank=_choice("rank", get("rank"), RANKS, optional=True),
        scoring_point=_choice("scoring point", get("scoring_point", d.scoring_point), SCORING_POINTS),
    )


@functools.cache
def _registry_source_names():
    """(METHODS' names, ALIASES' names) as explorer/methods/registry.py writes them (dict literals), read from
    its source; None when the file no longer has that shape (the caller then leaves the check to the registry)."""
    found = {}
    for node in ast.parse(open(REGISTRY).read()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("METHODS", "ALIASES"):
            keys = node.value.keys
            if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
                return None
            found[node.targets[0].id] = tuple(k.value for k in keys)
    return (found["METHODS"], found["ALIASES"]) if len(found) == 2 else None


def registered_methods():
    """(method names, old names still accepted) of the method registry, without importing it (it imports
    torch): the live registry when it is already imported (a method may have been added at run time), else its
    source's dict literals; None when neither can tell."""
    registry = sys.modules.get("explorer.methods.registry")
    if registry is not None:
        return tuple(registry.METHODS), tuple(registry.ALIASES)
    return _registry_source_names()


def check_method_names(methods):
    """InvalidSetting for a name the registry does not know, with the registry's own sentence; the names are
    not renamed here (explorer.core.settings.method_names does that, with its notes)."""
    known = registered_methods()
    if known is None:
        return
    names, aliases = known
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, (list, tuple)):
        return  # the registry's check says what is wrong
    for name in methods:
        if name not in names and name not in aliases:
            raise InvalidSetting(f"unknown method {name!r}; choose from {', '.join(names)}")

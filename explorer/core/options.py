"""Every setting, once: a field of Settings with its default and its spec (help, choices, bounds, its page
argument, its flag: SPEC), and the checks of a raw value that need no model, driven by the spec. Without torch,
so that the command line answers --help and refuses a bad argument before it imports torch. The command line's
flags (add_arguments), the page's components and /compare API (explorer/page/api.py, ui.py), lmms-eval's model
arguments (explorer/analysis/runs.py) and docs/settings.md (`python -m explorer.core.options --markdown`) are
generated from it: adding a setting is adding its field (and reading it where it is used).

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
from dataclasses import asdict, dataclass, field, fields

REGISTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "methods", "registry.py")


class InvalidSetting(ValueError):
    """A setting the user can fix; explorer.core.settings raises it as models.base.BadInput."""


# The choices and bounds of every setting: the page's menus and sliders, the command line and the benchmark
# harness take them from here.
SCHEDULES = ("single", "paper", "official")  # controlled (one K, one count), CLSE's paper, each as its authors
EARLY_KV = ("keep", "prune")  # layers before a pruning stage keep / drop the pruned tokens in their KV cache
BUDGET_PER = ("image", "grid")  # one budget per image over its grids (split by size), or each grid its own
PROMPTS = ("chat", "official")  # the hub chat template, or the official evaluation prompt where a family has one
MAX_FRAMES = 16  # video frames sampled, at most
MAX_NEW_TOKENS = 256
MAX_REPEATS = 10  # timed repeats per method, at most
MAX_LAYER = 10_000  # a layer index beyond any decoder (the plan checks it against the model)
MAX_FOLLOW_UPS = 4  # follow-up questions of one conversation
MAX_QUESTION_CHARS = 500
FOLLOW_UP_MODES = ("keep", "reprune")  # continue the pruned cache, or prune again for each question
POSITIONS = ("original", "renumber")  # kept tokens keep their position ids (gaps), or are numbered 0.. again
RANKS = ("per_grid", "joint")  # an image's grids keep fixed quotas each, or one budget ranked over all of them
SCORING_POINTS = ("after", "before")  # Qwen3-VL: score the states entering K after / before layer K-1's DeepStack


BOTH_MODES = "both"  # the page's follow-up mode: each follow-up asked in keep and in reprune mode, side by side
AUTO = "the family's official setting"  # what None means for a setting that is `optional`


def setting(default, help, **spec):
    """A Settings field: its default and its spec, plain data every front end reads (see SPEC)."""
    return field(default=default, metadata={"help": help, **spec})


SPEC = {  # what a field's metadata may hold; only `help` is required
    "help": "one text: the command line's --help, the page's info line, docs/settings.md",
    "label": "the page's label (default: the name)",
    "said": "how an error sentence names it (default: the name, spaces for underscores)",
    "choices": "the values allowed", "low": "the least value allowed", "high": "the largest value allowed",
    "optional": "None allowed (also written auto or default): the family's official setting",
    "kind": "how a raw value is read where its type does not say: keep, methods, questions",
    "page": "its /compare argument name(s); absent: not on the page (explorer/page/api.py)",
    "page_default": "the page's default where it differs from the field's",
    "flag": "the command line's flag (default: --name with dashes; None: no flag)", "metavar": "--help's VALUE",
    "run": "an lmms-eval model argument (explorer/analysis/runs.py)",
}


# Every setting of a request, in the page's order (its components and the /compare API follow it: a new setting
# shown on the page goes after the last one shown there, so the API's positions stay), each with its spec.
@dataclass(frozen=True)
class Settings:
    methods: tuple = setting(("clse", "fastv"), "the pruning methods compared; the unpruned reference none "
                             "always runs as well", kind="methods", page=("method_a", "method_b"))
    keep: float = setting(64, "visual tokens kept per image or video: a whole count >= 1, or a ratio < 1",
                          kind="keep", label="Keep: a count >= 1 or a ratio < 1 per image/video", page="keep",
                          page_default=round(1 / 9, 4), run=True)  # the paper's "64 of 576" as a share
    prune_layer: int = setting(None, "K: the decoder layer where a single stage prunes", optional=True, low=0,
                               high=MAX_LAYER, label="Prune layer K", page="prune_layer", page_default="auto",
                               metavar="K", run=True)
    ref_layer: int = setting(None, "L: the layer whose attention CLSE reads as its reference", optional=True,
                             low=0, high=MAX_LAYER, said="reference layer", label="Reference layer L (CLSE)",
                             page="ref_layer", page_default="auto", metavar="L", run=True)
    schedule: str = setting("single", "single: the controlled comparison (every method scores at one K and keeps "
                            "the same count: isolates the score); paper: CLSE's three stages for every method; "
                            "official: each method as its authors run it", choices=SCHEDULES, page="schedule",
                            run=True)
    frames: int = setting(4, "video frames sampled evenly from a video file", low=1, high=MAX_FRAMES,
                          said="frame count", label="Video frames", page="num_frames", metavar="N", run=True)
    early_kv: str = setting(None, "whether the layers before K keep the pruned tokens in their KV cache (decode "
                            "still sees them there) or drop them too", choices=EARLY_KV, optional=True,
                            said="early_kv", label="KV cache of the layers before K", page="early_kv",
                            page_default="auto", run=True)
    invert: bool = setting(False, "keep the lowest-ranked tokens instead of the highest (the falsification "
                           "ablation: a score that matters should do worse inverted)", label="Invert", page="invert",
                           run=True)
    prompt: str = setting("chat", "the checkpoint's chat template, or the official evaluation prompt where a "
                          "family has one (LLaVA-1.5: vicuna_v1 with its system prompt)", choices=PROMPTS,
                          label="Prompt", page="prompt", run=True)
    repeats: int = setting(1, "each method timed this many times, order rotated (the median reported, with its "
                           "spread)", low=1, high=MAX_REPEATS, label="Timed repeats", page="repeats", metavar="N")
    budget_per: str = setting("image", "an image the model sees as several grids (LLaVA-NeXT's base and tiles, "
                              "InternVL's tiles): one budget over them, split by their sizes, or one per grid",
                              choices=BUDGET_PER, label="Budget per", page="budget_per", run=True)
    follow_ups: tuple = setting((), f"later questions of the conversation, in order (up to {MAX_FOLLOW_UPS})",
                                kind="questions", page="follow_ups", page_default="", flag="--follow-up",
                                metavar="QUESTION")
    follow_up_mode: str = setting("keep", "keep: on the first question's pruned cache (what a deployed pruner "
                                  "does); reprune: every method chooses again for each question",
                                  choices=FOLLOW_UP_MODES, said="follow-up mode", label="Follow-up on",
                                  page="follow_up_mode", page_default=BOTH_MODES)
    positions: str = setting(None, "original: the kept tokens keep their position ids (gaps); renumber: the "
                             "shortened sequence is numbered 0.. again after each stage, as official DivPrune, "
                             "VisionZip, VisPruner, PyramidDrop and SparseVLM do (1-D rotary positions only); auto: "
                             "original (official: each method's own)", choices=POSITIONS, optional=True,
                             label="Positions after a drop", page="positions", page_default="auto", run=True)
    rank: str = setting(None, "an image the model sees as several grids: per_grid, each grid keeps its share by "
                        "its own ranking; joint, the image's budget goes to the highest scores of all its grids "
                        "together; auto: per_grid (official: each method's own)", choices=RANKS, optional=True,
                        label="Ranking over an image's grids", page="rank", page_default="auto", run=True)
    scoring_point: str = setting("after", "Qwen3-VL: score the states entering K after layer K-1's DeepStack "
                                 "injection (the stock order) or before it (PriorTR's port)", choices=SCORING_POINTS,
                                 said="scoring point", label="Qwen3-VL scoring point", page="scoring_point",
                                 run=True)
    max_new_tokens: int = setting(20, "answer length, in tokens", low=1, high=MAX_NEW_TOKENS, metavar="N")
    seed: int = setting(0, "random's seed, mixed with the input's pixels: every input its own reproducible subset",
                        low=0, high=2**31 - 1)
    cutoff: float = setting(0.1, "CLSE's high-pass cutoff", low=1e-3, high=1.0)
    temp: float = setting(0.1, "CLSE's sigmoid temperature", low=1e-3, high=100.0, said="temperature")
    notes: tuple = setting((), "what the check changed (an old method name), for the records' notes", flag=None,
                           kind="internal")

    def to_json(self):
        return {**asdict(self), "methods": list(self.methods), "notes": list(self.notes),
            "follow_ups": list(self.follow_ups)}


@functools.cache
def specs():
    """{name: (default, its spec)} of every setting, in Settings' order."""
    return {f.name: (f.default, {"type": f.type, **f.metadata}) for f in fields(Settings)}


def said(name):
    return specs()[name][1].get("said", name.replace("_", " "))


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


def _choice(name, value, choices):
    if value not in choices:
        raise InvalidSetting(f"{name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def _auto(value):
    """Whether a raw value asks for the family's official setting (None, "", "auto" or "default")."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "default"))


def check_value(name, value):
    """One raw value read as its spec says (kind, optional, choices, type and bounds): the value Settings holds,
    or InvalidSetting with the sentence the user sees."""
    spec = specs()[name][1]
    if spec.get("kind") == "keep":
        return _keep(value)
    if spec.get("kind") == "questions":
        return follow_ups(value)
    if spec.get("optional") and _auto(value):
        return None
    if "choices" in spec:
        return _choice(said(name), value, spec["choices"])
    if spec["type"] is bool:
        return bool(value)
    return _number(said(name), value, whole=spec["type"] is int, low=spec.get("low"), high=spec.get("high"))


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
    return {name: check_value(name, raw.get(name, default)) for name, (default, spec) in specs().items()
            if spec.get("kind") not in ("methods", "internal")}


# ------------------------------------------------------------------ the front ends' texts, from the spec


def flag(name):
    """The setting's command-line flag, or None."""
    return specs()[name][1].get("flag", "--" + name.replace("_", "-"))


def shown_default(name):
    """The default as --help and docs/settings.md write it."""
    default, spec = specs()[name]
    if default is None and spec.get("optional"):
        return AUTO
    if isinstance(default, tuple):
        return ",".join(default) or "none"
    return str(default).lower() if isinstance(default, bool) else str(default)


def allowed(name):
    """The values a setting allows, in words."""
    default, spec = specs()[name]
    words = {"keep": "a whole count >= 1, or a ratio in (0, 1)", "methods": "method names, comma-separated",
             "questions": f"up to {MAX_FOLLOW_UPS} questions", "internal": "(set by the check)"}.get(spec.get("kind"))
    if words is None and "choices" in spec:
        words = ", ".join(spec["choices"])
    elif words is None and spec["type"] is bool:
        words = "true, false"
    elif words is None:
        whole = spec["type"] is int
        words = f"{'a whole number' if whole else 'a number'} from {spec['low']:{'d' if whole else 'g'}} to " \
                f"{spec['high']:{'d' if whole else 'g'}}"
    return f"auto, or {words}" if spec.get("optional") else words


def add_arguments(parser):
    """Every setting with a flag added to an argparse parser, in Settings' order: help, default, choices and
    metavar from the spec (the values stay text: check_values reads them). The destination is the setting's
    name."""
    known = registered_methods()
    for name, (default, spec) in specs().items():
        if flag(name) is None:
            continue
        extra = f"; from {', '.join(known[0])}" if spec.get("kind") == "methods" and known else ""
        options = dict(dest=name, help=f"{spec['help']}{extra} (default: {shown_default(name)})".replace("%", "%%"))
        if spec["type"] is bool:
            options.update(action="store_true")
        elif spec.get("kind") == "questions":
            options.update(action="append", default=[], metavar=spec.get("metavar"))
        else:
            default = ",".join(default) if isinstance(default, tuple) else default
            options.update(default=default, choices=spec.get("choices"), metavar=spec.get("metavar"))
        parser.add_argument(flag(name), **options)


def raw_from(namespace):
    """{setting: raw value} from what add_arguments parsed."""
    return {name: getattr(namespace, name) for name in specs() if flag(name) and hasattr(namespace, name)}


def markdown():
    """docs/settings.md: every setting as each front end names it, its default, what it allows and does."""
    rows = ["# Settings", "", "Generated from `explorer/core/options.py` (`Settings`, each field's spec) by "
            "`python -m explorer.core.options --markdown > docs/settings.md`; a test keeps it equal. The command "
            "line, the page (its `/compare` API arguments), the Python API (`explorer.compare(..., name=value)`) "
            "and lmms-eval's `--model_args` take these.", "",
            "| setting | command line | page (`/compare`) | lmms-eval | default | allowed | what it does |",
            "|---|---|---|---|---|---|---|"]
    for name, (default, spec) in specs().items():
        if spec.get("kind") == "internal":
            continue
        page = spec.get("page")
        page = ", ".join(page) if isinstance(page, tuple) else page
        cells = [f"`{name}`", f"`{flag(name)}`" if flag(name) else "", f"`{page}`" if page else "",
                 f"`{name}`" if spec.get("run") else "", shown_default(name), allowed(name), spec["help"]]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    rows += ["", "lmms-eval's model also takes `method` (one name), `max_new_tokens` (default: the task's), "
             "`pretrained`, `dtype`, `device`, `device_map` and `records_dir` (explorer/eval/lmms_eval.py)."]
    return "\n".join(rows) + "\n"


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


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m explorer.core.options --markdown > docs/settings.md")
    sys.stdout.write(markdown())

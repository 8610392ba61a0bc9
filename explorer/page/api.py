"""The page's `compare` API: its arguments in order, with their defaults. Defined once: the page builds its
components in this order (ui.py), service.prepare takes them by these names, and API callers (gradio_client,
raw REST calls, explorer/bench/stress.py) pass them in this order."""

from explorer.core.settings import Settings

_DEFAULTS = Settings()
BOTH_MODES = "both"  # the page's follow-up mode: each follow-up asked in keep and in reprune mode, side by side
COMPARE_ARGUMENTS = {  # name -> the page's default
    "image": None,  # a file path (gradio_client: handle_file(path))
    "video": None,
    "question": "",
    "method_a": _DEFAULTS.methods[0],
    "method_b": _DEFAULTS.methods[1],
    "keep": round(1 / 9, 4),  # the paper's "64 of 576" as a share, so it scales to any grid
    "prune_layer": "auto",
    "ref_layer": "auto",
    "schedule": _DEFAULTS.schedule,
    "model_id": None,
    "num_frames": _DEFAULTS.frames,
    "early_kv": "auto",
    "invert": _DEFAULTS.invert,
    "prompt": _DEFAULTS.prompt,
    "repeats": _DEFAULTS.repeats,
    "budget_per": _DEFAULTS.budget_per,
    "follow_ups": "",  # the conversation's later questions, one per line (up to 4)
    # the page asks each follow-up in both modes ("keep" and "reprune", answered side by side; the command line's
    # default is keep alone): "keep" or "reprune" runs one
    "follow_up_mode": BOTH_MODES,
    "positions": "auto",  # original (controlled) / each method's own (official); or original, renumber
    "rank": "auto",  # per_grid (controlled) / each method's own (official); or per_grid, joint
    "scoring_point": _DEFAULTS.scoring_point,  # Qwen3-VL: after / before layer K-1's DeepStack injection
}


def compare_arguments(**given):
    """The /compare arguments as a list in the API's order: the given ones, the page's defaults for the rest."""
    unknown = set(given) - set(COMPARE_ARGUMENTS)
    if unknown:
        raise TypeError(f"the compare API has no argument(s) {', '.join(sorted(unknown))}")
    return [given.get(name, default) for name, default in COMPARE_ARGUMENTS.items()]

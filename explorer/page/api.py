"""The page's `compare` API: its arguments in order, with the page's defaults, generated from Settings' spec
(explorer/core/options.py: a field's `page` names its argument, `page_default` the page's default) with the
request's own inputs (image, video, question, model_id) at their places. A public interface: gradio_client users
call /compare by position and by name, so a new setting shown on the page is added after the last one
(tests/test_settings.py holds the names and the order). The page builds its components under these names
(ui.py) and its handlers take them as one mapping (events.py, service.prepare)."""

from explorer.core.options import BOTH_MODES, specs  # noqa: F401  (BOTH_MODES: the page's own follow-up mode)

INPUTS = {0: ("image", None), 1: ("video", None), 2: ("question", ""), 9: ("model_id", None)}  # at these places


def page_settings():
    """[(argument, setting, the page's default)] of every setting on the page, in Settings' order; a setting of
    several values (the methods) has one argument per value."""
    found = []
    for name, (default, spec) in specs().items():
        page = spec.get("page")
        if isinstance(page, tuple):
            found += [(argument, name, value) for argument, value in zip(page, default)]
        elif page:
            found.append((page, name, spec.get("page_default", default)))
    return found


def _arguments():
    arguments = [(argument, default) for argument, _, default in page_settings()]
    for place, (name, default) in sorted(INPUTS.items()):
        arguments.insert(place, (name, default))
    return dict(arguments)


COMPARE_ARGUMENTS = _arguments()  # name -> the page's default, in the API's order


def complete(given):
    """The /compare arguments as a mapping: the given ones, the page's defaults for the rest; TypeError for a
    name the API does not have."""
    unknown = set(given) - set(COMPARE_ARGUMENTS)
    if unknown:
        raise TypeError(f"the compare API has no argument(s) {', '.join(sorted(unknown))}")
    return {name: given.get(name, default) for name, default in COMPARE_ARGUMENTS.items()}


def compare_arguments(**given):
    """The /compare arguments as a list in the API's order: the given ones, the page's defaults for the rest."""
    return list(complete(given).values())


def raw_settings(arguments):
    """{setting: raw value} of a complete argument mapping, for check_settings (the methods as a list)."""
    raw = {}
    for argument, name, _ in page_settings():
        if isinstance(specs()[name][1]["page"], tuple):
            raw.setdefault(name, []).append(arguments[argument])
        else:
            raw[name] = arguments[argument]
    return raw

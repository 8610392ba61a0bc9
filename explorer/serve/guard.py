"""What a queued event's inputs may hold, checked when the event joins the queue (limits.limit_per_client calls
`event_refusal` before Gradio queues it): a refusal is an HTTP 400 carrying one sentence, before Gradio
preprocesses, decodes or copies anything.

- Files: only files uploaded to this page (Gradio's upload route, bounded by limits.UploadGuard) are accepted.
  A file whose `url` is a `data:` URL is decoded whole by Gradio's image component before the page could check
  it (a 657 KB data: URL cost +2.96 GB); a file whose `path` is a web address is downloaded by Gradio into its
  cache: both are refused.
- Types: each input must have its component's type, whatever a client sends (Gradio coerced or passed on the
  rest, or failed with a traceback and an empty error, `{"error": null}`): a checkbox takes true or false (the
  string "false" ran the inverted ablation), a number a JSON number (true kept one token), a slider a number
  within its range (where no event changes the range), a text box text, a radio button one of its choices, a
  file an uploaded file's description; no text may hold a lone surrogate (it broke the answer's encoding). The
  sentence names the input by the API's name for it (the handler's parameter).
"""

import inspect
import json
import math
import re

NOT_UPLOADED = ("Files must be uploaded to this page first (the page's upload, or gradio_client's handle_file): "
                "a file given as a data: URL or a web address is not accepted.")
_ADDRESS = re.compile(r"^\s*[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # data:, http:, https:, file:, ...


def file_values(value):
    """Every file (a dict with a `path`, as Gradio's FileData) in an input's value, however nested."""
    if isinstance(value, dict):
        if "path" in value or (isinstance(value.get("meta"), dict) and value["meta"].get("_type") == "gradio.FileData"):
            yield value
        else:
            for item in value.values():
                yield from file_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from file_values(item)


def file_refusal(value):
    """NOT_UPLOADED for a file given as a data: URL or by a web address, else None."""
    for file in file_values(value):
        url, path = file.get("url"), file.get("path")
        if isinstance(url, str) and url.lstrip().lower().startswith("data:"):
            return NOT_UPLOADED
        if isinstance(path, str) and _ADDRESS.match(path):
            return NOT_UPLOADED
    return None


def shown(value, limit=60):
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def surrogate_refusal(name, value):
    """A sentence for text holding a lone surrogate (it cannot be encoded: the answer's JSON broke), or None."""
    texts = [value] if isinstance(value, str) else []
    if isinstance(value, dict):
        texts = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        texts = value
    for text in texts:
        if isinstance(text, (dict, list)):
            refusal = surrogate_refusal(name, text)
            if refusal:
                return refusal
        elif isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                return (f"{name} holds text that is not valid Unicode (a lone surrogate, "
                        f"U+{ord(text[error.start]):04X}): send it as UTF-8 text")
    return None


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choice_values(component):
    return [choice[1] if isinstance(choice, (list, tuple)) else choice for choice in component.choices or []]


def file_shape_refusal(name, value):
    """A sentence unless value is None or an uploaded file's description (Gradio's FileData), or None."""
    if value is None:
        return None
    fields = {"path": str, "url": (str, type(None)), "orig_name": (str, type(None)), "size": (int, type(None)),
              "mime_type": (str, type(None)), "is_stream": bool, "meta": dict}
    if not isinstance(value, dict) or not isinstance(value.get("path"), str) or not value["path"].strip():
        return f"{name} must be an uploaded file (gradio_client: handle_file(path)) or null, got {shown(value)}"
    for key, kind in fields.items():
        if key in value and (not isinstance(value[key], kind) or (kind is bool and not isinstance(value[key], bool))
                             or (key == "size" and isinstance(value[key], bool))):
            return f"{name} must be an uploaded file: its {key} is {shown(value[key])}"
    return file_refusal(value)


def value_refusal(component, name, value, changing):
    """The sentence refusing one input's value for its component, or None. `changing`: whether an event updates
    this component (its range or choices then differ per session, and only Gradio can check them)."""
    import gradio as gr  # noqa: PLC0415

    if isinstance(component, gr.State):
        return None
    refusal = surrogate_refusal(name, value)
    if refusal:
        return refusal
    if isinstance(component, (gr.Image, gr.Video, gr.File)):
        return file_shape_refusal(name, value)
    if isinstance(component, gr.Checkbox):
        return None if isinstance(value, bool) else f"{name} must be true or false, got {shown(value)}"
    if isinstance(component, gr.Slider):
        low, high = component.minimum, component.maximum
        if not is_number(value) or not math.isfinite(value):
            return f"{name} must be a number from {low:g} to {high:g}, got {shown(value)}"
        if not changing and not low <= value <= high:
            return f"{name} must be a number from {low:g} to {high:g}, got {shown(value)}"
        return None
    if isinstance(component, gr.Number):
        return None if value is None or is_number(value) else f"{name} must be a number, got {shown(value)}"
    if isinstance(component, gr.Textbox):
        return None if value is None or isinstance(value, str) else f"{name} must be text, got {shown(value)}"
    if isinstance(component, gr.Radio):  # the page's radios keep their choices: events (the lesson's steps) set
        choices = choice_values(component)  # their values only, so the choices are checked whatever writes them
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or value not in choices:
            return f"{name} must be one of {', '.join(map(repr, choices))}, got {shown(value)}"
        return None
    if isinstance(component, gr.Dropdown):
        if component.multiselect:
            ok = value is None or (isinstance(value, list) and all(isinstance(v, (str, int, float)) and not
                                                                   isinstance(v, bool) for v in value))
            return None if ok else f"{name} must be a list of choices, got {shown(value)}"
        if value is not None and (not isinstance(value, (str, int, float)) or isinstance(value, bool)):
            return f"{name} must be text (one of its choices), got {shown(value)}"
        if not component.allow_custom_value and not changing and value not in choice_values(component):
            return f"{name} must be one of {', '.join(map(repr, choice_values(component)))}, got {shown(value)}"
        return None
    return file_refusal(value)


def input_names(fn):
    """The API's name of each input of a Gradio BlockFunction, in order: Gradio's own (the handler's parameters, and
    the names of inputs passed by keyword, inputs_kwargs), else the handler's parameters."""
    parameters = list(getattr(fn, "input_parameter_names", None) or [])
    if not parameters:
        try:
            parameters = list(inspect.signature(fn.fn).parameters)
        except (TypeError, ValueError):
            parameters = []
    return [parameters[i] if i < len(parameters) and parameters[i] else getattr(block, "label", None)
            or f"input {i + 1}" for i, block in enumerate(fn.inputs)]


def changing_components(fns):
    """The ids of the components some event writes to (their range or choices may differ per session)."""
    return {block._id for fn in fns for block in fn.outputs}


def event_refusal(fn, data, changing=frozenset()):
    """The sentence refusing an event's inputs (Gradio's BlockFunction and its body's data), or None."""
    values = data if isinstance(data, list) else [data]
    if fn is None or fn.inputs is None:
        return next((r for r in map(file_refusal, values) if r), None)
    if len(values) < len(fn.inputs):
        return f"this request needs {len(fn.inputs)} inputs, got {len(values)}"
    for component, name, value in zip(fn.inputs, input_names(fn), values):
        refusal = value_refusal(component, name, value, component._id in changing)
        if refusal:
            return refusal
    return None

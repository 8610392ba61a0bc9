"""What a queued event's inputs may hold, checked when the event joins the queue (limits.limit_per_client calls
`event_refusal` before Gradio queues it): a refusal is an HTTP 400 carrying one sentence, before Gradio
preprocesses, decodes or copies anything.

- Files: only files uploaded to this page (Gradio's upload route, bounded by limits.UploadGuard) are accepted.
  A file whose `url` is a `data:` URL is decoded whole by Gradio's image component before the page could check
  it (a 657 KB data: URL cost +2.96 GB); a file whose `path` is a web address is downloaded by Gradio into its
  cache: both are refused.
"""

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


def event_refusal(fn, data):
    """The sentence refusing a queued event's inputs (Gradio's BlockFunction and its body's data), or None."""
    for value in data if isinstance(data, list) else [data]:
        refusal = file_refusal(value)
        if refusal:
            return refusal
    return None

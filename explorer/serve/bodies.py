"""What a request may send and what a response may show (ASGI middleware in front of Gradio's app, outermost of
the page's own: limits.upload_guard lists it first).

- Request bodies are bounded before anything parses them: at most MAX_BODY_BYTES, refused with HTTP 413 from
  the declared Content-Length, or as soon as a body without one grows past it (a 400 MB JSON body cost +1.5 GB
  while FastAPI read and parsed it), and nested at most MAX_BODY_DEPTH levels (deeper, Python's JSON reader and
  the checks that walk it run out of stack). Uploads have their own bound (limits.UploadGuard).
- No response shows the server's folders: Gradio names every file it stores or serves by its absolute path (the
  upload route's answer, the examples in /config and in the page's HTML, every output file's path and URL), and
  the page's folder once carried the server's pid. Responses name the page's file folder FILES instead, and
  requests naming FILES (a file's path or URL in a JSON body, the file route's own path) are given the real
  folder back before Gradio reads them, so clients (the browser, gradio_client) work unchanged.
- A direct call's inputs (the events outside the queue) are checked as a queued event's are when it joins the
  queue (explorer.serve.guard): a wrong type gets its sentence (HTTP 400), not Gradio's traceback.
"""

import json
import os
import re

from explorer.serve import guard

MAX_BODY_BYTES = 256 * 2**10  # the largest request the page sends is about 2 KB (a comparison's settings)
MAX_BODY_DEPTH = 32  # JSON nesting of a request body (the page's nest 4 deep)
TOO_DEEP = f"A request body may nest at most {MAX_BODY_DEPTH} levels."
FILES = "files"  # how responses name the page's file folder (Gradio's upload and cache folder)
MASKED_TYPES = (b"application/json", b"text/event-stream", b"text/html", b"text/plain")  # Gradio's own answers
OWN_BODY_ROUTES = ("/upload", "/process_recording")  # bounded (or refused) by limits.UploadGuard


def file_folders():
    """The page's file folder as responses may spell it (as configured, and its real path), longest first."""
    from gradio.utils import get_upload_folder  # noqa: PLC0415

    folder = os.path.abspath(get_upload_folder())
    return sorted({folder.rstrip(os.sep), os.path.realpath(folder).rstrip(os.sep)}, key=len, reverse=True)


def depth(value):
    """How deep a parsed JSON value nests (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def unmask(value, folder):
    """A JSON value with the files it names (a dict's "path", a "url" through the file route) in `folder`."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "path" and isinstance(item, str) and (item == FILES or item.startswith(FILES + "/")):
                item = folder + item[len(FILES):]
            elif key == "url" and isinstance(item, str) and f"file={FILES}/" in item:
                item = item.replace(f"file={FILES}/", f"file={folder}/", 1)
            out[key] = unmask(item, folder)
        return out
    if isinstance(value, list):
        return [unmask(item, folder) for item in value]
    return value


RUN_ROUTE = re.compile(r"/(?:run|api)/([^/]+)/?$")  # Gradio's direct calls (the events outside the queue)


def direct_call_refusal(scope, body):
    """The sentence refusing a direct call's inputs (POST .../run/<api>: the page's events outside the queue,
    such as the examples loader and the follow-up box; queued events are checked when they join the queue), or
    None."""
    match = RUN_ROUTE.search(scope["path"])
    app = scope.get("app")
    if not match or not isinstance(body, dict) or not hasattr(app, "get_blocks"):
        return None
    fns = app.get_blocks().fns
    fn_index = body.get("fn_index")
    if match.group(1) == "predict" and isinstance(fn_index, int) and not isinstance(fn_index, bool):
        fn = fns.get(fn_index)
    else:
        fn = next((f for f in fns.values() if f.api_name == match.group(1)), None)
    if fn is None or not isinstance(body.get("data"), list):
        return None  # Gradio answers it
    return guard.event_refusal(fn, body["data"], guard.changing_components(fns.values()))


async def refuse(send, status, message):
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def too_large():
    return f"A request body may hold at most {MAX_BODY_BYTES // 2**10} KB (files go through the upload)."


class RequestGuard:
    """ASGI middleware: bounded request bodies, and the page's file folder named FILES in both directions (see the
    module's docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        folders = file_folders()
        folder = folders[-1]  # as configured (the shorter spelling when the real path differs)
        marker = f"file={FILES}/"
        if marker in scope["path"]:  # the file route: GET .../file=files/<hash>/<name>
            path = scope["path"].replace(marker, f"file={folder}/", 1)
            scope = dict(scope, path=path, raw_path=path.encode())
        if scope.get("method") in ("POST", "PUT", "PATCH") and not scope["path"].rstrip("/").endswith(OWN_BODY_ROUTES):
            body = await self.read_body(scope, receive, send)
            if body is None:
                return None
            if body[:1] in (b"{", b"["):
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None  # not JSON: Gradio answers it as it would
                except RecursionError:  # nested deeper than Python's stack: Gradio's own reading would fail too
                    return await refuse(send, 400, TOO_DEEP)
                if parsed is not None and depth(parsed) > MAX_BODY_DEPTH:
                    return await refuse(send, 400, TOO_DEEP)
                if parsed is not None:
                    refusal = direct_call_refusal(scope, parsed)
                    if refusal:
                        return await refuse(send, 400, refusal)
                    body = json.dumps(unmask(parsed, folder)).encode()
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
                         + [(b"content-length", str(len(body)).encode())])
            receive = self.replay(body, receive)
        if f"file={folder}/" in scope["path"]:  # a file's own bytes (a visitor's upload may be a 50 MB .json)
            return await self.app(scope, receive, send)
        await self.app(scope, receive, self.masking(send, [f.encode() for f in folders]))
        return None

    async def read_body(self, scope, receive, send):
        """The whole body, or None once refused (HTTP 413) for being larger than MAX_BODY_BYTES."""
        headers = dict((k.lower(), v) for k, v in scope["headers"])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await refuse(send, 413, too_large())
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                await refuse(send, 413, too_large())
                return None
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    @staticmethod
    def replay(body, receive):
        """A receive() that gives the (checked) body once, then the client's own messages (its disconnect)."""
        sent = False

        async def replayed():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replayed

    @staticmethod
    def masking(send, folders):
        """A send() that names the page's file folder FILES in text responses: whole bodies when their length is
        declared (the length is then corrected), chunk by chunk for streams (the page's event streams send each
        message in one chunk; a chunk ending inside a folder's name keeps that tail for the next one)."""
        state = {"mask": False, "start": None, "held": b"", "buffer": []}
        longest = max(len(f) for f in folders)

        def masked(data):
            for folder in folders:
                data = data.replace(folder, FILES.encode())
            return data

        async def masking_send(message):
            if message["type"] == "http.response.start":
                headers = dict((k.lower(), v) for k, v in message.get("headers", []))
                state["mask"] = headers.get(b"content-type", b"").split(b";")[0].strip() in MASKED_TYPES
                if state["mask"] and b"content-length" in headers:
                    state["start"] = message  # sent with the whole (masked) body and its new length
                    return None
                return await send(message)
            if message["type"] != "http.response.body" or not state["mask"]:
                return await send(message)
            more = message.get("more_body", False)
            if state["start"] is not None:
                state["buffer"].append(message.get("body", b""))
                if more:
                    return None
                body = masked(b"".join(state["buffer"]))
                start = state["start"]
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
                return await send({"type": "http.response.body", "body": body, "more_body": False})
            data = masked(state["held"] + message.get("body", b""))
            keep = 0
            if more:  # hold back a tail that could be the start of a folder's name
                for size in range(min(longest, len(data)) - 1, 0, -1):
                    if any(f.startswith(data[-size:]) for f in folders):
                        keep = size
                        break
            state["held"] = data[len(data) - keep:] if keep else b""
            return await send({**message, "body": data[:len(data) - keep] if keep else data})

        return masking_send

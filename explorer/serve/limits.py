"""What one visitor can hold of a deployment, wired onto a Gradio Blocks before launch (app.py calls
`prepare`, and passes `upload_guard()` to launch): the queue (model work one request at a time, a bounded wait
list), limits on requests running or waiting per visitor and per network address, bounded uploads per address,
and the cleanup of old files.

- Model work runs one request at a time (concurrency 1); at most QUEUE_SIZE requests wait. Each session (a
  browser tab or API client) has at most PER_CLIENT_LIMIT compare request running or waiting, and each network
  address at most EXPLORER_PER_ADDRESS (default 2) whatever its session ids (a new session id is free, an
  address is not); more are refused with a sentence. Every queued event of any kind (the Benchmark tab's report
  loads, the frame and view controls, ...) counts too: each address has at most EXPLORER_PER_ADDRESS_EVENTS
  (default 4, at most half of QUEUE_SIZE) of them running or waiting, so one address never holds the queue's
  places (before, a flood of report loads from new session ids filled all 32 and the queue refused everyone
  else). The address is the connection's, or, only where the
  deployment says it sits behind a proxy it trusts (EXPLORER_TRUST_PROXY=1, or a Hugging Face Space), the last
  entry of X-Forwarded-For (the one that proxy appended; the earlier ones are the client's to choose).
- Uploads (Gradio's /gradio_api/upload): per address at most UPLOAD_FILES files and UPLOAD_MB megabytes within
  UPLOAD_WINDOW_S, at most UPLOAD_FILES_PER_REQUEST files and a declared Content-Length of at most the page's
  file limit (+ 1 MB) per request; refused with a sentence (HTTP 413 / 429), and the files of a refused request
  are deleted. Uploads are deleted UPLOAD_MAX_AGE_S after they came, used or not. Gradio's deep-link route
  (/gradio_api/deep_link, which saves a session's page to disk) is refused: the page offers no deep links.
- Sessions: Gradio keeps at most STATE_SESSIONS of them (EXPLORER_STATE_SESSIONS), each visitor's gr.State for
  STATE_TTL_S, and none of the inputs' and outputs' last values (keep_no_output_values).
- A visitor who leaves (the page's event stream closes): Gradio removes that visitor's waiting requests from
  the queue at once and marks a running one dead; the running function is not interrupted by Gradio (it runs
  in a worker thread), so the handler hands explorer.serve.access.client_gone to the engine, which stops
  within one decoder layer (explorer/core/interrupt.py).
- Files: uploads and Gradio's copies of outputs (delete_cache) and our own result JSON files
  (explorer.serve.files.RESULTS_DIR) are deleted FILE_MAX_AGE_S after creation (EXPLORER_FILE_MAX_AGE_S, default
  1800 s; checked every sixth of that, at most every 5 minutes; Gradio's are all deleted at shutdown).
"""

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import threading
import time

from explorer.media.read import MAX_UPLOAD_MB
from explorer.serve import access, bodies, env, files, guard

QUEUE_SIZE = 32  # requests waiting at most (about 32 x 3-20 s of work on 2 cores)
PER_CLIENT_LIMIT = 1  # compare requests running or waiting per session (or per IP for session-less REST calls)
LIMITED_CONCURRENCY_ID = "model"  # the event group the limit applies to (ui.py's compare and question.submit)
FILE_MAX_AGE_S = files.RESULT_MAX_AGE_S  # EXPLORER_FILE_MAX_AGE_S, default 30 minutes; checked every age / 6
ONE_AT_A_TIME = ("You already have a comparison running or waiting: wait for its result before sending "
                 "another (one at a time per visitor).")
STATE_TTL_S = 900  # a session's state (its last result, its report) is dropped this long after it was set
UPLOAD_WINDOW_S = 600
UPLOAD_FILES = 60  # per address and window (gradio_client uploads the file again for every request)
UPLOAD_MB = 300  # per address and window
UPLOAD_FILES_PER_REQUEST = 4
UPLOAD_MAX_AGE_S = 600  # an upload is deleted this long after it came
NO_DEEP_LINKS = "This page offers no deep links: press Compare to see a result."
NO_RECORDINGS = "This page records nothing: upload a video file instead."


SERVER_STOPPING = "The server is stopping (a restart or an update): send your request again in a minute."
DRAIN_S = 20  # on SIGTERM, how long the page waits for its running and waiting requests to stop
_stopping = threading.Event()


def stopping():
    """Whether the server is stopping (SIGTERM): running requests stop within one decoder layer, waiting ones as
    soon as they start, new ones are refused (stop_serving)."""
    return _stopping.is_set()


_open_requests = 0  # the page's compare requests begun and not yet ended (request_open)
_open_lock = threading.Lock()


@contextlib.contextmanager
def request_open():
    """Around a whole compare request, its yields included (a count, not a context variable: a generator's
    parts may run in different threads): stop_serving waits until no request is open, so each one has ended,
    and logged how, before the process exits; Gradio's own record of its running events is not relied on."""
    global _open_requests
    with _open_lock:
        _open_requests += 1
    try:
        yield
    finally:
        with _open_lock:
            _open_requests -= 1


def open_requests():
    return _open_requests


def stop_serving(demo, timeout=DRAIN_S):
    """On SIGTERM (app.py): refuse new requests, have every request stop (the page's stop test reads stopping()),
    and wait until no compare request is open (request_open), the queue is empty and nothing runs, seen twice
    50 ms apart (Gradio takes an event off its wait list a moment before it records it as running), at most
    `timeout` seconds. Returns whether it emptied. The process can then exit normally: no worker thread is
    inside the model when the interpreter ends (a SIGTERM during a request used to abort it, exit -6, "terminate
    called without an active exception"), and every request open at the SIGTERM has logged its outcome."""
    _stopping.set()
    queue = demo._queue
    deadline = time.monotonic() + timeout
    empty_before = False
    while time.monotonic() < deadline:
        empty = (open_requests() == 0 and len(queue) == 0
                 and not any(job for job in list(queue.active_jobs) if job))
        if empty and empty_before:
            _send_last_messages(queue, min(deadline, time.monotonic() + MESSAGES_S))
            return True
        empty_before = empty
        time.sleep(0.05)
    return False


MESSAGES_S = 3  # on SIGTERM, how long the page waits for the last messages to reach their visitors


def _send_last_messages(queue, deadline):
    """Wait until the messages the finished requests left for their visitors have been taken by their streams
    (at most until `deadline`: a visitor who left takes none). A request that finished in the drain (its answer
    drawn while the SIGTERM came) hands its result to its visitor's stream only after Gradio marks it done;
    exiting at once lost that result (the visitor saw the connection close)."""
    def waiting():
        return any(not messages.empty() for messages in list(queue.pending_messages_per_session.values()))

    while waiting() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the stream's last write


def state_sessions():
    """Sessions Gradio keeps at most (EXPLORER_STATE_SESSIONS, default 10), least recently used dropped first. Per
    session it keeps the visitor's state (about 0.4 MB on the embedded model; the outputs' last values are not
    kept: keep_no_output_values), so 10 sessions hold about 4 MB; a visitor whose session was dropped is asked
    to press Compare again. Fewer sessions: less memory, and a busy page drops its visitors' controls sooner."""
    return env.whole_number("EXPLORER_STATE_SESSIONS", 10, minimum=1)


STATE_SESSIONS = state_sessions()  # read once, when app.py imports this
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)


def release_memory():
    """After each request. A full garbage collection: a request leaves garbage in reference cycles (figures,
    records, about 4,700 objects), which the interpreter's own full collections, rare in a process of 600k
    long-lived objects, let pile up for dozens of requests. app.py freezes what start-up made (gc.freeze), so
    this costs about 20 ms instead of 0.3 s. Then glibc's free memory is handed back to the system (malloc_trim,
    about 0.2 ms): else the heap keeps the pages a request's peak took and the RSS creeps. Measured with
    `python -m explorer.bench.stress --creep 100` (docs/public-page.md)."""
    gc.collect()
    if hasattr(_libc, "malloc_trim"):  # glibc only
        _libc.malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def mmap_threshold_kb():
    """EXPLORER_MMAP_THRESHOLD_KB (default 1024; 0 leaves glibc's own, dynamic threshold)."""
    return env.whole_number("EXPLORER_MMAP_THRESHOLD_KB", 1024)


def fix_mmap_threshold(kb=None):
    """The served page's allocations of kb KB or more get memory of their own from the system (mmap), handed back
    when freed. glibc's default threshold starts at 128 KB and rises to the size of every such block freed (up to
    32 MB), so after the first requests the page's large temporaries (activations, the figures' JSON strings)
    land in the heap beside long-lived blocks, and the heap grew by 10-15 MB over the first 50 requests of a
    fresh page (malloc_trim cannot return pages still partly used). A fixed threshold ends most of that rise and
    lowers the page's resident memory by 9-14 MB, its requests no slower (`python -m explorer.bench.stress
    --creep 100 --allocators`, docs/public-page.md). 1 MB, not 128 KB: each mmap'd block costs page faults when
    it is used, and at 128 KB the model's work alone (without the page) ran about 1.9 times slower in a probe. Returns
    whether glibc took it (False elsewhere, or with kb 0)."""
    kb = mmap_threshold_kb() if kb is None else kb
    return bool(kb and hasattr(_libc, "mallopt") and _libc.mallopt(M_MMAP_THRESHOLD, kb * 1024))


def keep_no_output_values():
    """Gradio keeps, in every session of its store, the last value of each input and output in a copy of the
    page's config (SessionState._update_value_in_config) for one use: the /gradio_api/deep_link route (a
    gr.DeepLinkButton's saved page), which this page does not offer (UploadGuard refuses the route). On this page
    that copy is about 1.1 MB per session (the figures' JSON, the result's records): most of what the session store
    holds, measured with `python -m explorer.bench.stress --creep 100 --creep-only` (docs/public-page.md). Outputs still
    reach the visitor, and the visitor's gr.State (the frame and turn controls) is kept as before. Gradio is pinned
    (requirements.txt); tests/test_public_page.py fails if the method replaced here is gone."""
    from gradio.state_holder import SessionState  # noqa: PLC0415

    if not hasattr(SessionState, "_update_value_in_config"):
        raise RuntimeError("this Gradio keeps session values another way: review limits.keep_no_output_values")
    SessionState._update_value_in_config = _keep_no_value


def _keep_no_value(session, key, value):
    """SessionState._update_value_in_config on this page: the value is not kept (keep_no_output_values)."""


def per_address_limit():
    return env.whole_number("EXPLORER_PER_ADDRESS", 2, minimum=1)


def per_address_refusal(limit):
    return (f"Your network address already has {limit} comparison(s) running or waiting (at most {limit} per "
            "address): wait for one of them to finish.")


def per_address_events_limit():
    """Queued events of every kind one address may have running or waiting (EXPLORER_PER_ADDRESS_EVENTS, default
    4): at most half the queue's places, so that one address can never take them all."""
    return min(env.whole_number("EXPLORER_PER_ADDRESS_EVENTS", 4, minimum=1), QUEUE_SIZE // 2)


def per_address_events_refusal(limit):
    return (f"Your network address already has {limit} requests running or waiting on this page (at most {limit} "
            "per address, of every kind): wait for one of them to finish.")


def trusted_proxy():
    """Whether the client's address comes from X-Forwarded-For: only where the deployment says so (on a
    Space, its own proxy sets it)."""
    return os.environ.get("EXPLORER_TRUST_PROXY") == "1" or bool(os.environ.get("SPACE_ID"))


def address_of(headers, client):
    """The client's network address: the connection's, or behind a trusted proxy the last entry of
    X-Forwarded-For: the one that proxy appended (the address that connected to it). The entries before it are
    whatever the client sent, so the first one would let a visitor pick a new address for every request."""
    if trusted_proxy():
        forwarded = [entry.strip() for entry in headers.get("x-forwarded-for", "").split(",") if entry.strip()]
        if forwarded:
            return forwarded[-1]
    return client[0] if client else "unknown"


def client_key(body, request):
    """Who is asking: the Gradio session, or for session-less REST calls (/call/...) the client's address."""
    if body.session_hash:
        return body.session_hash
    return f"ip:{client_address(request)}"


def client_address(request):
    if request is None:
        return "unknown"
    return address_of(request.headers, (request.client.host,) if request.client is not None else None)


def pending_requests(queue, concurrency_id=None, **match):
    """The requests waiting in Gradio's queue or running (and still wanted) whose attributes match (client_key=...,
    or client_address=...): of one event group (concurrency_id), or of every group (None)."""
    if concurrency_id is None:
        events = [event for waiting in queue.event_queue_per_concurrency_id.values() for event in waiting.queue]
    else:
        waiting = queue.event_queue_per_concurrency_id.get(concurrency_id)
        events = list(waiting.queue) if waiting is not None else []
    events += [event for job in queue.active_jobs if job for event in job if event.alive]
    (name, value), = match.items()
    return sum(1 for event in events if (concurrency_id is None or event.concurrency_id == concurrency_id)
               and getattr(event, name, None) == value)


def limit_per_client(demo, limit=PER_CLIENT_LIMIT, concurrency_id=LIMITED_CONCURRENCY_ID, per_address=None,
                     per_address_events=None):
    """Gradio 6 has a global queue size but no per-client limit: wrap the queue's push (where a request joins
    the queue) so that a session with `limit` model requests waiting or running is refused with ONE_AT_A_TIME,
    an address with per_address of them (default EXPLORER_PER_ADDRESS) with its own sentence, and an address
    with per_address_events queued events of any kind (default EXPLORER_PER_ADDRESS_EVENTS) with another (HTTP
    400 with the sentence; gradio_client raises it, the page shows it). Call after demo.queue()."""
    queue = demo._queue
    push = queue.push
    joining = asyncio.Lock()  # check-then-add without another join of the same client in between
    per_address = per_address or per_address_limit()
    per_address_events = per_address_events or per_address_events_limit()
    changing = guard.changing_components(demo.fns.values())

    async def push_limited(body, request, username):
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is None:
            return await push(body, request, username)
        key, address = client_key(body, request), client_address(request)
        if stopping():
            return False, SERVER_STOPPING, "error"
        refusal = guard.event_refusal(fn, body.data, changing)  # before Gradio reads, decodes or copies anything
        if refusal:
            access.log_user_error(f"address {address} refused: {refusal}")
            return False, refusal, "error"
        async with joining:
            if fn.concurrency_id == concurrency_id:
                if pending_requests(queue, concurrency_id, client_key=key) >= limit:
                    access.log_user_error(f"client {key[:12]} refused: {limit} request(s) already waiting or "
                                          "running")
                    return False, ONE_AT_A_TIME, "error"
                if pending_requests(queue, concurrency_id, client_address=address) >= per_address:
                    access.log_user_error(f"address {address} refused: {per_address} request(s) already waiting "
                                          "or running")
                    return False, per_address_refusal(per_address), "error"
            if pending_requests(queue, client_address=address) >= per_address_events:
                access.log_user_error(f"address {address} refused: {per_address_events} queued event(s) of any "
                                      "kind already waiting or running")
                return False, per_address_events_refusal(per_address_events), "error"
            result = await push(body, request, username)
            if result[0]:
                event = queue.event_ids_to_events[result[1]]
                event.client_key, event.client_address = key, address
            return result

    queue.push = push_limited


class UploadGuard:
    """ASGI middleware in front of Gradio's upload route (see the module's docstring for the bounds), which also
    refuses the deep-link route (it writes a session's whole page to disk, and this page keeps no values for it:
    keep_no_output_values). The response of an accepted upload (the list of stored paths) is read to count its
    files; the paths are remembered with their time, so that the cleaner can delete them UPLOAD_MAX_AGE_S
    later."""

    uploads = collections.deque()  # (time, path): every upload this server accepted, oldest first

    def __init__(self, app):
        self.app = app
        self.recent = collections.defaultdict(collections.deque)  # address -> (time, files, bytes)

    async def refuse(self, send, status, message):
        body = json.dumps({"detail": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/deep_link"):
            return await self.refuse(send, 404, NO_DEEP_LINKS)  # it would save a session's page to disk
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/process_recording"):
            return await self.refuse(send, 404, NO_RECORDINGS)  # it spools a whole upload to the system's temp
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].endswith("/upload"):
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        address = address_of(headers, scope.get("client"))
        length = int(headers.get("content-length", "0") or 0) if headers.get("content-length", "").isdigit() else None
        limit = (MAX_UPLOAD_MB + 1) * 2**20
        if length is None or length > limit:
            access.log_user_error(f"address {address} upload refused: Content-Length {length}")
            return await self.refuse(send, 413, f"An upload must say its size and be at most {MAX_UPLOAD_MB} MB.")
        now = time.time()
        recent = self.recent[address]
        while recent and now - recent[0][0] > UPLOAD_WINDOW_S:
            recent.popleft()
        if sum(f for _, f, _ in recent) >= UPLOAD_FILES or sum(b for *_, b in recent) + length > UPLOAD_MB * 2**20:
            access.log_user_error(f"address {address} upload refused: {len(recent)} uploads in the window")
            return await self.refuse(send, 429, f"Too many uploads from your network address: at most {UPLOAD_FILES} "
                                                f"files and {UPLOAD_MB} MB in {UPLOAD_WINDOW_S // 60} minutes.")
        start, chunks = [], []

        async def capture(message):  # hold the (small) response until its files are counted
            (start if message["type"] == "http.response.start" else chunks).append(message)

        await self.app(scope, receive, capture)
        body = b"".join(m.get("body", b"") for m in chunks)
        try:
            paths = json.loads(body) if start and start[0]["status"] == 200 else []
        except ValueError:
            paths = []
        paths = [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []
        if len(paths) > UPLOAD_FILES_PER_REQUEST:
            for path in paths:
                with contextlib.suppress(OSError):
                    os.remove(path)
            access.log_user_error(f"address {address} upload refused: {len(paths)} files in one request")
            return await self.refuse(send, 413, f"At most {UPLOAD_FILES_PER_REQUEST} files per upload.")
        recent.append((now, len(paths), length))
        self.uploads.extend((now, path) for path in paths)
        for message in start + chunks:
            await send(message)


def remove_old_uploads(max_age_s=UPLOAD_MAX_AGE_S, now=None, keep=frozenset()):
    """Delete the uploads this server accepted more than max_age_s ago, except the paths in keep (the examples:
    Gradio stores an upload of an example's bytes at the example's own cached path); returns how many were
    removed."""
    now = time.time() if now is None else now
    removed = 0
    while UploadGuard.uploads and now - UploadGuard.uploads[0][0] > max_age_s:
        _, path = UploadGuard.uploads.popleft()
        if path in keep:
            continue
        with contextlib.suppress(OSError):
            os.remove(path)
            removed += 1
    return removed


def upload_guard():
    """What app.py passes to demo.launch(app_kwargs=...): the page's middleware on Gradio's FastAPI app, outermost
    first: request bodies bounded and the page's folder never shown (bodies.RequestGuard), then the upload bounds
    and the refused routes (UploadGuard)."""
    from starlette.middleware import Middleware  # noqa: PLC0415

    return {"middleware": [Middleware(bodies.RequestGuard), Middleware(UploadGuard)]}


def launch_arguments():
    """Everything app.py passes to demo.launch besides the address (the tests' pages pass the same):
    - the upload limit, and only gr.Error sentences reach the page (show_error=False: a real fault shows Gradio's
      generic "Error", its traceback goes to the log);
    - the page's middleware (upload_guard) and the sessions Gradio keeps (STATE_SESSIONS);
    - no monitoring (Gradio's /monitoring routes: its dashboard and the queue's per-event analytics) and no run
      history (Gradio would save each call's inputs and outputs, files included, to a bucket a visitor names)."""
    return dict(max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=False, app_kwargs=upload_guard(),
                state_session_capacity=STATE_SESSIONS, enable_monitoring=False, run_history=False)


def files_to_keep(demo):
    """Files Gradio keeps for the page's lifetime (the examples): never removed by age."""
    keep = set()
    for block in demo.blocks.values():
        keep.update(str(path) for path in getattr(block, "keep_in_cache", ()))
    return keep


def clean_files_forever(demo, every_s, max_age_s):
    """Every every_s seconds, remove our result files older than max_age_s, and every file in Gradio's cache
    folder older than that except the examples: delete_cache only knows the files Gradio tracks, and Gradio
    leaves untracked ones (an empty temporary file per API upload, its converted copy of a non-RGB image)."""
    def loop():
        started = False
        while not (started and not demo.is_running):  # until the page that started it is closed
            time.sleep(every_s)
            started = started or demo.is_running
            removed = files.remove_old_results(max_age_s)
            keep = files_to_keep(demo)
            removed += remove_old_uploads(min(UPLOAD_MAX_AGE_S, max_age_s), keep=keep)
            removed += files.remove_old_files(demo.GRADIO_CACHE, max_age_s, keep=keep)
            if removed:
                logging.getLogger("explorer").info("removed %d old temporary files and folders", removed)

    threading.Thread(target=loop, name="file-cleanup", daemon=True).start()


def prepare(demo, file_max_age_s=FILE_MAX_AGE_S):
    """Everything the deployment adds to the page built by ui.build_app(), before launch."""
    every_s = max(1, min(300, file_max_age_s // 6))
    demo.delete_cache = (every_s, file_max_age_s)  # read by Gradio when it creates the server app (launch)
    # model work runs one request at a time; api_open=False: no queued event runs outside the queue (Gradio opens
    # /gradio_api/run/<api> to them wherever it does not detect a Space, skipping the queue and every limit here)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE, api_open=False)
    limit_per_client(demo)
    keep_no_output_values()
    clean_files_forever(demo, every_s, file_max_age_s)
    return demo

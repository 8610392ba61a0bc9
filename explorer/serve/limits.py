"""What one visitor can hold of a deployment, wired onto a Gradio Blocks before launch (app.py calls
`prepare`): the queue (model work one request at a time, a bounded wait list), a per-visitor limit on requests
running or waiting, and the cleanup of old files.

- Model work runs one request at a time (concurrency 1); at most QUEUE_SIZE requests wait, and each visitor
  (a browser tab or API client session; a session-less REST call counts per IP address) has at most
  PER_CLIENT_LIMIT compare request running or waiting: more are refused with a sentence.
- A visitor who leaves (the page's event stream closes): Gradio removes that visitor's waiting requests from
  the queue at once and marks a running one dead; the running function is not interrupted by Gradio (it runs
  in a worker thread), so the handler asks explorer.serve.access.client_gone between stages and stops early.
- Files: uploads and Gradio's copies of outputs (delete_cache) and our own result JSON files
  (explorer.serve.files.RESULTS_DIR) are deleted FILE_MAX_AGE_S after creation (EXPLORER_FILE_MAX_AGE_S, default
  1800 s; checked every sixth of that, at most every 5 minutes; Gradio's are all deleted at shutdown).
"""

import asyncio
import logging
import threading
import time

from explorer.serve import access, files

QUEUE_SIZE = 32  # requests waiting at most (about 32 x 3-20 s of work on 2 cores)
PER_CLIENT_LIMIT = 1  # compare requests running or waiting per session (or per IP for session-less REST calls)
LIMITED_CONCURRENCY_ID = "model"  # the event group the limit applies to (ui.py's compare and question.submit)
FILE_MAX_AGE_S = files.RESULT_MAX_AGE_S  # EXPLORER_FILE_MAX_AGE_S, default 30 minutes; checked every age / 6
ONE_AT_A_TIME = ("You already have a comparison running or waiting: wait for its result before sending "
                 "another (one at a time per visitor).")


def client_key(body, request):
    """Who is asking: the Gradio session, or for session-less REST calls (/call/...) the client's address."""
    if body.session_hash:
        return body.session_hash
    host = request.client.host if request is not None and request.client is not None else "unknown"
    return f"ip:{host}"


def pending_requests(queue, key, concurrency_id):
    """The limited requests of one client that are waiting in Gradio's queue or running (and still wanted)."""
    waiting = queue.event_queue_per_concurrency_id.get(concurrency_id)
    events = list(waiting.queue) if waiting is not None else []
    events += [event for job in queue.active_jobs if job for event in job if event.alive]
    return sum(1 for event in events
               if event.concurrency_id == concurrency_id and getattr(event, "client_key", None) == key)


def limit_per_client(demo, limit=PER_CLIENT_LIMIT, concurrency_id=LIMITED_CONCURRENCY_ID):
    """Gradio 6 has a global queue size but no per-client limit: wrap the queue's push (where a request joins
    the queue) so a client with `limit` requests waiting or running is refused with ONE_AT_A_TIME (HTTP 400
    with that sentence; gradio_client raises it, the page shows it). Call after demo.queue()."""
    queue = demo._queue
    push = queue.push
    joining = asyncio.Lock()  # check-then-add without another join of the same client in between

    async def push_limited(body, request, username):
        key = client_key(body, request)
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is None or fn.concurrency_id != concurrency_id:
            return await push(body, request, username)
        async with joining:
            if pending_requests(queue, key, concurrency_id) >= limit:
                access.log_user_error(f"client {key[:12]} refused: {limit} request(s) already waiting or running")
                return False, ONE_AT_A_TIME, "error"
            result = await push(body, request, username)
            if result[0]:
                queue.event_ids_to_events[result[1]].client_key = key
            return result

    queue.push = push_limited


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
            removed += files.remove_old_files(demo.GRADIO_CACHE, max_age_s, keep=files_to_keep(demo))
            if removed:
                logging.getLogger("explorer").info("removed %d old temporary files and folders", removed)

    threading.Thread(target=loop, name="file-cleanup", daemon=True).start()


def prepare(demo, file_max_age_s=FILE_MAX_AGE_S):
    """Everything the deployment adds to the page built by ui.build_app(), before launch."""
    every_s = max(1, min(300, file_max_age_s // 6))
    demo.delete_cache = (every_s, file_max_age_s)  # read by Gradio when it creates the server app (launch)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)  # model work runs one request at a time
    limit_per_client(demo)
    clean_files_forever(demo, every_s, file_max_age_s)
    return demo

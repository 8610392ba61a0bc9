"""Command line: explorer --image PATH --question TEXT [--model ID_OR_DIR] [--methods clse,fastv] [--keep 64]
[--prune-layer K] [--json] (`python -m explorer` is the same command). Repeat --image for several images; add
--video to treat them as the frames of one clip, or give a video file with --video-file PATH [--frames 4].
Errors print one line to stderr and exit with status 2. Progress goes to stderr on a terminal, never into the
--json output.

The arguments are parsed and checked (every setting, the method names, the files named) before torch is
imported (explorer/core/options.py is torch-free), so --help and a bad argument answer at once. A hub id the
hub cannot give (unreachable, or offline mode) loads from the local cache in offline mode, or is refused at once
with one line (explorer/core/hub.py)."""

import argparse
import json
import os
import sys

from explorer.core import hub, options
from explorer.core.options import InvalidSetting

DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto and models.DTYPES (tests/test_cli.py checks them)


def build_parser(prog="explorer"):
    """The request's own arguments (media, question, model, device), then every setting (options.add_arguments:
    help, default and choices from Settings' spec)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Answer a question about an image or a video unpruned and with each pruning method "
                               "(visual tokens kept, answers, timings); --json prints every record.",
        epilog="Errors print one line (error: ...) and exit with status 2. The settings: docs/settings.md.")
    parser.add_argument("--image", action="append", default=[], metavar="PATH",
                        help="image path (repeat for several)")
    parser.add_argument("--video-file", default=None, metavar="PATH",
                        help="a video file, sampled into --frames evenly spaced frames")
    parser.add_argument("--video", action="store_true", help="the images are frames of one video")
    parser.add_argument("--question", required=True)
    parser.add_argument("--model", default=None, metavar="ID_OR_DIR",
                        help="hub id or local directory (default: the embedded model, shapes-llava)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps (default: %(default)s)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="auto: bfloat16/float16 on a GPU, float32 on the CPU (default: %(default)s)")
    parser.add_argument("--device-map", default=None, help="e.g. auto: spread a large model over devices")
    parser.add_argument("--json", action="store_true", help="print every record as one JSON object")
    options.add_arguments(parser)
    return parser


def parse_args(argv, prog="explorer"):
    return build_parser(prog).parse_args(argv)


def check_arguments(args):
    """Everything that can be checked without a model, before torch is imported: the settings, the method
    names, the question, and the media named. Raises InvalidSetting with the line the user sees."""
    options.check_method_names(args.methods)
    options.check_values(**options.raw_from(args))
    options.check_question(args.question)
    if args.video_file and args.image:
        raise InvalidSetting("give --image or --video-file, not both")
    if not args.video_file and not args.image:
        raise InvalidSetting("give an image (--image PATH) or a video file (--video-file PATH)")
    for path in args.image:
        if not os.path.isfile(path):
            raise InvalidSetting(f"image file not found: {path}")
    if args.video_file and not os.path.isfile(args.video_file):
        raise InvalidSetting(f"video file not found: {args.video_file}")


def progress_printer():
    """Progress lines on stderr when it is a terminal (tqdm's write keeps them off stdout)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda text: tqdm.write(f"... {text}", file=sys.stderr)


def read_inputs(args, frames):
    """(images, kind) from --image / --video / --video-file (sampled into `frames`, as the page samples uploads)."""
    from explorer.media import read as media

    if args.video_file:
        return media.sample_video_frames(args.video_file, frames), "video"
    return [media.load_image(path) for path in args.image], "video" if args.video else "image"


def main(argv=None, prog="explorer"):
    args = parse_args(argv, prog)
    try:
        check_arguments(args)
        source = hub.access(args.model)  # a hub id the hub cannot give is refused here, in about a second
    except (InvalidSetting, hub.Unavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with hub.offline(source == "cache"):
        return run(args)


def run(args):
    """The checked command: load the model, compare, print."""
    from explorer.analysis.comparison import close_call_note, closest_call  # torch, transformers: only now
    from explorer.core.compare import compare, warm_up
    from explorer.core.settings import check_settings
    from models import EMBEDDED_ID, load
    from models.base import BadInput

    say = progress_printer()
    try:
        settings = check_settings(**options.raw_from(args))
        images, kind = read_inputs(args, settings.frames)
        model, processor, family = load(args.model, device=args.device, dtype=args.dtype,
                                        device_map=args.device_map, progress=say)
        warm_up(model, processor, family, progress=say)
        records = compare(model, processor, family, images, args.question, settings,
                          kind=kind, diagnostics=args.json, progress=say)
    except BadInput as error:  # media.MediaError and models.ModelLoadError are BadInput too
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"model": args.model or EMBEDDED_ID, "results": {k: r.to_json() for k, r in records.items()}}))
        return 0
    first = next(iter(records.values()))
    print(f"{first.device}, {first.dtype}; {first.repeats} timed repeat(s), medians")
    for note in first.notes:
        print(f"note: {note}")
    for name, record in records.items():
        t = record.timings_ms
        print(f"{name:13s} {record.answer!r:30s} kept {len(record.kept_indices):5d}/{record.visual_tokens}  "
              f"avg {record.budget['average_kept']:7.1f}  prefill {t['prefill']:8.1f} ms  "
              f"decode {t['decode_per_token']:6.1f} ms/token  KV {record.kv_cache_bytes / 2**20:7.2f} MiB")
        for turn in record.turns[1:]:
            print(f"{'':13s} {turn['question']!r} -> {turn['answer']!r} (kept {len(turn['kept_indices'])}, "
                  f"{turn['timings_ms']['total']:.1f} ms)")
    for name, record in records.items():  # the answers a hair decided, after the table
        turns = record.turns or [{"answer_margins": record.answer_margins}]
        for number, turn in enumerate(turns, 1):
            note = close_call_note(name, closest_call(turn.get("answer_margins")), number)
            if note:
                print(f"note: {note}")
    return 0

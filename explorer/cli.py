"""Command line: python -m explorer --image PATH --question TEXT [--model ID_OR_DIR] [--methods clse,fastv]
[--keep 64] [--prune-layer 2] [--json]. Repeat --image for several images; add --video to treat them as the
frames of one clip. Errors print one line to stderr and exit with status 2."""

import argparse
import json
import sys

from explorer import media
from explorer.engine import RequestError, compare
from explorer.methods import METHODS


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m explorer", description=__doc__.split("\n")[0])
    parser.add_argument("--image", action="append", required=True, help="image path (repeat for several)")
    parser.add_argument("--question", required=True)
    parser.add_argument("--model", default=None, help="hub id or local directory (default: the embedded model)")
    parser.add_argument("--methods", default="clse,fastv", help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--keep", default="64", help="visual tokens kept per image/video: a count, or a ratio < 1")
    parser.add_argument("--prune-layer", type=int, default=2)
    parser.add_argument("--ref-layer", type=int, default=0)
    parser.add_argument("--schedule", choices=["single", "paper"], default="single")
    parser.add_argument("--video", action="store_true", help="the images are frames of one video")
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print every record as one JSON object")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from models import EMBEDDED_ID, ModelLoadError, load  # heavy imports after argument parsing

    try:
        images = [media.load_image(path) for path in args.image]
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        model, processor, family = load(args.model)
        records = compare(model, processor, family, images, args.question, methods=methods, keep=args.keep,
                          prune_layer=args.prune_layer, ref_layer=args.ref_layer, schedule=args.schedule,
                          kind="video" if args.video else "image", max_new_tokens=args.max_new_tokens,
                          seed=args.seed, diagnostics=args.json)
    except (RequestError, ModelLoadError, media.MediaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        model_name = args.model or EMBEDDED_ID
        print(json.dumps({"model": model_name, "results": {k: r.to_json() for k, r in records.items()}}))
        return 0
    for name, record in records.items():
        t = record.timings_ms
        print(f"{name:12s} {record.answer!r:30s} kept {len(record.kept_indices):5d}/{record.visual_tokens}  "
              f"prefill {t['prefill']:8.1f} ms  decode {t['decode_per_token']:6.1f} ms/token  "
              f"KV {record.kv_cache_bytes / 2**20:7.2f} MiB")
    return 0

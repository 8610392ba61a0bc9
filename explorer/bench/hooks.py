"""What the generic path costs: python -m explorer.bench.hooks [--repeats 7] [--quick]

The engine captures what the wrapper passes its decoder (a pre-hook at the decoder's door) and runs the stock
decoder with a hook before and after every layer. Unpruned, those hooks restrict nothing, so the whole cost of
the generic path is the capture and the hooks' bookkeeping. Measured on the benchmark's random-weight LLaVA
shapes (explorer/bench/engine.py), back to back in every repeat with the order alternated, as the ratio of
    ours:  engine.encode + the prefill of engine.run(method "none", one token) through the hooks
    stock: the model's own forward over the same inputs with a cache, logits of the last token only (what
           generate's first step runs)
minus one: the overhead as a share of an unpruned prefill. Printed: the median over repeats and its spread. Timed
in this process's CPU time on one thread (as explorer.bench's --clock auto): other processes' load not counted.
"""

import argparse
import statistics
import time

import torch
from PIL import Image

from explorer.bench.engine import QUICK_SHAPES, SHAPES, build
from explorer.core.engine import encode, run
from models import llava

QUESTION = "what is in the image ?"


def overhead(model, processor, repeats):
    """[ours / stock - 1] per repeat."""
    inputs = llava.build_inputs(processor, [Image.new("RGB", (336, 336), (120, 90, 60))], QUESTION)

    def stock():
        start = time.process_time()
        with torch.inference_mode():
            model(**inputs, use_cache=True, logits_to_keep=1)  # as generate's first step
        return time.process_time() - start

    def ours():
        start = time.process_time()
        run(model, processor, encode(model, llava, inputs), "none", max_new_tokens=1)
        return time.process_time() - start

    stock(), ours()  # warm-up
    shares = []
    for repeat in range(repeats):
        first, second = (stock, ours) if repeat % 2 == 0 else (ours, stock)
        times = {first: first(), second: second()}
        shares.append(times[ours] / times[stock] - 1)
    return shares


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m explorer.bench.hooks", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one small shape (a smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("shape | overhead of the generic path, median (min .. max) over repeats")
    for name, shape in (QUICK_SHAPES if args.quick else SHAPES).items():
        model, processor = build(**shape)
        shares = overhead(model, processor, args.repeats)
        print(f"{name} | {statistics.median(shares):+.1%} ({min(shares):+.1%} .. {max(shares):+.1%})")


if __name__ == "__main__":
    main()

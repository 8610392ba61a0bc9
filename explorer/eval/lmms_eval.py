"""The explorer's engine as an lmms-eval model, and a launcher for lmms-eval's own command line.

    python -m explorer.eval.lmms_eval --model pruning_explorer \
        --model_args pretrained=llava-hf/llava-1.5-7b-hf,method=clse,keep=64 \
        --tasks pope --output_path runs/ --log_samples
    accelerate launch --num_processes 8 -m explorer.eval.lmms_eval ...   # one process per GPU, documents sharded
    torchrun --nproc_per_node 2 -m explorer.eval.lmms_eval ...            # the same, also on CPUs (gloo)

lmms-eval 0.7.3 finds models through `lmms_eval.models.MODEL_REGISTRY_V2`, filled from its own table, the Python
entry points of installed packages (group `lmms_eval.models`), or LMMS_EVAL_PLUGINS. Installed (`pip install -e .`),
the package's entry point (explorer/eval/plugin.py) makes `--model pruning_explorer` known to lmms-eval's own
command line (`python -m lmms_eval --model pruning_explorer ...`); in a checkout that is not installed (the
Space) the launcher registers the same manifest itself. The launcher also adds `--include_path
explorer/eval/tasks` (the offline tasks `shapes` and `shapes_motion`) and, when `--output_path` is given,
`records_dir=<output_path>` to the model args. Everything else is lmms-eval's own command line, unchanged.

model_args (lmms-eval's `key=value,key=value`): the run settings in explorer.analysis.runs.RUN_DEFAULTS (pretrained:
hub id or directory, default the embedded `shapes-llava`; method: one METHODS name, `none` for the unpruned
model; every setting whose spec says `run`, as docs/settings.md lists them; dtype; max_new_tokens: overrides the
task's) and device (cpu, cuda, cuda:N, auto), device_map (e.g. `auto`: one process spanning every visible GPU),
records_dir.

Every answer is the engine's: compare.encode_input -> engine.run(method), the same calls that compare.compare
makes for the page (which adds the unpruned reference and the diagnostics around them). With lmms-eval's
`--batch_size N` (N > 1) the requests are answered N at a time by explorer.core.batch.run_batch: each encoded
alone, then decoded as one left-padded batch, every document with its own kept set; the answers are those of
batch size 1 (tests/test_lmms_eval.py), and each record notes the batch (or, for a model whose decoder cannot
batch, that it ran alone and why).

Per-sample records: lmms-eval 0.7.3's sample log (`--log_samples`, `*_samples_<task>.jsonl`) has a fixed set
of fields (doc_id, target, filtered_resps, token_counts, doc_hash, the task's metrics, input; the document
itself is dropped when saved); a model cannot attach data to it (token_counts holds three integers). So each
process writes its own JSONL, `<records_dir>/records/<run tag>_rank<R>.jsonl`, one line per request, keyed by
task, split and doc_id (doc_id is the sample log's key): the record of what the page shows (kept indices per
stage with the stage scores, grid, token counts per layer, budget with the real average kept, timings, notes),
the response, and the document's ground truth where it has some (target_tokens). The run tag
(explorer.analysis.runs.run_tag) is computed from the model args, so explorer.eval.report finds the records of each
`*_results.json`. A request answered from lmms-eval's response cache (`--use_cache`) never reaches the model
and has no record.
"""

import json
import os
import sys
from dataclasses import replace

import torch
from accelerate import Accelerator
from loguru import logger
from lmms_eval.api.model import lmms
from lmms_eval.models import MODEL_REGISTRY_V2
from tqdm import tqdm

import models
from explorer.core.engine import encode_input
from explorer.core.devices import device_of
from explorer.core.engine import run
from explorer.core.batch import run_batch
from explorer.core.stage import method_plan
from explorer.core.settings import MAX_NEW_TOKENS, check_settings
from explorer.eval import plugin
from explorer.analysis.runs import GROUND_TRUTH_FIELDS, MODEL_NAME, RUN_DEFAULTS, RUN_SETTINGS, record_line, run_tag
from explorer.media import read as media
from models.base import BadInput

TASKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def media_of(visuals, frames):
    """lmms-eval's visuals of one document -> (images, kind): PIL images or image paths are images; one video
    path (lmms-eval's convention for video tasks) is sampled into `frames` frames."""
    visuals = [v for v in (visuals or []) if v is not None]
    if not visuals:
        raise BadInput("the document has no image or video (text-only documents are not supported)")
    videos = [v for v in visuals if isinstance(v, str) and v.lower().endswith(VIDEO_SUFFIXES)]
    if videos:
        if len(visuals) != 1:
            raise BadInput(f"one video per document is supported, got {len(visuals)} visuals")
        # the page's sampling without its upload limits: benchmark videos (Video-MME) are often longer than 10
        # minutes and larger than 50 MB
        return media.sample_video_frames(videos[0], frames, bounded=False), "video"
    return [media.load_image(v) for v in visuals], "image"


def cut_at_stop(text, until):
    """The answer up to the first of lmms-eval's stop strings (greedy decoding would have stopped there)."""
    for stop in [until] if isinstance(until, str) else until or []:
        if stop and stop in text:
            text = text[:text.index(stop)]
    return text


class PruningExplorer(lmms):
    """An lmms-eval model whose every answer comes from the explorer's engine with one method's pruning."""

    is_simple = True

    def __init__(self, device=None, device_map=None, records_dir=None, batch_size=1, max_batch_size=None,
                 **run_args):
        super().__init__()
        skip_filelock_patch()  # simple_evaluate makes the model first, then patches: lmms-eval's own command line
        unknown = sorted(set(run_args) - set(RUN_DEFAULTS))
        if unknown:
            raise ValueError(f"{MODEL_NAME} does not know the model_args {', '.join(unknown)}; it knows "
                             f"{', '.join([*RUN_DEFAULTS, 'device', 'device_map', 'records_dir'])}")
        self._batch_size = int(batch_size) if str(batch_size).isdigit() and int(batch_size) > 0 else 1
        if str(batch_size) != str(self._batch_size):
            logger.warning(f"{MODEL_NAME}: batch_size={batch_size} is not a whole number of requests; "
                           "answering one request at a time")
        self.args = {**RUN_DEFAULTS, **run_args}
        args = self.args
        self.settings = check_settings(methods=[args["method"]], max_new_tokens=args["max_new_tokens"] or 20,
                                       **{name: args[name] for name in RUN_SETTINGS})
        self.method = self.settings.methods[0]
        # lmms-eval shards the documents by rank itself (task.build_all_requests(rank, world_size)) and gathers
        # the results (lm.accelerator under `accelerate launch`, torch.distributed under torchrun); a model
        # only has to sit on its own device. Rank and world size come from the launcher's environment, as the
        # evaluator reads them (it also sets them on the model after construction).
        self.accelerator = Accelerator()
        self._rank = int(os.environ.get("RANK", 0))
        self._world_size = int(os.environ.get("WORLD_SIZE", 1))
        if self._world_size > 1 and not device_map and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"  # one process per GPU
        self.model, self.processor, self.family = models.load(args["pretrained"], device=device,
                                                              dtype=args["dtype"], device_map=device_map or None)
        self._device = device_of(self.family.text_model(self.model))
        self.tag = run_tag(args)
        self.records_dir = records_dir
        self.records_path = None  # opened at the first request, when the evaluator has set the rank
        logger.info(f"{MODEL_NAME}: {args['pretrained']} on {self._device}, method {self.method}, "
                    f"rank {self._rank} of {self._world_size}")

    @property
    def device(self):
        return self._device

    @property
    def batch_size(self):
        return self._batch_size

    def request_settings(self, gen_kwargs):
        """The run's settings with this task's max_new_tokens (unless model_args fixed it), within the
        engine's limit. Sampling settings are ignored: the engine decodes greedily."""
        if self.args["max_new_tokens"]:
            return self.settings
        wanted = int(gen_kwargs.get("max_new_tokens") or self.settings.max_new_tokens)
        return replace(self.settings, max_new_tokens=max(1, min(wanted, MAX_NEW_TOKENS)))

    def answer(self, images, kind, question, settings):
        """One request through the engine, exactly as compare.compare runs `self.method` for the page."""
        question = question.strip()
        encoded = encode_input(self.model, self.processor, self.family, images, question, kind, settings.prompt)
        return run(self.model, self.processor, encoded, self.method, settings, question=question)

    def request_line(self, request):
        """(the record line's fields known before the run, the document) of one generate_until request."""
        context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
        line = {"task": task, "split": split, "doc_id": doc_id, "rank": self._rank, "run": self.tag,
                "model": self.args["pretrained"], "method": self.method, "question": context}
        doc = self.task_dict[task][split][doc_id]
        # lmms-eval's sample log keeps no document fields; the ground truth the report uses travels here
        line.update({key: doc[key] for key in GROUND_TRUTH_FIELDS if key in doc})
        return line, doc

    def respond_batch(self, requests):
        """[(text, record line)] of several generate_until requests answered as one batch of the engine
        (explorer/core/batch.py: the answers of a batch of one, each request with its own settings; a model that
        cannot batch answers them one by one, its records saying so). A document the engine refuses gets an
        empty answer and a record that says why, as in respond."""
        out, ready = [None] * len(requests), []
        num_layers = len(self.family.text_model(self.model).layers)
        for n, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual = request.args[:3]
            line, doc = self.request_line(request)
            try:
                images, kind = media_of(doc_to_visual(doc), self.settings.frames)
                settings = self.request_settings(gen_kwargs)
                encoded = encode_input(self.model, self.processor, self.family, images, context.strip(), kind,
                                       settings.prompt)
                method_plan(encoded, settings, num_layers, self.method)  # a refusal is this document's alone
            except (BadInput, media.MediaError) as error:
                logger.warning(f"{MODEL_NAME}: {line['task']} document {line['doc_id']}: {error}")
                out[n] = ("", {**line, "response": "", "error": str(error)})
                continue
            ready.append((n, line, kind, encoded, settings, context.strip(), gen_kwargs))
        if ready:
            records = run_batch(self.model, self.processor, [r[3] for r in ready], self.method,
                                [r[4] for r in ready], questions=[r[5] for r in ready])
            for (n, line, kind, *_, gen_kwargs), record in zip(ready, records):
                text = cut_at_stop(record.answer, gen_kwargs.get("until"))
                out[n] = (text, {**record_line(record.to_json()), **line, "response": text, "kind": kind})
        return out

    def respond(self, request):
        """(text, record line) for one generate_until request; a document the engine refuses (BadInput,
        MediaError: one sentence) gets an empty answer and a record that says why, so that one odd image
        does not end a benchmark of thousands."""
        context, gen_kwargs, doc_to_visual = request.args[:3]
        line, doc = self.request_line(request)
        try:
            images, kind = media_of(doc_to_visual(doc), self.settings.frames)
            record = self.answer(images, kind, context, self.request_settings(gen_kwargs))
        except (BadInput, media.MediaError) as error:
            logger.warning(f"{MODEL_NAME}: {line['task']} document {line['doc_id']}: {error}")
            return "", {**line, "response": "", "error": str(error)}
        text = cut_at_stop(record.answer, gen_kwargs.get("until"))
        return text, {**record_line(record.to_json()), **line, "response": text, "kind": kind}

    def open_records(self):
        """This process's records file, emptied at a run's first request (a rerun replaces its records)."""
        if not self.records_dir:
            return None
        if self.records_path is None:
            os.makedirs(os.path.join(self.records_dir, "records"), exist_ok=True)
            self.records_path = os.path.join(self.records_dir, "records", f"{self.tag}_rank{self._rank}.jsonl")
            open(self.records_path, "w").close()
        return open(self.records_path, "a")

    def generate_until(self, requests):
        answers = []
        records = self.open_records()
        try:
            size = self._batch_size
            progress = tqdm(total=len(requests), disable=self._rank != 0, desc=f"{MODEL_NAME} ({self.method})")
            for start in range(0, len(requests), size):
                chunk = requests[start:start + size]
                responses = [self.respond(chunk[0])] if size == 1 else self.respond_batch(chunk)
                for request, (text, line) in zip(chunk, responses):
                    answers.append(text)
                    if records:
                        records.write(json.dumps(line) + "\n")
                        records.flush()
                    self.cache_hook.add_partial("generate_until", (request.args[0], request.args[1]), text)
                progress.update(len(chunk))
            progress.close()
        finally:
            if records:
                records.close()
        return answers

    def loglikelihood(self, requests):
        raise NotImplementedError(f"{MODEL_NAME} generates answers (generate_until) only: the engine's pruned "
                                  "decoder has no log-likelihood scoring; choose a generation task")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(f"{MODEL_NAME} answers single-round questions only (generate_until)")


def register():
    """Make `--model pruning_explorer` resolvable by lmms-eval's model registry in this process: what the plug-in
    entry point does when the package is installed, for a checkout that is not (the Space)."""
    MODEL_REGISTRY_V2.register_manifest(plugin.manifest(), overwrite=True)


def flag_at(argv, flag):
    """Index of a flag's value in argv (`--flag value` or `--flag=value`: then the index of that item)."""
    for i, item in enumerate(argv):
        if item == flag and i + 1 < len(argv):
            return i + 1
        if item.startswith(flag + "="):
            return i
    return None


def flag_value(argv, at, flag):
    return argv[at].removeprefix(flag + "=") if argv[at].startswith(flag + "=") else argv[at]


def launcher_args(argv):
    """lmms-eval's arguments with our task folder included and, when --output_path is given, records_dir
    added to --model_args (with --config, put records_dir in each entry's model_args)."""
    argv = list(argv)
    if flag_at(argv, "--include_path") is None and (flag_at(argv, "--tasks") or flag_at(argv, "--config")):
        argv += ["--include_path", TASKS_DIR]
    output_at, args_at = flag_at(argv, "--output_path"), flag_at(argv, "--model_args")
    if output_at is None:
        return argv
    records = f"records_dir={os.path.abspath(flag_value(argv, output_at, '--output_path'))}"
    if args_at is None:
        return argv + ["--model_args", records]
    model_args = flag_value(argv, args_at, "--model_args")
    if "records_dir=" not in model_args:
        joined = ",".join(part for part in (model_args, records) if part)
        argv[args_at] = f"--model_args={joined}" if argv[args_at].startswith("--model_args=") else joined
    return argv


def skip_filelock_patch():
    """lmms-eval 0.7.3's simple_evaluate first patches filelock (`_enable_reentrant_filelocks`, against a
    deadlock of nested load_dataset calls under filelock 3.16+) through `filelock._api`, a module that
    filelock 4 no longer has, so every evaluation fails with "No module named 'filelock._api'". The patch
    marks itself done with an attribute; setting it skips the patch (filelock 4 replaced the registry the
    patch works around). The launcher skips it before lmms-eval starts, and the model when it is made (before
    simple_evaluate patches), so `python -m lmms_eval --model pruning_explorer` of an installed package runs too."""
    import filelock  # noqa: PLC0415
    from lmms_eval import evaluator  # noqa: PLC0415

    if not hasattr(filelock, "_api"):
        evaluator._enable_reentrant_filelocks._patched = True


def main(argv=None):
    from lmms_eval.cli.dispatch import main as lmms_eval_main  # noqa: PLC0415

    register()
    skip_filelock_patch()
    sys.argv = [sys.argv[0], *launcher_args(sys.argv[1:] if argv is None else argv)]
    lmms_eval_main()


if __name__ == "__main__":
    main()

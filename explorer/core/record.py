"""Plain records of what a run did. Analysis, figures, the page, the command line and the tests read only these.

What a Record holds in memory: plain Python numbers and lists (scores, kept indices, counts, timings), no
tensor. Two attributes may ride on it without being serialised, and only when asked: `step_logits` (every
generated token's logits on the CPU, with run(..., keep_logits=True): the tests' oracles) and `capture` (the
unpruned run's visual hidden states entering every layer, with capture=True: explorer/core/diagnostics.py
reads it and compare drops it before returning). A record lives as long as its caller keeps it: the page
turns the records into its JSON payload and keeps neither."""

import dataclasses
import math
from dataclasses import dataclass, field

import torch


@dataclass
class Stage:
    layer: int  # pruning happens on the hidden states entering this decoder layer
    scorer: str  # the criterion used at this stage (later stages of CLSE use attention, as in the paper)
    keep_counts: list  # kept tokens per group after this stage
    scores: list  # one per visual token, original index order; NaN where already pruned before this stage
    keep_indices: list  # visual-token indices (0..N-1, original order) alive after this stage, sorted
    merged: dict = field(default_factory=dict)  # the merged tokens this stage made: {visual index of the slot
    # it takes: [the visual indices of the originals it stands for]} (official schedules of merging methods)


@dataclass
class Record:
    model: str
    method: str
    question: str
    answer: str
    answer_ids: list
    groups: list  # [{"kind", "grid": [t, h, w], "offset": first visual index, "count", "first_position", "unit",
    # "name"}]: "unit" (None, or the image whose grids share a budget) and "name" ("base", "tiles", "thumbnail"...)
    visual_tokens: int  # N, all groups together
    text_tokens: int
    num_layers: int
    prune_layer: int
    ref_layer: int
    schedule: str
    budget: dict  # {"requested", "keep_per_group", "nominal", "average_kept"}
    stages: list = field(default_factory=list)
    kept_indices: list = field(default_factory=list)  # visual indices alive for decoding (all of them if unpruned)
    merged: dict = field(default_factory=dict)  # {kept index (as a string): [originals]} of the kept merged tokens
    tokens_per_layer: list = field(default_factory=list)  # sequence length entering each decoder layer
    visual_per_layer: list = field(default_factory=list)
    kv_cache_bytes: int = 0  # measured from the cache tensors after decoding
    kv_cache_bytes_prefill: int = 0
    flops: dict = field(default_factory=dict)
    timings_ms: dict = field(default_factory=dict)
    spectra: list = None  # per group, unpruned run only: {"layers", "highpass", "radial", "highfreq_share"}
    reference_scores: dict = None  # unpruned run only: every method's first-stage scores, for comparisons
    notes: list = field(default_factory=list)
    schema: int = 2  # 2: clse is the published score, plus the fields below (docs/cli.md, "Result JSON")
    device: str = ""  # where the decoder ran, e.g. "cpu", "cuda:0" (the first layer's device)
    dtype: str = ""  # the decoder's dtype, e.g. "float32", "bfloat16"
    early_kv: str = ""  # "keep" | "prune": layers before a stage keep / drop pruned tokens in their KV cache
    invert: bool = False  # the falsification ablation: the lowest-ranked tokens were kept
    settings: dict = field(default_factory=dict)  # the request's Settings
    timings_spread_ms: dict = None  # {name: [min, max]} over the timed repeats (timings_ms holds the medians)
    repeats: int = 1
    peak_memory_bytes: int = 0
    peak_memory_kind: str = ""  # how peak_memory_bytes was measured (device allocator or an estimate)
    turns: list = field(default_factory=list)  # the conversation: [{"question", "answer", "answer_ids",
    # "answer_margins", "kept_indices", "timings_ms", "kv_cache_bytes"}], the first the record's own
    # (explorer/core/conversation.py)
    answer_margins: list = field(default_factory=list)  # per answer token, its logit above the runner-up's
    # (engine.margins; 0: a tie): how close a call each token of the answer was

    def to_json(self):
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: pruned tokens' scores become null
    return value

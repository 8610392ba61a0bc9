"""The baselines the CLSE paper compares against, as pure tensor functions: DivPrune, DART, VisionZip's
dominant and contextual tokens, SparseVLM's recycling clusters (PyramidDrop's and SparseVLM's schedules are in
schedules.py, the attention rows they score by in attention.py). Each one is re-implemented from its paper's
definition and checked against the official code's choices (read, never copied); every docstring says where
our version follows that code and where it departs.

Conventions shared with explorer/methods/registry.py: a score has one value per visual token of one group
(higher = keep) and selection is shared: the k highest scores, ties to the earlier token. Methods that are an
order (a greedy selection) return scores (n - rank) / n, so the top k of the score is the first k of the order
and negating the score (the inverted ablation) is the reverse order. Scores are float64 on the CPU. Nothing
here names a model family or a token count; the caller passes the tensors a method looks at.
"""

import math

import torch

COSINE_EPS = 1e-8  # the floor on a vector's norm before dividing (torch.nn.functional.cosine_similarity's)


def order_scores(order):
    """Scores from an order of all n tokens: the first gets 1, the last 1/n; every score is distinct."""
    n = len(order)
    scores = torch.empty(n, dtype=torch.float64, device="cpu")
    scores[order] = (n - torch.arange(n, dtype=torch.float64, device="cpu")) / max(n, 1)
    return scores


def unit_rows(x):
    """Rows of [n, C] scaled to unit L2 norm, float64 on the CPU (cosine similarity is then a dot product)."""
    x = x.detach().to("cpu", torch.float64)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(COSINE_EPS)


def first_max(values):
    """Index of the largest value, the earliest of equals (torch.argmax does not promise which)."""
    return int((values == values.max()).nonzero()[0, 0])


# ------------------------------------------------------------------------------------------ DivPrune


def divprune_order(features):
    """DivPrune's greedy max-min diversity order of the visual tokens: [n] indices, first picked first.

    Paper: "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models", Alvar, Singh,
    Akbari, Zhang, CVPR 2025 (arXiv 2503.02175); official code github.com/vbdi/divprune.

    Distance is the cosine distance 1 - cos(x_i, x_j). The first token is the most isolated one (the largest
    distance to its nearest other token); each next token is the one farthest from the tokens already picked
    (the largest minimum distance to them). The greedy never looks ahead, so the first k of this order are
    exactly the set the official code keeps for budget k (its loop is this greedy, stopped at k); like the
    paper, this greedy approximates the max-min diversity problem, it does not solve it exactly.

    Follows the official code (llava_arch.py, `DivPrune`): the same distance, the same start (the second
    smallest entry of each column of the distance matrix, i.e. the nearest other token, then argmax) and the
    same step (min over the picked rows, then argmax). The official prunes the projected visual features as
    they enter the decoder (LAYER_INDEX=0, i.e. K = 0); the caller chooses the layer. Departs: computed in
    float64 (the official in the model's dtype, fp16), ties go to the earliest token, and tokens already
    picked are excluded explicitly (the official relies on their self-distance being 0, so with exact
    duplicates it can pick a token twice and keep fewer than k distinct tokens).
    """
    unit = unit_rows(features)
    n = unit.shape[0]
    distance = 1.0 - unit @ unit.T
    distance.fill_diagonal_(math.inf)
    nearest_other = distance.min(dim=0).values if n > 1 else torch.zeros(1, dtype=torch.float64)
    order = torch.empty(n, dtype=torch.long, device="cpu")
    order[0] = first_max(nearest_other)
    to_picked = distance[order[0]].clone()  # min distance of every token to the picked set
    to_picked[order[0]] = -math.inf  # picked tokens stay at -inf: the minimum below keeps them there
    for i in range(1, n):
        order[i] = first_max(to_picked)
        to_picked = torch.minimum(to_picked, distance[order[i]])
        to_picked[order[i]] = -math.inf
    return order


def divprune_scores(features):
    """DivPrune as a score ([n] float64): the greedy order of `divprune_order`, first picked highest. The top
    k is the official selection for budget k. Negated (inverted ablation): the reverse greedy order, the
    tokens most redundant with the ones picked before them first."""
    return order_scores(divprune_order(features))


# ------------------------------------------------------------------------------------------ DART


def top_indices(values, count):
    """Indices of the `count` largest values, largest first, ties to the earlier token."""
    return torch.sort(values, descending=True, stable=True).indices[:count]


def python_set_order(positions):
    """The order in which CPython iterates set(positions) (the positions inserted in the given order): the order
    DART's official code visits its pivots in (`for pivot in list(indices_set)`). Deterministic for given
    integers: small ints hash to themselves, so the order is by position modulo the set's table size, then
    insertion order among collisions (a property of CPython's sets, which this reproduces by using one)."""
    return list(set(positions))


def dart_order(hidden, key_norms, k, text_hidden=None, text_key_norms=None, image_pivots=4, text_pivots=4,
               positions=None, text_positions=None):
    """DART's selection for budget k, extended to an order of all n visual tokens: [n] indices.

    Paper: "Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More", Wen,
    Gao, Wang, Zhang, Zhang, Li, He, Zhang, EMNLP 2025 (arXiv 2502.11494); official code
    github.com/ZichenWen1/DART (read in the fork xqy1111111/DART: llava/model/language_model/
    modeling_llama_self.py and Qwen2-VL/Qwen2VL_DART/modeling_qwen2_vl_self.py, `get_retained_image_token`).

    Inputs: hidden [n, C] the visual tokens' hidden states entering the pruning layer K, passed through the
    decoder's FINAL norm (the official applies `self.norm`, the model's last RMSNorm, to layer K-1's output);
    key_norms [n] the L1 norms of the same tokens' keys at layer K-1 (`key_l1_norms`); text_hidden [m, C] and
    text_key_norms [m] the same for the text tokens after the image (the official's "query" tokens). Key norms come
    from explorer.methods.attention.key_l1_norms.

    Order: the `image_pivots` visual tokens with the largest key norm (the pivots, kept), then one block per
    pivot (image pivots by key norm, then the `text_pivots` text tokens with the largest key norm): the
    m = k // (image_pivots + text_pivots) visual tokens least cosine-similar to that pivot among those not yet
    taken; then every token left, least duplicated first (ascending max cosine similarity to any pivot).

    Follows the official code: K = 2 in its scripts, pivots by the L1 norm of layer K-1's rotated keys over
    all heads, 4 + 4 pivots, cosine similarity on the final-normed hidden states, per-pivot blocks of
    k // (number of pivots) taken greedily without repeats, text pivots never kept. With the tokens' sequence
    positions given (`positions`, `text_positions`: the official mode), the pivots are visited in the order the
    official code visits them, a Python set of their sequence positions (python_set_order); the official count
    4 + 8 (k // 8) is the planner's (schedules.dart_count), and for a stage count of that form this order's
    first k tokens are the official's selection. Without positions (the controlled mode) the pivots are visited
    in key-norm order (image pivots, then text pivots), which only changes which pivot takes a token two pivots
    both rank lowest, and any k is kept exactly (the last block cut short, or the first tokens of the tail
    added). Departs: float64, ties to the earliest token. The tail (beyond the official's selection) is ours:
    it makes the order total so the inverted ablation and the score map have a meaning.
    """
    unit = unit_rows(hidden)
    n = unit.shape[0]
    pivots = top_indices(key_norms.detach().to("cpu", torch.float64), min(image_pivots, n))
    pivot_vectors = [unit[p] for p in pivots]
    pivot_positions = [int(positions[p]) for p in pivots] if positions is not None else None
    if text_hidden is not None and len(text_hidden) and text_pivots > 0:
        text_unit = unit_rows(text_hidden)
        chosen = top_indices(text_key_norms.detach().to("cpu", torch.float64), min(text_pivots, len(text_unit)))
        pivot_vectors += [text_unit[t] for t in chosen]
        if pivot_positions is not None:
            pivot_positions += [int(text_positions[t]) for t in chosen]
    if not pivot_vectors:
        raise ValueError("DART needs at least one pivot (image_pivots or text pivots with text tokens)")
    if pivot_positions is not None:  # the official visiting order
        by_position = dict(zip(pivot_positions, pivot_vectors))
        pivot_vectors = [by_position[p] for p in python_set_order(pivot_positions)]
    taken = torch.zeros(n, dtype=torch.bool, device="cpu")
    taken[pivots] = True
    order = pivots.tolist()
    per_pivot = k // max(len(pivot_vectors), 1)
    for vector in pivot_vectors:
        similarity = unit @ vector
        candidates = torch.sort(similarity.masked_fill(taken, math.inf), stable=True).indices
        block = candidates[: min(per_pivot, int((~taken).sum()))]
        taken[block] = True
        order += block.tolist()
    max_similarity = torch.stack([unit @ v for v in pivot_vectors]).max(dim=0).values
    tail = torch.sort(max_similarity.masked_fill(taken, math.inf), stable=True).indices[: int((~taken).sum())]
    return torch.tensor(order + tail.tolist(), dtype=torch.long, device="cpu")


def dart_scores(hidden, key_norms, k, text_hidden=None, text_key_norms=None, image_pivots=4, text_pivots=4,
                positions=None, text_positions=None):
    """DART as a score ([n] float64) for budget k: the order of `dart_order`, first highest. The block size
    depends on k, so the engine must pass this stage's kept count. Negated: the reverse order, the tokens most
    duplicated with the pivots first and the pivots last."""
    return order_scores(dart_order(hidden, key_norms, k, text_hidden, text_key_norms, image_pivots, text_pivots,
                                   positions, text_positions))


# ------------------------------------------------------------------------------------------ VisionZip


def visionzip_scores(cls_attention_row, cls_index=0):
    """VisionZip's dominant-token score ([n_patches] float64): the [CLS] token's attention to each patch,
    with the CLS column removed, not renormalised.

    Paper: "VisionZip: Longer is Better but Not Necessary in Vision Language Models", Yang, Chen, Tian, Wang,
    Li, Yu, Jia, CVPR 2025 (arXiv 2412.04467); official code github.com/dvlab-research/VisionZip
    (visionzip/clip_encoder.py, utils.py).

    Follows the official code: the attention of the vision encoder layer whose output LLaVA takes as its
    features (vision_feature_layer = -2: `attentions[-2]`, the penultimate layer), the CLS row, the patches
    only, summed over heads in the official (our head mean ranks the same), top-k of it; pruning happens
    before the decoder (K = 0). Departs: we keep only the dominant tokens. The official also keeps the CLS
    token itself as a dominant token (`dominant=54` is CLS + 53 patches) and merges the remaining patches into
    `contextual` tokens (54 + 10 = 64 in its README example); we keep k patches and merge nothing, so a budget
    of k here is k dominant patches. Negated (inverted ablation): the patches the CLS token attends to least.
    """
    row = cls_attention_row.detach().to("cpu", torch.float64)
    return torch.cat([row[:cls_index], row[cls_index + 1 :]])


def visionzip_contextual(keys, remaining, count):
    """VisionZip's contextual tokens: (target, [assigned]) pairs over the patches left after the dominant ones.

    keys [n, d]: the head-averaged keys of the vision layer VisionZip reads (its "metric"), one per patch of
    the group; remaining: the indices of the non-dominant patches, ascending (the official keeps their order);
    count: how many contextual tokens. Targets are taken at a uniform stride over `remaining` (step
    len // count, the first `count` of 0, step, 2 step, ...), and every other remaining patch joins the target
    whose key is most cosine-similar to its own (ties to the earlier target). The caller merges each target
    with the mean of its assigned patches (the official: target + mean of assigned, in the tower's feature
    space, then projected)."""
    remaining = [int(r) for r in remaining]
    if count <= 0 or not remaining:
        return []
    step = max(1, len(remaining) // count)
    targets = remaining[::step][:count]
    others = [r for r in remaining if r not in set(targets)]
    groups = {t: [] for t in targets}
    if others:
        unit = unit_rows(keys)
        similarity = unit[others] @ unit[targets].T  # [others, targets]
        choice = [first_max(row) for row in similarity]
        for token, t in zip(others, choice):
            groups[targets[t]].append(token)
    return [(t, groups[t]) for t in targets]


def dpc_knn_clusters(x, clusters):
    """Density-peak clustering with k nearest neighbours (DPC-kNN, as SparseVLM's recycling uses it, after
    TCFormer): [(centre, [members])] of the n rows of x [n, C], `clusters` of them.

    Distances are Euclidean over sqrt(C); a row's density is exp(-mean squared distance to its `clusters`
    nearest rows, itself included); its delta is the distance to the nearest row of higher density (the
    largest distance of all for the densest); the centres are the rows with the largest delta x density, and
    every row joins its nearest centre (a centre its own). Departs: the official adds 1e-6 random noise to
    the density to break ties; we break them towards the earlier row (deterministic)."""
    x = x.detach().to("cpu", torch.float64)
    n = x.shape[0]
    clusters = max(1, min(clusters, n))
    distance = torch.cdist(x, x) / math.sqrt(x.shape[1])
    nearest = torch.sort(distance, dim=1).values[:, :clusters]
    density = torch.exp(-(nearest ** 2).mean(dim=1))
    order = torch.sort(density, descending=True, stable=True).indices  # densest first, earlier rows first
    rank = torch.empty(n, dtype=torch.long, device="cpu")
    rank[order] = torch.arange(n, device="cpu")
    higher = rank[None, :] < rank[:, None]  # [i, j]: j is denser than i (ties: the earlier row)
    delta = distance.masked_fill(~higher, math.inf).min(dim=1).values
    delta[order[0]] = distance.max()
    centres = top_indices(delta * density, clusters).tolist()
    assignment = [centres[first_max(-distance[i, centres])] for i in range(n)]
    for c in centres:
        assignment[c] = c
    return [(c, [i for i in range(n) if assignment[i] == c]) for c in centres]


# ------------------------------------------------------------------------------------------ downsample


def adaptive_blocks(size, out):
    """The [start, end) ranges of adaptive average pooling of `size` cells into `out` (torch's
    adaptive_avg_pool rule: start = floor(i size / out), end = ceil((i + 1) size / out)); where out does not
    divide size neighbouring blocks overlap by a cell."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def grid_of(h, w, count):
    """The (oh, ow) with oh x ow == count, oh <= h, ow <= w, whose aspect is nearest the frame's (ties: the
    taller); None where count has no such factorisation."""
    pairs = [(oh, count // oh) for oh in range(1, h + 1) if count % oh == 0 and count // oh <= w]
    if not pairs:
        return None
    return min(pairs, key=lambda p: (abs(math.log(p[0] / p[1]) - math.log(h / w)), -p[0]))


def pooled_grid(h, w, k):
    """The pooled grid (oh, ow) of an h x w frame for at most k tokens, the frame's aspect kept: oh is the floor
    or the ceiling of h sqrt(k / (h w)) (at most k), ow = k // oh (at most w), whichever holds more tokens, as the
    canonical factorisation of that count (grid_of). 24 x 24: 64 -> 8 x 8, 192 -> 14 x 13 = 182, 128 -> 11 x 11
    = 121; at least 1 x 1."""
    k = max(1, int(k))
    if k >= h * w:
        return h, w
    scale = math.sqrt(k / (h * w))
    best = 0
    for oh in {math.floor(h * scale), math.ceil(h * scale)}:
        oh = max(1, min(h, k, oh))
        best = max(best, oh * max(1, min(w, k // oh)))
    return grid_of(h, w, best)


def pooling_blocks(grid, pooled):
    """Per pooled token of a (t, h, w) grid pooled to (oh, ow) per frame, frames in turn and raster order within
    a frame: (centre, [members]) as indices into the grid's t h w tokens. The centre is the block's middle cell
    ((r0 + r1 - 1) // 2, (c0 + c1 - 1) // 2): the slot and position id the pooled token takes; distinct for
    distinct blocks (oh <= h, ow <= w)."""
    t, h, w = grid
    oh, ow = pooled
    rows, cols = adaptive_blocks(h, oh), adaptive_blocks(w, ow)
    out = []
    for f in range(t):
        for r0, r1 in rows:
            for c0, c1 in cols:
                members = [f * h * w + r * w + c for r in range(r0, r1) for c in range(c0, c1)]
                out.append((f * h * w + (r0 + r1 - 1) // 2 * w + (c0 + c1 - 1) // 2, members))
    return out


def downsample_order(grid, pooled):
    """[t h w] indices: the pooled blocks' centres first (frames in turn, raster order), then every other token,
    farthest from the nearest centre of its frame first (the gaps an extra token fills best; ties to the
    earlier token)."""
    t, h, w = grid
    centres = [c for c, _ in pooling_blocks(grid, pooled)]
    taken = set(centres)
    rest = [n for n in range(t * h * w) if n not in taken]
    by_frame = {}
    for c in centres:
        by_frame.setdefault(c // (h * w), []).append(divmod(c % (h * w), w))

    def gap(n):
        r, c = divmod(n % (h * w), w)
        return min((r - a) ** 2 + (c - b) ** 2 for a, b in by_frame[n // (h * w)])

    rest.sort(key=lambda n: (-gap(n), n))
    return torch.tensor(centres + rest, dtype=torch.long, device="cpu")


# ------------------------------------------------------------------------------------------ EVS


def evs_dissimilarity(z, grid):
    """vLLM's Efficient Video Sampling score (vllm/multimodal/evs.py, `compute_retention_mask`), computed as it
    computes it: the (t, h, w) grid's tokens z [t h w, C] (the video embeddings entering the decoder), every token
    of frame f >= 1 scored 1 - cosine similarity with the token at the same row and column of frame f - 1
    (torch.nn.functional.cosine_similarity over the channels, in z's own dtype), frame 0 scored 255 (kept
    whole). Returns [t h w] in z's dtype; vLLM keeps the top max(h w, int(t h w (1 - q))) by a stable descending
    sort (ties to the earlier token, as select_top)."""
    t, h, w = grid
    frames = z.reshape(t, h, w, z.shape[-1])
    dissimilarity = 1 - torch.nn.functional.cosine_similarity(frames[1:], frames[:-1], dim=-1)
    first = 255 * torch.ones_like(frames[:1, :, :, 0])
    return torch.cat([first, dissimilarity], dim=0).reshape(-1)


def evs_retained(tokens_per_frame, frames, q):
    """vLLM's count (`compute_retained_tokens_count`): max(tokens per frame, int(total x (1 - q)))."""
    return max(tokens_per_frame, int(tokens_per_frame * frames * (1 - q)))


def evs_rate(tokens_per_frame, frames, budget):
    """(q as vLLM's --video-pruning-rate takes it, the tokens vLLM keeps with it) for a budget: the shortest
    decimal q, rounded down from 1 - kept / total (never pruning more than the budget asks), with
    evs_retained(..., q) == max(tokens per frame, min(budget, total)): 300 of 4 x 256 -> "0.707"."""
    total = tokens_per_frame * frames
    wanted = max(tokens_per_frame, min(budget, total))
    exact = 1 - wanted / total
    for digits in range(1, 13):
        text = f"{math.floor(exact * 10 ** digits) / 10 ** digits:.{digits}f}".rstrip("0").rstrip(".") or "0"
        if evs_retained(tokens_per_frame, frames, float(text)) == wanted:
            return text, wanted
    text = repr(exact)
    return text, evs_retained(tokens_per_frame, frames, exact)


# ------------------------------------------------------------------------------------------ VisPruner

VISPRUNER_IMPORTANT = 0.5  # its loader's default --important_ratio (the README's MME example: 0.75)
VISPRUNER_ROUND = 8  # near-duplicates removed per round


def vispruner_order(cls_attention, features, k, important_ratio=VISPRUNER_IMPORTANT):
    """VisPruner's selection for budget k, extended to an order of all n patches: [n] indices.

    Paper: "Beyond Text-Visual Attention: Exploiting Visual Cues for Effective Token Pruning in VLMs", Zhang et
    al., ICCV 2025 (arXiv 2412.01818); official code github.com/Theia-4869/VisPruner (llava/model/llava_arch.py
    `encode_images`, multimodal_encoder/clip_encoder.py `feature_select`).

    Inputs: cls_attention [n] the vision tower's [CLS] attention to each patch at the feature layer (the
    official: `attentions[select_layer]`, select_layer -2 on LLaVA-1.5, row 0 over the patches, mean over
    heads), features [n, C] the same layer's patch features (`hidden_states[select_layer]`, before the
    projector), k the budget. int(k x important_ratio) important patches: the highest attention; the other
    k - that many are diverse ones, kept from the rest (in descending attention order) by rounds of
    near-duplicate removal: split the rest alternately into a (even places) and b (odd places), score each
    token of a by its largest cosine similarity to b, drop the r most similar of a (r = min(8, what is still
    too many)), and continue with the kept of a (in descending similarity, as the official reorders them) then
    b, until k are left.

    Order: the important patches (by attention), the diverse ones (in the final order), then the removed ones,
    the last removed first (most similar last within a round): the first k are the selection. Departs: float64
    and stable sorts (the official sorts in fp16 with torch's unstable argsort: ties may fall otherwise); a
    round drops at most as many as a holds (the official's indexing needs an even count of remaining patches
    and r no larger than half of them, which holds on LLaVA-1.5's 576 at its budgets; otherwise it fails or
    keeps fewer than k)."""
    n = len(cls_attention)
    k = max(0, min(int(k), n))
    important_count = int(k * important_ratio)
    diverse_count = k - important_count
    by_attention = torch.sort(cls_attention.detach().to("cpu", torch.float64), descending=True, stable=True).indices
    important, residual = by_attention[:important_count].tolist(), by_attention[important_count:].tolist()
    unit = unit_rows(features)
    removed_rounds = []
    while True:
        a, b = residual[0::2], residual[1::2]
        r = min(VISPRUNER_ROUND, len(residual) - diverse_count, len(a))
        if r <= 0 or not b:
            break
        similarity = (unit[a] @ unit[b].T).max(dim=1).values
        ranked = torch.sort(similarity, descending=True, stable=True).indices.tolist()
        removed_rounds.append([a[i] for i in ranked[:r]])
        residual = [a[i] for i in ranked[r:]] + b
    removed = [token for dropped in reversed(removed_rounds) for token in reversed(dropped)]
    return torch.tensor(important + residual + removed, dtype=torch.long, device="cpu")


def vispruner_scores(cls_attention, features, k, important_ratio=VISPRUNER_IMPORTANT):
    """VisPruner as a score ([n] float64) for budget k: the order of `vispruner_order`, first highest (the block
    of important and diverse tokens depends on k, so the engine passes this stage's kept count)."""
    return order_scores(vispruner_order(cls_attention, features, k, important_ratio))

"""Hand-checkable cases of the baselines' definitions (explorer/methods/baselines.py): DivPrune, DART, PyramidDrop and
VisionZip. The expected answers are worked out in the comments; the attention rows are checked against eager
attention of real transformers modules with random weights (eager only as the test's oracle)."""

import math

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding, apply_rotary_pos_emb

from explorer.methods.attention import cls_row as cls_attention
from explorer.methods.attention import key_l1_norms, row_entering
from explorer.methods.baselines import dart_order, dart_scores, divprune_order, divprune_scores, visionzip_scores
from explorer.methods.registry import select_top
from explorer.methods.schedules import average_kept, pyramid_lambda, pyramid_stages
from models.base import BadInput, LayerParts
from models.llava import feature_layer_index as visionzip_layer


def dart_keep(*args, **kwargs):
    """DART's kept visual tokens for budget k, sorted: the first k of its order."""
    order = dart_order(*args, **kwargs)
    return torch.sort(order[:kwargs["k"]]).values


def llama_parts(layer):
    attn = layer.self_attn
    return LayerParts(layer.input_layernorm, attn.q_proj, attn.k_proj, attn.head_dim, attn.scaling,
                      apply_rotary_pos_emb)


def on_arc(degrees):
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


# ------------------------------------------------------------------------------------------ DivPrune


def test_divprune_picks_the_extremes_of_an_arc_first():
    # Unit vectors at 0, 30, 40 and 90 degrees; cosine distance 1 - cos(angle between).
    # Nearest other token: 0 -> 30 (1 - cos 30 = 0.134), 30 <-> 40 (0.015), 90 -> 40 (1 - cos 50 = 0.357):
    # the most isolated is 90 (index 3). Farthest from it: 0 degrees (distance 1), index 0. Then the min
    # distance to {90, 0}: 30 -> min(0.5, 0.134) = 0.134, 40 -> min(0.357, 0.234) = 0.234: 40 (index 2),
    # then 30 (index 1).
    features = on_arc([0, 30, 40, 90])
    assert divprune_order(features).tolist() == [3, 0, 2, 1]
    # Cosine distance ignores length: scaling tokens changes nothing.
    scaled = features * torch.tensor([[5.0], [0.1], [2.0], [30.0]])
    assert divprune_order(scaled).tolist() == [3, 0, 2, 1]


def test_divprune_score_top_k_is_the_greedy_prefix_and_negation_reverses_it():
    features = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    order = divprune_order(features)
    scores = divprune_scores(features)
    for k in (1, 5, 17, 30):
        assert select_top(scores, k).tolist() == sorted(order[:k].tolist())
    assert torch.sort(-scores, descending=True, stable=True).indices.tolist() == order.flip(0).tolist()


def test_divprune_never_picks_a_token_twice_among_exact_duplicates():
    # Three copies of one vector and two of another: every distance to a picked copy is 0, yet each token
    # appears once. First pick: every token has a duplicate (nearest distance 0): the earliest, index 0.
    # Next: the farthest from it is the other vector (distance 1 - cos 90 = 1), index 3.
    features = on_arc([0, 0, 0, 90, 90])
    order = divprune_order(features).tolist()
    assert sorted(order) == [0, 1, 2, 3, 4]
    assert order[:2] == [0, 3]


# ------------------------------------------------------------------------------------------ DART

# Six visual tokens in 2-D, token 0 the pivot (largest key norm):
#   0 (1, 0) pivot | 1 (1, 0) duplicate, cos 1 | 2 (0.9, 0.1), cos 0.994 | 3 (0, 1), cos 0
#   4 (-1, 0), cos -1 | 5 (1, 0.05), cos 0.99875
HIDDEN = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.05]])
KEY_NORMS = torch.tensor([5.0, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_dart_keeps_the_pivot_and_the_tokens_least_duplicated_with_it():
    # One pivot, k = 3: block size 3 // 1 = 3, least similar first: 4 (-1), 3 (0), 2 (0.994); the tail by
    # max similarity to the pivot: 5 (0.99875), then the exact duplicate 1. Keep the first 3: 0, 4, 3.
    order = dart_order(HIDDEN, KEY_NORMS, k=3, image_pivots=1, text_pivots=0)
    assert order.tolist() == [0, 4, 3, 2, 5, 1]
    assert dart_keep(HIDDEN, KEY_NORMS, k=3, image_pivots=1, text_pivots=0).tolist() == [0, 3, 4]
    assert select_top(dart_scores(HIDDEN, KEY_NORMS, k=3, image_pivots=1, text_pivots=0), 3).tolist() == [0, 3, 4]


def test_dart_pivot_is_the_largest_key_norm_and_k1_block_then_tail():
    # Pivot 3 = (0, 1) now. k = 1: block size 1, and the first token kept is the pivot itself. The block
    # takes the least similar to (0, 1): cos 0 for tokens 0, 1 and 4 (a tie: the earliest, 0), and the tail
    # orders the rest by their max similarity to the pivot: 1 (0), 4 (0), 5 (0.0499), 2 (0.110).
    norms = torch.tensor([1.0, 1.0, 1.0, 9.0, 1.0, 1.0])
    assert dart_order(HIDDEN, norms, k=1, image_pivots=1, text_pivots=0).tolist() == [3, 0, 1, 4, 5, 2]
    assert dart_keep(HIDDEN, norms, k=1, image_pivots=1, text_pivots=0).tolist() == [3]


def test_dart_text_pivot_takes_its_own_block_and_is_never_kept():
    # Text tokens: (0, -1) with the larger key norm (the text pivot) and (1, 0). k = 4 with 1 + 1 pivots:
    # blocks of 4 // 2 = 2. Image pivot 0's block: 4 (-1), 3 (0). The text pivot (0, -1)'s block among
    # {1, 2, 5}: similarity -y / |v|: 1 -> 0, 2 -> -0.110, 5 -> -0.0499: least similar 2, then 5. Tail: 1.
    text = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    text_norms = torch.tensor([3.0, 1.0])
    order = dart_order(HIDDEN, KEY_NORMS, k=4, text_hidden=text, text_key_norms=text_norms, image_pivots=1,
                       text_pivots=1)
    assert order.tolist() == [0, 4, 3, 2, 5, 1]
    kept = dart_keep(HIDDEN, KEY_NORMS, k=4, text_hidden=text, text_key_norms=text_norms, image_pivots=1,
                     text_pivots=1)
    assert kept.tolist() == [0, 2, 3, 4]  # exactly k visual tokens; the official would keep 1 + 2 x 2 = 5


def test_key_l1_norms_sum_every_head_and_channel():
    keys = torch.zeros(1, 2, 3, 2)  # [1, kv_heads, n, head_dim]
    keys[0, 0, 1] = torch.tensor([1.0, -2.0])
    keys[0, 1, 1] = torch.tensor([-3.0, 0.5])
    keys[0, 1, 2] = torch.tensor([0.25, 0.0])
    assert key_l1_norms(keys).tolist() == [0.0, 6.5, 0.25]


# ------------------------------------------------------------------------------------------ PyramidDrop


def test_pyramiddrop_schedule_counts():
    # LLaVA-1.5's 32 layers, N = 576, lambda = 0.5: entering layers 8, 16, 24 keep 288, 144, 72; the average
    # over the 32 layers is (8 x 576 + 8 x 288 + 8 x 144 + 8 x 72) / 32 = 270.
    stages = pyramid_stages(32, 576, 0.5)
    assert stages == [(8, 288), (16, 144), (24, 72)]
    assert [count for _, count in stages] == [int(576 * f) for f in (0.5, 0.25, 0.125)]
    assert average_kept(stages, 32, 576) == 270
    # Other depths: equal parts (28 layers: 7, 14, 21); counts floored: 100 x 0.3^s = 30, 9, 2 (2.7 -> 2).
    assert pyramid_stages(28, 100, 0.3) == [(7, 30), (14, 9), (21, 2)]
    # A tiny lambda would floor to 0 tokens: every stage keeps at least one.
    assert pyramid_stages(32, 576, 0.001) == [(8, 1), (16, 1), (24, 1)]


def test_pyramiddrop_lambda_reaches_a_reachable_average_and_the_closest_otherwise():
    lam, average = pyramid_lambda(270, 32, 576)
    assert abs(lam - 0.5) < 1e-6 and average == 270
    assert average_kept(pyramid_stages(32, 576, lam), 32, 576) == 270
    # With the first stage at layer 8 of 32, every token is kept a quarter of the way: asked for 128, the
    # closest is the lowest lambda that keeps the pyramid (its last stage keeps int(576 lam^3) = 1 token):
    # lam = 576^(-1/3) = 0.1202 -> 69 / 8 / 1, averaging (8 x 576 + 8 x 69 + 8 x 8 + 8 x 1) / 32 = 163.5
    lam, average = pyramid_lambda(128, 32, 576)
    assert lam == pytest.approx(576 ** (-1 / 3), rel=1e-9) and int(576 * lam ** 3) == 1
    assert pyramid_stages(32, 576, lam) == [(8, 69), (16, 8), (24, 1)]
    assert average == 5232 / 32


def test_pyramiddrop_moves_its_stages_earlier_by_its_authors_rule():
    """PyramidDrop issue #29: where 8/16/24 cannot reach the budget, stages 2/8/16 (then 2/4/6/8) with lambda
    solved for the real average. LLaVA-1.5's shape (576 tokens, 32 layers), by hand:
    64: lambda 0.193 -> int(576 x 0.193) = 111, int(576 x 0.193^2) = 21, int(576 x 0.193^3) = 4; average
        (2 x 576 + 6 x 111 + 8 x 21 + 16 x 4) / 32 = 2050 / 32 = 64.06 (the author's "lambda = 0.19, 2, 8, 16");
    128: lambda 0.421 -> 242 / 102 / 42; (1152 + 6 x 242 + 8 x 102 + 16 x 42) / 32 = 4092 / 32 = 127.875."""
    from explorer.methods import schedules

    def layout(budget, num_layers=32, count=576):
        return schedules.Layout(num_layers, [count], [budget], budget, {}, {}, "image")

    stages, notes = schedules.pyramid(layout(64))
    assert stages == [(2, [111]), (8, [21]), (16, [4])]
    assert "lambda 0.193" in notes[0] and "64.06" in notes[0] and "issue #29" in notes[0]
    assert average_kept([(layer, c[0]) for layer, c in stages], 32, 576) == 2050 / 32
    stages, notes = schedules.pyramid(layout(128))
    assert stages == [(2, [242]), (8, [102]), (16, [42])] and "lambda 0.421" in notes[0]
    assert average_kept([(layer, c[0]) for layer, c in stages], 32, 576) == 4092 / 32
    # the default stages wherever they reach the budget (192: every token until layer 8 still leaves room)
    stages, notes = schedules.pyramid(layout(192))
    assert [layer for layer, _ in stages] == [8, 16, 24] and "issue #29" not in notes[0]
    # 48: below what 2/8/16 reaches with a pyramid -> 2/4/6/8
    stages, _ = schedules.pyramid(layout(48))
    assert [layer for layer, _ in stages] == [2, 4, 6, 8]
    assert abs(average_kept([(layer, c[0]) for layer, c in stages], 32, 576) - 48) <= 1
    # never lambda = 0: no stage set keeps its pyramid below 45.8 (2/4/6/8 at 576^(-1/4): 117/24/4/1) -> refused
    with pytest.raises(BadInput, match="PyramidDrop cannot average 40 visual tokens per layer .* at least 45.8"):
        schedules.pyramid(layout(40))
    # the embedded model's shape (256 tokens, 6 layers): 8/16/24 -> 2/3/5, 2/8/16 -> 1/2/3
    stages, notes = schedules.pyramid(layout(84, 6, 256))
    assert [layer for layer, _ in stages] == [1, 2, 3]
    counts = [c[0] for _, c in stages]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 3
    assert abs(average_kept([(layer, c[0]) for layer, c in stages], 6, 256) - 84) <= 1


def test_attention_row_entering_equals_eager_attention_of_that_layer():
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                         num_hidden_layers=1, vocab_size=10)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    layer = LlamaDecoderLayer(config, layer_idx=0).eval()
    rotary = LlamaRotaryEmbedding(config)
    hidden = torch.randn(1, 9, 32)
    positions = torch.tensor([[0, 1, 2, 5, 6, 9, 10, 11, 12]])  # gaps, as after pruning
    cos, sin = rotary(hidden, positions)
    with torch.no_grad():
        _, weights = layer.self_attn(layer.input_layernorm(hidden), position_embeddings=(cos, sin),
                                     attention_mask=None)  # the last row attends to every token anyway
        row = row_entering(llama_parts(layer), hidden, (cos, sin))
    assert torch.allclose(row, weights[0, :, -1].mean(dim=0), atol=1e-6)
    assert abs(float(row.sum()) - 1.0) < 1e-5


# ------------------------------------------------------------------------------------------ VisionZip


def tiny_clip(attn_implementation):
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=28, patch_size=7)  # 4 x 4 patches + CLS = 17 tokens
    return CLIPVisionModel._from_config(config, attn_implementation=attn_implementation).eval()


def test_cls_attention_equals_eager_attention_of_the_feature_layer():
    torch.manual_seed(0)
    tower = tiny_clip("sdpa")
    oracle = tiny_clip("eager")
    oracle.load_state_dict(tower.state_dict())
    index = visionzip_layer(-2, 3)  # LLaVA's feature layer -2 -> encoder layer 1 (official: attentions[-2])
    attn = tower.encoder.layers[index].self_attn
    captured = {}

    def grab(module, args, kwargs):
        captured["input"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    pixels = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        tower(pixel_values=pixels)  # SDPA: the tower never switches to eager
        eager = oracle(pixel_values=pixels, output_attentions=True).attentions[-2]  # [1, H, 17, 17]
        row = cls_attention(attn, captured["input"])
        # The definition by hand: softmax(q k^T * scale) of the CLS query, per head, then the head mean.
        x = captured["input"][0]
        q = attn.q_proj(x[0]).view(4, 8)
        k = attn.k_proj(x).view(17, 4, 8)
        naive = torch.stack([torch.softmax((k[:, h] @ q[h]) * 8**-0.5, dim=0) for h in range(4)]).mean(0)
    handle.remove()
    assert torch.allclose(row, eager[0, :, 0].mean(dim=0), atol=1e-6)
    assert torch.allclose(row, naive, atol=1e-6)
    scores = visionzip_scores(row)
    assert scores.shape == (16,) and scores.dtype == torch.float64
    assert torch.equal(scores, row[1:].double())


def test_visionzip_scores_drop_the_cls_column_and_keep_the_rest_unnormalised():
    row = torch.tensor([0.4, 0.1, 0.3, 0.2])  # CLS attends 0.4 to itself
    assert visionzip_scores(row).tolist() == pytest.approx([0.1, 0.3, 0.2])
    assert select_top(visionzip_scores(row), 1).tolist() == [1]  # patch 1 (sequence index 2) is dominant
    assert visionzip_scores(row, cls_index=3).tolist() == pytest.approx([0.4, 0.1, 0.3])


def test_visionzip_layer_is_the_layer_producing_the_features():
    assert visionzip_layer(-2, 24) == 22  # hidden_states[-2] of CLIP-L: the output of layer 22 (0-based)
    assert visionzip_layer(23, 24) == 22  # hidden_states[23] is the same tensor
    assert visionzip_layer(-1, 24) == 23
    for bad in (0, -25, 25, [-2, -5]):
        with pytest.raises(ValueError):
            visionzip_layer(bad, 24)


# ------------------------------------------------------------------------------------------ downsample


def test_downsample_blocks_and_pooled_grid_by_hand():
    from explorer.methods.baselines import adaptive_blocks, grid_of, pooled_grid, pooling_blocks

    # adaptive pooling's rule (torch's): start floor(i n / o), end ceil((i + 1) n / o); 5 -> 2 overlaps at cell 2
    assert adaptive_blocks(4, 2) == [(0, 2), (2, 4)]
    assert adaptive_blocks(5, 2) == [(0, 3), (2, 5)]
    assert adaptive_blocks(6, 4) == [(0, 2), (1, 3), (3, 5), (4, 6)]
    # the pooled grid keeps the aspect, at most the budget: 24 x 24 at 64 -> 8 x 8 (3 x 3 pools); at 192,
    # h sqrt(192 / 576) = 13.86: 13 x 14 or 14 x 13 = 182 (ties: the taller); at 128, 11.31: 11 x 11 = 121
    # (12 x 10 = 120 holds fewer)
    assert pooled_grid(24, 24, 64) == (8, 8) and pooled_grid(24, 24, 192) == (14, 13)
    assert pooled_grid(24, 24, 128) == (11, 11) and pooled_grid(24, 24, 1) == (1, 1)
    assert pooled_grid(24, 24, 576) == pooled_grid(24, 24, 1000) == (24, 24)
    # 12 x 30 at 100: 12 sqrt(100 / 360) = 6.32: 6 x 16 = 96 or 7 x 14 = 98 -> 7 x 14 (aspect 0.5 against 0.4)
    assert pooled_grid(12, 30, 100) == (7, 14) and grid_of(12, 30, 98) == (7, 14) and grid_of(12, 30, 97) is None
    # 4 x 4 to 2 x 2: blocks of 2 x 2, centres at their top-left middle cell (r0 + r1 - 1) // 2
    assert pooling_blocks((1, 4, 4), (2, 2)) == [(0, [0, 1, 4, 5]), (2, [2, 3, 6, 7]), (8, [8, 9, 12, 13]),
                                                 (10, [10, 11, 14, 15])]
    # two frames of 2 x 2 pooled to 1 x 1 each: frame by frame, at each frame's own cells
    assert pooling_blocks((2, 2, 2), (1, 1)) == [(0, [0, 1, 2, 3]), (4, [4, 5, 6, 7])]


def test_downsample_means_are_torchs_adaptive_average_pooling():
    """The oracle: the mean of each block's tokens is torch.nn.functional.adaptive_avg_pool2d of the frame (a
    grid whose sizes do not divide, so the blocks overlap), frame by frame."""
    from explorer.methods.baselines import pooling_blocks

    t, h, w, c = 2, 5, 7, 3
    z = torch.randn(t * h * w, c, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    blocks = pooling_blocks((t, h, w), (2, 3))
    means = torch.stack([z[members].mean(dim=0) for _, members in blocks])  # [t * 2 * 3, c]
    frames = z.reshape(t, h, w, c).permute(0, 3, 1, 2)  # [t, c, h, w]
    pooled = torch.nn.functional.adaptive_avg_pool2d(frames, (2, 3)).permute(0, 2, 3, 1).reshape(-1, c)
    assert torch.allclose(means, pooled, atol=1e-12)
    assert len({centre for centre, _ in blocks}) == len(blocks)  # one slot per pooled token


def test_downsample_order_puts_the_centres_first_then_the_gaps():
    from explorer.methods.baselines import downsample_order

    # 4 x 4 to 2 x 2: centres 0, 2, 8, 10 (cells (0,0), (0,2), (2,0), (2,2)); then the cells farthest from their
    # nearest centre: (1,1), (1,3), (3,1), (3,3) at squared distance 2, then the eight at distance 1, earlier first
    order = downsample_order((1, 4, 4), (2, 2)).tolist()
    assert order == [0, 2, 8, 10, 5, 7, 13, 15, 1, 3, 4, 6, 9, 11, 12, 14]


# ------------------------------------------------------------------------------------------ EVS


def vllm_retention_mask(video_embeds, t, h, w, q):
    """vLLM's compute_retention_mask (vllm/multimodal/evs.py, spatial merge already applied), written out step by
    step from its description: the test's independent oracle."""
    embeds = video_embeds.reshape(t, h, w, video_embeds.size(-1))
    similarity = torch.nn.functional.cosine_similarity(embeds[1:, ...], embeds[:-1, ...], dim=-1)
    dissimilarity = torch.cat([255 * torch.ones_like(embeds[:1, :, :, 0]), 1 - similarity], dim=0)
    order = torch.argsort(dissimilarity.view(-1), dim=-1, descending=True, stable=True)
    retained = max(h * w, int(t * h * w * (1 - q)))
    mask = torch.zeros(t * h * w, dtype=torch.bool)
    mask[order[:retained]] = True
    return mask


def test_evs_by_hand():
    from explorer.methods.baselines import evs_dissimilarity, evs_rate, evs_retained

    # three frames of 1 x 2: frame 1 repeats token 0 (cos 1 -> 0) and turns token 1 (cos 0 -> 1); frame 2
    # doubles token 0 (cos 1 -> 0) and reverses token 1 (cos -1 -> 2); frame 0 scores 255
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
    scores = evs_dissimilarity(z, (3, 1, 2))
    assert scores.tolist() == [255.0, 255.0, 0.0, 1.0, 0.0, 2.0]
    # q = 0.5 keeps int(6 x 0.5) = 3: frame 0 and the reversed token; q = 0.9 keeps int(0.6) = 0 -> a frame: 2
    assert evs_retained(2, 3, 0.5) == 3 and select_top(scores, 3).tolist() == [0, 1, 5]
    assert evs_retained(2, 3, 0.9) == 2 and select_top(scores, 2).tolist() == [0, 1]
    for q in (0.5, 0.9):
        assert vllm_retention_mask(z, 3, 1, 2, q).nonzero().flatten().tolist() == \
            select_top(scores, evs_retained(2, 3, q)).tolist()
    # the rate printed for a budget: 300 of 4 x 256 -> 0.707 (1024 x 0.293 = 300.03 -> 300); below a frame
    # (57) EVS still keeps frame 0: 256, at 0.75
    assert evs_rate(256, 4, 300) == ("0.707", 300) and evs_rate(256, 4, 57) == ("0.75", 256)
    assert evs_rate(256, 4, 1024) == ("0", 1024)


def test_evs_equals_vllms_selection_with_ties_in_bfloat16():
    """Random bfloat16 embeddings with repeated frames (many equal scores): our score ranked by the shared
    selection keeps exactly vLLM's retention mask at several rates."""
    from explorer.methods.baselines import evs_dissimilarity, evs_rate

    generator = torch.Generator().manual_seed(3)
    t, h, w = 5, 3, 4
    z = torch.randn(t, h * w, 8, generator=generator).to(torch.bfloat16)
    z[2] = z[1]  # a repeated frame: its scores tie at 0
    z[4, :6] = z[3, :6]
    z = z.reshape(t * h * w, 8)
    scores = evs_dissimilarity(z, (t, h, w))
    assert scores.dtype == torch.bfloat16
    ranked = scores.float().double()  # as the engine ranks every score
    for budget in (12, 20, 33, 47, 60):
        rate, kept = evs_rate(h * w, t, budget)
        ours = select_top(ranked, kept)
        assert ours.tolist() == vllm_retention_mask(z, t, h, w, float(rate)).nonzero().flatten().tolist()


# ------------------------------------------------------------------------------------------ VisPruner


def test_vispruner_by_hand():
    """10 patches, attention descending 0..9, k = 8: int(8 x 0.5) = 4 important (0, 1, 2, 3), 4 diverse from the
    6 others: a = 4, 6, 8 (even places), b = 5, 7, 9 (odd). Unit vectors by angle: b at 0, 90 and 180 degrees;
    4 at 10 (cos 10 = 0.985 to 5), 6 at 45 (0.707), 8 at 95 (cos 5 = 0.996 to 7). Two too many: drop the two
    of a most similar to b, 8 then 4; keep 6, then b. The removed follow, the last removed first: 4, 8."""
    from explorer.methods.baselines import vispruner_order

    angles = {4: 10, 5: 0, 6: 45, 7: 90, 8: 95, 9: 180}
    features = torch.tensor([[math.cos(math.radians(angles.get(i, 30 * i))),
                              math.sin(math.radians(angles.get(i, 30 * i)))] for i in range(10)])
    attention = torch.arange(10, 0, -1, dtype=torch.float32)
    order = vispruner_order(attention, features, 8).tolist()
    assert order == [0, 1, 2, 3, 6, 5, 7, 9, 4, 8]
    # the important ratio splits the budget: 0.75 of 8 -> 6 important (0..5), 2 diverse from 6, 7, 8, 9
    assert vispruner_order(attention, features, 8, important_ratio=0.75).tolist()[:6] == [0, 1, 2, 3, 4, 5]


def official_vispruner(attention, features, k, ratio):
    """VisPruner's encode_images selection (batch of one), step by step from its description: the test's
    independent oracle (valid where every round's residual count is even, as on LLaVA-1.5's 576 patches)."""
    important_count = int(k * ratio)
    diverse_count = k - important_count
    order = attention.argsort(descending=True)
    important, residual = order[:important_count], order[important_count:]
    normalized = features / features.norm(dim=-1, keepdim=True)
    while True:
        remaining = residual.shape[0]
        r = min(8, remaining - diverse_count)
        if r <= 0:
            break
        tokens = normalized[residual]
        a, b = tokens[::2], tokens[1::2]
        scores = (a @ b.T).max(dim=-1).values
        distinct = scores.argsort(descending=True)[r:]
        residual = torch.cat([residual[::2][distinct], residual[1::2]])
    return sorted(torch.cat([important, residual]).tolist())


def test_vispruner_keeps_the_official_selection_on_llava_15s_shape():
    from explorer.methods.baselines import vispruner_order

    generator = torch.Generator().manual_seed(5)
    attention = torch.rand(576, generator=generator, dtype=torch.float64).softmax(dim=0)
    features = torch.randn(576, 32, generator=generator, dtype=torch.float64)
    features[1::7] = features[0::7][:len(features[1::7])] + 0.01  # near-duplicates to find
    for k, ratio in ((64, 0.5), (128, 0.5), (192, 0.5), (64, 0.75)):
        ours = sorted(vispruner_order(attention, features, k, ratio)[:k].tolist())
        assert ours == official_vispruner(attention, features, k, ratio), (k, ratio)

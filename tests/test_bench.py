"""The benchmark's ratios (explorer/bench/pairs.py): pairs back to back, their order alternated, medians with
their spread, unsteady rows said so; and `python -m explorer.bench` on the quick shape."""

import re
from types import SimpleNamespace

import pytest

from explorer.bench import engine as bench
from explorer.bench import pairs


def test_pairs_run_back_to_back_in_alternating_order(monkeypatch):
    calls = []

    def fake_run(model, processor, encoded, method, settings):
        calls.append(method)
        return SimpleNamespace(method=method, settings=settings, timings_ms={"prefill": len(calls)})

    monkeypatch.setattr(pairs, "run", fake_run)
    variants = [("a", "fastv", "s1"), ("b", "clse", "s2")]
    result = pairs.run_pairs(None, None, None, variants, repeats=3)
    # repeat 0: a then b, unpruned first; repeat 1: rotated (b, a), pruned first; repeat 2: a, b, unpruned first
    assert calls == ["none", "fastv", "none", "clse",
                     "clse", "none", "fastv", "none",
                     "none", "fastv", "none", "clse"]
    a = result["a"]
    assert [r.method for r in a.unpruned] == ["none"] * 3 and [r.method for r in a.pruned] == ["fastv"] * 3
    assert all(r.settings == "s1" for r in a.pruned + a.unpruned)
    # each ratio is within one pair: the runs of a pair are adjacent calls
    assert a.ratios(lambda r: r.timings_ms["prefill"]) == [2 / 1, 7 / 8, 10 / 9]


def test_a_ratio_is_a_median_with_its_spread_or_said_unsteady():
    assert pairs.spread([0.5, 0.4, 0.45]) == (0.45, 0.4, 0.5)
    assert pairs.cell([0.44, 0.45, 0.46]) == "0.450 (0.440-0.460)"
    assert pairs.cell([0.45]) == "0.450"
    wide = pairs.cell([0.30, 0.45, 0.60])
    assert wide == "unsteady: 0.300-0.600, median 0.450" and not wide[0].isdigit()
    assert pairs.steady([0.9, 1.0, 1.1]) and not pairs.steady([0.9, 1.0, 1.11])
    assert pairs.cell([0.30, 0.45, 0.60], tolerance=0.5).startswith("0.450 (")


def test_cpu_clock_is_swapped_in_and_restored():
    from explorer.core import engine  # noqa: PLC0415

    wall = engine.clock
    with pairs.clock("cpu"):
        assert engine.clock is not wall and isinstance(engine.clock(None), float)
    assert engine.clock is wall
    with pytest.raises(ValueError):
        with pairs.clock("sundial"):
            pass


def test_the_engine_benchmark_prints_paired_ratios(capsys):
    assert bench.main(["--quick", "--repeats", "2", "--budgets", "24", "--methods", "fastv",
                       "--new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| fastv | 24 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].startswith("unsteady: ") or cells[2].count("(") == 1  # a median and its spread, or the spread
    assert float(cells[5]) < 1 and "each a pair (unpruned, pruned) back to back" in out
    assert "3 n d m (a gated MLP" in out


def test_the_batch_benchmark_prints_throughput_ratios_per_batch_size(capsys):
    """--batch: questions per second per batch size and method, as paired ratios to unpruned batch 1 (the form of
    the table only: no timed assertion)."""
    assert bench.main(["--quick", "--batch", "1,2", "--repeats", "2", "--budgets", "24", "--methods", "fastv",
                       "--new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "throughput ratio to unpruned batch 1 (min-max)" in out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.split("Where the time goes")[0].splitlines()
            if line.startswith(("| none |", "| fastv |"))]
    assert [row[:3] for row in rows] == [["none", "all", "1"], ["none", "all", "2"], ["fastv", "24", "1"],
                                         ["fastv", "24", "2"]]
    for row in rows:
        assert float(row[3]) > 0
        assert row[4].startswith("unsteady: ") or row[4].count("(") == 1  # a median and its spread, or the spread
    assert "batched on the engine's padded batch: True; none ran one by one" in out
    after = out.split("Where the time goes")[1]
    times = [[c.strip() for c in line.strip("|").split("|")] for line in after.splitlines()
             if line.startswith(("| none |", "| fastv |"))]
    assert [row[:3] for row in times] == [row[:3] for row in rows]
    for row in times:
        assert float(row[3]) > 0 and float(row[4]) > 0  # prefill and a decoding step per question, measured
        assert row[5] == "(batch 1)" if row[2] == "1" else re.fullmatch(r"\d+ new tokens?|no length", row[5])


def test_the_answer_length_a_batch_needs_follows_from_its_parts():
    """(P_1 + n d_1) / (P_B + n d_B) >= target: n by hand, and none where decoding gains too little."""
    from explorer.bench.batch import crossing

    assert crossing(7000, 180, 7000, 60, 1.5) == 39  # 1.5 * 7000 - 7000 = 3500 over 180 - 90 = 90 per token
    assert (7000 + 39 * 180) / (7000 + 39 * 60) >= 1.5 > (7000 + 38 * 180) / (7000 + 38 * 60)
    assert crossing(7000, 180, 7000, 130, 1.5) is None  # a step of 130 ms per question never gains 1.5x
    assert crossing(7000, 180, 4000, 100, 1.5) == 0  # the batch's prefill alone gains enough



def test_a_decoding_steps_parts_are_timed_in_pairs_per_question():
    """kernels.measure: each repeat times batch 1 and batch B back to back, the order alternated, and a pair's ratio
    is per question, t_B / (B t_1) (a clock advanced by hand: a part whose batch of 4 costs 2 units of time)."""
    from explorer.bench import kernels

    clock, ran = [0.0], []

    def factory(size):
        def run():
            ran.append(size)
            clock[0] += {1: 1.0, 4: 2.0}[size]
        return run, 100 * size

    results, read = kernels.measure({"part": factory}, [1, 4], repeats=3, now=lambda: clock[0])
    ones, many, ratios = results[("part", 4)]
    assert ones == [1.0] * 3 and many == [2.0] * 3 and ratios == [0.5] * 3  # 2 / (4 x 1): half the cost per question
    assert ran == [1, 4, 1, 4, 4, 1, 1, 4]  # the warm-up, then (1, 4), (4, 1), (1, 4)
    assert read == {("part", 1): 100, ("part", 4): 400}


def test_the_kernels_table_times_the_decoders_own_matrix_products_and_attention(capsys):
    """--kernels: every linear module of the decoder and the LM head (the weights a decoding step reads), and the
    attention of every layer, at batch 1 and the sizes asked, as per-question ratios beside what reading alone
    would give (the form of the table only: no timed assertion)."""
    from explorer.bench import kernels

    model, _ = bench.build(**next(iter(bench.QUICK_SHAPES.values())))
    modules = kernels.linears(model)
    decoder = sum(p.numel() for n, p in model.model.language_model.named_parameters() if "proj" in n)
    assert sum(m.weight.numel() for m in modules) == decoder + model.lm_head.weight.numel()
    assert bench.main(["--quick", "--kernels", "--batch", "2", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "one decoding step's parts alone by batch size, float32" in out
    assert "each a pair (batch 1, batch B) back to back" in out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith(("| matrix products", "| attention"))]
    assert [(row[0].split(" (")[0], row[1], row[7]) for row in rows] == [("matrix products", "2", "0.500"),
                                                                       ("attention", "2", "1.000")]
    assert f"({len(modules)} linear modules with the LM head)" in rows[0][0]
    for row in rows:
        assert all(float(cell) > 0 for cell in row[2:6])
        assert row[6].startswith("unsteady: ") or row[6].count("(") == 1
    with pytest.raises(SystemExit):
        bench.main(["--suite", "paper", "--kernels"])


# ------------------------------------------------------------------------------------------ the paper suite

def test_the_paper_suite_measures_batches_on_the_paper_shapes(capsys):
    """--suite paper --batch: the throughput table on the paper's model (here Qwen2-VL's truncated shape: M-RoPE
    positions, inputs of different lengths), batched on the engine's padded batch, never one by one."""
    assert bench.main(["--suite", "paper", "--layers", "2", "--repeats", "1", "--new-tokens", "2", "--models", "qwen",
                       "--batch", "1,2", "--methods", "clse"]) == 0
    out = capsys.readouterr().out
    assert "Qwen2-VL-7B, batched: 2 inputs of its own, the controlled setting (every method one stage at K = 1" in out
    table = out.split("### Qwen2-VL-7B: throughput by batch size, 2 new tokens per question, float32")[1]
    ratios = table.split("Where the time goes")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in ratios.splitlines()
            if line.startswith(("| none |", "| clse |"))]
    assert [row[:3] for row in rows] == [["none", "all", "1"], ["none", "all", "2"], ["clse", "192", "1"],
                                         ["clse", "192", "2"]]
    assert all(float(row[3]) > 0 for row in rows)
    assert "batched on the engine's padded batch: True; none ran one by one" in table


PAPER_PARAMETERS = {"LLaVA-1.5-7B": 7.063, "Video-LLaVA-7B": 7.366, "Qwen2-VL-7B": 8.291}  # billions


@pytest.mark.parametrize("name", list(PAPER_PARAMETERS))
def test_the_paper_shapes_are_the_papers_models(name):
    """Built on the meta device (no memory): the real classes at the published sizes (LLaVA-1.5-7B 7.06B,
    Qwen2-VL-7B 8.29B parameters) with inputs holding the right placeholder counts."""
    import torch  # noqa: PLC0415

    from explorer.bench import paper  # noqa: PLC0415

    builder, width, _ = paper.MODELS[name]
    model_class, config, family, kind, inputs = builder(paper.FULL_LAYERS[name], width, tiny=False)
    with torch.device("meta"):
        model = model_class._from_config(config, dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(PAPER_PARAMETERS[name], abs=1e-3)
    groups = family.visual_groups(model, inputs, kind=kind)
    assert [(g.kind, tuple(g.grid)) for g in groups] == {"LLaVA-1.5-7B": [("image", (1, 24, 24))],
                                                         "Video-LLaVA-7B": [("video", (8, 16, 16))],
                                                         "Qwen2-VL-7B": [("image", (1, 36, 36))]}[name]


def test_the_paper_suite_runs_truncated_on_the_cpu(capsys):
    """python -m explorer.bench --suite paper --layers 2: every model, CLSE and FastV at 192 / 128 / 64, the
    ratios, the claims beside ours and the peer rows, on 2-layer narrow decoders with tiny towers."""
    status = bench.main(["--suite", "paper", "--layers", "2", "--repeats", "1", "--new-tokens", "2"])
    out = capsys.readouterr().out
    assert status == 0
    for name, visual in (("LLaVA-1.5-7B", 576), ("Video-LLaVA-7B", 2048), ("Qwen2-VL-7B", 1296)):
        section = out.split(f"### {name}:")[1].split("###")[0]
        assert f"{visual} visual + " in section and "float32 on cpu" in section
        rows = [line for line in section.splitlines() if line.startswith(("| clse |", "| fastv |"))]
        assert len(rows) == 6
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert 0 < float(cells[3]) < visual  # the real average kept
            assert 0 < float(cells[7]) < 1 and 0 < float(cells[8]) < 1  # KV cache and FLOPs ratios
            assert 0 < float(cells[11].rstrip("%")) < 100  # the scoring's share of the pruned prefill
            if cells[0] == "fastv":
                assert "truncated: one stage at K = 1" in cells[2]
        peer = next(line for line in section.splitlines() if line.startswith("peer, "))
        assert float(peer.split("differ by at most ")[1].split()[0]) < 1e-5
    llava_section = out.split("### LLaVA-1.5-7B:")[1]
    # CLSE's keep table used literally, its first stage
    assert "| clse | 192 | K 1: 330 kept (the paper's keep table) |" in llava_section
    claims = out.split("Beside the paper's claims")[1]
    assert "| LLaVA-1.5-7B | 192 | prefill | 1.51x |" in claims and "| Video-LLaVA-7B | 192 | FLOPs | 9.35x |" in claims


def test_the_paper_suites_counts_are_the_full_shapes_arithmetic(capsys):
    """--counts: LLaVA-1.5-7B at its 32 layers (narrow, a tiny tower), untimed: CLSE's keep table at 1/11/21, its
    real average, and the KV cache and FLOPs ratios equal the arithmetic of the full shape's token counts by hand
    (every layer's cache as wide in both runs; FLOPs at d = 4096, m = 11008 with the gated MLP)."""
    assert bench.main(["--suite", "paper", "--counts", "--models", "LLaVA-1.5", "--budgets", "192",
                       "--new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "576 visual + 59 text tokens" in out
    row = next(line for line in out.splitlines() if line.startswith("| clse | 192 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "K 1/11/21: 330/210/62 kept (the paper's keep table)"
    visual = [576] + [330] * 10 + [210] * 10 + [62] * 11  # entering each of the 32 layers
    assert float(cells[3]) == pytest.approx(sum(visual) / 32, abs=0.05)
    cached = 59 + 1  # the prompt's text and the first new token (the last one is never fed back)
    # LLaVA's early-KV policy: every layer's cache ends with the last stage's 62 visual tokens
    assert float(cells[4]) == pytest.approx((62 + cached) / (576 + cached), abs=5e-4)
    d, m = 4096, 11008
    flops = lambda n: 4 * n * d * d + 2 * n * n * d + 3 * n * d * m  # noqa: E731
    assert float(cells[5]) == pytest.approx(sum(flops(v + 59) for v in visual) / (32 * flops(576 + 59)), abs=5e-4)
    claims = out.split("Beside the paper's claims")[1]
    assert "| LLaVA-1.5-7B | 192 | prefill | 1.51x | timed on a GPU only |" in claims
    assert f"| LLaVA-1.5-7B | 192 | KV cache | 5.59x | {(576 + cached) / (62 + cached):.2f}x |" in claims
    assert bench.main(["--suite", "paper", "--counts", "--layers", "2"]) == 2


def test_the_paper_suite_wants_a_gpu_for_its_7b_models(capsys):
    assert bench.main(["--suite", "paper", "--device", "cpu"]) == 2
    assert "need a GPU" in capsys.readouterr().err

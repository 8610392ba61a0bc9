"""The benchmark's ratios (explorer/bench/pairs.py): pairs back to back, their order alternated, medians with
their spread, unsteady rows said so; and `python -m explorer.bench` on the quick shape."""

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

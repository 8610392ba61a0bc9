import math

import pytest
import numpy as np
import torch

from explorer.methods.registry import METHODS, StageInputs, farthest_point_order, select_top
from explorer.methods.scoring import (clse_scores, evolution_intensity, highpass_magnitude, highpass_mask,
                              is_degenerate_grid, radial_power_spectrum)


def test_constant_map_has_no_highpass_energy():
    x = torch.full((8 * 8, 5), 3.0)
    assert highpass_magnitude(x, (1, 8, 8)).abs().max() < 1e-5


def test_single_bright_token_has_the_most_highpass_energy():
    x = torch.zeros(8 * 8, 4)
    x[27] = 10.0  # row 3, column 3
    s = highpass_magnitude(x, (1, 8, 8))
    assert int(s.argmax()) == 27
    assert s[27] > 2 * s[s.argsort()[-2]]


def test_highpass_mask_is_gaussian_around_the_centre():
    mask = highpass_mask(8, 8, cutoff=0.1)
    sigma = 0.1 * 4
    assert mask[4, 4] == 0.0
    assert math.isclose(float(mask[4, 5]), 1 - math.exp(-1 / (2 * sigma**2)), rel_tol=1e-6)
    assert float(mask[0, 0]) == pytest.approx(1.0)


def test_evolution_intensity_formula_by_hand():
    s_ref = torch.tensor([1.0, 2.0, 3.0])
    s_cur = torch.tensor([2.0, 2.0, 0.0])
    e = evolution_intensity(s_ref, s_cur)
    mean = 2.0
    expected = [1 / (mean + 1 + 1e-6), 0.0, min(1.0, 3 / (mean + 3 + 1e-6))]
    assert e.tolist() == pytest.approx(expected, rel=1e-6)
    # clamp to 1
    assert float(evolution_intensity(torch.tensor([0.0, 0.0]), torch.tensor([5.0, 0.0]))[0]) == 1.0


def test_clse_ranks_the_most_changed_token_first_and_matches_the_formula():
    torch.manual_seed(0)
    grid = (1, 6, 6)
    z_ref = torch.randn(36, 8)
    z_cur = z_ref.clone()
    z_cur[10] += 5.0  # one token changes a lot between the layers
    f = clse_scores(z_ref, z_cur, grid)
    assert int(f.argmax()) == 10
    e = evolution_intensity(highpass_magnitude(z_ref, grid), highpass_magnitude(z_cur, grid))
    z = (e - e.mean()) / (e.std(unbiased=True) + 1e-6)
    assert torch.allclose(f, torch.sigmoid(z.double() / 0.1), atol=1e-6)


def test_clse_order_survives_the_sigmoids_saturation():
    """Several tokens far above the mean: in float32 sigmoid(Z / 0.1) rounds all of them to 1.0 and the cut
    among them falls to raster order; the scores must rank them by Z, as the formula does."""
    torch.manual_seed(0)
    grid = (1, 8, 8)
    z_ref = torch.randn(64, 8)
    z_cur = z_ref.clone()
    for rank, token in enumerate([40, 50, 60, 30, 20]):
        z_cur[token] += 2.5 - 0.1 * rank
    e = evolution_intensity(highpass_magnitude(z_ref, grid), highpass_magnitude(z_cur, grid))
    z = (e - e.mean()) / (e.std(unbiased=True) + 1e-6)
    in_float32 = torch.sigmoid(z / 0.1)
    assert int((in_float32 == 1.0).sum()) > 3  # the saturation this guards against
    by_z = sorted(z.argsort(descending=True)[:3].tolist())
    assert select_top(in_float32, 3).tolist() != by_z  # float32 would fall back to the earlier tokens
    assert select_top(clse_scores(z_ref, z_cur, grid), 3).tolist() == by_z


def test_ties_go_to_the_earlier_token_and_selection_is_sorted():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.5, 0.9, 0.1])
    assert select_top(scores, 3).tolist() == [0, 1, 4]
    assert select_top(scores, 4).tolist() == [0, 1, 2, 4]
    with pytest.raises(ValueError):
        select_top(torch.tensor([0.1, float("nan")]), 1)


@pytest.mark.parametrize("grid", [(1, 1, 1), (1, 1, 7), (1, 7, 1), (2, 1, 3), (1, 2, 2)])
def test_no_nan_on_degenerate_grids(grid):
    n = grid[0] * grid[1] * grid[2]
    z_ref, z_cur = torch.randn(n, 4), torch.randn(n, 4)
    assert torch.isfinite(highpass_magnitude(z_ref, grid)).all()
    assert torch.isfinite(clse_scores(z_ref, z_cur, grid)).all()
    assert torch.isfinite(radial_power_spectrum(z_ref, grid)).all()
    assert is_degenerate_grid(grid) == (min(grid[1] // 2, grid[2] // 2) == 0)


def test_batched_equals_per_item():
    torch.manual_seed(1)
    zr, zc = torch.randn(3, 24, 5), torch.randn(3, 24, 5)
    batched = clse_scores(zr, zc, (1, 4, 6))
    assert batched.shape == (3, 24)
    for b in range(3):
        assert torch.allclose(batched[b], clse_scores(zr[b], zc[b], (1, 4, 6)), atol=1e-6)
    assert highpass_magnitude(zr, (1, 4, 6)).shape == (3, 24)


def test_video_frames_are_transformed_independently():
    torch.manual_seed(2)
    x = torch.randn(3 * 4 * 5, 6)
    together = highpass_magnitude(x, (3, 4, 5))
    apart = torch.cat([highpass_magnitude(x[f * 20:(f + 1) * 20], (1, 4, 5)) for f in range(3)])
    assert torch.allclose(together, apart, atol=1e-6)


def test_grid_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not form a grid"):
        highpass_magnitude(torch.randn(10, 3), (1, 3, 3))


def _inputs(grid, alive=None, seed=0):
    n = grid[0] * grid[1] * grid[2]
    alive = torch.arange(n) if alive is None else alive
    return StageInputs(stage=0, grid=grid, alive=alive, z_ref=torch.randn(len(alive), 4),
                       z_cur=torch.randn(len(alive), 4), attention=lambda: torch.rand(len(alive)), seed=seed)


def test_uniform_spreads_over_the_grid_and_frames():
    grid = (1, 8, 8)
    keep = select_top(METHODS["uniform"].score(_inputs(grid)), 4)
    rows, cols = keep // 8, keep % 8
    quadrants = {(int(r) >= 4, int(c) >= 4) for r, c in zip(rows, cols)}
    assert len(quadrants) == 4  # one token in each quadrant
    video = select_top(METHODS["uniform"].score(_inputs((4, 4, 4))), 8)
    assert torch.bincount(video // 16, minlength=4).tolist() == [2, 2, 2, 2]


def test_random_is_seeded():
    a = METHODS["random"].score(_inputs((1, 5, 5), seed=3))
    b = METHODS["random"].score(_inputs((1, 5, 5), seed=3))
    c = METHODS["random"].score(_inputs((1, 5, 5), seed=4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_farthest_point_order_is_a_permutation():
    coords = np.array([[0.0, 0], [0, 1], [5, 5], [2, 2]])
    order = farthest_point_order(coords)
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert order[0] == 3 and order[1] == 2  # nearest the centre first, then the farthest from it


def reference_highpass_magnitude(x, grid, cutoff=0.1):
    """method.md step 1, literally: complex FFT, fftshift, mask, ifftshift, inverse FFT, modulus, channel mean."""
    t, h, w = grid
    maps = x.float().reshape(t, h, w, -1).permute(0, 3, 1, 2)  # [t, C, h, w]
    sigma = cutoff * min(h // 2, w // 2)
    rows = torch.arange(h).float() - h // 2
    cols = torch.arange(w).float() - w // 2
    d2 = rows[:, None] ** 2 + cols[None, :] ** 2
    mask = 1 - torch.exp(-d2 / (2 * sigma**2)) if sigma > 0 else torch.ones(h, w)
    spectrum = torch.fft.fftshift(torch.fft.fft2(maps), dim=(-2, -1)) * mask
    out = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).abs().mean(1)
    return out.reshape(-1)


@pytest.mark.parametrize("grid", [(1, 24, 24), (1, 23, 25), (3, 6, 8), (1, 1, 5), (1, 2, 2), (2, 5, 1)])
def test_fast_highpass_equals_the_literal_formula(grid):
    torch.manual_seed(3)
    x = torch.randn(grid[0] * grid[1] * grid[2], 16) * 3
    assert torch.allclose(highpass_magnitude(x, grid), reference_highpass_magnitude(x, grid), atol=1e-5)

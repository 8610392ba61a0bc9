"""Token scores as pure tensor functions: the CLSE spectral criterion and the spectral diagnostics.

Shapes: x is [N, C] (or [B, N, C]) holding the hidden states of N visual tokens that form a grid (t, h, w)
in raster order, frame-major. Every function computes in float32 and returns float32.
"""

import torch

EPS = 1e-6


def _as_maps(x, grid):
    """[..., N, C] -> [..., t, C, h, w]: one C-channel spatial map per frame."""
    t, h, w = grid
    if x.shape[-2] != t * h * w:
        raise ValueError(f"{x.shape[-2]} tokens do not form a grid of {t} x {h} x {w}")
    maps = x.float().reshape(*x.shape[:-2], t, h, w, x.shape[-1])
    return maps.movedim(-1, -3)


def highpass_mask(h, w, cutoff=0.1):
    """Gaussian high-pass mask over a centred (fftshifted) h x w spectrum: 1 - exp(-D^2 / (2 sigma^2)).

    sigma = cutoff * min(h // 2, w // 2). On a degenerate grid (h // 2 == 0 or w // 2 == 0) sigma is 0 and
    the mask is undefined; we return an all-pass mask there (see `is_degenerate_grid`).
    """
    sigma = cutoff * min(h // 2, w // 2)
    if sigma <= 0:
        return torch.ones(h, w)
    rows = torch.arange(h, dtype=torch.float32) - h // 2
    cols = torch.arange(w, dtype=torch.float32) - w // 2
    dist2 = rows[:, None] ** 2 + cols[None, :] ** 2
    return 1.0 - torch.exp(-dist2 / (2 * sigma**2))


def is_degenerate_grid(grid, cutoff=0.1):
    _, h, w = grid
    return cutoff * min(h // 2, w // 2) <= 0


def highpass_magnitude(x, grid, cutoff=0.1):
    """Per-token high-pass magnitude s(z): [N, C] -> [N] (or [B, N, C] -> [B, N]).

    Each frame's [C, h, w] map is 2-D FFT'd, centred, multiplied by the Gaussian high-pass mask, inverted, and
    the complex modulus averaged over channels. Frames are transformed independently (time is not).

    Computed with real FFTs: the input is real and the mask is symmetric about the zero frequency, so the
    filtered map is real and its modulus is |irfft2(rfft2(z) * M)| (same values, a quarter of the time).
    """
    t, h, w = grid
    if x.shape[-2] != t * h * w:
        raise ValueError(f"{x.shape[-2]} tokens do not form a grid of {t} x {h} x {w}")
    maps = x.float().reshape(*x.shape[:-2], t, h, w, x.shape[-1])  # channels last: no transpose needed
    mask = torch.fft.ifftshift(highpass_mask(h, w, cutoff))[:, : w // 2 + 1].to(maps.device)
    filtered = torch.fft.irfft2(torch.fft.rfft2(maps, dim=(-3, -2)) * mask[..., None], s=(h, w), dim=(-3, -2))
    return filtered.abs().mean(dim=-1).reshape(*x.shape[:-2], t * h * w)


def evolution_intensity(s_ref, s_cur):
    """E_i = |s_cur,i - s_ref,i| / (mean_j s_ref,j + s_ref,i + eps), clamped to at most 1."""
    s_ref, s_cur = s_ref.float(), s_cur.float()
    denominator = s_ref.mean(dim=-1, keepdim=True) + s_ref + EPS
    return ((s_cur - s_ref).abs() / denominator).clamp(max=1.0)


def clse_scores(z_ref, z_cur, grid, cutoff=0.1, temp=0.1):
    """CLSE factor f = sigmoid(standardised evolution intensity / temp): [N, C] x2 -> [N] (or batched)."""
    energy = evolution_intensity(highpass_magnitude(z_ref, grid, cutoff), highpass_magnitude(z_cur, grid, cutoff))
    if energy.shape[-1] > 1:
        std = energy.std(dim=-1, keepdim=True)  # unbiased (n - 1), as in the paper
    else:
        std = torch.zeros_like(energy)  # one token: nothing to standardise against
    standardised = (energy - energy.mean(dim=-1, keepdim=True)) / (std + EPS)
    return torch.sigmoid(standardised / temp)


def radial_power_spectrum(x, grid):
    """Radially averaged spatial power spectrum of the token maps: [N, C] -> [n_bins].

    Power |F|^2 of each frame and channel (centred), averaged over channels and frames, then averaged over
    rings of integer radius from the centre bin; bin r holds frequencies with round(D) == r.
    """
    t, h, w = grid
    maps = _as_maps(x, grid)
    power = torch.fft.fftshift(torch.fft.fft2(maps, norm="ortho"), dim=(-2, -1)).abs() ** 2
    power = power.mean(dim=(-4, -3))  # over frames and channels -> [h, w]
    rows = torch.arange(h, dtype=torch.float32) - h // 2
    cols = torch.arange(w, dtype=torch.float32) - w // 2
    radius = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2).round().long().flatten()
    n_bins = int(radius.max()) + 1
    totals = torch.zeros(n_bins).index_add_(0, radius, power.flatten().cpu())
    counts = torch.zeros(n_bins).index_add_(0, radius, torch.ones_like(radius, dtype=torch.float32))
    return totals / counts


def highfreq_share(x, grid, cutoff=0.1):
    """Share of the spectral energy that the CLSE high-pass mask lets through (0..1)."""
    t, h, w = grid
    maps = _as_maps(x, grid)
    power = torch.fft.fftshift(torch.fft.fft2(maps), dim=(-2, -1)).abs() ** 2
    total = power.sum()
    passed = (power * highpass_mask(h, w, cutoff) ** 2).sum()
    return float(passed / total) if total > 0 else 0.0

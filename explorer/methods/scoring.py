"""Token scores as pure tensor functions: the CLSE spectral criterion and the spectral diagnostics.

Shapes: x is [N, C] (or [B, N, C]) holding the hidden states of N visual tokens that form a grid (t, h, w)
in raster order, frame-major. Every function computes in float32 and returns float32.
"""

import functools

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
        return torch.ones(h, w, device="cpu")
    rows = torch.arange(h, dtype=torch.float32, device="cpu") - h // 2
    cols = torch.arange(w, dtype=torch.float32, device="cpu") - w // 2
    dist2 = rows[:, None] ** 2 + cols[None, :] ** 2
    return 1.0 - torch.exp(-dist2 / (2 * sigma**2))


def is_degenerate_grid(grid, cutoff=0.1):
    _, h, w = grid
    return cutoff * min(h // 2, w // 2) <= 0


@functools.lru_cache(maxsize=64)
def gaussian_lowpass_matrix(n, sigma):
    """[n, n] real matrix of the 1-D filter F^-1 diag(g) F, g(u) = exp(-u^2 / (2 sigma^2)) over centred
    frequencies u = k - n // 2. g is symmetric, so the matrix is real. sigma <= 0 gives zeros (all-pass)."""
    if sigma <= 0:
        return torch.zeros(n, n, device="cpu")
    freq = torch.arange(n, dtype=torch.float64, device="cpu") - n // 2
    gain = torch.fft.ifftshift(torch.exp(-(freq**2) / (2 * sigma**2)))
    eye = torch.eye(n, dtype=torch.float64, device="cpu")
    return torch.fft.ifft(torch.fft.fft(eye, dim=0) * gain[:, None], dim=0).real.float()


def highpass_magnitude(x, grid, cutoff=0.1):
    """Per-token high-pass magnitude s(z): [N, C] -> [N] (or [B, N, C] -> [B, N]).

    Defined as: each frame's [C, h, w] map is 2-D FFT'd, centred, multiplied by the Gaussian high-pass mask
    M = 1 - exp(-D^2 / (2 sigma^2)), inverted, and the complex modulus averaged over channels; frames are
    transformed independently (time is not).

    Computed without FFTs: the Gaussian factorises, exp(-(u^2 + v^2) / 2s^2) = g(u) g(v), so the filter is
    z - G_h z G_w^T with two small real matrices, and the result is real (the same values to 1e-6, tested
    against the literal FFT formula), several times faster than FFTs on wide hidden states.
    """
    t, h, w = grid
    if x.shape[-2] != t * h * w:
        raise ValueError(f"{x.shape[-2]} tokens do not form a grid of {t} x {h} x {w}")
    sigma = cutoff * min(h // 2, w // 2)
    maps = x.float().reshape(*x.shape[:-2], t, h, w, x.shape[-1])  # channels last
    lowpass_h = gaussian_lowpass_matrix(h, sigma).to(maps.device)
    lowpass_w = gaussian_lowpass_matrix(w, sigma).to(maps.device)
    columns = maps.shape[-2] * maps.shape[-1]
    low = (lowpass_h @ maps.reshape(*maps.shape[:-3], h, columns)).reshape(maps.shape)  # along rows
    low = lowpass_w @ low  # along columns: [w, w] @ [..., h, w, C]
    high = low.sub_(maps).abs_()  # |maps - low|, in place: this is memory-bound work
    return high.mean(dim=-1).reshape(*x.shape[:-2], t * h * w)


def evolution_intensity(s_ref, s_cur):
    """E_i = |s_cur,i - s_ref,i| / (mean_j s_ref,j + s_ref,i + eps), clamped to at most 1 (over the last axis):
    torch tensors (the score, in float32) or NumPy arrays (the page's table of the unpruned run's spectra)."""
    if torch.is_tensor(s_ref):
        s_ref, s_cur = s_ref.float(), s_cur.float()
    denominator = s_ref.mean(-1)[..., None] + s_ref + EPS
    return (abs(s_cur - s_ref) / denominator).clip(max=1.0)


def clse_scores(z_ref, z_cur, grid, cutoff=0.1, temp=0.1):
    """CLSE factor f = sigmoid(standardised evolution intensity / temp): [N, C] x2 -> [N] (or batched), float64."""
    s_ref, s_cur = highpass_magnitude(torch.stack([z_ref, z_cur]), grid, cutoff).unbind(0)  # one batched pass
    energy = evolution_intensity(s_ref, s_cur)
    if energy.shape[-1] > 1:
        std = energy.std(dim=-1, keepdim=True)  # unbiased (n - 1), as in the paper
    else:
        std = torch.zeros_like(energy)  # one token: nothing to standardise against
    standardised = (energy - energy.mean(dim=-1, keepdim=True)) / (std + EPS)
    # float64: in float32, sigmoid(Z / 0.1) is exactly 1.0 for every Z above ~1.66, so the top few percent of
    # tokens would tie and the cut among them would fall back to raster order (earlier tokens); in float64 the
    # order of f is the order of Z up to Z ~3.7 standard deviations.
    return torch.sigmoid(standardised.cpu().double() / temp)  # on the CPU: MPS has no float64


def radial_power_spectrum(x, grid):
    """Radially averaged spatial power spectrum of the token maps: [N, C] -> [n_bins].

    Power |F|^2 of each frame and channel (centred), averaged over channels and frames, then averaged over
    rings of integer radius from the centre bin; bin r holds frequencies with round(D) == r.
    """
    t, h, w = grid
    maps = _as_maps(x, grid)
    power = torch.fft.fftshift(torch.fft.fft2(maps, norm="ortho"), dim=(-2, -1)).abs() ** 2
    power = power.mean(dim=(-4, -3)).cpu()  # over frames and channels -> [h, w]
    rows = torch.arange(h, dtype=torch.float32, device="cpu") - h // 2
    cols = torch.arange(w, dtype=torch.float32, device="cpu") - w // 2
    radius = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2).round().long().flatten()
    n_bins = int(radius.max()) + 1
    totals = torch.zeros(n_bins, device="cpu").index_add_(0, radius, power.flatten())
    counts = torch.zeros(n_bins, device="cpu").index_add_(0, radius, torch.ones_like(radius, dtype=torch.float32))
    return totals / counts


def highfreq_share(x, grid, cutoff=0.1):
    """Share of the spectral energy that the CLSE high-pass mask lets through (0..1)."""
    t, h, w = grid
    maps = _as_maps(x, grid)
    power = torch.fft.fftshift(torch.fft.fft2(maps), dim=(-2, -1)).abs() ** 2
    total = power.sum()
    passed = (power * highpass_mask(h, w, cutoff).to(power.device) ** 2).sum()
    return float(passed / total) if total > 0 else 0.0

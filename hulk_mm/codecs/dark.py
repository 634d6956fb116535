"""Batched DARK and DARK-UDP refinement of heatmap maxima, in torch on the heatmaps' device.

mmpose (``codecs/utils/refinement.py``) blurs every map with cv2 and then loops over the keypoints in numpy; that
costs about as much as a ViTPose-B forward. The Taylor step reads the log-blurred map only in a 5x5 (DARK) or
3x3 (DARK-UDP) neighbourhood of the argmax, so here only that window of the blurred map is computed per keypoint,
from the (k + 4)^2 (resp. (k + 2)^2) raw pixels around the peak (k: blur kernel size): one copy, two matrix
products, small gathers. No Python loop over instances or keypoints and no host synchronisation. At ViTPose's
sizes the whole decode is a few dozen small tensor ops, so their count is what sets its speed on CPU.

Equality with mmpose:

* The blur is mmpose's ``gaussian_blur``: cv2's Gaussian kernel for ``kernel_size`` (sigma from the size), the map
  inside a zero frame as wide as the kernel radius (so zero padding).
* mmpose rescales each blurred map to the raw map's maximum. That factor is an additive constant after the log and
  drops out of the derivatives; it matters only where the log's floor (DARK: 1e-10) or clip (DARK-UDP: [1e-3, 50])
  binds. The factor is taken from the maximum of the blurred values computed around the peak instead of the whole
  blurred map's (DARK: the 5x5 window; DARK-UDP: the 3 window columns over the k + 2 patch rows), which is the
  same number whenever the blurred map peaks within two pixels (DARK-UDP: one column) of the raw argmax (any
  single-peaked heatmap).
* Keypoints whose map maximum is <= 0 stay at mmpose's invalid location (-1, -1) unrefined. (mmpose's DARK does
  the same; its DARK-UDP turns them into NaN for an all-zero map and reads the neighbouring map's memory for a
  negative one.)

All coordinates here are heatmap pixels (x, y); the codecs scale them to the input image.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW = 5  # side of the blurred window: the DARK stencil reaches two pixels from the peak


def gaussian_kernel(kernel_size: int) -> np.ndarray:
    """cv2's 1-D Gaussian kernel as ``cv2.GaussianBlur(img, (k, k), 0)`` in mmpose's ``gaussian_blur`` uses it:
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8 (fixed tables up to k = 7), float32."""
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f'blur kernel size must be odd and positive, got {kernel_size}')
    return cv2.getGaussianKernel(kernel_size, 0).astype(np.float32).ravel()


@functools.lru_cache(maxsize=None)
def blur_matrix(kernel_size: int, width: int, device: torch.device) -> Tensor:
    """(width, width) matrix M with ``rows @ M`` the blur of rows of ``width`` pixels inside a zero frame (column j
    holds the kernel centred at j, cut at the borders). Cached per device (one host copy)."""
    kernel, radius = gaussian_kernel(kernel_size), kernel_size // 2
    offset = np.arange(width)[:, None] - np.arange(width)[None, :] + radius
    matrix = np.where((offset >= 0) & (offset < kernel_size), kernel[offset.clip(0, kernel_size - 1)], 0)
    return torch.from_numpy(matrix.astype(np.float32)).to(device)


def heatmap_argmax(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """mmpose's ``get_heatmap_maximum`` on a batch.

    Args:
        heatmaps: (B, K, H, W).

    Returns:
        locs (B, K, 2) int64 (x, y) of the first maximum, (-1, -1) where the maximum is <= 0; vals (B, K) maxima.
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.detach().reshape(b, k, h * w)
    if flat.device.type == 'cpu' and flat.dtype in (torch.float32, torch.float64):
        # torch's CPU max/argmax along a dimension is not vectorised: ~40x slower than numpy's on the same memory;
        # the few ops on the (B, K) result are cheaper in numpy too (microseconds each, not torch's ~10)
        array = flat.numpy()
        index = array.argmax(axis=-1)
        vals = np.take_along_axis(array, index[..., None], axis=-1)[..., 0]
        locs = np.stack([index % w, index // w], axis=-1)
        return torch.from_numpy(np.where((vals > 0)[..., None], locs, -1)), torch.from_numpy(vals)
    vals, index = flat.max(dim=-1)
    locs = torch.stack([index % w, index // w], dim=-1)
    return torch.where((vals > 0)[..., None], locs, -1), vals


@functools.lru_cache(maxsize=16)
def _map_starts(n: int, h: int, w: int, device: torch.device) -> Tensor:
    """(N,) flat index of each map's first pixel in (N, H, W) maps. Cached per shape (one arange per call saved)."""
    return torch.arange(n, device=device) * (h * w)


def _patch_rows(maps: Tensor, starts: Tensor, span: int) -> Tensor:
    """The ``span`` x ``span`` patches of contiguous (N, H, W) ``maps`` whose top-left pixels have the flat indices
    ``starts`` (N,), as (N * span, span) rows. One ``index_select`` of rows from a strided view of the pixels (a
    row at every pixel): about twice as fast as advanced indexing of a view of all patch positions."""
    w = maps.shape[-1]
    pixel_rows = maps.as_strided((maps.numel() - span + 1, span), (1, 1))
    rows = starts[:, None] + torch.arange(0, span * w, w, device=maps.device)
    return pixel_rows.index_select(0, rows.view(-1))


def _pad_to(maps: Tensor, span: int) -> Tensor:
    """Contiguous ``maps``, padded with zeros below and to the right to at least ``span`` x ``span`` pixels: what the
    blur sees beyond a small map anyway."""
    h, w = maps.shape[-2:]
    if h < span or w < span:
        maps = F.pad(maps, (0, max(0, span - w), 0, max(0, span - h)))
    return maps.contiguous()


def blurred_window(maps: Tensor, cx: Tensor, cy: Tensor, kernel_size: int, window: int = WINDOW) -> Tensor:
    """The ``window`` x ``window`` block (default WINDOW) centred at (cy, cx) of each map blurred as mmpose's
    ``gaussian_blur`` does (before its rescaling).

    Each window reads the k + 4 square patch of raw pixels around it (k: kernel size), shifted inside the map at
    the borders: pixels it would need beyond the patch are then beyond the map, where the blur sees zeros, and the
    patch-sized blur matrix has zeros there too. Patches are copied by :func:`_patch_rows`, blurred along rows and
    then columns by two matrix products.

    Args:
        maps: (N, H, W) float.
        cx, cy: (N,) int64 window centres, at least window // 2 pixels inside the map.
        kernel_size: odd Gaussian kernel size.
        window: odd window side.

    Returns:
        (N, window, window) blurred values.
    """
    span = window + kernel_size - 1
    maps = _pad_to(maps, span)
    n, h, w = maps.shape
    half = window // 2
    y0, x0 = (cy - span // 2).clamp(0, h - span), (cx - span // 2).clamp(0, w - span)  # patch corners
    patch = _patch_rows(maps, _map_starts(n, h, w, maps.device) + y0 * w + x0, span)
    blur = blur_matrix(kernel_size, span, maps.device)
    offsets = torch.arange(window, device=maps.device)
    rows = (patch @ blur).view(n, span, span)  # horizontal blur
    columns = rows.gather(2, (cx - half - x0)[:, None, None].add(offsets).expand(n, span, window))
    columns = (columns.transpose(1, 2).reshape(n * window, span) @ blur).view(n, window, span)  # vertical blur
    return columns.gather(2, (cy - half - y0)[:, None, None].add(offsets).expand(n, window, window)).transpose(1, 2)


@functools.lru_cache(maxsize=None)
def finite_differences(stencil: str, device: torch.device) -> Tensor:
    """(taps, 5) weights turning log-map taps into (dx, dy, dxx, dyy, dxy), exactly mmpose's differences.

    ``'dark'``: the 25 taps of the 5x5 window centred on the peak (row-major): central differences of step 1 for
    the gradient and the mixed term, of step 2 for dxx and dyy (``refine_keypoints_dark``). ``'dark_udp'``: the 9
    taps of the 3x3 neighbourhood, all of step 1, the mixed term from the 7-point formula of
    ``refine_keypoints_dark_udp``. Cached per device (one host copy).
    """
    if stencil == 'dark':
        w = np.zeros((5, 5, 5), np.float32)  # (row, column, derivative); the peak at (2, 2)
        w[2, 3, 0], w[2, 1, 0] = 0.5, -0.5
        w[3, 2, 1], w[1, 2, 1] = 0.5, -0.5
        w[2, 4, 2], w[2, 2, 2], w[2, 0, 2] = 0.25, -0.5, 0.25
        w[4, 2, 3], w[2, 2, 3], w[0, 2, 3] = 0.25, -0.5, 0.25
        w[3, 3, 4], w[1, 3, 4], w[3, 1, 4], w[1, 1, 4] = 0.25, -0.25, -0.25, 0.25
    elif stencil == 'dark_udp':
        w = np.zeros((3, 3, 5), np.float32)  # the peak at (1, 1)
        w[1, 2, 0], w[1, 0, 0] = 0.5, -0.5
        w[2, 1, 1], w[0, 1, 1] = 0.5, -0.5
        w[1, 2, 2], w[1, 1, 2], w[1, 0, 2] = 1, -2, 1
        w[2, 1, 3], w[1, 1, 3], w[0, 1, 3] = 1, -2, 1
        w[2, 2, 4], w[1, 2, 4], w[2, 1, 4], w[1, 1, 4], w[1, 0, 4], w[0, 1, 4], w[0, 0, 4] = (
            0.5, -0.5, -0.5, 1, -0.5, -0.5, 0.5)
    else:
        raise ValueError(f'unknown stencil {stencil!r}')
    return torch.from_numpy(w.reshape(-1, 5)).to(device)


def _log_window(maps: Tensor, locs: Tensor, vals: Tensor, kernel_size: int, low: float, high: float | None):
    """Log of the rescaled, clipped blurred WINDOW x WINDOW window around each peak. Returns (log window
    (N, WINDOW, WINDOW), x, y, window origin x0, y0), all per map (N = B * K)."""
    h, w = maps.shape[-2:]
    x, y = locs.reshape(-1, 2).unbind(-1)
    half = WINDOW // 2
    cx, cy = x.clamp(half, w - 1 - half), y.clamp(half, h - 1 - half)
    window = blurred_window(maps, cx, cy, kernel_size)
    # mmpose's per-map rescaling to the raw maximum (see the module docstring)
    window = window * (vals.reshape(-1) / window.amax(dim=(1, 2)))[:, None, None]
    return window.clamp(low, high).log(), x, y, cx - half, cy - half


def _newton_step(derivatives: Tensor, refine: Tensor) -> Tensor:
    """(N, 5) (dx, dy, dxx, dyy, dxy) -> (N, 2) offset -H^-1 g where ``refine`` and the Hessian is invertible, 0
    elsewhere."""
    dx, dy, dxx, dyy, dxy = derivatives.unbind(-1)
    det = dxx * dyy - dxy * dxy
    refine = refine & (det != 0)
    offset = torch.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], dim=-1) / torch.where(refine, det, 1.0)[:, None]
    return torch.where(refine[:, None], offset, 0.0)


@torch.no_grad()
def refine_dark(heatmaps: Tensor, locs: Tensor, vals: Tensor, kernel_size: int = 11) -> Tensor:
    """DARK (Zhang et al., CVPR 2020): one Newton step on the log of the blurred heatmap; mmpose's
    ``refine_keypoints_dark`` on a batch.

    Refines keypoints at least two pixels from every border (mmpose's ``1 < x < W - 2``, ``1 < y < H - 2``) whose
    2x2 Hessian is invertible, with central differences of step 1 (gradient, mixed term) and 2 (second
    derivatives along the axes); the others keep their argmax location.

    Args:
        heatmaps: (B, K, H, W).
        locs, vals: :func:`heatmap_argmax` output.
        kernel_size: Gaussian blur size (11 for sigma 2 targets, 17 for sigma 3).

    Returns:
        (B, K, 2) float32 refined (x, y) in heatmap pixels.
    """
    maps = heatmaps.detach().float().flatten(0, 1)
    h, w = maps.shape[-2:]
    log_window, x, y, _, _ = _log_window(maps, locs, vals, kernel_size, 1e-10, None)
    # every refined peak is at least two pixels inside the map, so it sits at the window's centre
    derivatives = log_window.flatten(1) @ finite_differences('dark', maps.device)
    refine = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    return (locs.reshape(-1, 2).float() + _newton_step(derivatives, refine)).view(locs.shape)


@functools.lru_cache(maxsize=None)
def _udp_newton_factors(device: torch.device) -> tuple[Tensor, Tensor]:
    """(9, 12) weights and (12,) bias turning the 9 log taps of :func:`refine_dark_udp` into two factor rows
    ``(dxy, dxy, dxx, -dyy, -dxx, -dxy)`` and ``(dy, dx, dyy, dx, dy, dxy)`` (mmpose's eps already on dxx and dyy):
    their product summed in pairs is the Newton step's numerators and the Hessian's determinant, so the step
    takes one matrix product and four elementwise ops. Cached per device (one host copy)."""
    select = np.zeros((5, 12), np.float32)  # (dx, dy, dxx, dyy, dxy) -> factors; entries +-1, so exact
    for column, (derivative, sign) in enumerate([(4, 1), (4, 1), (2, 1), (3, -1), (2, -1), (4, -1),
                                                 (1, 1), (0, 1), (3, 1), (0, 1), (1, 1), (4, 1)]):
        select[derivative, column] = sign
    eps = np.zeros(5, np.float32)
    eps[2:4] = np.finfo(np.float32).eps  # mmpose: H + eps * I
    weights = finite_differences('dark_udp', torch.device('cpu')).numpy() @ select
    return torch.from_numpy(weights).to(device), torch.from_numpy(eps @ select).to(device)


@functools.lru_cache(maxsize=16)
def _udp_constants(kernel_size: int, h: int, w: int, device: torch.device) -> tuple[Tensor, ...]:
    """Per-shape index constants of :func:`refine_dark_udp` for (H, W) maps: the clamp bounds of the window centre
    (in the map) and of the patch corner (in the padded map), the flat strides of an (x, y) pair there, the index
    of each (window column, patch row) in a row-blurred patch for window offset 0, and the (x, y) offsets of the 3x3
    taps (row-major) in an inner window. Cached (a dozen fewer small ops per call)."""
    span = kernel_size + 2
    padded_h, padded_w = max(h, span), max(w, span)  # as :func:`_pad_to` leaves the maps
    centre_low, centre_high = torch.tensor([1, 1]), torch.tensor([w - 2, h - 2])
    corner_low, corner_high = torch.tensor([0, 0]), torch.tensor([padded_w - span, padded_h - span])
    strides = torch.tensor([1, padded_w])
    columns = (torch.arange(span) * span + torch.arange(3)[:, None]).view(-1)  # [j * span + a] = a * span + j
    steps = torch.stack([torch.arange(3).repeat(3), torch.arange(3).repeat_interleave(3)])  # (2, 9)
    return tuple(t.to(device) for t in (centre_low, centre_high, corner_low, corner_high, strides, columns, steps))


@torch.no_grad()
def refine_dark_udp(heatmaps: Tensor, locs: Tensor, vals: Tensor, kernel_size: int = 11) -> Tensor:
    """DARK for UDP (Huang et al., CVPR 2020): mmpose's ``refine_keypoints_dark_udp`` on a batch.

    The log of the blurred map is clipped to [1e-3, 50] first; derivatives use a 3x3 stencil on the map padded
    by edge replication (so peaks on the border are refined too), and the Hessian gets float32 eps on its
    diagonal instead of a singularity test.

    The 3x3 window of the blurred map is centred on the peak moved one pixel inside the map; its (k + 2)^2 raw
    patch (:func:`_patch_rows`) is blurred along rows, only the window's 3 columns along columns; the 9 taps (the
    window's, or at a border its edge-replicated ones) are then gathered from those 3 columns. All index
    arithmetic runs on (x, y) pairs with cached constants, since at these sizes each op costs more than its data.

    Args and returns as :func:`refine_dark`.
    """
    maps = heatmaps.detach().float().flatten(0, 1)
    h, w = maps.shape[-2:]
    span = kernel_size + 2
    centre_low, centre_high, corner_low, corner_high, strides, columns, steps = _udp_constants(
        kernel_size, h, w, maps.device)
    maps = _pad_to(maps, span)
    n, padded_h, padded_w = maps.shape
    xy = locs.reshape(-1, 2)
    centre = xy.clamp(centre_low, centre_high)
    window_corner = centre - 1
    patch_corner = (window_corner - (span // 2 - 1)).clamp(corner_low, corner_high)
    offset = window_corner - patch_corner  # the window's corner in its patch, (x, y)
    patch = _patch_rows(maps, patch_corner @ strides + _map_starts(n, padded_h, padded_w, maps.device), span)
    blur = blur_matrix(kernel_size, span, maps.device)
    rows = (patch @ blur).view(n, span * span)  # horizontal blur
    window_columns = rows.gather(1, offset[:, :1] + columns).view(n * 3, span)  # [(n, j), patch row]
    blurred = (window_columns @ blur).view(n, 3, span)  # vertical blur: [n, window column, patch row]
    # mmpose's per-map rescaling to the raw maximum (see the module docstring), over the real map's rows
    scale = vals.reshape(-1) / blurred[:, :, :h].amax(dim=(1, 2))
    # the 3x3 taps: window column j and row i, clamped at the map's borders (mmpose's edge padding)
    tap = ((xy - centre)[:, :, None] + steps).clamp(0, 2)  # (N, (j, i), 9)
    taps = blurred.view(n, 3 * span).gather(1, torch.add(tap[:, 1] + offset[:, 1:], tap[:, 0], alpha=span))
    log_taps = (taps * scale[:, None]).clamp_(1e-3, 50.0).log_()
    weights, bias = _udp_newton_factors(maps.device)
    factors = torch.addmm(bias, log_taps, weights)
    products = factors[:, :6] * factors[:, 6:]
    terms = products[:, :3] + products[:, 3:]  # (numerator x, numerator y, determinant)
    refine = (vals.reshape(-1) > 0) & (terms[:, 2] != 0)
    step = torch.where(refine[:, None], terms[:, :2] / terms[:, 2:], 0.0)
    return (xy.float() + step).view(locs.shape)


@torch.no_grad()
def refine_quarter_offset(heatmaps: Tensor, locs: Tensor) -> Tensor:
    """The classic quarter-pixel shift towards the higher neighbour; mmpose's ``refine_keypoints`` on a batch
    (with its border conditions: ``1 < x < W - 1`` and ``0 < y < H`` for the x shift, transposed for y).

    Returns (B, K, 2) float32 (x, y) in heatmap pixels.
    """
    maps = heatmaps.detach().float().flatten(0, 1)
    h, w = maps.shape[-2:]
    x, y = locs.reshape(-1, 2).unbind(-1)
    xs = torch.stack([x + 1, x - 1, x, x], dim=-1).clamp(0, w - 1)
    ys = torch.stack([y, y, y + 1, y - 1], dim=-1).clamp(0, h - 1)
    right, left, down, up = maps.flatten(1).gather(1, ys * w + xs).unbind(-1)
    dx = torch.where((x > 1) & (x < w - 1) & (y > 0), right - left, 0.0)
    dy = torch.where((y > 1) & (y < h - 1) & (x > 0), down - up, 0.0)
    keypoints = locs.reshape(-1, 2).float() + 0.25 * torch.stack([dx, dy], dim=-1).sign()
    return keypoints.view(locs.shape)

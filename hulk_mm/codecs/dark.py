"""Batched DARK and DARK-UDP refinement of heatmap maxima, in torch on the heatmaps' device.

mmpose (``codecs/utils/refinement.py``) blurs every map with cv2 and then loops over the keypoints in numpy; that
costs about as much as a ViTPose-B forward. The Taylor step reads the log-blurred map only in a 5x5 (DARK) or
3x3 (DARK-UDP) neighbourhood of the argmax, so here only a 5x5 window of the blurred map is computed per keypoint,
from the k + 4 raw rows around the peak (k: blur kernel size): a row copy, two matrix products and small gathers.
No Python loop over instances or keypoints and no host synchronisation.

Equality with mmpose:

* The blur is mmpose's ``gaussian_blur``: cv2's Gaussian kernel for ``kernel_size`` (sigma from the size), the map
  inside a zero frame as wide as the kernel radius (so zero padding).
* mmpose rescales each blurred map to the raw map's maximum. That factor is an additive constant after the log and
  drops out of the derivatives; it matters only where the log's floor (DARK: 1e-10) or clip (DARK-UDP: [1e-3, 50])
  binds. The factor is taken from the window's maximum instead of the whole blurred map's, which is the same
  number whenever the blurred map peaks within two pixels of the raw argmax (any single-peaked heatmap).
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
from torch import Tensor

WINDOW = 5  # side of the blurred window: the DARK stencil reaches two pixels from the peak


def gaussian_kernel(kernel_size: int) -> np.ndarray:
    """cv2's 1-D Gaussian kernel as ``cv2.GaussianBlur(img, (k, k), 0)`` in mmpose's ``gaussian_blur`` uses it:
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8 (fixed tables up to k = 7), float32."""
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f'blur kernel size must be odd and positive, got {kernel_size}')
    return cv2.getGaussianKernel(kernel_size, 0).astype(np.float32).ravel()


@functools.lru_cache(maxsize=None)
def blur_band(kernel_size: int, device: torch.device) -> Tensor:
    """(WINDOW, WINDOW + k - 1) matrix whose row i holds the kernel at columns i .. i + k - 1: it blurs
    WINDOW + k - 1 consecutive rows into the WINDOW rows at their centre. Cached per device (one host copy)."""
    kernel = gaussian_kernel(kernel_size)
    band = np.zeros((WINDOW, WINDOW + kernel_size - 1), np.float32)
    for i in range(WINDOW):
        band[i, i:i + kernel_size] = kernel
    return torch.from_numpy(band).to(device)


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
        # torch's CPU max/argmax along a dimension is not vectorised: ~40x slower than numpy's on the same memory
        index = torch.from_numpy(flat.numpy().argmax(axis=-1))
        vals = flat.gather(2, index[..., None])[..., 0]
    else:
        vals, index = flat.max(dim=-1)
    locs = torch.stack([index % w, index // w], dim=-1)
    return torch.where((vals > 0)[..., None], locs, -1), vals


def blurred_window(maps: Tensor, cx: Tensor, cy: Tensor, kernel_size: int) -> Tensor:
    """The WINDOW x WINDOW block centred at (cy, cx) of each map blurred as mmpose's ``gaussian_blur`` does (before
    its rescaling): the k + 4 rows around the window are picked (whole rows: a memory copy, unlike a per-pixel
    gather), blurred vertically into five rows, then horizontally, as matrix products.

    Args:
        maps: (N, H, W) float.
        cx, cy: (N,) int64 window centres, at least WINDOW // 2 pixels inside the map.
        kernel_size: odd Gaussian kernel size.

    Returns:
        (N, WINDOW, WINDOW) blurred values.
    """
    n, h, w = maps.shape
    span = WINDOW + kernel_size - 1
    # vertical: the `span` rows the window reads (clamped; rows outside the map get zero weight), blurred into 5
    rows = cy[:, None] + (torch.arange(span, device=maps.device) - span // 2)  # (N, span)
    picked = maps.reshape(n * h, w).index_select(0, (rows.clamp(0, h - 1) + h * torch.arange(
        n, device=maps.device)[:, None]).flatten()).view(n, span, w)
    vertical = blur_band(kernel_size, maps.device) * ((rows >= 0) & (rows < h))[:, None, :]  # (N, 5, span)
    blurred_rows = vertical @ picked  # (N, 5, W)
    # horizontal: every column of the five rows in one product (the blur matrix has the zero frame built in), then
    # the window's five columns
    blurred_rows = (blurred_rows.view(n * WINDOW, w) @ blur_matrix(kernel_size, w, maps.device)).view(n, WINDOW, w)
    columns = cx[:, None] + (torch.arange(WINDOW, device=maps.device) - WINDOW // 2)  # (N, 5)
    return blurred_rows.gather(2, columns[:, None, :].expand(n, WINDOW, WINDOW))


def _log_window(maps: Tensor, locs: Tensor, vals: Tensor, kernel_size: int, low: float, high: float | None):
    """Log of the rescaled, clipped blurred window around each peak. Returns (log window (N, 5, 5), x, y, window
    origin x0, y0), all per map (N = B * K)."""
    h, w = maps.shape[-2:]
    x, y = locs.reshape(-1, 2).unbind(-1)
    half = WINDOW // 2
    cx, cy = x.clamp(half, w - 1 - half), y.clamp(half, h - 1 - half)
    window = blurred_window(maps, cx, cy, kernel_size)
    # mmpose's per-map rescaling to the raw maximum (see the module docstring)
    window = window * (vals.reshape(-1) / window.amax(dim=(1, 2)))[:, None, None]
    return window.clamp(low, high).log(), x, y, cx - half, cy - half


@torch.no_grad()
def refine_dark(heatmaps: Tensor, locs: Tensor, vals: Tensor, kernel_size: int = 11) -> Tensor:
    """DARK (Zhang et al., CVPR 2020): one Newton step on the log of the blurred heatmap; mmpose's
    ``refine_keypoints_dark`` on a batch.

    Refines keypoints more than one pixel from the left/top border and two from the right/bottom (mmpose's
    ``1 < x < W - 2``) whose 2x2 Hessian is invertible, with central differences of step 1 (gradient, mixed
    term) and 2 (second derivatives along the axes).

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
    # every refined peak is at least two pixels inside the map, so it sits at the window's centre (2, 2)
    row, col = log_window[:, 2, :], log_window[:, :, 2]  # (y, x-2 .. x+2), (y-2 .. y+2, x)
    dx = 0.5 * (row[:, 3] - row[:, 1])
    dy = 0.5 * (col[:, 3] - col[:, 1])
    dxx = 0.25 * (row[:, 4] - 2 * row[:, 2] + row[:, 0])
    dyy = 0.25 * (col[:, 4] - 2 * col[:, 2] + col[:, 0])
    dxy = 0.25 * (log_window[:, 3, 3] - log_window[:, 1, 3] - log_window[:, 3, 1] + log_window[:, 1, 1])
    det = dxx * dyy - dxy * dxy
    refine = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2) & (det != 0)
    det = torch.where(refine, det, 1.0)
    offset = torch.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], dim=-1) / det[:, None]  # -H^-1 g
    keypoints = locs.reshape(-1, 2).float() + torch.where(refine[:, None], offset, 0.0)
    return keypoints.view(locs.shape)


@torch.no_grad()
def refine_dark_udp(heatmaps: Tensor, locs: Tensor, vals: Tensor, kernel_size: int = 11) -> Tensor:
    """DARK for UDP (Huang et al., CVPR 2020): mmpose's ``refine_keypoints_dark_udp`` on a batch.

    The log of the blurred map is clipped to [1e-3, 50] first; derivatives use a 3x3 stencil on the map padded
    by edge replication (so peaks on the border are refined too), and the Hessian gets float32 eps on its
    diagonal instead of a singularity test.

    Args and returns as :func:`refine_dark`.
    """
    maps = heatmaps.detach().float().flatten(0, 1)
    h, w = maps.shape[-2:]
    log_window, x, y, x0, y0 = _log_window(maps, locs, vals, kernel_size, 1e-3, 50.0)
    # stencil (x + i, y + j) for (i, j) in: (0,0) (1,0) (0,1) (1,1) (-1,-1) (-1,0) (0,-1); edge padding = clamping
    ix = torch.stack([x, x + 1, x, x + 1, x - 1, x - 1, x], dim=-1).clamp(0, w - 1) - x0[:, None]
    iy = torch.stack([y, y, y + 1, y + 1, y - 1, y, y - 1], dim=-1).clamp(0, h - 1) - y0[:, None]
    i_, ix1, iy1, ix1y1, ix1_y1_, ix1_, iy1_ = log_window.flatten(1).gather(1, iy * WINDOW + ix).unbind(-1)
    dx = 0.5 * (ix1 - ix1_)
    dy = 0.5 * (iy1 - iy1_)
    eps = torch.finfo(torch.float32).eps
    dxx = ix1 - 2 * i_ + ix1_ + eps
    dyy = iy1 - 2 * i_ + iy1_ + eps
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    det = dxx * dyy - dxy * dxy
    refine = (vals.reshape(-1) > 0) & (det != 0)
    det = torch.where(refine, det, 1.0)
    offset = torch.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], dim=-1) / det[:, None]  # -H^-1 g
    keypoints = locs.reshape(-1, 2).float() + torch.where(refine[:, None], offset, 0.0)
    return keypoints.view(locs.shape)


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

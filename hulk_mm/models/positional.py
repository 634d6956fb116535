"""Fixed sin-cos position tables (MAE convention) and their resampling to task grids."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """1-D sin-cos table: ``[sin | cos]`` halves with frequencies ``10000 ** (-k / (dim / 2))``.

    Args:
        dim: embedding width (even).
        positions: (N,) positions.

    Returns:
        (N, dim) float32 table.
    """
    if dim % 2:
        raise ValueError(f'sin-cos embedding width must be even, got {dim}')
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(dim: int, grid_hw: tuple[int, int]) -> Tensor:
    """2-D sin-cos table on an (H, W) grid, row-major; the first half of the channels encodes the column (x),
    the second half the row (y), as in MAE's ``get_2d_sincos_pos_embed``.

    Returns:
        (H * W, dim) float32 table.
    """
    if dim % 4:
        raise ValueError(f'2-D sin-cos embedding width must be a multiple of 4, got {dim}')
    h, w = grid_hw
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.cat([sincos_1d(dim // 2, xs.flatten()), sincos_1d(dim // 2, ys.flatten())], dim=1)


def resample_2d(table: Tensor, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Tensor:
    """Bicubic resampling of a row-major (H*W, C) table from ``src_hw`` to ``dst_hw`` (no corner alignment)."""
    if tuple(src_hw) == tuple(dst_hw):
        return table
    c = table.shape[-1]
    grid = table.reshape(1, src_hw[0], src_hw[1], c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_hw), mode='bicubic', align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(dst_hw[0] * dst_hw[1], c).to(table.dtype)


def mae_pos_embed(dim: int, grid_hw: tuple[int, int], base_hw: tuple[int, int] = (14, 14)) -> Tensor:
    """The table Hulk's tokenizers hold: MAE's 14x14 sin-cos grid resampled bicubically to ``grid_hw``.

    Returns:
        (1, H * W, dim) tensor.
    """
    return resample_2d(sincos_2d(dim, base_hw), base_hw, grid_hw)[None]

"""Image tokenizer: normalise, 16x16 patch conv, fixed sin-cos PE of the task grid, learned type embedding.

Batches of images of different sizes (detection) are padded bottom/right; :func:`valid_grids` and
:func:`grid_padding_mask` describe which tokens are image and which padding, and :func:`resample_2d_per_image`
gives each image the position table of its own valid grid (official ``interpolate_with_nomask``, used by both the
tokenizer PE and the detection decoder PE).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.positional import mae_pos_embed, resample_2d
from hulk_mm.registry import MODELS


def valid_grids(valid_hw: Sequence[Sequence[int]], patch_size: int) -> list[tuple[int, int]]:
    """Token grid covered by each image's valid (unpadded) pixels: (ceil(h / p), ceil(w / p)).

    A token counts as image as soon as its top-left pixel is (the official padding mask is downsampled to the token
    grid by nearest interpolation, which reads exactly that pixel), so the last row/column of a size that is not a
    multiple of the patch is image, partly filled with padding.
    """
    return [(-(-int(h) // patch_size), -(-int(w) // patch_size)) for h, w in valid_hw]


def grid_padding_mask(grids: Sequence[tuple[int, int]], grid: tuple[int, int],
                      device: torch.device | str) -> Tensor:
    """(B, H*W) bool, True = padding token, for valid grids placed top-left in an (H, W) token grid."""
    sizes = torch.as_tensor(grids, device=device)
    rows = torch.arange(grid[0], device=device)[None, :, None] >= sizes[:, 0, None, None]
    cols = torch.arange(grid[1], device=device)[None, None, :] >= sizes[:, 1, None, None]
    return (rows | cols).flatten(1)


def resample_2d_per_image(table: Tensor, src_hw: tuple[int, int], grid: tuple[int, int],
                          grids: Sequence[tuple[int, int]]) -> Tensor:
    """Position table per image of a padded batch (official ``interpolate_with_nomask``).

    The (H_src * W_src, C) table is resampled bicubically to the padded grid; then, per image, that padded-grid table
    is resampled again to the image's valid grid and written into its top-left corner. Padding positions keep the
    padded-grid values (they only reach padding tokens).

    Args:
        table: (H_src * W_src, C) row-major table.
        src_hw: its grid.
        grid: (H, W) padded token grid of the batch.
        grids: per image its valid token grid (h_i <= H, w_i <= W).

    Returns:
        (B, H * W, C).
    """
    c = table.shape[-1]
    padded = resample_2d(table, src_hw, grid).reshape(grid[0], grid[1], c).permute(2, 0, 1)  # (C, H, W)
    out = padded.expand(len(grids), -1, -1, -1).clone()
    for i, (h, w) in enumerate(grids):
        if (h, w) != tuple(grid):  # bicubic resampling to the same size is the identity
            out[i, :, :h, :w] = F.interpolate(padded[None].float(), size=(h, w), mode='bicubic',
                                              align_corners=False)[0].to(table.dtype)
    return out.flatten(2).transpose(1, 2)


@MODELS.register_module()
class ImageTokenizer(BaseModule):
    """(B, 3, H, W) RGB in 0-255  ->  (B, H/p * W/p, C) tokens with position and type embedding.

    The position table is MAE's 14x14 sin-cos grid resampled bicubically to the task's token grid and kept fixed
    (a persistent buffer, so it travels with the weights). Inside Hulk every task owns its table (official: one per
    task) and passes it as ``pos_embed``; the tokenizer holds none (``img_size=None``). Used alone (the mm
    backbone :class:`~hulk_mm.models.HulkEncoder`) it holds the table of ``img_size``. Inputs whose grid differs
    from the table's are given the table resampled to their grid.

    A padded batch of images of different sizes (detection) passes ``valid_hw``: the pixels outside each image's
    valid region are set to the normalisation mean (0 after normalising, whatever the padding value was), and each
    image gets the table resampled to its own valid grid (:func:`resample_2d_per_image`), as the official RGB adapter
    with ``round_padding`` and ``test_pos_mode: interpolate_with_nomask`` does.

    Args:
        img_size: (H, W) the tokenizer's own PE table is built for; None: no own table (Hulk).
        patch_size: patch side in pixels.
        embed_dim: token width.
        patch_padding: zero padding of the patch convolution (ViTPose: 2); below half a patch it leaves the grid
            unchanged and shifts every patch up-left by this many pixels.
        learned_pos_embed: train the position table (ViTPose fine-tunes it; Hulk keeps it fixed). It starts from
            the same sin-cos table and is a parameter instead of a buffer.
        type_embed: add a learned modality type embedding (Hulk). A single-modality backbone with a learned
            position table (ViTPose) has none: a constant added to every token is already within the table's reach.
        mean, std: per-channel pixel normalisation (ImageNet, 0-255 scale), applied here as in Hulk.
    """

    def __init__(self, img_size: tuple[int, int] | None = (256, 192), patch_size: int = 16, embed_dim: int = 768,
                 patch_padding: int = 0, learned_pos_embed: bool = False, type_embed: bool = True,
                 mean: tuple[float, ...] = (123.675, 116.28, 103.53), std: tuple[float, ...] = (58.395, 57.12, 57.375),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if img_size is not None and (img_size[0] % patch_size or img_size[1] % patch_size):
            raise ValueError(f'img_size {tuple(img_size)} is not a multiple of patch_size {patch_size}')
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        if not 0 <= 2 * patch_padding < patch_size:
            raise ValueError(f'patch_padding {patch_padding} must be in [0, patch_size / 2) to keep the token grid')
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size, padding=patch_padding)
        self.grid = None
        if img_size is not None:
            self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
            pos_embed = mae_pos_embed(embed_dim, self.grid)
            if learned_pos_embed:
                self.pos_embed = nn.Parameter(pos_embed)
            else:
                self.register_buffer('pos_embed', pos_embed)
        self.type_embed = nn.Parameter(torch.zeros(1, 1, embed_dim)) if type_embed else None
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor, valid_hw: Sequence[Sequence[int]] | None = None,
                pos_embed: tuple[Tensor, tuple[int, int]] | None = None) -> tuple[Tensor, tuple[int, int]]:
        """
        Args:
            images: (B, 3, H, W) float RGB, 0-255, H and W multiples of the patch size.
            valid_hw: optional per image (h, w) of its valid pixels, placed top-left (mmdet ``img_shape``); the rest
                is padding. None: every pixel is valid.
            pos_embed: (table (1, h * w, C), its grid (h, w)), the task's position table; None: the tokenizer's own.

        Returns:
            tokens (B, H/p * W/p, C) and the token grid (H/p, W/p).
        """
        h, w = images.shape[-2:]
        if images.dim() != 4 or images.shape[1] != 3 or h % self.patch_size or w % self.patch_size:
            raise ValueError(f'ImageTokenizer expects (B, 3, H, W) with H, W multiples of {self.patch_size}, '
                             f'got {tuple(images.shape)}')
        x = (images - self.mean) / self.std
        if valid_hw is not None:
            self._check_valid_hw(valid_hw, images.shape)
            x = x * ~grid_padding_mask(valid_hw, (h, w), x.device).view(-1, 1, h, w)
        x = self.proj(x)
        grid = tuple(x.shape[-2:])
        table, table_grid = self._table(pos_embed)
        if valid_hw is None:
            pos = resample_2d(table, table_grid, grid)
        else:
            pos = resample_2d_per_image(table, table_grid, grid, valid_grids(valid_hw, self.patch_size))
        tokens = x.flatten(2).transpose(1, 2) + pos
        return (tokens if self.type_embed is None else tokens + self.type_embed), grid

    def _table(self, pos_embed) -> tuple[Tensor, tuple[int, int]]:
        """(h * w, C) table and its grid: the given one, or the tokenizer's own."""
        if pos_embed is None:
            if self.grid is None:
                raise ValueError('this ImageTokenizer has no position table of its own (img_size=None): pass the '
                                 "task's table as pos_embed=(table, grid)")
            return self.pos_embed[0], self.grid
        table, grid = pos_embed
        if table.shape[-1] != self.embed_dim or table.shape[-2] != grid[0] * grid[1]:
            raise ValueError(f'position table of shape {tuple(table.shape)} does not fit grid {tuple(grid)} and '
                             f'token width {self.embed_dim}')
        return table.reshape(-1, self.embed_dim), tuple(grid)

    @staticmethod
    def _check_valid_hw(valid_hw, shape):
        b, _, h, w = shape
        if len(valid_hw) != b or any(not (0 < vh <= h and 0 < vw <= w) for vh, vw in valid_hw):
            raise ValueError(f'valid_hw must give one (h, w) with 0 < h <= {h}, 0 < w <= {w} per image of the '
                             f'batch of {b}, got {list(valid_hw)}')

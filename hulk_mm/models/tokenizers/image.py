"""Image tokenizer: normalise, 16x16 patch conv, fixed sin-cos PE of the task grid, learned type embedding."""
from __future__ import annotations

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.positional import mae_pos_embed, resample_2d
from hulk_mm.registry import MODELS


@MODELS.register_module()
class ImageTokenizer(BaseModule):
    """(B, 3, H, W) RGB in 0-255  ->  (B, H/p * W/p, C) tokens with position and type embedding.

    The position table is MAE's 14x14 sin-cos grid resampled bicubically to ``img_size / patch_size`` and kept
    fixed (a persistent buffer, so it travels with the weights). Inputs whose grid differs from the table's are
    given the table resampled to their grid.

    Args:
        img_size: (H, W) the PE table is built for.
        patch_size: patch side in pixels.
        embed_dim: token width.
        mean, std: per-channel pixel normalisation (ImageNet, 0-255 scale), applied here as in Hulk.
    """

    def __init__(self, img_size: tuple[int, int] = (256, 192), patch_size: int = 16, embed_dim: int = 768,
                 mean: tuple[float, ...] = (123.675, 116.28, 103.53), std: tuple[float, ...] = (58.395, 57.12, 57.375),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise ValueError(f'img_size {tuple(img_size)} is not a multiple of patch_size {patch_size}')
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.register_buffer('pos_embed', mae_pos_embed(embed_dim, self.grid))
        self.type_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """
        Args:
            images: (B, 3, H, W) float RGB, 0-255, H and W multiples of the patch size.

        Returns:
            tokens (B, H/p * W/p, C) and the token grid (H/p, W/p).
        """
        h, w = images.shape[-2:]
        if images.dim() != 4 or images.shape[1] != 3 or h % self.patch_size or w % self.patch_size:
            raise ValueError(f'ImageTokenizer expects (B, 3, H, W) with H, W multiples of {self.patch_size}, '
                             f'got {tuple(images.shape)}')
        x = self.proj((images - self.mean) / self.std)
        grid = tuple(x.shape[-2:])
        pos = resample_2d(self.pos_embed[0], self.grid, grid)
        return x.flatten(2).transpose(1, 2) + pos + self.type_embed, grid

"""Dense de-tokenizers (spec §3.1): pose heatmaps (score on the token grid, then upsample x4) and parsing masks
(upsample the projected tokens x4, then score every pixel)."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.detokenizers.semantic import SemanticDetokenizer, SemanticProjection
from hulk_mm.registry import MODELS


class Norm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (ConvNeXt's channels-first LayerNorm), eps 1e-6."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class DenseUpsampler(nn.Sequential):
    """(B, C_in, h, w) -> (B, C_out, 4h, 4w): ConvT(k2, s2) -> Norm2d -> GELU -> ConvT(k2, s2).

    Indices 0, 1, 3 are the official ``upsample_network`` key names.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int):
        super().__init__(
            nn.ConvTranspose2d(in_channels, hidden_channels, kernel_size=2, stride=2),
            Norm2d(hidden_channels),
            nn.GELU(),
            nn.ConvTranspose2d(hidden_channels, out_channels, kernel_size=2, stride=2))


@MODELS.register_module()
class HeatmapDetokenizer(BaseModule):
    """Label-side decoder outputs on an (h, w) grid -> keypoint heatmaps and visibility logits (spec §3.1).

    Heatmaps: semantic logits (B, h*w, K) laid out as (B, K, h, w), then :class:`DenseUpsampler` to (B, K, 4h, 4w)
    (the official ``upsample_before_product=False`` order: score first, upsample after). Visibility: the mean of
    the *unprojected* tokens dotted with the normalised class features, (B, K) (official ``cls_loss_branch``).

    Args:
        num_keypoints: K.
        grid: (h, w) label token grid.
        text_dim: text vector width.
        text_features: source of the keypoint-name table, see
            :func:`~hulk_mm.models.detokenizers.semantic.load_text_features`.
        upsample_dim: hidden channels of the upsampler (256).
    """

    def __init__(self, num_keypoints: int, grid: tuple[int, int], text_dim: int = 768,
                 text_features: str | int = 0, upsample_dim: int = 256, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.grid = tuple(grid)
        self.semantic = SemanticDetokenizer(num_keypoints, text_dim, text_features)
        self.upsampler = DenseUpsampler(num_keypoints, upsample_dim, num_keypoints)

    def forward(self, tokens: Tensor, projection: SemanticProjection) -> tuple[Tensor, Tensor]:
        """
        Args:
            tokens: (B, h*w, d) label outputs of one decoder layer.
            projection: the shared dense-family projections.

        Returns:
            heatmaps (B, K, 4h, 4w) and visibility logits (B, K).
        """
        b, n, _ = tokens.shape
        h, w = self.grid
        if n != h * w:
            raise ValueError(f'HeatmapDetokenizer expects {h}x{w}={h * w} tokens, got {n}')
        scores = self.semantic(tokens, projection)
        heatmaps = self.upsampler(scores.transpose(1, 2).reshape(b, -1, h, w))
        visibility = tokens.mean(1) @ self.semantic.class_embeddings(projection).t()
        return heatmaps, visibility


@MODELS.register_module()
class MaskDetokenizer(BaseModule):
    """Label-side decoder outputs on an (h, w) grid -> per-class mask logits at 4x the grid and presence logits
    (spec §3.1, parsing).

    Masks (official ``upsample_before_product=True``: upsample first, score after): ``patch_proj`` of the shared
    projection (B, h*w, d) -> (B, d, h, w) -> upsampler (B, d, 4h, 4w) -> L2 per pixel -> cosine with the C
    normalised class features -> class-axis LayerNorm -> (B, C, 4h, 4w). Presence: the mean of the *unprojected*
    tokens dotted with the normalised class features, (B, C) (official ``cls_loss_branch``, as pose's visibility).

    Holds what is per dataset (class table, class-axis LayerNorm). The upsampler is shared by every parsing
    dataset (official ``share_modality_group``), so it lives in the pathway and, like the family's projection,
    arrives with each call.

    Args:
        num_classes: C.
        grid: (h, w) label token grid.
        text_dim: text vector width.
        text_features: source of the class-name table, see
            :func:`~hulk_mm.models.detokenizers.semantic.load_text_features`.
    """

    def __init__(self, num_classes: int, grid: tuple[int, int], text_dim: int = 768, text_features: str | int = 0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.grid = tuple(grid)
        self.semantic = SemanticDetokenizer(num_classes, text_dim, text_features)

    def forward(self, tokens: Tensor, projection: SemanticProjection, upsampler: nn.Module) -> tuple[Tensor, Tensor]:
        """
        Args:
            tokens: (B, h*w, d) label outputs of one decoder layer.
            projection: the shared dense-family projections.
            upsampler: (B, d, h, w) -> (B, d, 4h, 4w), e.g. :class:`DenseUpsampler` (d, hidden, d).

        Returns:
            mask logits (B, C, 4h, 4w) and presence logits (B, C).
        """
        b, n, d = tokens.shape
        h, w = self.grid
        if n != h * w:
            raise ValueError(f'MaskDetokenizer expects {h}x{w}={h * w} tokens, got {n}')
        classes = self.semantic.class_embeddings(projection)                      # (C, d), unit rows
        # normalise after upsampling: the cosine is taken per output pixel, not per token
        pixels = upsampler(projection.patch_proj(tokens).transpose(1, 2).reshape(b, d, h, w))
        pixels = F.normalize(pixels.permute(0, 2, 3, 1), dim=-1)                   # (B, 4h, 4w, d)
        masks = self.semantic.post_mul_norm(pixels @ classes.t()).permute(0, 3, 1, 2)
        presence = tokens.mean(1) @ classes.t()
        return masks, presence

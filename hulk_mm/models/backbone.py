"""Hulk's image tokenizer + ViT encoder as an OpenMMLab backbone (for mmpose / mmdet / mmseg configs)."""
from __future__ import annotations

from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.encoder import ViTEncoder
from hulk_mm.models.tokenizers import ImageTokenizer
from hulk_mm.registry import MODELS


@MODELS.register_module()
class HulkEncoder(BaseModule):
    """(B, 3, H, W) RGB 0-255  ->  ((B, C, H/16, W/16),), the encoder output laid out as a feature map.

    Use from another codebase's config with the scope prefix, e.g. inside an mmpose model
    ``backbone=dict(type='hulk_mm.HulkEncoder', tokenizer=dict(img_size=(256, 192)), encoder=dict(drop_path_rate=0.3))``.
    The tokenizer normalises pixels itself, so the codebase's data preprocessor should not (mean/std unset).

    Args:
        tokenizer: keyword arguments of :class:`ImageTokenizer`.
        encoder: keyword arguments of :class:`ViTEncoder` (its ``embed_dim`` is taken from the tokenizer).
    """

    def __init__(self, tokenizer: dict | None = None, encoder: dict | None = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        tokenizer = dict(tokenizer or {})
        encoder = dict(encoder or {})
        encoder.setdefault('embed_dim', tokenizer.setdefault('embed_dim', 768))
        if encoder['embed_dim'] != tokenizer['embed_dim']:
            raise ValueError(f"tokenizer width {tokenizer['embed_dim']} != encoder width {encoder['embed_dim']}")
        self.tokenizer = ImageTokenizer(**tokenizer)
        self.encoder = ViTEncoder(**encoder)

    def forward(self, images: Tensor) -> tuple[Tensor]:
        tokens, (h, w) = self.tokenizer(images)
        x = self.encoder(tokens)
        return (x.transpose(1, 2).reshape(x.shape[0], -1, h, w),)

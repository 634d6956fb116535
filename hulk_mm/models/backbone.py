"""Hulk's image tokenizer + ViT encoder as an OpenMMLab backbone (for mmpose / mmdet / mmseg configs)."""
from __future__ import annotations

from typing import Sequence

import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.encoder import ViTEncoder
from hulk_mm.models.pretrained import init_weights_with_pretrained
from hulk_mm.models.tokenizers import ImageTokenizer
from hulk_mm.registry import MODELS


@MODELS.register_module()
class HulkEncoder(BaseModule):
    """(B, 3, H, W) RGB 0-255  ->  tuple of (B, C, H/p, W/p) maps: the encoder tokens after chosen blocks.

    Use from another codebase's config with the scope prefix, e.g. inside an mmpose model
    ``backbone=dict(type='hulk_mm.HulkEncoder', tokenizer=dict(img_size=(256, 192)), encoder=dict(drop_path_rate=0.3))``.
    The tokenizer normalises pixels itself, so the codebase's data preprocessor should not (mean/std unset).

    ``out_indices`` picks the blocks whose output is returned. Only the last block's output goes through the
    encoder's final LayerNorm, the others are the raw residual stream: mmpretrain's ``VisionTransformer`` (the
    ViTPose backbone of mmpose) does exactly this (``final_norm`` on the last layer only), and ViTDet reads the
    last block alone. So the default (last block) output is the encoder's output, as Hulk's decoder sees it.

    Weights: ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='shared.')`` loads the tokenizer and encoder
    from a hulk_mm weights file (keys under ``prefix``; ``'backbone.'`` for an mm model with this backbone) or from an
    MAE checkpoint (``mae_pretrain_vit_base.pth``; prefix unused), see :mod:`hulk_mm.models.pretrained`.

    Args:
        tokenizer: keyword arguments of :class:`ImageTokenizer`.
        encoder: keyword arguments of :class:`ViTEncoder` (its ``embed_dim`` is taken from the tokenizer).
        out_indices: block index or indices (negative counts from the end); outputs come in block order. Blocks
            after the last index are not run (their parameters get no gradient: drop or freeze them under DDP).
        init_cfg: see above.
    """

    def __init__(self, tokenizer: dict | None = None, encoder: dict | None = None,
                 out_indices: int | Sequence[int] = -1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        tokenizer = dict(tokenizer or {})
        encoder = dict(encoder or {})
        encoder.setdefault('embed_dim', tokenizer.setdefault('embed_dim', 768))
        if encoder['embed_dim'] != tokenizer['embed_dim']:
            raise ValueError(f"tokenizer width {tokenizer['embed_dim']} != encoder width {encoder['embed_dim']}")
        self.tokenizer = ImageTokenizer(**tokenizer)
        self.encoder = ViTEncoder(**encoder)
        depth = len(self.encoder.blocks)
        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        if not indices or any(not -depth <= i < depth for i in indices):
            raise ValueError(f'out_indices {out_indices} out of range for {depth} blocks')
        normalised = sorted(i % depth for i in indices)
        if len(set(normalised)) != len(normalised):
            raise ValueError(f'out_indices {out_indices} name a block twice')
        self.out_indices = tuple(normalised)

    def init_weights(self):
        init_weights_with_pretrained(self, super().init_weights, default_prefix='shared.')

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """
        Args:
            images: (B, 3, H, W) float RGB, 0-255.

        Returns:
            one (B, C, H/p, W/p) map per entry of ``out_indices``, in block order.
        """
        tokens, (h, w) = self.tokenizer(images)
        last = len(self.encoder.blocks) - 1
        feats = [self.encoder(tokens)] if self.out_indices == (last, ) else self._intermediates(tokens)
        return tuple(x.transpose(1, 2).reshape(x.shape[0], -1, h, w) for x in feats)

    def _intermediates(self, tokens: Tensor) -> list[Tensor]:
        """The outputs of the ``out_indices`` blocks, the last block's through the final norm (the per-block call
        of :meth:`ViTEncoder.forward`, with its activation checkpointing)."""
        enc, last = self.encoder, len(self.encoder.blocks) - 1
        x, outs = tokens, []
        for i, block in enumerate(enc.blocks):
            if enc.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, None, use_reentrant=False)
            else:
                x = block(x)
            if i in self.out_indices:
                outs.append(enc.norm(x) if i == last else x)
            if i == self.out_indices[-1]:  # later blocks would reach no output
                break
        return outs

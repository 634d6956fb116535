"""Hulk's semantic de-tokenizer: cosine similarity of output tokens with frozen text features of the classes.

Token features (bias-free Linear ``patch_proj``) and class features (frozen text vectors through a bias-free Linear
``class_proj``) are both L2-normalised; their cosine is turned into logits by a LayerNorm across the class axis,
whose learned per-class gain plays the role of a temperature (no explicit temperature, no contrastive loss).
Key names follow the official ``proj_dense_labeling`` / ``proj_text`` modules.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.compat import load_weights
from hulk_mm.registry import MODELS


def load_text_features(source: str | int, num_classes: int, text_dim: int) -> Tensor:
    """The (K, text_dim) class-feature table a semantic head starts from.

    Args:
        source: a weights-only ``.pth`` holding the (K, text_dim) tensor (e.g. made by
            ``tools/make_text_features.py``), or an int seed for a deterministic N(0, 1) stand-in table (tiny
            configs; the real tables are text embeddings of the class names). Either way the table becomes a
            persistent buffer, so a checkpoint carries the one it was trained with.
        num_classes: K.
        text_dim: width of the text vectors.
    """
    if isinstance(source, int):
        table = torch.randn(num_classes, text_dim, generator=torch.Generator().manual_seed(source))
    else:
        table = load_weights(source, map_location='cpu')
        if not isinstance(table, Tensor):
            raise TypeError(f'{source} must hold one tensor of shape ({num_classes}, {text_dim}), '
                            f'got {type(table).__name__}')
    if tuple(table.shape) != (num_classes, text_dim):
        raise ValueError(f'text feature table of shape {tuple(table.shape)} does not match {num_classes} classes '
                         f'of width {text_dim}')
    return table.float()


@MODELS.register_module()
class SemanticDetokenizer(BaseModule):
    """(B, N, d) tokens  ->  (B, N, K) class logits: LayerNorm_K(cos(patch_proj(token), class_proj(text_k))).

    Args:
        num_classes: K, rows of the text table.
        embed_dim: token width d (decoder width).
        text_dim: width of the frozen text vectors (768 for BERT).
        text_features: source of the text table, see :func:`load_text_features`.
    """

    def __init__(self, num_classes: int, embed_dim: int = 256, text_dim: int = 768, text_features: str | int = 0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.patch_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.class_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.register_buffer('text_features', load_text_features(text_features, num_classes, text_dim))
        self.post_mul_norm = nn.LayerNorm(num_classes, eps=1e-6)

    def class_embeddings(self) -> Tensor:
        """(K, d) L2-normalised projected class features."""
        return F.normalize(self.class_proj(self.text_features), dim=-1)

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, N, d) -> (B, N, K) logits."""
        cosine = F.normalize(self.patch_proj(tokens), dim=-1) @ self.class_embeddings().t()
        return self.post_mul_norm(cosine)

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


class SemanticProjection(nn.Module):
    """The two bias-free projections of a family of semantic heads: ``patch_proj`` (tokens, d -> d) and
    ``class_proj`` (text vectors, text_dim -> d). One instance is shared by every task of the family (official:
    ``proj_dense_labeling`` by pose and parsing, ``proj_text`` by attributes, skeleton action and caption), so it
    lives in :class:`~hulk_mm.models.hulk.HulkShared` and reaches the heads at call time.

    Args:
        embed_dim: token width d.
        text_dim: width of the frozen text vectors (768 for BERT).
    """

    def __init__(self, embed_dim: int = 256, text_dim: int = 768):
        super().__init__()
        self.text_dim = text_dim
        self.patch_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.class_proj = nn.Linear(text_dim, embed_dim, bias=False)

    def tokens(self, tokens: Tensor) -> Tensor:
        """(..., d) -> (..., d) L2-normalised projected tokens."""
        return F.normalize(self.patch_proj(tokens), dim=-1)

    def classes(self, text_features: Tensor) -> Tensor:
        """(K, text_dim) -> (K, d) L2-normalised projected class features."""
        return F.normalize(self.class_proj(text_features), dim=-1)


@MODELS.register_module()
class SemanticDetokenizer(BaseModule):
    """(B, N, d) tokens  ->  (B, N, K) class logits: LayerNorm_K(cos(patch_proj(token), class_proj(text_k))).

    Holds what is per task (the frozen class table and the class-axis LayerNorm); the projections come from the
    shared :class:`SemanticProjection` of the task's family, passed to every call.

    Args:
        num_classes: K, rows of the text table.
        text_dim: width of the frozen text vectors (must equal the projection's).
        text_features: source of the text table, see :func:`load_text_features`.
    """

    def __init__(self, num_classes: int, text_dim: int = 768, text_features: str | int = 0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.register_buffer('text_features', load_text_features(text_features, num_classes, text_dim))
        self.post_mul_norm = nn.LayerNorm(num_classes, eps=1e-6)

    def class_embeddings(self, projection: SemanticProjection) -> Tensor:
        """(K, d) L2-normalised projected class features."""
        if projection.text_dim != self.text_features.shape[1]:
            raise ValueError(f'text table width {self.text_features.shape[1]} != the shared projection\'s '
                             f'text_dim {projection.text_dim}')
        return projection.classes(self.text_features)

    def forward(self, tokens: Tensor, projection: SemanticProjection) -> Tensor:
        """(B, N, d) -> (B, N, K) logits."""
        return self.post_mul_norm(projection.tokens(tokens) @ self.class_embeddings(projection).t())

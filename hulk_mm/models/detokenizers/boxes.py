"""Box de-tokenizer of pedestrian detection (spec §3.3): a digit head that regresses each query's box around its
anchor point, and a semantic head that scores it against the frozen text feature of "pedestrian".

Key names follow the official ``proj_sparse_labeling`` (``output_proj.layers.N``, ``patch_proj``, ``class_proj``,
``translate_weight``, ``translate_bias``); the official ``post_mul_norm`` exists in the checkpoints but is unused by
detection (``replace_post_mul_norm: True``) and is not built.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from mmdet.models.layers import MLP
from mmdet.models.layers.transformer import inverse_sigmoid
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.detokenizers.semantic import SemanticProjection
from hulk_mm.registry import MODELS


class AnchorBoxRegressor(MLP):
    """Digit de-tokenizer: (B, L, d) tokens + (L, 3) anchor points in [0, 1]  ->  (B, L, 4) xyxy boxes in [0, 1].

    A 3-layer MLP (d -> d -> d -> 6) predicts two 3-D points as offsets in logit space; the query's anchor
    reference, ``inverse_sigmoid(anchor)``, is added to both; after the sigmoid the two values of every axis are
    ordered (min first), so the points are the top-left and bottom-right corners whatever the network's order. The
    z axis (anchors have z = 0) is dropped. Official ``forward_points`` with ``reference_type: four_points``.
    """

    def __init__(self, embed_dim: int = 256, point_dim: int = 3):
        super().__init__(embed_dim, embed_dim, 2 * point_dim, 3)
        self.point_dim = point_dim

    def forward(self, tokens: Tensor, anchors: Tensor) -> Tensor:
        if anchors.shape != (tokens.shape[1], self.point_dim):
            raise ValueError(f'anchors of shape {tuple(anchors.shape)} do not fit {tokens.shape[1]} queries of '
                             f'{self.point_dim}-D points')
        points = super().forward(tokens).unflatten(-1, (2, self.point_dim)) + inverse_sigmoid(anchors)[:, None]
        points = points.sigmoid()
        top_left, bottom_right = points.min(dim=-2).values, points.max(dim=-2).values
        return torch.cat([top_left[..., :2], bottom_right[..., :2]], dim=-1)


class ScalarAffineClassifier(nn.Module):
    """Semantic de-tokenizer with a scalar affine instead of the class-axis LayerNorm (official
    ``replace_post_mul_norm``): logit = cos(patch_proj(token), class_proj(text_k)) * w + b, one (w, b) pair for all
    classes (w initialised to ``scale`` = 4, b to 0). (B, L, d) tokens + (K, text_dim) text table -> (B, L, K).

    Its projections are its own (shared by the detection pathways only), not a family's shared
    :class:`SemanticProjection`.
    """

    def __init__(self, embed_dim: int = 256, text_dim: int = 768, scale: float = 4.0):
        super().__init__()
        self.projection = SemanticProjection(embed_dim, text_dim)
        self.translate_weight = nn.Parameter(torch.full((1, ), float(scale)))
        self.translate_bias = nn.Parameter(torch.zeros(1))

    def forward(self, tokens: Tensor, text_features: Tensor) -> Tensor:
        if text_features.dim() != 2 or text_features.shape[1] != self.projection.text_dim:
            raise ValueError(f'text table of shape {tuple(text_features.shape)} does not fit the classifier\'s '
                             f'text_dim {self.projection.text_dim}')
        cosine = self.projection.tokens(tokens) @ self.projection.classes(text_features).t()
        return cosine * self.translate_weight + self.translate_bias


@MODELS.register_module()
class BoxDetokenizer(BaseModule):
    """Label-side decoder outputs -> boxes (digit head) and class logits (semantic head), spec §3.3.

    Holds what the detection pathways share (official share_modality_group 4: output MLP, projections, affine);
    the anchors and the class text table are per pathway and passed to every call.

    Args:
        embed_dim: token width d.
        text_dim: width of the frozen text vectors.
        logit_scale: initial ``translate_weight`` (Hulk: 4).
    """

    def __init__(self, embed_dim: int = 256, text_dim: int = 768, logit_scale: float = 4.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.regressor = AnchorBoxRegressor(embed_dim)
        self.classifier = ScalarAffineClassifier(embed_dim, text_dim, logit_scale)

    def forward(self, tokens: Tensor, anchors: Tensor, text_features: Tensor) -> tuple[Tensor, Tensor]:
        """
        Args:
            tokens: (B, L, d) label outputs of one decoder layer.
            anchors: (L, 3) anchor point of every query, (x, y, z) in [0, 1].
            text_features: (K, text_dim) frozen class table.

        Returns:
            boxes (B, L, 4) xyxy normalised by the valid image size, logits (B, L, K).
        """
        return self.regressor(tokens, anchors), self.classifier(tokens, text_features)

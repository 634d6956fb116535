"""Hulk's keypoint-visibility loss: BCE with per-joint class-balancing weights."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hulk_mm.registry import MODELS


@MODELS.register_module()
class VisibilityBCELoss(nn.Module):
    """Mean BCE-with-logits between visibility logits and 0/1 targets, each element weighted by
    ``exp(y * (1 - r_k) + (1 - y) * r_k)`` where ``r_k`` is the positive ratio of joint k.

    The weight up-weights the rarer outcome of each joint (official ``ratio2weight`` in ``MaskPOSSetCriterion``;
    Hulk's COCO ratios are the ``sample_weight`` list of its pose tasks). Targets above 1 get weight 0, as there.

    Args:
        ratios: (K,) positive ratio per joint.
        loss_weight: multiplier of the loss (Hulk: 0.001).
    """

    def __init__(self, ratios: Sequence[float], loss_weight: float = 1.0):
        super().__init__()
        self.register_buffer('ratios', torch.as_tensor(ratios, dtype=torch.float32), persistent=False)
        self.loss_weight = loss_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """
        Args:
            logits: (B, K) visibility logits.
            targets: (B, K) visibility in [0, 1] (mmpose ``keypoint_weights``).

        Returns:
            scalar loss.
        """
        if logits.shape != targets.shape or logits.shape[-1] != self.ratios.numel():
            raise ValueError(f'VisibilityBCELoss expects logits and targets of shape (B, {self.ratios.numel()}), '
                             f'got {tuple(logits.shape)} and {tuple(targets.shape)}')
        targets = targets.to(logits.dtype)
        weight = torch.exp(targets * (1 - self.ratios) + (1 - targets) * self.ratios)
        weight = weight.masked_fill(targets > 1, 0.0)
        return self.loss_weight * F.binary_cross_entropy_with_logits(logits, targets, weight=weight)

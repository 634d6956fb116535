"""Hulk's attribute loss: one-sided masked BCE with class-balancing and focal weights (official
``MaskedOneSideBCELoss`` with ``use_focal_weight``). Written here because no OpenMMLab codebase has this combination:
mmpretrain's focal loss has an alpha term instead of the positive-ratio weights and no ignore label."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hulk_mm.registry import MODELS


@MODELS.register_module()
class MaskedOneSideBCELoss(nn.Module):
    """Sum over attributes, mean over the batch, of

        BCE(logit, y) * exp(y (1 - r_a) + (1 - y) r_a) * (1 - p_t) ** gamma * w_a,    p_t = p y + (1 - p)(1 - y)

    for every label y != -1 (-1 marks the attributes of other datasets in a multi-dataset label space).

    ``r_a`` is the positive ratio of attribute a (the weight favours its rarer outcome), ``(1 - p_t) ** gamma`` the
    focal weight (its gradient is kept, as in the official code and torchvision's ``sigmoid_focal_loss``) and
    ``w_a`` a per-attribute weight (Hulk: 0.5 for RAPv2's columns, 0.25 for PA-100k's, 1 elsewhere).

    Args:
        positive_ratios: (A,) r_a (official ``sample_weight``).
        attribute_weights: (A,) w_a (official ``dataset_weight``); default all ones.
        gamma: focal exponent.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, positive_ratios: Sequence[float], attribute_weights: Sequence[float] | None = None,
                 gamma: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        ratios = torch.as_tensor(positive_ratios, dtype=torch.float32)
        weights = torch.ones_like(ratios) if attribute_weights is None else torch.as_tensor(
            attribute_weights, dtype=torch.float32)
        if ratios.dim() != 1 or weights.shape != ratios.shape:
            raise ValueError(f'positive_ratios and attribute_weights must be two (A,) sequences, got '
                             f'{tuple(ratios.shape)} and {tuple(weights.shape)}')
        self.register_buffer('positive_ratios', ratios, persistent=False)
        self.register_buffer('attribute_weights', weights, persistent=False)
        self.gamma = gamma
        self.loss_weight = loss_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """
        Args:
            logits: (B, A) attribute logits.
            targets: (B, A) labels: 1 present, 0 absent, -1 ignored.

        Returns:
            scalar loss.
        """
        if logits.shape != targets.shape or logits.dim() != 2 or logits.shape[1] != self.positive_ratios.numel():
            raise ValueError(f'MaskedOneSideBCELoss expects logits and targets of shape (B, '
                             f'{self.positive_ratios.numel()}), got {tuple(logits.shape)} and {tuple(targets.shape)}')
        valid = targets != -1
        y = targets.to(logits.dtype).clamp(min=0)  # ignored labels are zeroed below; clamping keeps them finite
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction='none')
        balance = torch.exp(torch.where(y > 0.5, 1 - self.positive_ratios, self.positive_ratios))
        p = logits.sigmoid()
        focal = (1 - (p * y + (1 - p) * (1 - y))) ** self.gamma
        loss = (bce * balance * focal * self.attribute_weights).masked_fill(~valid, 0.0)
        return self.loss_weight * loss.sum() / logits.shape[0]

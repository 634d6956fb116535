"""Hulk's parsing mask loss: point-sampled sigmoid BCE + dice on the mask channels of the classes present in an
image (official ``MaskedSetLoss`` with ``mask_all_tokens=True``).

It is Mask2Former's mask loss (mmdet ``Mask2FormerHead._loss_by_feat_single``) without the Hungarian matching: the
prediction of class c is channel c, so the "matched" pairs are simply the (image, present class) pairs. Upstream has
the pieces but not this combination as a standalone loss: the sampler is mmdet's
``get_uncertain_point_coords_with_randomness``, the sampling mmcv's ``point_sample``, and the two terms mmdet's
``CrossEntropyLoss(use_sigmoid=True)`` and ``DiceLoss(naive_dice=True, eps=1)``, which give the official numbers.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from torch import Tensor

from hulk_mm.registry import MODELS


@MODELS.register_module()
class PointSampledMaskLoss(nn.Module):
    """BCE and dice of mask logits against binary target masks, on points sampled PointRend-style.

    Per mask, ``oversample_ratio * num_points`` random points are drawn, the ``importance_sample_ratio`` share of
    ``num_points`` with the most uncertain logits (closest to 0) is kept, and the rest is drawn uniformly. Logits are
    sampled bilinearly at the points on their own grid, targets at the same normalised points on theirs (Hulk: logits
    at 1/4 of the input, targets at full input size, so boundary points get fractional targets).

    Args:
        loss_bce: mmdet ``CrossEntropyLoss(use_sigmoid=True)`` config (Hulk: ``loss_weight=50``).
        loss_dice: mmdet ``DiceLoss(use_sigmoid=True, activate=True, naive_dice=True, eps=1.0)`` config (Hulk:
            ``loss_weight=50``).
        num_points: points per mask (12 544 = 112 x 112).
        oversample_ratio: candidates per kept point (3.0).
        importance_sample_ratio: share of the points chosen by uncertainty (0.75).
    """

    def __init__(self, loss_bce: dict, loss_dice: dict, num_points: int = 12544, oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75):
        super().__init__()
        self.loss_bce = MODELS.build(loss_bce)
        self.loss_dice = MODELS.build(loss_dice)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    def forward(self, mask_logits: Tensor, targets: Tensor, avg_factor: Tensor | float) -> tuple[Tensor, Tensor]:
        """
        Args:
            mask_logits: (N, h, w) logits of the N matched masks.
            targets: (N, H, W) binary targets of the same masks (any resolution).
            avg_factor: the number of masks to normalise by (Hulk: the (image, present class) pairs of the batch).

        Returns:
            BCE loss (mean over points, summed over masks, divided by ``avg_factor``) and dice loss (summed over
            masks, divided by ``avg_factor``), both times their loss weights.
        """
        if mask_logits.shape[0] == 0:  # nothing labelled in the batch: zero losses that keep the graph
            zero = mask_logits.sum() * 0
            return zero, zero
        logits = mask_logits[:, None]
        with torch.no_grad():
            points = get_uncertain_point_coords_with_randomness(
                logits, None, self.num_points, self.oversample_ratio, self.importance_sample_ratio)
            point_targets = point_sample(targets[:, None].to(logits.dtype), points).squeeze(1)
        point_logits = point_sample(logits, points).squeeze(1)                     # (N, num_points)
        loss_bce = self.loss_bce(point_logits.reshape(-1), point_targets.reshape(-1),
                                 avg_factor=avg_factor * self.num_points)
        loss_dice = self.loss_dice(point_logits, point_targets, avg_factor=avg_factor)
        return loss_bce, loss_dice


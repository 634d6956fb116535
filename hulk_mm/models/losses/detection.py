"""Hulk's pedestrian-detection set loss (official ``MaskDetSetCriterion``) assembled from mmdet parts.

mmdet provides the matching (``HungarianAssigner`` with ``FocalLossCost``, ``BBoxL1Cost``, ``IoUCost``) and the
losses (``FocalLoss``, ``L1Loss``, ``GIoULoss``); what it lacks, and what this module adds, is the CrowdHuman
ignore-region rule of the official criterion (unmatched queries whose box lies inside an ignore region are left out
of the classification loss), the normalisation of every term by the mean number of GT boxes per rank, and the sum
over the decoder layers (deep supervision).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from mmdet.structures.bbox import bbox_overlaps, bbox_xyxy_to_cxcywh
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from hulk_mm.registry import MODELS, TASK_UTILS

# The release recipe (Hulk_vit-B.yaml tasks 3/4: class 2, bbox 5, giou 2, focal alpha 0.25, gamma 2). The matcher's
# focal cost uses log(p + 1e-8) as the official one does.
HULK_ASSIGNER = dict(type='HungarianAssigner', match_costs=[
    dict(type='FocalLossCost', weight=2.0, alpha=0.25, gamma=2.0, eps=1e-8),
    dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
    dict(type='IoUCost', iou_mode='giou', weight=2.0)], _scope_='mmdet')
HULK_LOSS_CLS = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0, _scope_='mmdet')
HULK_LOSS_BBOX = dict(type='L1Loss', loss_weight=5.0, _scope_='mmdet')
HULK_LOSS_IOU = dict(type='GIoULoss', loss_weight=2.0, _scope_='mmdet')


@MODELS.register_module()
class DetectionSetLoss(nn.Module):
    """DETR set loss with ignore regions, summed over decoder layers.

    For every layer and image, queries are matched one-to-one to the GT boxes (Hungarian, on that layer's own
    predictions). Classification: sigmoid focal loss over all queries, one-hot targets for the matched ones; an
    *unmatched* query whose box has intersection-over-its-own-area >= ``ignore_iof_thr`` with any ignore region gets
    weight 0. Boxes: L1 on normalised (cx, cy, w, h) and GIoU, on the matched pairs. Each term is divided by the
    number of GT boxes in the batch averaged over ranks (at least 1), the same for every layer.

    Args:
        assigner: mmdet assigner config (default: the release's Hungarian costs).
        loss_cls, loss_bbox, loss_iou: mmdet loss configs (default: focal x2, L1 x5, GIoU x2).
        ignore_iof_thr: IoA threshold of the ignore rule (0.7).
    """

    def __init__(self, assigner: dict | None = None, loss_cls: dict | None = None, loss_bbox: dict | None = None,
                 loss_iou: dict | None = None, ignore_iof_thr: float = 0.7):
        super().__init__()
        self.assigner = TASK_UTILS.build(assigner or HULK_ASSIGNER)
        self.loss_cls = MODELS.build(loss_cls or HULK_LOSS_CLS)
        self.loss_bbox = MODELS.build(loss_bbox or HULK_LOSS_BBOX)
        self.loss_iou = MODELS.build(loss_iou or HULK_LOSS_IOU)
        self.ignore_iof_thr = ignore_iof_thr

    def forward(self, layer_outputs: Sequence[tuple[Tensor, Tensor]], gt_boxes: Sequence[Tensor],
                gt_labels: Sequence[Tensor], ignore_boxes: Sequence[Tensor],
                img_shapes: Sequence[tuple[int, int]]) -> dict[str, Tensor]:
        """
        Args:
            layer_outputs: per decoder layer (boxes (B, L, 4) xyxy normalised by the valid image size,
                logits (B, L, K)).
            gt_boxes: per image (n_i, 4) xyxy in pixels of the valid image.
            gt_labels: per image (n_i,) class indices in [0, K).
            ignore_boxes: per image (m_i, 4) xyxy ignore regions in pixels (m_i may be 0).
            img_shapes: per image (h, w) of the valid image.

        Returns:
            ``loss_cls``, ``loss_bbox``, ``loss_iou``, each summed over the layers.
        """
        logits = layer_outputs[-1][1]
        num_gts = logits.new_tensor(float(sum(len(b) for b in gt_boxes)))
        avg_factor = reduce_mean(num_gts).clamp(min=1)
        factors = [logits.new_tensor([w, h, w, h]) for h, w in img_shapes]
        losses = dict(loss_cls=0, loss_bbox=0, loss_iou=0)
        for boxes, logits in layer_outputs:
            for key, value in self._layer_loss(boxes, logits, gt_boxes, gt_labels, ignore_boxes, img_shapes,
                                               factors, avg_factor).items():
                losses[key] = losses[key] + value
        return losses

    def _layer_loss(self, boxes: Tensor, logits: Tensor, gt_boxes, gt_labels, ignore_boxes, img_shapes, factors,
                    avg_factor: Tensor) -> dict[str, Tensor]:
        """One layer: (B, L, 4) normalised boxes, (B, L, K) logits -> the three weighted terms."""
        targets, weights, pred, gt, factor = [], [], [], [], []
        for i, (scale, shape) in enumerate(zip(factors, img_shapes)):
            query, index, weight = self._match(boxes[i].detach() * scale, logits[i].detach(), gt_boxes[i],
                                               gt_labels[i], ignore_boxes[i], shape)
            target = torch.zeros_like(logits[i])
            target[query, gt_labels[i][index]] = 1
            targets.append(target)
            weights.append(weight)
            pred.append(boxes[i][query])
            gt.append(gt_boxes[i][index])
            factor.append(scale.expand(len(query), 4))
        pred, gt, factor = torch.cat(pred), torch.cat(gt), torch.cat(factor)
        return dict(
            loss_cls=self.loss_cls(logits.flatten(0, 1), torch.cat(targets), torch.cat(weights),
                                   avg_factor=avg_factor),
            # L1 on boxes normalised by the valid image size, as (cx, cy, w, h)
            loss_bbox=self.loss_bbox(bbox_xyxy_to_cxcywh(pred), bbox_xyxy_to_cxcywh(gt / factor),
                                     avg_factor=avg_factor),
            # GIoU does not change under per-axis scaling; in pixels mmdet's eps stays negligible
            loss_iou=self.loss_iou(pred * factor, gt, avg_factor=avg_factor))

    @torch.no_grad()
    def _match(self, pred_px: Tensor, logits: Tensor, gt_px: Tensor, labels: Tensor, ignore_px: Tensor,
               img_shape: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """One image: matched query indices, their GT indices, and the (L,) classification weights."""
        assign = self.assigner.assign(InstanceData(scores=logits, bboxes=pred_px),
                                      InstanceData(bboxes=gt_px, labels=labels), img_meta=dict(img_shape=img_shape))
        query = torch.nonzero(assign.gt_inds > 0, as_tuple=True)[0]
        weight = logits.new_ones(len(logits))
        if len(ignore_px):
            covered = (bbox_overlaps(pred_px, ignore_px, mode='iof') >= self.ignore_iof_thr).any(dim=1)
            weight[covered & (assign.gt_inds <= 0)] = 0
        return query, assign.gt_inds[query] - 1, weight

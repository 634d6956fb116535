"""FastMETRO's mesh losses as Hulk uses them (official ``SMPL_LOSS_FASTMETRO``, spec §3.3).

Written here because upstream lacks them: mmpose 1.x has no mesh losses, and the edge-length / normal-consistency
terms (I2L-MeshNet's) exist elsewhere only in pytorch3d-based or CUDA-only code. Samples without 3-D joints or without
a mesh are masked by multiplication and counted, never selected with boolean indexing, so there is no host sync;
the values equal the official means over the selected samples (and 0 when none is selected).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hulk_mm.models.body_model import ROOT_JOINTS
from hulk_mm.models.detokenizers.mesh import weak_perspective
from hulk_mm.registry import MODELS


def _masked_mean(values: Tensor, sample_weight: Tensor) -> Tensor:
    """Mean of (B, ...) ``values`` over the samples whose (B,) weight is 1, 0 when there are none."""
    per_sample = values.flatten(1).mean(dim=1)
    return (per_sample * sample_weight).sum() / sample_weight.sum().clamp(min=1)


def _root_relative(joints: Tensor) -> Tensor:
    return joints - joints[:, list(ROOT_JOINTS)].mean(dim=1, keepdim=True)


def edge_lengths(vertices: Tensor, edges: Tensor) -> Tensor:
    """(B, V, 3), (E, 2) -> (B, E) edge lengths (with FastMETRO's +1e-8 under the root)."""
    diff = vertices[:, edges[:, 0]] - vertices[:, edges[:, 1]]
    return torch.sqrt((diff ** 2).sum(-1) + 1e-8)


def normal_consistency(pred: Tensor, gt: Tensor, faces: Tensor) -> Tensor:
    """(B, F, 3): |cos| between each predicted triangle's three edge directions and the ground-truth face normal
    (0 when the predicted faces lie in the ground-truth planes). I2L-MeshNet ``NormalVectorLoss``."""
    def unit(v, a, b):
        return F.normalize(v[:, faces[:, b]] - v[:, faces[:, a]], dim=2)
    normal = F.normalize(torch.cross(unit(gt, 0, 1), unit(gt, 0, 2), dim=2), dim=2)
    return torch.stack([(unit(pred, a, b) * normal).sum(2).abs() for a, b in ((0, 1), (0, 2), (1, 2))], dim=2)


@MODELS.register_module()
class FastMETROLoss(nn.Module):
    """1000 x L1 3-D joints + 100 x vertex L1 + 100 x edge / normal terms + 100 x L1 2-D joints.

    Each term, with the official hard-coded weights as defaults:

    * ``loss_3d_joints`` = ``joints_3d_weight`` x (L1 of the token joints + L1 of the joints regressed from the mesh),
      both and the ground truth relative to their mid-hip, over samples with 3-D joints;
    * ``loss_vertices`` = ``vertices_weight`` x weighted (``vertex_level_weights``: coarse, intermediate, fine) L1 of
      the pelvis-relative meshes, over samples with a mesh;
    * ``loss_edge_normal`` = ``edge_normal_weight`` x (``edge_gt_weight`` |edge length - ground truth| +
      ``edge_self_weight`` edge length + ``normal_weight`` normal consistency) on the intermediate mesh, over samples
      with a mesh;
    * ``loss_2d_joints`` = ``joints_2d_weight`` x confidence-weighted L1 of both joint sets projected with the
      predicted camera, over all samples (as the official code: its ``has_2d_joints`` is unused).

    Args:
        faces: (F, 3) and edges: (E, 2) of the intermediate mesh (the body model's).
        other arguments: the weights above.
    """

    def __init__(self, faces: Tensor, edges: Tensor, joints_3d_weight: float = 1000.0, vertices_weight: float = 100.0,
                 vertex_level_weights: tuple[float, float, float] = (0.25, 0.5, 0.25),
                 edge_normal_weight: float = 100.0, edge_gt_weight: float = 5.0, edge_self_weight: float = 1e-4,
                 normal_weight: float = 0.1, joints_2d_weight: float = 100.0):
        super().__init__()
        self.register_buffer('faces', torch.as_tensor(faces, dtype=torch.long), persistent=False)
        self.register_buffer('edges', torch.as_tensor(edges, dtype=torch.long), persistent=False)
        self.joints_3d_weight = joints_3d_weight
        self.vertices_weight = vertices_weight
        self.vertex_level_weights = tuple(vertex_level_weights)
        self.edge_normal_weight = edge_normal_weight
        self.edge_gt_weight = edge_gt_weight
        self.edge_self_weight = edge_self_weight
        self.normal_weight = normal_weight
        self.joints_2d_weight = joints_2d_weight

    def forward(self, pred: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
        """
        Args:
            pred: :class:`~hulk_mm.models.detokenizers.MeshDetokenizer` outputs.
            target: ``joints3d`` (B, J, 3) metres (any origin), ``has_joints3d`` (B,); ``vertices_coarse``,
                ``vertices_intermediate``, ``vertices_fine`` (B, V*, 3) relative to the ground-truth mesh's pelvis,
                ``has_vertices`` (B,); ``joints2d`` (B, J, 2) in normalised crop coordinates with
                ``joints2d_confidence`` (B, J).

        Returns:
            ``loss_3d_joints``, ``loss_vertices``, ``loss_edge_normal``, ``loss_2d_joints``.
        """
        has_joints = target['has_joints3d'].to(pred['joints'].dtype)
        has_mesh = target['has_vertices'].to(pred['joints'].dtype)
        gt_joints = _root_relative(target['joints3d'])
        loss_3d = sum(_masked_mean((_root_relative(pred[k]) - gt_joints).abs(), has_joints)
                      for k in ('joints', 'joints_from_mesh'))
        loss_vertices = sum(w * _masked_mean((pred[f'vertices_{k}'] - target[f'vertices_{k}']).abs(), has_mesh)
                            for w, k in zip(self.vertex_level_weights, ('coarse', 'intermediate', 'fine')))
        pred_mid, gt_mid = pred['vertices_intermediate'], target['vertices_intermediate']
        pred_len, gt_len = edge_lengths(pred_mid, self.edges), edge_lengths(gt_mid, self.edges)
        loss_edge_normal = (self.edge_gt_weight * _masked_mean((pred_len - gt_len).abs(), has_mesh)
                            + self.edge_self_weight * _masked_mean(pred_len, has_mesh)
                            + self.normal_weight * _masked_mean(normal_consistency(pred_mid, gt_mid, self.faces),
                                                                has_mesh))
        confidence = target['joints2d_confidence'][..., None].to(pred['joints'].dtype)
        loss_2d = sum((confidence * (weak_perspective(pred[k], pred['cam']) - target['joints2d']).abs()).mean()
                      for k in ('joints', 'joints_from_mesh'))
        return dict(loss_3d_joints=self.joints_3d_weight * loss_3d, loss_vertices=self.vertices_weight * loss_vertices,
                    loss_edge_normal=self.edge_normal_weight * loss_edge_normal,
                    loss_2d_joints=self.joints_2d_weight * loss_2d)

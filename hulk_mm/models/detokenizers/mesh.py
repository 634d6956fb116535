"""Digit de-tokenizer of the mesh task: one (x, y, z) per label token -> camera, 3-D joints and a three-level mesh.

Official ``proj_sparse_labeling`` (SMPL branch, spec §3.3) with the decoding that the official code runs inside its
loss (``SMPL_LOSS_FASTMETRO.forward``) separated out, so it runs without ground truth (spec §9).
"""
from __future__ import annotations

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.body_model import ROOT_JOINTS, BodyModel
from hulk_mm.registry import MODELS


def weak_perspective(points: Tensor, cam: Tensor) -> Tensor:
    """Weak-perspective projection of root-relative points into normalised crop coordinates ([-1, 1] across the
    crop): ``x_n = s * (X + t)`` (METRO / FastMETRO ``orthographic_projection``; the camera convention of the mesh
    data, ``hulk_mm.datasets.synthetic.writers.mesh``).

    Args:
        points: (B, N, 3) root-relative points in metres.
        cam: (B, 3) camera (s, tx, ty).

    Returns:
        (B, N, 2).
    """
    return cam[:, None, :1] * (points[..., :2] + cam[:, None, 1:])


@MODELS.register_module()
class MeshDetokenizer(BaseModule):
    """(B, 1 + J + Vc, d) label outputs -> camera, joints and coarse / intermediate / fine meshes.

    A Linear d -> 3 on every token (official ``output_proj``): token 0 is the weak-perspective camera (s, tx, ty),
    the next J tokens the 3-D joints, the last Vc tokens the coarse vertices, all regressed directly (no SMPL
    parameters). A learnable Linear Vc -> Vi up-samples the coarse mesh (official
    ``loss_fn.coarse2intermediate_upsample``, applied to each coordinate), the body model's fixed matrix Vi -> V the
    intermediate one; the body model's regressor gives the joints from the fine mesh and its pelvis, which every
    mesh level and those joints are expressed relative to. The token joints are relative to their own mid-hip.

    Args:
        embed_dim: decoder width d.
        num_joints: J (from the body model: 14).
        num_coarse: Vc coarse vertices (SMPL 431).
        num_intermediate: Vi intermediate vertices (SMPL 1723).
    """

    def __init__(self, embed_dim: int, num_joints: int, num_coarse: int, num_intermediate: int, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_joints = num_joints
        self.num_coarse = num_coarse
        self.output_proj = nn.Linear(embed_dim, 3)
        self.coarse2intermediate_upsample = nn.Linear(num_coarse, num_intermediate)

    def forward(self, tokens: Tensor, body_model: BodyModel) -> dict[str, Tensor]:
        """
        Args:
            tokens: (B, 1 + J + Vc, d) label outputs of one decoder layer.
            body_model: the task's :class:`~hulk_mm.models.body_model.BodyModel`.

        Returns:
            dict of ``cam`` (B, 3); ``joints`` (B, J, 3) from the joint tokens, relative to their mid-hip;
            ``joints_from_mesh`` (B, J, 3) regressed from the fine mesh; ``vertices_coarse`` (B, Vc, 3),
            ``vertices_intermediate`` (B, Vi, 3), ``vertices_fine`` (B, V, 3); the last four relative to the pelvis
            regressed from the fine mesh. Metres in the camera frame of the crop (x right, y down, z forward).
        """
        j, vc = self.num_joints, self.num_coarse
        if tokens.shape[1] != 1 + j + vc:
            raise ValueError(f'MeshDetokenizer expects 1 + {j} + {vc} = {1 + j + vc} tokens, got {tokens.shape[1]}')
        points = self.output_proj(tokens)
        cam, joints, coarse = points[:, 0], points[:, 1:1 + j], points[:, 1 + j:]
        intermediate = self.coarse2intermediate_upsample(coarse.transpose(1, 2)).transpose(1, 2)
        fine = body_model.upsample(intermediate)
        joints_from_mesh, pelvis = body_model.joints(fine)
        pelvis = pelvis[:, None]
        root = joints[:, list(ROOT_JOINTS)].mean(dim=1, keepdim=True)
        return dict(cam=cam, joints=joints - root, joints_from_mesh=joints_from_mesh - pelvis,
                    vertices_coarse=coarse - pelvis, vertices_intermediate=intermediate - pelvis,
                    vertices_fine=fine - pelvis)

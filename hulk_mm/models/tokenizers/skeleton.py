"""Skeleton tokenizer (spec §2.2): 2-D keypoint sequences -> spatio-temporal tokens, with joint-name embeddings.

    one person's sequence (B, T, V, 3): x, y, score of V = 17 COCO joints over T frames
      -> strided conv, kernel = stride = (7 frames, 2 joints)            (B, C, T/7, V//2)
      -> LayerNorm over channels, LeakyReLU(0.1)
      -> + merged joint-name embedding of each joint pair (per column)
      -> + fixed position table                                          (B, T/7 * V//2, C)

Official: ``SpatialTemporalSeq2DSkActionInputAdapter`` (``adapter_sparse_labeling`` of the skeleton tasks), key names
kept for its parameters. Persons (and clips) are folded into the batch by the caller, as the official adapter does
with ``(N * M, C, T, V)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.detokenizers.semantic import load_text_features
from hulk_mm.models.positional import mae_pos_embed, resample_2d
from hulk_mm.registry import MODELS


@MODELS.register_module()
class SkeletonTokenizer(BaseModule):
    """(B, T, V, 3) keypoint sequences  ->  (B, T/pt * V//pj, C) tokens.

    The conv kernel has 4 input channels, (x, y, z, score); 2-D data (x, y, score) uses channels 0, 1 and 3
    (channel 2 is the depth of 3-D skeletons). Frames and joints that do not fill a whole patch are dropped, as by
    the official strided conv (17 joints -> 8 pairs covering joints 0-15).

    The frozen text embeddings of the V joint names (``joint_text``, width C: Hulk adds BERT vectors to 768-d tokens)
    are grouped in consecutive runs of ``pj`` joints and merged by a learned ``pj``-tap weighted sum plus bias; the
    result is added to every token of the matching joint column.

    The position table is MAE's 14x14 sin-cos grid resampled bicubically to the token grid and kept fixed; an
    input with another number of frames gets it resampled to its grid (official ``learnable_interpolate``).

    Args:
        num_frames: T the position table is built for (Hulk: 175 = 25 segments x 7 frames).
        num_joints: V (Hulk: 17 COCO joints).
        patch_size: (frames, joints) per token = conv kernel = stride.
        embed_dim: token width C.
        joint_text: source of the (V, C) joint-name table, see
            :func:`~hulk_mm.models.detokenizers.semantic.load_text_features` (Hulk: ``coco_body_17joints.pth``).
    """

    XY_SCORE_CHANNELS = (0, 1, 3)  # kernel channels of (x, y, score); channel 2 is z

    def __init__(self, num_frames: int = 175, num_joints: int = 17, patch_size: tuple[int, int] = (7, 2),
                 embed_dim: int = 768, joint_text: str | int = 0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        pt, pj = int(patch_size[0]), int(patch_size[1])
        if num_frames < pt or num_joints < pj:
            raise ValueError(f'patch_size {(pt, pj)} does not fit {num_frames} frames x {num_joints} joints')
        self.patch_size = (pt, pj)
        self.num_joints = num_joints
        self.embed_dim = embed_dim
        self.grid = (num_frames // pt, num_joints // pj)
        # Official initialisation: an all-ones kernel and a zero bias (the MAE weights it loads do not fit it), and
        # a merge kernel of ones.
        self.proj_kernel_weight = nn.Parameter(torch.ones(embed_dim, 4, pt, pj))
        self.proj_kernel_bias = nn.Parameter(torch.zeros(embed_dim))
        self.norm = nn.LayerNorm(embed_dim)
        self.act = nn.LeakyReLU(0.1)
        self.register_buffer('joint_text', load_text_features(joint_text, num_joints, embed_dim))
        self.merge_kernel_weight = nn.Parameter(torch.ones(1, 1, pj, 1))
        self.merge_kernel_bias = nn.Parameter(torch.zeros(1))
        self.register_buffer('pos_embed', mae_pos_embed(embed_dim, self.grid))

    def joint_embeddings(self) -> Tensor:
        """(V // pj, C): the joint-name vectors merged per joint group, w . t[group] + b."""
        pj = self.patch_size[1]
        groups = self.joint_text[:self.grid[1] * pj].reshape(self.grid[1], pj, self.embed_dim)
        return torch.einsum('gjc,j->gc', groups, self.merge_kernel_weight.reshape(pj)) + self.merge_kernel_bias

    def forward(self, keypoints: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """
        Args:
            keypoints: (B, T, V, 3) float, per frame and joint (x, y, score), T >= the patch's frames.

        Returns:
            tokens (B, T/pt * V//pj, C), row-major over (time, joint group), and the token grid (T/pt, V//pj).
        """
        if (keypoints.dim() != 4 or keypoints.shape[-1] != 3 or keypoints.shape[2] != self.num_joints
                or keypoints.shape[1] < self.patch_size[0]):
            raise ValueError(f'SkeletonTokenizer expects (B, T, {self.num_joints}, 3) keypoint sequences (x, y, score) '
                             f'with T >= {self.patch_size[0]}, got {tuple(keypoints.shape)}')
        weight = self.proj_kernel_weight[:, list(self.XY_SCORE_CHANNELS)]
        x = F.conv2d(keypoints.permute(0, 3, 1, 2), weight, self.proj_kernel_bias, stride=self.patch_size)
        grid = tuple(x.shape[-2:])
        x = self.act(self.norm(x.permute(0, 2, 3, 1)))  # (B, T', V', C)
        x = x + self.joint_embeddings()
        pos = resample_2d(self.pos_embed[0], self.grid, grid)
        return x.flatten(1, 2) + pos, grid

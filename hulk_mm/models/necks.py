"""ViTDet's simple feature pyramid over the last map of :class:`~hulk_mm.models.backbone.HulkEncoder`.

mmdet 3.3.0 ships its ``SimpleFPN`` only in ``projects/ViTDet`` (not in the installed package), so it is written
here, after ViTDet (Li et al. 2022, detectron2 ``SimpleFeaturePyramid``), from mmcv parts (``ConvModule``).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.detokenizers.dense import Norm2d
from hulk_mm.registry import MODELS


class LayerNorm2d(Norm2d):
    """ViTDet's channels-first LayerNorm (eps 1e-6); ``_abbr_`` names it ``ln`` inside mmcv's ``ConvModule``."""

    _abbr_ = 'ln'


def _resampler(scale: float, channels: int) -> tuple[nn.Module, int]:
    """ViTDet's per-scale stage: (B, C, h, w) -> (B, C', scale*h, scale*w) and C'."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2),
            LayerNorm2d(channels // 2),
            nn.GELU(),
            nn.ConvTranspose2d(channels // 2, channels // 4, kernel_size=2, stride=2)), channels // 4
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2), channels
    raise ValueError(f'scale factor {scale} is not one of ViTDet\'s 4.0, 2.0, 1.0, 0.5')


@MODELS.register_module()
class HulkSimpleFPN(BaseModule):
    """The last (B, C, H/16, W/16) backbone map -> a pyramid of (B, out_channels, H/s, W/s) maps, s = 16 / scale.

    Per scale factor: 4.0 = ConvT(2, 2) -> LayerNorm2d -> GELU -> ConvT(2, 2) (C/4 channels); 2.0 = ConvT(2, 2)
    (C/2); 1.0 = identity; 0.5 = 2x2 max-pool. Each is followed by a 1x1 conv to ``out_channels`` and a 3x3 conv,
    both without bias and each followed by LayerNorm2d (ViTDet's ``norm="LN"``, no activation). Extra levels beyond
    the scales (``num_outs``) are 1x1 max-pools with stride 2 of the last output, as ViTDet's ``LastLevelMaxPool``
    and mmdet's FPN (Mask R-CNN / RPN: strides 4, 8, 16, 32, 64).

    In an mmdet or mmseg config, reach it through the hulk_mm scope prefix: ``neck=dict(type='hulk_mm.HulkSimpleFPN',
    in_channels=768, out_channels=256, num_outs=5)`` next to ``backbone=dict(type='hulk_mm.HulkEncoder', ...)``. The
    prefix makes mmdet's registry import ``hulk_mm.registry`` and look the name up there (its lazy ``locations``
    import ``hulk_mm.models``, which must import this module); the neck builds no registry types of its own, so the
    outer codebase's scope stays in force for the rest of the model.

    Args:
        in_channels: C of the backbone map.
        out_channels: channels of every output level.
        scale_factors: pyramid scales relative to the input map, from fine to coarse.
        num_outs: number of outputs (>= the number of scales); extra ones are max-pooled.
    """

    def __init__(self, in_channels: int = 768, out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5), num_outs: int | None = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = len(self.scale_factors) if num_outs is None else num_outs
        if self.num_outs < len(self.scale_factors):
            raise ValueError(f'num_outs {self.num_outs} < number of scale factors {len(self.scale_factors)}')
        norm = dict(type=LayerNorm2d)
        self.resamplers = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for scale in self.scale_factors:
            resampler, channels = _resampler(scale, in_channels)
            self.resamplers.append(resampler)
            self.lateral_convs.append(ConvModule(channels, out_channels, 1, norm_cfg=norm, act_cfg=None))
            self.output_convs.append(ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm, act_cfg=None))

    def forward(self, inputs: Sequence[Tensor] | Tensor) -> tuple[Tensor, ...]:
        """
        Args:
            inputs: the backbone's maps (the last one is used) or one (B, C, h, w) map.

        Returns:
            ``num_outs`` maps (B, out_channels, h * scale, w * scale), then the extra pooled levels.
        """
        x = inputs if isinstance(inputs, Tensor) else inputs[-1]
        outs = [out(lateral(resample(x)))
                for resample, lateral, out in zip(self.resamplers, self.lateral_convs, self.output_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)

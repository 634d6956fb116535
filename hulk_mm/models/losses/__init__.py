"""Losses that upstream lacks. The pose heatmap MSE is mmpose's ``KeypointMSELoss(use_target_weight=True)``: it is
exactly Hulk's "mean over all elements of (pred - target)^2 * target_weight"."""
from .attribute import MaskedOneSideBCELoss
from .detection import DetectionSetLoss
from .mesh import FastMETROLoss
from .parsing import PointSampledMaskLoss
from .visibility import VisibilityBCELoss

__all__ = ['DetectionSetLoss', 'FastMETROLoss', 'MaskedOneSideBCELoss', 'PointSampledMaskLoss', 'VisibilityBCELoss']

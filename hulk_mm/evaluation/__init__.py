"""Metrics upstream lacks (attribute mA, caption BLEU-4, mesh errors)."""
from .metrics import AttributeMetric, CaptionMetric, MeshMetric

__all__ = ['AttributeMetric', 'CaptionMetric', 'MeshMetric']

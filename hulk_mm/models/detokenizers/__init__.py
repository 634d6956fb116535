"""De-tokenizers: decoder output tokens -> task outputs."""
from .dense import DenseUpsampler, HeatmapDetokenizer, Norm2d
from .semantic import SemanticDetokenizer, SemanticProjection, load_text_features

__all__ = ['DenseUpsampler', 'HeatmapDetokenizer', 'Norm2d', 'SemanticDetokenizer', 'SemanticProjection',
           'load_text_features']

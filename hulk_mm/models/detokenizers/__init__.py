"""De-tokenizers: decoder output tokens -> task outputs."""
from .boxes import AnchorBoxRegressor, BoxDetokenizer, ScalarAffineClassifier
from .dense import DenseUpsampler, HeatmapDetokenizer, Norm2d
from .semantic import SemanticDetokenizer, SemanticProjection, load_text_features

__all__ = ['AnchorBoxRegressor', 'BoxDetokenizer', 'DenseUpsampler', 'HeatmapDetokenizer', 'Norm2d', 'ScalarAffineClassifier',
           'SemanticDetokenizer', 'SemanticProjection', 'load_text_features']

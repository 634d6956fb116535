"""De-tokenizers: decoder output tokens -> task outputs."""
from .boxes import AnchorBoxRegressor, BoxDetokenizer, ScalarAffineClassifier
from .dense import DenseUpsampler, HeatmapDetokenizer, MaskDetokenizer, Norm2d
from .mesh import MeshDetokenizer, weak_perspective
from .semantic import SemanticDetokenizer, SemanticProjection, load_text_features

__all__ = ['AnchorBoxRegressor', 'BoxDetokenizer', 'DenseUpsampler', 'HeatmapDetokenizer', 'MaskDetokenizer',
           'MeshDetokenizer', 'Norm2d', 'ScalarAffineClassifier',
           'SemanticDetokenizer', 'SemanticProjection', 'load_text_features',
           'weak_perspective']

"""Hulk's model parts: tokenizers, shared encoder, and their use as OpenMMLab backbones."""
from .backbone import HulkEncoder
from .decoder import DecoderLayer, HulkDecoder
from .detokenizers import HeatmapDetokenizer, SemanticDetokenizer, SemanticProjection
from .encoder import ViTEncoder
from .hulk import Hulk, HulkDataPreprocessor, HulkShared
from .official import convert_official_state_dict, dropped_official_keys
from .losses import VisibilityBCELoss
from .tasks import Pathway, PosePathway
from .tokenizers import ImageTokenizer

__all__ = [
    'DecoderLayer', 'HeatmapDetokenizer', 'Hulk', 'HulkDataPreprocessor', 'HulkDecoder', 'HulkShared', 'HulkEncoder',
    'ImageTokenizer', 'Pathway', 'PosePathway', 'SemanticDetokenizer', 'SemanticProjection', 'ViTEncoder',
    'VisibilityBCELoss', 'convert_official_state_dict', 'dropped_official_keys'
]

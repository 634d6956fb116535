"""Hulk's model parts: tokenizers, shared encoder, and their use as OpenMMLab backbones."""
from .backbone import HulkViT
from .decoder import DecoderLayer, HulkDecoder
from .detokenizers import HeatmapDetokenizer, SemanticDetokenizer
from .encoder import ViTEncoder
from .hulk import Hulk, HulkDataPreprocessor, HulkShared, convert_official_state_dict
from .losses import VisibilityBCELoss
from .tasks import PosePathway
from .tokenizers import ImageTokenizer

__all__ = [
    'DecoderLayer', 'HeatmapDetokenizer', 'Hulk', 'HulkDataPreprocessor', 'HulkDecoder', 'HulkShared', 'HulkViT',
    'ImageTokenizer', 'PosePathway', 'SemanticDetokenizer', 'ViTEncoder', 'VisibilityBCELoss',
    'convert_official_state_dict'
]

"""Hulk's model parts: tokenizers, shared encoder, and their use as OpenMMLab backbones."""
from .backbone import HulkEncoder
from .decoder import DecoderLayer, HulkDecoder
from .detokenizers import BoxDetokenizer, HeatmapDetokenizer, SemanticDetokenizer, SemanticProjection
from .encoder import ViTEncoder
from .hulk import Hulk, HulkDataPreprocessor, HulkShared
from .official import convert_official_state_dict, dropped_official_keys
from .losses import DetectionSetLoss, MaskedOneSideBCELoss, VisibilityBCELoss
from .necks import HulkSimpleFPN
from .pretrained import load_encoder_weights, mae_to_hulk_state_dict
from .tasks import (AttributePathway, CaptionPathway, ClassQueryPathway, DetectionPathway, Pathway, PosePathway,
                    SkeletonActionPathway)
from .tokenizers import CaptionVocabulary, CaptionWordEmbedding, ImageTokenizer, SkeletonTokenizer

__all__ = [
    'AttributePathway', 'ClassQueryPathway', 'MaskedOneSideBCELoss', 'SkeletonActionPathway', 'SkeletonTokenizer',
    'BoxDetokenizer', 'CaptionPathway', 'CaptionVocabulary', 'CaptionWordEmbedding', 'DecoderLayer', 'DetectionPathway', 'DetectionSetLoss', 'HeatmapDetokenizer', 'Hulk', 'HulkDataPreprocessor', 'HulkDecoder', 'HulkShared', 'HulkEncoder', 'HulkSimpleFPN',
    'ImageTokenizer', 'Pathway', 'PosePathway', 'SemanticDetokenizer', 'SemanticProjection', 'ViTEncoder',
    'VisibilityBCELoss', 'convert_official_state_dict', 'dropped_official_keys',
    'load_encoder_weights', 'mae_to_hulk_state_dict'
]

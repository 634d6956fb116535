"""Hulk's model parts: tokenizers, shared encoder and decoder, de-tokenizers, task pathways, the Hulk model, and
the encoder as an OpenMMLab backbone."""
from .backbone import HulkEncoder
from .body_model import BodyModel, load_body_model, smpl_body_model
from .decoder import DecoderLayer, HulkDecoder
from .detokenizers import (BoxDetokenizer, HeatmapDetokenizer, MaskDetokenizer, MeshDetokenizer, SemanticDetokenizer,
                           SemanticProjection)
from .encoder import ViTEncoder
from .hulk import Hulk, HulkDataPreprocessor, HulkShared
from .losses import (DetectionSetLoss, FastMETROLoss, MaskedOneSideBCELoss, PointSampledMaskLoss,
                     VisibilityBCELoss)
from .necks import HulkSimpleFPN
from .official import convert_official_state_dict, dropped_official_keys, merge_official_state_dicts
from .pretrained import load_encoder_weights, mae_to_hulk_state_dict
from .tasks import (AttributePathway, CaptionPathway, ClassQueryPathway, DetectionPathway, MeshPathway,
                    ParsingPathway, Pathway, PosePathway, SkeletonActionPathway)
from .tokenizers import CaptionVocabulary, CaptionWordEmbedding, ImageTokenizer, SkeletonTokenizer

__all__ = [
    'AttributePathway', 'BodyModel', 'BoxDetokenizer', 'CaptionPathway', 'CaptionVocabulary', 'CaptionWordEmbedding',
    'ClassQueryPathway', 'DecoderLayer', 'DetectionPathway', 'DetectionSetLoss', 'FastMETROLoss',
    'HeatmapDetokenizer', 'Hulk', 'HulkDataPreprocessor', 'HulkDecoder', 'HulkEncoder', 'HulkShared',
    'HulkSimpleFPN', 'ImageTokenizer', 'MaskDetokenizer', 'MaskedOneSideBCELoss', 'MeshDetokenizer', 'MeshPathway',
    'ParsingPathway', 'Pathway', 'PointSampledMaskLoss', 'PosePathway', 'SemanticDetokenizer', 'SemanticProjection',
    'SkeletonActionPathway', 'SkeletonTokenizer', 'ViTEncoder', 'VisibilityBCELoss', 'convert_official_state_dict',
    'dropped_official_keys', 'load_body_model', 'load_encoder_weights', 'mae_to_hulk_state_dict',
    'merge_official_state_dicts', 'smpl_body_model'
]

"""Hulk's model parts: tokenizers, shared encoder, and their use as OpenMMLab backbones."""
from .backbone import HulkViT
from .decoder import DecoderLayer, HulkDecoder
from .encoder import ViTEncoder
from .tokenizers import ImageTokenizer

__all__ = ['DecoderLayer', 'HulkDecoder', 'HulkViT', 'ImageTokenizer', 'ViTEncoder']

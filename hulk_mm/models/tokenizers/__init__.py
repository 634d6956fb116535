from .caption import CaptionVocabulary, CaptionWordEmbedding, clean_caption
from .image import ImageTokenizer

__all__ = ['CaptionVocabulary', 'CaptionWordEmbedding', 'ImageTokenizer', 'clean_caption']

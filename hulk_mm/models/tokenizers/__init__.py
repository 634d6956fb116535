from .caption import CaptionVocabulary, CaptionWordEmbedding, clean_caption
from .image import ImageTokenizer
from .skeleton import SkeletonTokenizer

__all__ = ['CaptionVocabulary', 'CaptionWordEmbedding', 'ImageTokenizer', 'SkeletonTokenizer', 'clean_caption']

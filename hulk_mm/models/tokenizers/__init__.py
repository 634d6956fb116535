from .image import ImageTokenizer

__all__ = ['ImageTokenizer']

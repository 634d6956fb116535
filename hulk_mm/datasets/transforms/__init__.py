"""Data transforms upstream lacks."""
from .formatting import PackAttributeInputs, PackCaptionInputs

__all__ = ['PackAttributeInputs', 'PackCaptionInputs']

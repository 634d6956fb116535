"""Data transforms upstream lacks."""
from .formatting import PackAttributeInputs, PackCaptionInputs, PackMeshInputs

__all__ = ['PackAttributeInputs', 'PackCaptionInputs', 'PackMeshInputs']

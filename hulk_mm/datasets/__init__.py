"""Datasets upstream lacks, the SynthHuman generator (``synthetic``) and multi-task loading."""
from .attribute_dataset import PedestrianAttributeDataset
from .caption_dataset import PedestrianCaptionDataset
from .mesh_dataset import HumanMeshDataset

__all__ = ['HumanMeshDataset', 'PedestrianAttributeDataset', 'PedestrianCaptionDataset']

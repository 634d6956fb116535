"""Task pathways: what is task-specific about each Hulk task, and nothing else."""
from .base import Pathway
from .detection import DetectionPathway
from .pose import PosePathway

__all__ = ['DetectionPathway', 'Pathway', 'PosePathway']

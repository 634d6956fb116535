"""Task pathways: what is task-specific about each Hulk task, and nothing else."""
from .base import Pathway
from .caption import CaptionPathway
from .detection import DetectionPathway
from .pose import PosePathway

__all__ = ['CaptionPathway', 'DetectionPathway', 'Pathway', 'PosePathway']

"""Task pathways: what is task-specific about each Hulk task, and nothing else."""
from .base import Pathway
from .pose import PosePathway

__all__ = ['Pathway', 'PosePathway']

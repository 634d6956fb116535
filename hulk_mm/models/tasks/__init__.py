"""Task pathways: what is task-specific about each Hulk task, and nothing else."""
from .pose import PosePathway

__all__ = ['PosePathway']

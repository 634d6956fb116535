"""Task pathways: what is task-specific about each Hulk task, and nothing else."""
from .base import Pathway
from .attribute import AttributePathway
from .caption import CaptionPathway
from .class_query import ClassQueryPathway
from .detection import DetectionPathway
from .mesh import MeshPathway
from .parsing import ParsingPathway
from .pose import PosePathway
from .skeleton_action import SkeletonActionPathway

__all__ = [
    'AttributePathway', 'CaptionPathway', 'ClassQueryPathway', 'DetectionPathway', 'MeshPathway', 'ParsingPathway', 'Pathway',
    'PosePathway', 'SkeletonActionPathway'
]

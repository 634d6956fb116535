"""Task writers: turn scenes into the files of real benchmarks (COCO/AIC keypoints, CrowdHuman, LIP/CIHP).

A writer works in two phases so that scenes can be rendered in worker processes:

* ``image_record(scene, split, image_id)`` runs in the worker right after a scene is rendered; it may write
  per-image files (label maps, crops) and returns a small JSON-safe record;
* ``finalize(records)`` runs once in the main process with ``{split: [record, ...]}`` in image order, writes the
  annotation files and returns the task's manifest entry.

Thresholds (pixels of the default 320x256 scene; documented here because they decide what counts as a target):

* pose: a person is annotated when at least one COCO keypoint is visible (v=2), the clipped full box is at least
  ``MIN_POSE_BOX`` px on both sides and at least ``MIN_POSE_AREA`` of its pixels are visible;
* detection: every person with a visible pixel gets a box; ``extra.ignore=1`` when fewer than
  ``MIN_DET_VISIBLE_FRACTION`` of the silhouette is visible (occluded or truncated) or the visible box is under
  ``MIN_DET_HEIGHT`` px tall;
* parsing (LIP crops): people with at least ``MIN_CROP_AREA`` visible pixels, a visible box at least
  ``MIN_CROP_HEIGHT`` px tall and at most ``MAX_CROP_OCCLUSION`` of their in-image silhouette hidden. A crop is
  the visible box padded by ``CROP_PAD`` of its size; pixels of other people inside it are 255 (ignored by
  mmseg), background and bags are 0.
* attribute and caption: stricter crops (whole body judgeable; thresholds in ``attribute``'s docstring).
* mesh: crops of people with little truncation and occlusion (thresholds in ``mesh``'s docstring);
  skeleton_action does not use the scene (one generated clip per scene index).
"""
from .attribute import AttributeWriter
from .base import SPLIT_IDS, TaskWriter, encode_jpeg, image_name
from .caption import CaptionWriter
from .detection import DetectionWriter
from .mesh import MeshWriter
from .parsing import ParsingWriter
from .pose import PoseWriter
from .skeleton_action import SkeletonActionWriter

# canonical task name -> writer class; a new task adds its module and one entry here
WRITERS = {w.name: w for w in (PoseWriter, DetectionWriter, ParsingWriter, AttributeWriter, CaptionWriter,
                               SkeletonActionWriter, MeshWriter)}

__all__ = ['SPLIT_IDS', 'TaskWriter', 'WRITERS', 'encode_jpeg', 'image_name']

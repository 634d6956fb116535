"""SynthHuman: a procedural synthetic human benchmark written in real benchmark formats.

Pure numpy + OpenCV (no torch, no OpenMMLab imports), so it runs before anything else is installed.
``body`` (skeleton, pose space, camera) -> ``render`` (z-buffered capsules, LIP labels) -> ``scene`` (per-person
records) -> ``writers`` (COCO/AIC, CrowdHuman, LIP/CIHP files) -> ``generator.generate`` (splits + manifest).
"""
from .body import (COCO_KEYPOINTS, POINT_NAMES, POSE_LIMITS, POSE_NAMES, Camera, forward_kinematics, project,
                   sample_pose, sample_shape)
from .generator import GENERATOR_VERSION, TASKS, generate, resolve_tasks, scene_rng
from .render import LIP_CLASSES
from .scene import Person, Scene, SceneConfig, generate_scene

__all__ = [
    'COCO_KEYPOINTS', 'POINT_NAMES', 'POSE_LIMITS', 'POSE_NAMES', 'Camera', 'forward_kinematics', 'project',
    'sample_pose', 'sample_shape', 'GENERATOR_VERSION', 'TASKS', 'generate', 'resolve_tasks',
    'scene_rng', 'LIP_CLASSES', 'Person', 'Scene', 'SceneConfig', 'generate_scene'
]

"""Helpers of the analysis tools (FLOPs, speed): build a config's Hulk model without its asset files (text tables,
body model), and call one pathway's test-time forward as a plain module."""
from __future__ import annotations

import copy

import torch.nn as nn
from torch import Tensor


def with_stand_in_assets(model_cfg: dict) -> dict:
    """A copy of a model config whose asset files are replaced by seeded stand-ins of the same sizes: text tables
    (``text_features``, ``joint_text``) and the mesh body model (``body_model``, SMPL-sized).

    The analysis tools measure shapes and time, not values, so they need not have the files a config names
    (``data/hulk_text/*.pth`` from ``tools/make_text_features.py`` or converted weights; the licensed SMPL assets).
    """
    from hulk_mm.models.body_model import stand_in_body_model

    def stand_in(key, value):
        if key in ('text_features', 'joint_text') and isinstance(value, str):
            return 0
        if key == 'body_model' and isinstance(value, str):
            return stand_in_body_model()
        return walk(value)

    def walk(node):
        if isinstance(node, dict):
            return {k: stand_in(k, v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(walk(v) for v in node)
        return node
    return walk(copy.deepcopy(dict(model_cfg)))


class PathwayInference(nn.Module):
    """``module(*inputs)`` = ``model.tasks[name].infer(model.shared, *inputs)``: one task's test-time network
    forward as a module (what FLOP counters and tracers take)."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model = model
        self.name = name

    def forward(self, *inputs: Tensor):
        return self.model.tasks[self.name].infer(self.model.shared, *inputs)


def as_tuple(inputs) -> tuple:
    """``example_inputs`` may give one tensor or a tuple of them."""
    return inputs if isinstance(inputs, tuple) else (inputs, )

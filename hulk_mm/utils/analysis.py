"""Helpers of the analysis tools (FLOPs, speed): build a config's Hulk model without its text-table files, and
call one pathway's test-time forward as a plain module."""
from __future__ import annotations

import copy

import torch.nn as nn
from torch import Tensor


def with_stand_in_text_tables(model_cfg: dict) -> dict:
    """A copy of a model config whose ``text_features`` file paths are replaced by seeded stand-in tables.

    The analysis tools measure shapes and time, not values, so they need not have the text tables a config names
    (``data/hulk_text/*.pth``, made by ``tools/make_text_features.py`` or shipped with converted weights).
    """
    def walk(node):
        if isinstance(node, dict):
            return {k: (0 if k == 'text_features' and isinstance(v, str) else walk(v)) for k, v in node.items()}
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

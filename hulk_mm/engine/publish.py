"""Training checkpoint -> weights file (the weights-vs-checkpoints contract of the architecture notes).

A training checkpoint (``iter_N.pth``) carries optimizer, scheduler and message-hub state and is only for
``--resume``. A weights file holds ``{'state_dict': tensors, 'meta': JSON-safe dict}`` and loads with
``torch.load(weights_only=True)``: it is what ``load_from``, ``tools/test.py``, the inferencer and the projects take.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from collections import OrderedDict

import numpy as np
import torch

from hulk_mm.compat import load_training_checkpoint

# meta entries worth keeping: provenance and what evaluation / inference needs (dataset_meta: keypoint names,
# flip pairs, classes, ...). The config text is kept so a weights file says how it was trained.
META_KEYS = ('epoch', 'iter', 'seed', 'experiment_name', 'time', 'mmengine_version', 'dataset_meta', 'cfg')


def json_safe(obj):
    """numpy/torch values -> Python numbers and lists, tuples -> lists, anything else unknown -> its ``str``."""
    def default(o):
        if isinstance(o, (np.ndarray, torch.Tensor)):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (set, frozenset)):
            return sorted(o, key=str)
        return str(o)

    return json.loads(json.dumps(obj, default=default))


def publish_model(in_file: str, out_file: str) -> str:
    """Write the weights of training checkpoint ``in_file`` to ``out_file``; returns the file's sha256.

    The output is verified to load with ``torch.load(weights_only=True)``.
    """
    checkpoint = load_training_checkpoint(in_file, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise KeyError(f'{in_file} has no "state_dict": it is not an MMEngine training checkpoint')
    state_dict = OrderedDict((k, v) for k, v in checkpoint['state_dict'].items() if isinstance(v, torch.Tensor))
    meta = {k: checkpoint['meta'][k] for k in META_KEYS if k in checkpoint.get('meta', {})}
    meta['published_from'] = osp.basename(in_file)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    torch.save({'state_dict': state_dict, 'meta': json_safe(meta)}, out_file)
    torch.load(out_file, map_location='cpu', weights_only=True)  # the contract, checked on the file written
    with open(out_file, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()

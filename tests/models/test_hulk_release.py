"""configs/hulk/vitb.py against official-layout checkpoints of every evaluated task: the converter's merged state
dict loads strictly, shared tensors come once, and the parameter counts are the spec's (slow: ViT-B sizes)."""
from __future__ import annotations

import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from hulk_mm.models.official import RELEASE_PATHWAYS, convert_official_state_dict, merge_official_state_dicts
from hulk_mm.registry import MODELS
from hulk_mm.utils.analysis import with_stand_in_assets
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
OFFICIAL = osp.join(REPO, 'tests', 'data', 'official')
# official task -> (fixture folder, full-size key list, number of classes there -> in the release task)
FULL_KEYS = {
    8: ('pose', 'official_keys_full.json', None),
    9: ('pose', 'official_keys_full.json', (17, 14)),       # AIC: 14 keypoints
    4: ('detection', 'official_keys_full.json', None),
    17: ('parsing', 'parsing_full_summary.json', None),     # LIP: 20 classes
    18: ('parsing', 'parsing_full_summary.json', None),     # CIHP: 20 classes
    19: ('parsing', 'parsing_full_summary.json', (20, 25)),  # H3.6M: 25 classes
    5: ('attribute', 'official_full.json', None),
    7: ('caption', 'official_keys_full.json', None),
    0: ('skeleton_action', 'official_full.json', None),
    2: ('mesh', 'official_keys_full.json', None),
}


def release_key_list(index: int) -> list:
    folder, name, classes = FULL_KEYS[index]
    with open(osp.join(OFFICIAL, folder, name)) as f:
        keys = json.load(f)['keys']
    if classes is None:
        return keys
    old, new = classes  # the class axis of the task's own tensors (the shared ones have no such axis)
    return [[k, shape if k.startswith(('backbone_module.', 'neck_', 'adapter_rgb.')) else
             [new if s == old else s for s in shape]] for k, shape in keys]


@pytest.mark.slow
def test_official_task_files_load_strictly_into_vitb():
    init_default_scope('hulk_mm')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'hulk', 'vitb.py'))
    model = MODELS.build(with_stand_in_assets(cfg.model))
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in
              (('blocks', model.shared.encoder.blocks), ('layers', model.shared.decoder.layers))}
    assert counts == {'blocks': 85_054_464, 'layers': 11_835_648}  # spec §2.4, §2.7: 85.05 M, 9 x 1,315,072
    assert set(RELEASE_PATHWAYS) == set(FULL_KEYS)

    shared = {}  # one training run: every file holds the same shared tensors
    state_dicts = {}
    for index in sorted(FULL_KEYS):
        sd = official_layout_state_dict(release_key_list(index), seed=index)
        task, name = RELEASE_PATHWAYS[index]
        for key, value in sd.items():
            if next(iter(convert_official_state_dict({key: value}, task, name)), '').startswith('shared.'):
                sd[key] = shared.setdefault(key, value)
        # pathways of one task share their group's tensors (the modality indicator, parsing's upsampler)
        if index in (9, 18, 19):
            first = state_dicts[{9: 8, 18: 17, 19: 17}[index]]
            for key in ('decoder_module.predictor.mask_token', ) + tuple(
                    k for k in sd if index != 9 and k.startswith('proj_dense_labeling.upsample_network.')):
                sd[key] = first[key]
        state_dicts[index] = sd
    merged = merge_official_state_dicts(state_dicts)
    result = model.load_state_dict(merged, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.shared.encoder.blocks[3].attn.qkv.weight,
                       shared['backbone_module.blocks.3.attn.qkv.weight'])
    assert model.tasks['pose_coco'].indicator is model.tasks['pose_aic'].indicator
    assert model.tasks['parsing_lip'].upsampler is model.tasks['parsing_h36m'].upsampler
    assert model.tasks['pose_aic'].detokenizer.semantic.text_features.shape == (14, 768)
    assert model.tasks['parsing_h36m'].detokenizer.semantic.text_features.shape == (25, 768)

"""hulk_mm registries: scope, lazy locations, and borrowing components of other codebases."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

import hulk_mm  # noqa: F401
from hulk_mm.registry import HOOKS, METRICS, MODELS


def test_scope_and_parents():
    assert MODELS.scope == 'hulk_mm'
    assert MODELS.parent.scope == 'mmengine'
    # lazy location: the encoder registers when the registry is first searched
    assert MODELS.get('ViTEncoder').__name__ == 'ViTEncoder'
    assert HOOKS.get('RankConsistencyHook') is not None


def test_borrow_with_scope_from_hulk_mm_default_scope():
    init_default_scope('hulk_mm')
    metric = METRICS.build(dict(_scope_='mmpose', type='CocoMetric', ann_file=None, prefix='pose.x'))
    assert type(metric).__name__ == 'CocoMetric' and metric.prefix == 'pose.x'
    # the pitfall the configs avoid: a prefix on the outer type does not switch the scope of nested types
    with pytest.raises(KeyError, match='KeypointMSELoss'):
        MODELS.build(dict(type='mmpose.HeatmapHead', in_channels=8, out_channels=17,
                          loss=dict(type='KeypointMSELoss')))
    head = MODELS.build(dict(_scope_='mmpose', type='HeatmapHead', in_channels=8, out_channels=17,
                             deconv_out_channels=(), loss=dict(type='KeypointMSELoss')))
    assert head(( torch.zeros(1, 8, 4, 3),)).shape == (1, 17, 4, 3)


def test_hulk_backbone_inside_an_mmpose_model():
    """An mmpose-scoped model uses hulk_mm's backbone through the scope prefix."""
    from tests.conftest import TINY_POSE_CFG
    cfg = Config.fromfile(TINY_POSE_CFG)
    init_default_scope('hulk_mm')
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'HulkEncoder'
    feats = model.extract_feat(torch.zeros(2, 3, 128, 96))
    assert feats[0].shape == (2, 128, 16, 12)
    assert DefaultScope.get_current_instance().scope_name == 'hulk_mm'


def test_reroot_moves_every_data_path():
    from hulk_mm.engine.launch import reroot
    from tests.conftest import TINY_POSE_CFG
    cfg = Config.fromfile(TINY_POSE_CFG)
    reroot(cfg, cfg.data_root, '/elsewhere/sh')
    assert cfg.val_dataloader.dataset.data_root == '/elsewhere/sh/'
    assert cfg.val_dataloader.dataset.bbox_file == '/elsewhere/sh/pose/person_detections_val.json'
    assert cfg.val_evaluator.ann_file == '/elsewhere/sh/pose/person_keypoints_val.json'
    assert cfg.train_dataloader.dataset.ann_file == 'pose/person_keypoints_train.json'  # relative: untouched
    assert 'data/synthhuman' not in cfg.pretty_text

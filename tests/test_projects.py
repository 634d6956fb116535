"""projects/: hulk_mm parts inside other codebases' own configs."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.conftest import REPO


def test_hulk_backbone_in_mmpose_vitpose_recipe():
    cfg = Config.fromfile(osp.join(REPO, 'projects', 'hulk_backbone_in_mmpose', 'configs',
                                   'hulk-vitb_td-hm_8xb64-210e_coco-256x192.py'))
    # inherited from mmpose's file through `mmpose::`
    assert cfg.default_scope == 'mmpose' and cfg.model.head.type == 'HeatmapHead'
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/person_keypoints_train2017.json'
    assert 'mean' not in cfg.model.data_preprocessor
    init_default_scope('mmpose')
    from mmpose.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    assert type(model.backbone).__name__ == 'HulkEncoder'
    assert sum(p.numel() for p in model.backbone.encoder.blocks.parameters()) == 85_054_464
    with torch.no_grad():
        heatmaps = model(torch.rand(1, 3, 256, 192) * 255, None, mode='tensor')
    assert heatmaps.shape == (1, 17, 64, 48)

"""Every upstream package hulk_mm relies on imports in the environment, with the compiled mmcv ops."""
import importlib

import pytest
import torch


@pytest.mark.parametrize('module', [
    'torchvision', 'mmdet.datasets', 'mmdet.evaluation', 'mmdet.models', 'mmseg.datasets', 'mmseg.evaluation',
    'mmseg.models', 'mmpose.models', 'mmpose.codecs', 'mmpose.evaluation', 'mmpose.apis', 'mmaction.datasets',
    'mmaction.evaluation', 'xtcocotools.cocoeval', 'transformers', 'scipy.optimize'])
def test_imports(module):
    importlib.import_module(module)


def test_mmcv_ops_run_on_cpu():
    import mmcv
    from mmcv.ops import nms, roi_align
    assert mmcv.__version__ == '2.1.0'
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))
    feats = torch.arange(16.).view(1, 1, 4, 4)
    out = roi_align(feats, torch.tensor([[0., 0., 0., 4., 4.]]), (1, 1), 1.0, 0, 'avg', True)
    assert out.item() == pytest.approx(feats.mean().item())


def test_mmpretrain_imports_under_transformers_5():
    """compat switches off mmpretrain's BLIP code, which transformers 5 breaks; ViTPose's reference ViT imports."""
    import hulk_mm  # noqa: F401
    models = importlib.import_module('mmpretrain.models')
    vit = models.VisionTransformer(arch='base', img_size=(256, 192), patch_size=16, out_type='featmap',
                                   with_cls_token=False, patch_cfg=dict(padding=2))
    assert vit(torch.zeros(1, 3, 256, 192))[0].shape == (1, 768, 16, 12)

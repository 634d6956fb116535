"""The Hulk model with its pose pathway: shapes, sharing, gradients, learning, prediction in image space, errors,
a runner round trip, and fidelity to the official pose path (tests/data/official/pose/)."""
from __future__ import annotations

import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.structures import PoseDataSample

from hulk_mm.models import Hulk, HulkDataPreprocessor, convert_official_state_dict
from hulk_mm.registry import MODELS
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'hulk', 'tiny_pose_synthhuman.py')
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'pose')
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]

init_default_scope('hulk_mm')


def tiny_hulk(img=(32, 24), patch=8, width=32, dec_depth=3, k=17, text=0, ratios=None) -> Hulk:
    """A Hulk small enough for unit tests: 4x3 token grid, 16x12 heatmaps."""
    grid = (img[0] // patch, img[1] // patch)
    return Hulk(
        shared=dict(
            tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=patch, embed_dim=width)),
            encoder=dict(type='ViTEncoder', embed_dim=width, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=width, depth=dec_depth, num_heads=2, ffn_dim=64),
            projections=dict(dense=dict(text_dim=16))),
        tasks=dict(pose=dict(
            type='PosePathway', num_keypoints=k, grid=grid, embed_dim=width,
            detokenizer=dict(type='HeatmapDetokenizer', text_dim=16, text_features=text, upsample_dim=16),
            codec=dict(type='UDPHeatmap', input_size=(img[1], img[0]), heatmap_size=(4 * grid[1], 4 * grid[0]),
                       sigma=2),
            loss_kpt=dict(type='KeypointMSELoss', use_target_weight=True, _scope_='mmpose'),
            loss_vis=dict(type='VisibilityBCELoss', ratios=ratios or [0.3] * k, loss_weight=0.001))),
        data_preprocessor=dict(type='HulkDataPreprocessor',
                               tasks=dict(pose=dict(type='PoseDataPreprocessor', _scope_='mmpose'))))


def make_samples(model: Hulk, keypoints_img: np.ndarray, centers, scale=(48., 64.)) -> list[PoseDataSample]:
    """Data samples whose targets are the codec's encoding of ``keypoints_img`` (B, K, 2) in image pixels."""
    pathway = model.tasks['pose']
    w, h = pathway.codec.input_size
    samples = []
    for kpts, center in zip(keypoints_img, centers):
        center, scale_ = np.asarray(center, np.float32), np.asarray(scale, np.float32)
        # image -> crop pixels as mmpose's UDP affine maps them: the box spans input_size - 1 pixels
        kpts_in = (kpts - center + 0.5 * scale_) / scale_ * np.array([w - 1, h - 1])
        enc = pathway.codec.encode(kpts_in[None], np.ones((1, len(kpts)), np.float32))
        s = PoseDataSample(metainfo=dict(input_center=center, input_scale=scale_, input_size=np.array([w, h]),
                                         flip_indices=COCO_FLIP[:len(kpts)] if len(kpts) == 17 else
                                         list(range(len(kpts)))))
        s.gt_fields = PixelData(heatmaps=torch.from_numpy(enc['heatmaps']))
        s.gt_instance_labels = InstanceData(keypoint_weights=torch.from_numpy(enc['keypoint_weights']))
        s.gt_instances = InstanceData(bboxes=np.array([[0, 0, 10, 10]], np.float32), bbox_scores=np.ones(1))
        samples.append(s)
    return samples


def random_keypoints(b=2, k=17, seed=0, box=(48., 64.)):
    """(B, K, 2) image keypoints inside the central 70 % of boxes of size ``box`` around random centres."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(50, 100, (b, 2)).astype(np.float32)
    kpts = centers[:, None] + rng.uniform(-0.35, 0.35, (b, k, 2)).astype(np.float32) * np.array(box, np.float32)
    return kpts, centers


def test_shapes_per_stage():
    model = tiny_hulk().eval()
    images = torch.rand(2, 3, 32, 24) * 255
    shared, pose = model.shared, model.tasks['pose']
    tokens, grid = shared.tokenizers['image'](images, pos_embed=(pose.pos_embed, pose.input_grid))
    assert tokens.shape == (2, 12, 32) and grid == (4, 3)
    with pytest.raises(ValueError, match='no position table of its own'):
        shared.tokenizers['image'](images)
    memory = pose.encode(shared, images)
    assert memory.shape == (2, 12, 32)
    labels = pose.label_outputs(shared, images)
    assert len(labels) == 3 and all(t.shape == (2, 12, 32) for t in labels)
    outs = model({'pose': images}, mode='tensor')
    assert len(outs) == 3
    for heatmaps, visibility in outs:
        assert heatmaps.shape == (2, 17, 16, 12) and visibility.shape == (2, 17)


def test_state_dict_has_each_shared_module_once():
    model = tiny_hulk()
    params = {name for name, _ in model.named_parameters()}
    buffers = {name for name, _ in model.named_buffers()}
    keys = set(model.state_dict())
    assert params <= keys and keys <= params | buffers
    assert not any('encoder' in k or 'tokenizers' in k for k in keys if k.startswith('tasks.'))
    # frozen tables travel with the weights
    assert {'tasks.pose.query_embed_patch', 'tasks.pose.query_embed_label',
            'tasks.pose.detokenizer.semantic.text_features', 'tasks.pose.pos_embed'} <= keys
    assert 'shared.tokenizers.image.pos_embed' not in keys  # each task owns its input table


def test_one_loss_step_reaches_every_parameter():
    model = tiny_hulk().train()
    kpts, centers = random_keypoints()
    samples = make_samples(model, kpts, centers)
    losses = model({'pose': torch.rand(2, 3, 32, 24) * 255}, {'pose': samples}, mode='loss')
    assert set(losses) == {'pose.loss_kpt', 'pose.loss_vis'}
    model.parse_losses(losses)[0].backward()
    # adapt_pos1d is the mesh task's depth PE MLP: shared, but no pose input reaches it
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and 'adapt_pos1d' not in n]
    assert not missing, missing


def test_loss_decreases_when_overfitting_a_batch():
    torch.manual_seed(0)
    model = tiny_hulk().train()
    kpts, centers = random_keypoints()
    samples = make_samples(model, kpts, centers)
    images = torch.rand(2, 3, 32, 24) * 255
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(30):
        loss, _ = model.parse_losses(model({'pose': images}, {'pose': samples}, mode='loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history


@pytest.mark.parametrize('flip_test', [True, False])
def test_predict_maps_codec_heatmaps_back_to_image_keypoints(flip_test):
    """Teacher forcing: the de-tokenizer returns the codec's encoding of known keypoints (and its mirror for the
    flipped crop); predict must recover the keypoints in image pixels."""
    model = tiny_hulk(img=(64, 48)).eval()  # 32x24 heatmaps
    pose = model.tasks['pose']
    pose.flip_test = flip_test
    kpts, centers = random_keypoints(box=(47., 63.))  # one image pixel per crop pixel
    samples = make_samples(model, kpts, centers, scale=(47., 63.))
    gt = torch.stack([s.gt_fields.heatmaps for s in samples])
    outputs = iter([(gt, torch.zeros(2, 17)), (flip_heatmaps(gt, COCO_FLIP, 'heatmap', False), torch.zeros(2, 17))])
    pose.detokenizer.forward = lambda tokens, projection: next(outputs)
    with torch.no_grad():
        results = model({'pose': torch.rand(2, 3, 64, 48) * 255}, {'pose': samples}, mode='predict')
    assert all(isinstance(r, PoseDataSample) for r in results)
    pred = np.stack([r.pred_instances.keypoints[0] for r in results])
    assert pred.shape == kpts.shape
    assert np.abs(pred - kpts).max() < 0.25  # DARK-UDP round trip; a half-pixel slip would show
    assert results[0].pred_instances.keypoint_scores.shape == (1, 17)
    np.testing.assert_allclose(results[0].pred_instances.keypoints_visible, 0.5)


def test_bad_inputs_give_clear_errors(tmp_path):
    model = tiny_hulk().eval()
    with pytest.raises(ValueError, match='fixed 4x3 token grid'):
        model({'pose': torch.rand(1, 3, 48, 24)}, mode='tensor')
    with pytest.raises(KeyError, match='no pathway for task'):
        model({'parsing': torch.rand(1, 3, 32, 24)}, mode='tensor')
    with pytest.raises(ValueError, match='takes the batch of one task'):
        model({'pose': torch.rand(1, 3, 32, 24), 'parsing': torch.rand(1, 3, 32, 24)}, mode='tensor')
    with pytest.raises(ValueError, match='unknown task'):
        Hulk(shared=dict(tokenizers={}, encoder=dict(type='ViTEncoder'), decoder=dict(type='HulkDecoder')),
             tasks=dict(posture={}))
    table = tmp_path / 'names.pth'
    torch.save(torch.zeros(14, 16), table)
    with pytest.raises(ValueError, match=r'\(14, 16\) does not match 17 classes'):
        tiny_hulk(text=str(table))
    with pytest.raises(ValueError, match='heatmap_size'):
        MODELS.build(dict(type='PosePathway', num_keypoints=17, grid=(4, 3), embed_dim=32,
                          detokenizer=dict(type='HeatmapDetokenizer', text_dim=16),
                          codec=dict(type='UDPHeatmap', input_size=(24, 32), heatmap_size=(6, 8)),
                          loss_kpt=dict(type='KeypointMSELoss', _scope_='mmpose'),
                          loss_vis=dict(type='VisibilityBCELoss', ratios=[0.3] * 17)))


def test_data_preprocessor_accepts_plain_and_task_batches():
    pre = HulkDataPreprocessor(tasks=dict(pose=dict(type='PoseDataPreprocessor', _scope_='mmpose')))
    batch = dict(inputs=[torch.randint(0, 255, (3, 32, 24), dtype=torch.uint8)], data_samples=[PoseDataSample()])
    out = pre(batch)
    assert set(out) == {'inputs', 'data_samples'} and out['inputs']['pose'].shape == (1, 3, 32, 24)
    assert out['inputs']['pose'].dtype == torch.float32
    assert pre({'pose': batch})['inputs']['pose'].shape == (1, 3, 32, 24)
    with pytest.raises(KeyError, match='without a preprocessor'):
        pre({'caption': batch})


def test_runner_trains_and_evaluates_with_coco_metric(synthhuman_root, tmp_path):
    from hulk_mm.engine.launch import test, train
    from hulk_mm.engine.publish import publish_model
    work_dir = str(tmp_path / 'run')
    opts = [f'data_root={synthhuman_root}', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=4', 'val_dataloader.batch_size=6',
            'model.shared.encoder.depth=1', 'model.shared.decoder.depth=2', 'model.shared.encoder.drop_path_rate=0.0']
    runner = train([CONFIG, '--work-dir', work_dir, '--cfg-options', *opts])
    assert runner.iter == 2
    weights = str(tmp_path / 'weights.pth')
    publish_model(osp.join(work_dir, 'iter_2.pth'), weights)
    metrics = test([CONFIG, weights, '--work-dir', str(tmp_path / 'test'), '--metrics-out',
                    str(tmp_path / 'metrics.json'), '--cfg-options', *opts])
    assert 'pose.synthhuman/AP' in metrics and 0.0 <= metrics['pose.synthhuman/AP'] <= 1.0
    with open(tmp_path / 'metrics.json') as f:
        assert json.load(f)['pose.synthhuman/AP'] == metrics['pose.synthhuman/AP']


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official pose path. The fixture holds inputs, the official outputs and the key list of the
# official model; the weights are regenerated here from a seed (README in tests/data/official/pose/).
# ----------------------------------------------------------------------------------------------------------------
def fixture_model(meta: dict) -> Hulk:
    (h, w), (de, depth, heads), (d, dheads, ffn), k = meta['img'], meta['enc'], meta['dec'], meta['K']
    grid = (h // 16, w // 16)
    return Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=16, embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn),
                    projections=dict(dense=dict(text_dim=768))),
        tasks=dict(pose=dict(
            type='PosePathway', num_keypoints=k, grid=grid, embed_dim=d,
            detokenizer=dict(type='HeatmapDetokenizer', text_dim=768, upsample_dim=d),
            codec=dict(type='UDPHeatmap', input_size=(w, h), heatmap_size=(4 * grid[1], 4 * grid[0]), sigma=2),
            loss_kpt=dict(type='KeypointMSELoss', use_target_weight=True, _scope_='mmpose'),
            loss_vis=dict(type='VisibilityBCELoss', ratios=meta['sample_weight'], loss_weight=0.001))))


def test_converted_official_weights_reproduce_official_pose_outputs():
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    io = torch.load(osp.join(FIXTURE, 'pose_tiny_io.pth'), weights_only=True)
    model = fixture_model(meta)
    model.load_state_dict(convert_official_state_dict(
        official_layout_state_dict(meta['keys'], meta['seed']), 'pose'), strict=True)
    model.eval()
    with torch.no_grad():
        heatmaps, visibility = model({'pose': io['images']}, mode='tensor')[-1]
    scale = io['heatmaps'].abs().max()
    assert (heatmaps - io['heatmaps']).abs().max() <= 1e-4 * scale
    assert (visibility - io['visibility']).abs().max() <= 1e-4 * io['visibility'].abs().max()
    samples = []
    for hm, wt in zip(io['heatmaps_target'], io['weights_target']):
        s = PoseDataSample(gt_fields=PixelData(heatmaps=hm), gt_instance_labels=InstanceData(keypoint_weights=wt[None]))
        samples.append(s)
    with torch.no_grad():
        losses = model({'pose': io['images']}, {'pose': samples}, mode='loss')
    torch.testing.assert_close(losses['pose.loss_kpt'], io['loss_kpt'], rtol=1e-5, atol=0)
    torch.testing.assert_close(losses['pose.loss_vis'], io['loss_vis'], rtol=1e-5, atol=0)


@pytest.mark.slow
def test_full_size_converted_weights_reproduce_official_pose_summary():
    """ViT-B, 256 x 192, decoder 256 x 9, K = 17, batch 1: converted seed-recipe weights against a summary of the
    official outputs (tests/data/official/pose/README.md)."""
    with open(osp.join(FIXTURE, 'official_keys_full.json')) as f:
        meta = json.load(f)
    ref = torch.load(osp.join(FIXTURE, 'pose_full_summary.pth'), weights_only=True)
    model = fixture_model(meta)
    model.load_state_dict(convert_official_state_dict(
        official_layout_state_dict(meta['keys'], meta['seed']), 'pose'), strict=True)
    model.eval()
    g = torch.Generator().manual_seed(2)
    (h, w), b, k = meta['img'], meta['B'], meta['K']
    images = (torch.rand(b, 3, h, w, generator=g) * 255).round()
    targets = torch.rand(b, k, h // 4, w // 4, generator=g)
    weights = (torch.rand(b, k, generator=g) > 0.3).float()
    with torch.no_grad():
        heatmaps, visibility = model({'pose': images}, mode='tensor')[-1]
        samples = [PoseDataSample(gt_fields=PixelData(heatmaps=t),
                                  gt_instance_labels=InstanceData(keypoint_weights=w[None]))
                   for t, w in zip(targets, weights)]
        losses = model({'pose': images}, {'pose': samples}, mode='loss')
    scale = ref['heatmaps_absmax']
    assert abs(heatmaps.abs().max() - scale) <= 1e-4 * scale
    assert (heatmaps.flatten()[ref['heatmaps_index']] - ref['heatmaps_values']).abs().max() <= 1e-4 * scale
    assert abs(heatmaps.double().sum() - ref['heatmaps_sum']) <= 1e-4 * scale * heatmaps.numel() ** 0.5
    # the official head drops the batch axis of a batch of one (spec §12); ours keeps it
    assert (visibility.flatten() - ref['visibility']).abs().max() <= 1e-4 * ref['visibility'].abs().max()
    torch.testing.assert_close(losses['pose.loss_kpt'], ref['loss_kpt'], rtol=1e-5, atol=0)
    torch.testing.assert_close(losses['pose.loss_vis'], ref['loss_vis'], rtol=1e-5, atol=0)

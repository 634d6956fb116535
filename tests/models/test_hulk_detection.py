"""The Hulk model with its pedestrian-detection pathway: query layout (content x anchor, the anchor/PE
transposition), per-image PE of padded batches, the ignore-aware set loss, gradients, learning, prediction schema
through mmdet's CrowdHumanMetric, errors, and fidelity to the official detection path (tests/data/official/detection/).
"""
from __future__ import annotations

import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import hulk_mm.models.tasks.detection  # noqa: F401  (registers DetectionPathway, BoxDetokenizer, DetectionSetLoss)
from hulk_mm.models import Hulk, convert_official_state_dict
from hulk_mm.models.losses.detection import DetectionSetLoss
from hulk_mm.models.official import dropped_official_keys, unexpected_official_keys
from hulk_mm.models.positional import resample_2d
from hulk_mm.models.tasks.detection import anchor_points
from hulk_mm.models.tokenizers.image import ImageTokenizer, grid_padding_mask, resample_2d_per_image, valid_grids
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'detection')

init_default_scope('hulk_mm')


pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_hulk(width=32, anchor_grid=3, text=0, **detection) -> Hulk:
    """A Hulk small enough for unit tests: 4x4 PE table, 3x3 anchors x 3 contents = 27 queries."""
    return Hulk(
        shared=dict(
            tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=16, embed_dim=width)),
            encoder=dict(type='ViTEncoder', embed_dim=width, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=width, depth=2, num_heads=2, ffn_dim=64)),
        tasks=dict(detection=dict(type='DetectionPathway', embed_dim=width, pe_grid=(4, 4), anchor_grid=anchor_grid,
                                  text_dim=16, text_features=text, **detection)),
        data_preprocessor=dict(type='HulkDataPreprocessor', tasks=dict(detection=dict(
            type='DetDataPreprocessor', pad_size_divisor=16, bgr_to_rgb=True, _scope_='mmdet'))))


def det_sample(img_hw, ori_hw, boxes, ignore=()) -> DetDataSample:
    s = DetDataSample(metainfo=dict(img_shape=tuple(img_hw), ori_shape=tuple(ori_hw), img_id=f'{id(boxes)}'))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                  labels=torch.zeros(len(boxes), dtype=torch.long))
    s.ignored_instances = InstanceData(bboxes=torch.tensor(ignore, dtype=torch.float32).reshape(-1, 4))
    return s


def padded_batch(sizes, seed=0, pad_value=0.0):
    """(B, 3, Hp, Wp) with each random image top-left, padded to /16 as mmdet's DetDataPreprocessor does."""
    g = torch.Generator().manual_seed(seed)
    hp, wp = (-(-max(s[i] for s in sizes) // 16) * 16 for i in (0, 1))
    batch = torch.full((len(sizes), 3, hp, wp), pad_value)
    for b, (h, w) in zip(batch, sizes):
        b[:, :h, :w] = (torch.rand(3, h, w, generator=g) * 255).round()
    return batch


SIZES = [(40, 60), (64, 44)]  # valid (h, w): 3x4 and 4x3 token grids in a 4x4 padded grid
SAMPLES = [([[5., 4., 30., 38.], [33., 10., 58., 39.]], [[0., 0., 20., 40.]]),
           ([[4., 6., 40., 60.]], [])]


def samples():
    return [det_sample(hw, (2 * hw[0], 2 * hw[1]), b, i) for hw, (b, i) in zip(SIZES, SAMPLES)]


# ----------------------------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------------------------
def test_shapes_and_query_layout():
    model = tiny_hulk().eval()
    det, shared = model.tasks['detection'], model.shared
    seen = {}
    decode = shared.decode

    def spy(memory, queries, pos, attn_mask, pos_per_layer):
        seen.update(memory=memory, queries=queries, pos=pos, mask=attn_mask, per_layer=pos_per_layer)
        return decode(memory, queries, pos, attn_mask, pos_per_layer)
    shared.decode = spy
    with torch.no_grad():
        outs = det(shared, padded_batch(SIZES), SIZES)
    assert len(outs) == 2 and all(b.shape == (2, 27, 4) and lg.shape == (2, 27, 1) for b, lg in outs)
    assert seen['memory'].shape == (2, 16, 32) and seen['per_layer']
    # query t = c * 9 + a carries content vector c, and the PE of anchor a (table resampled to 3x3, tiled 3x)
    torch.testing.assert_close(seen['queries'][0], det.indicator[0].repeat_interleave(9, dim=0))
    label_pe = resample_2d(det.query_embed_patch[0], (4, 4), (3, 3)).repeat(3, 1)
    torch.testing.assert_close(seen['pos'][1, 16:], shared.decoder.adapt_pos2d(label_pe))
    # label rows are blind to the padded patch columns of their own image only
    padding = grid_padding_mask(valid_grids(SIZES, 16), (4, 4), 'cpu')
    assert torch.equal(seen['mask'][:, 0, 16:, :16], ~padding[:, None, :].expand(-1, 27, -1))


def test_anchor_reference_keeps_the_official_transposition():
    """With a zero regression MLP every box collapses onto its anchor point: x from the anchor grid's *outer*
    index while the query's PE comes from grid row a // 3 (spec §2.8 quirk, reproduced on purpose)."""
    points = anchor_points(17)
    torch.testing.assert_close(points[:2], torch.tensor([[0.5 / 17, 0.5 / 17, 0.], [0.5 / 17, 1.5 / 17, 0.]]))
    torch.testing.assert_close(points[17], torch.tensor([1.5 / 17, 0.5 / 17, 0.]))
    model = tiny_hulk().eval()
    last = model.tasks['detection'].detokenizer.regressor.layers[-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    with torch.no_grad():
        boxes, _ = model({'detection': padded_batch(SIZES)}, mode='tensor')[-1]
    anchors = anchor_points(3).repeat(3, 1)[:, :2]
    torch.testing.assert_close(boxes[0], torch.cat([anchors, anchors], 1))
    assert boxes[0, 1, 0] < boxes[0, 3, 0]  # anchor 1 is (outer 0, inner 1): left of anchor 3 (outer 1, inner 0)


def test_per_image_position_embedding_and_padding():
    assert valid_grids([(72, 100), (96, 80)], 16) == [(5, 7), (6, 5)]  # a token is image if its top-left pixel is
    table = torch.randn(16, 8)
    pe = resample_2d_per_image(table, (4, 4), (6, 7), [(5, 7), (6, 7)])
    padded = resample_2d(table, (4, 4), (6, 7)).reshape(6, 7, 8).permute(2, 0, 1)
    expected0 = padded.clone()
    expected0[:, :5] = F.interpolate(padded[None], size=(5, 7), mode='bicubic', align_corners=False)[0]
    torch.testing.assert_close(pe[0], expected0.flatten(1).t())
    torch.testing.assert_close(pe[1], padded.flatten(1).t())  # unpadded image: the padded-grid table itself

    tok = ImageTokenizer(img_size=(64, 64), embed_dim=32)
    images = padded_batch(SIZES)
    tokens, grid = tok(images, valid_hw=SIZES)
    # padded pixels count as the mean whatever the padding value; images without padding match the plain path
    torch.testing.assert_close(tok(padded_batch(SIZES, pad_value=255.), valid_hw=SIZES)[0], tokens)
    full = images[:, :, :48, :48]
    torch.testing.assert_close(tok(full, valid_hw=[(48, 48)] * 2)[0], tok(full)[0])
    assert not torch.allclose(tok(images)[0], tokens)


def test_padding_reaches_the_encoder_only_when_asked():
    """Release: the encoder attends to padded tokens (outputs depend on the batch padding, spec §12);
    ``mask_padding_in_encoder`` hands it the padding mask."""
    for flag in (False, True):
        model = tiny_hulk(mask_padding_in_encoder=flag).eval()
        seen = []
        encoder_forward = model.shared.encoder.forward
        model.shared.encoder.forward = lambda tokens, pad_mask=None: seen.append(pad_mask) or encoder_forward(
            tokens, pad_mask)
        with torch.no_grad():
            model.tasks['detection'](model.shared, padded_batch(SIZES), SIZES)
        assert (seen[0] is None) != flag
        if flag:
            assert torch.equal(seen[0], grid_padding_mask(valid_grids(SIZES, 16), (4, 4), 'cpu'))
    model = tiny_hulk().eval()
    with torch.no_grad():
        alone = model.tasks['detection'](model.shared, padded_batch(SIZES[:1]), SIZES[:1])[-1][0]
        padded = model.tasks['detection'](model.shared, F.pad(padded_batch(SIZES[:1]), (0, 32, 0, 32)),
                                          SIZES[:1])[-1][0]
    assert not torch.allclose(alone, padded, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------------------------
def test_set_loss_ignores_unmatched_queries_inside_ignore_regions():
    """Three queries, one GT, one ignore region; checked against the focal / L1 / GIoU formulas by hand."""
    crit = DetectionSetLoss()
    h, w = 100, 200
    boxes = torch.tensor([[[0.10, 0.10, 0.30, 0.50],     # matches the GT
                           [0.62, 0.12, 0.78, 0.48],     # inside the ignore region -> left out of the cls loss
                           [0.40, 0.60, 0.55, 0.90]]])   # plain negative
    logits = torch.tensor([[[0.5], [1.5], [-1.0]]])
    gt = [torch.tensor([[22., 12., 58., 48.]])]
    ignore = [torch.tensor([[120., 10., 160., 50.]])]
    losses = crit([(boxes, logits)], gt, [torch.zeros(1, dtype=torch.long)], ignore, [(h, w)])
    p = logits.flatten().sigmoid()
    focal_pos = -0.25 * (1 - p[0]) ** 2 * p[0].log()
    focal_neg = -0.75 * p[2] ** 2 * (1 - p[2]).log()
    torch.testing.assert_close(losses['loss_cls'], 2.0 * (focal_pos + focal_neg), rtol=1e-5, atol=0)
    pred_c = torch.tensor([0.2, 0.3, 0.2, 0.4])
    gt_c = torch.tensor([40 / 200, 30 / 100, 36 / 200, 36 / 100])
    torch.testing.assert_close(losses['loss_bbox'], 5.0 * (pred_c - gt_c).abs().sum(), rtol=1e-5, atol=0)
    union = enclosing = 40 * 40  # the GT (36 x 36 px) lies inside the prediction (40 x 40 px)
    giou = 36 * 36 / union - (enclosing - union) / enclosing
    torch.testing.assert_close(losses['loss_iou'], torch.tensor(2.0 * (1 - giou)), rtol=1e-5, atol=0)
    no_ignore = crit([(boxes, logits)], gt, [torch.zeros(1, dtype=torch.long)], [torch.zeros(0, 4)], [(h, w)])
    assert no_ignore['loss_cls'] > losses['loss_cls']
    torch.testing.assert_close(no_ignore['loss_bbox'], losses['loss_bbox'])


def test_one_loss_step_reaches_every_parameter():
    model = tiny_hulk().train()
    losses = model({'detection': padded_batch(SIZES)}, {'detection': samples()}, mode='loss')
    assert set(losses) == {'detection.loss_cls', 'detection.loss_bbox', 'detection.loss_iou'}
    model.parse_losses(losses)[0].backward()
    # adapt_pos1d is the mesh task's depth PE MLP: shared, but no detection input reaches it
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and 'adapt_pos1d' not in n]
    assert not missing, missing


def test_loss_decreases_when_overfitting_a_batch():
    torch.manual_seed(0)
    model = tiny_hulk().train()
    images = padded_batch(SIZES)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(25):
        loss, _ = model.parse_losses(model({'detection': images}, {'detection': samples()}, mode='loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history


# ----------------------------------------------------------------------------------------------------------------
# Prediction
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings('ignore:divide by zero:RuntimeWarning')  # MR of a perfect result: exp(log(0)) = 0
def test_predict_through_the_mmdet_preprocessor_and_crowdhuman_metric(tmp_path):
    """Teacher forcing: the de-tokenizer returns the GT boxes (normalised by the valid size) with high scores and
    junk with low ones; predict must keep only the GT, in original pixels, and CrowdHumanMetric must find them all."""
    from mmdet.evaluation import CrowdHumanMetric
    model = tiny_hulk(score_thr=0.3).eval()
    det = model.tasks['detection']
    gts = [np.array([[5., 4., 30., 38.], [33., 10., 58., 39.]]), np.array([[4., 6., 40., 60.]])]
    # raw images of the valid sizes in HWC uint8, as the mmdet pipeline delivers them before the preprocessor
    data = dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8) for h, w in SIZES],
                data_samples=[det_sample(hw, (2 * hw[0], 2 * hw[1]), g.tolist()) for hw, g in zip(SIZES, gts)])
    for i, s in enumerate(data['data_samples']):
        s.set_metainfo(dict(img_id=f'img{i}'))
    batch = model.data_preprocessor(data)
    images = batch['inputs']['detection']
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.float32
    assert [s.img_shape for s in batch['data_samples']['detection']] == SIZES

    def teacher(tokens, anchors, text_features):
        corner = torch.rand(tokens.shape[0], tokens.shape[1], 2) * 0.5
        boxes = torch.cat([corner, corner + 0.5 * torch.rand_like(corner)], -1)
        logits = torch.full((tokens.shape[0], tokens.shape[1], 1), -5.0)
        for i, ((h, w), g) in enumerate(zip(SIZES, gts)):
            boxes[i, 4:4 + len(g)] = torch.tensor(g, dtype=torch.float32) / torch.tensor([w, h, w, h])
            logits[i, 4:4 + len(g)] = 5.0
        return boxes, logits
    det.detokenizer.forward = teacher
    with torch.no_grad():
        results = model(batch['inputs'], batch['data_samples'], mode='predict')
    for r, g in zip(results, gts):
        pred = r.pred_instances
        assert isinstance(r, DetDataSample) and set(pred.keys()) == {'bboxes', 'scores', 'labels'}
        np.testing.assert_allclose(pred.bboxes.numpy(), 2 * g, rtol=1e-5)  # original image = 2x the resized one
        assert pred.labels.dtype == torch.long and (pred.labels == 0).all() and (pred.scores > 0.99).all()
    odgt = tmp_path / 'val.odgt'
    with open(odgt, 'w') as f:
        for i, g in enumerate(gts):
            boxes = [dict(tag='person', fbox=[*(2 * b[:2]), *(2 * (b[2:] - b[:2]))], hbox=[*(2 * b[:2]), 4., 4.],
                          extra=dict(ignore=0)) for b in g]
            f.write(json.dumps(dict(ID=f'img{i}', gtboxes=boxes)) + '\n')
    metric = CrowdHumanMetric(ann_file=str(odgt), metric=['AP', 'MR'])
    metric.process({}, [r.to_dict() for r in results])
    scores = metric.compute_metrics(metric.results)
    # perfect detections: the toolkit's AP integrates from the first detection's recall (1/3 here), so 1 - 1/3
    assert scores['mAP'] == pytest.approx(2 / 3, abs=1e-4) and scores['mMR'] == 0, scores


def test_bad_inputs_give_clear_errors(tmp_path):
    model = tiny_hulk().eval()
    det = model.tasks['detection']
    with pytest.raises(ValueError, match='valid_hw must give one'):
        det(model.shared, padded_batch(SIZES), [(80, 40), (64, 44)])
    with pytest.raises(ValueError, match='valid_hw must give one'):
        det(model.shared, padded_batch(SIZES), SIZES[:1])
    with pytest.raises(ValueError, match=r'ImageTokenizer expects \(B, 3, H, W\)'):
        det(model.shared, torch.rand(2, 1, 64, 64))
    table = tmp_path / 'pedestrian.pth'
    torch.save(torch.zeros(1, 8), table)
    with pytest.raises(ValueError, match=r'\(1, 8\) does not match 1 classes of width 16'):
        tiny_hulk(text=str(table))
    # any size works: images are round-padded to /16 inside the pathway
    with torch.no_grad():
        boxes, _ = det(model.shared, torch.rand(1, 3, 50, 70) * 255)[-1]
    assert boxes.shape == (1, 27, 4)


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official detection path. The fixture holds inputs, the official outputs and the key list of the
# official model; the weights are regenerated here from a seed (README in tests/data/official/detection/).
# ----------------------------------------------------------------------------------------------------------------
def fixture_model(meta: dict) -> Hulk:
    (de, depth, heads), (d, dheads, ffn), side = meta['enc'], meta['dec'], meta['pe_img'] // 16
    return Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None,
                                               patch_size=16, embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn)),
        tasks=dict(detection=dict(type='DetectionPathway', embed_dim=d, pe_grid=(side, side),
                                  anchor_grid=meta['anchors'], num_content=meta['content'], text_dim=768)))


def fixture_samples(meta: dict) -> list:
    return [det_sample(hw, ori, gt, ign) for hw, ori, gt, ign in zip(meta['valid'], meta['orig'], meta['gt'],
                                                                       meta['ignore'])]


def converted_fixture_model(meta: dict) -> Hulk:
    model = fixture_model(meta)
    model.load_state_dict(convert_official_state_dict(
        official_layout_state_dict(meta['keys'], meta['seed']), 'detection'), strict=True)
    return model.eval()


# spec §8.2 dead modules of the detection checkpoints, plus two tensors the spec does not list as dead: the
# decoder's 1-D label table (detection takes its query PE from query_embed_patch) and post_mul_norm
# (replaced by the scalar affine, ``replace_post_mul_norm: True``).
DEAD = (r'^adapter_sparse_labeling\.', r'^neck_label\.', r'^proj_rgb\.', r'^backbone_module\.global_tokens$',
        r'^decoder_module\.predictor\.(level_embed|class_embed|mask_embed)\.')
DEAD_NOT_IN_SPEC = ('decoder_module.predictor.query_embed_label', 'proj_sparse_labeling.post_mul_norm.weight',
                    'proj_sparse_labeling.post_mul_norm.bias')


def test_dropped_official_keys_are_the_dead_ones():
    import re
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        keys = [k for k, _ in json.load(f)['keys']]
    sd = dict.fromkeys(keys, torch.zeros(1))
    dropped = dropped_official_keys(sd, 'detection')
    expected = [k for k in keys if any(re.match(p, k) for p in DEAD) or k in DEAD_NOT_IN_SPEC]
    assert dropped == expected
    assert set(unexpected_official_keys(sd, 'detection')) <= set(DEAD_NOT_IN_SPEC)


def test_converted_official_weights_reproduce_official_detection_outputs():
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    io = torch.load(osp.join(FIXTURE, 'detection_tiny_io.pth'), weights_only=True)
    model = converted_fixture_model(meta)
    images = io['images'].float()
    with torch.no_grad():
        boxes, logits = model.tasks['detection'](model.shared, images, meta['valid'])[-1]
        losses = model({'detection': images}, {'detection': fixture_samples(meta)}, mode='loss')
        preds = model({'detection': images}, {'detection': fixture_samples(meta)}, mode='predict')
    assert (boxes - io['boxes']).abs().max() <= 1e-4 * io['boxes'].abs().max()
    assert (logits - io['logits']).abs().max() <= 1e-4 * io['logits'].abs().max()
    for ours, official in (('loss_cls', 'loss_cls'), ('loss_bbox', 'loss_bbox'), ('loss_iou', 'loss_iou')):
        torch.testing.assert_close(losses[f'detection.{ours}'], io[official], rtol=1e-5, atol=0)
    for pred, official, (oh, ow), raw in zip(preds, io['pred'], meta['orig'], io['boxes']):
        ours = pred.pred_instances
        # query order: the official raw boxes in original pixels; as a set: the official post-processed output
        torch.testing.assert_close(ours.bboxes, raw * torch.tensor([ow, oh, ow, oh]), rtol=0, atol=1e-4 * max(oh, ow))
        assert len(ours.bboxes) == len(official['boxes'])
        nearest = torch.cdist(official['boxes'], ours.bboxes, compute_mode='donot_use_mm_for_euclid_dist').min(dim=1)
        assert nearest.values.max() <= 1e-4 * max(oh, ow)
        torch.testing.assert_close(ours.scores[nearest.indices], official['scores'], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_release_size_parity_with_official_summary():
    """ViT-B (768 x 12), decoder 256 x 9, 84x84 PE table, 17x17 anchors x 3 = 867 queries, one image of valid size
    500 x 667 padded to 512 x 672 (32 x 42 = 1344 tokens)."""
    with open(osp.join(FIXTURE, 'official_keys_full.json')) as f:
        meta = json.load(f)
    summary = torch.load(osp.join(FIXTURE, 'detection_full_summary.pth'), weights_only=True)
    torch.set_num_threads(2)
    model = converted_fixture_model(meta)
    g = torch.Generator().manual_seed(meta['seed'] + 2)
    (h, w), = meta['valid']
    image = torch.zeros(1, 3, -(-h // 16) * 16, -(-w // 16) * 16)
    image[0, :, :h, :w] = (torch.rand(3, h, w, generator=g) * 255).round()
    det = model.tasks['detection']
    with torch.no_grad():
        outputs = det(model.shared, image, meta['valid'])
        samples = fixture_samples(meta)
        losses = det.criterion(outputs, [s.gt_instances.bboxes for s in samples],
                               [s.gt_instances.labels for s in samples], [s.ignored_instances.bboxes for s in samples],
                               meta['valid'])
    for name, ours in zip(('boxes', 'logits'), outputs[-1]):
        ref = summary[name]
        flat = ours.flatten()
        assert abs(flat.double().sum().item() - ref['sum']) <= 1e-4 * ref['absmax'] * flat.numel() ** 0.5
        assert (flat[ref['index']] - ref['values']).abs().max() <= 1e-4 * ref['absmax']
        assert abs(flat.abs().max().item() - ref['absmax']) <= 1e-4 * ref['absmax']
    for name in ('loss_cls', 'loss_bbox', 'loss_iou'):
        torch.testing.assert_close(losses[name], summary[name], rtol=1e-5, atol=0)

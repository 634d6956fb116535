"""The Hulk model with its parsing pathway: shapes, sharing, gradients, learning, test-time decoding into mmseg's
data samples (flip test, padding, original size, IoUMetric), errors, and fidelity to the official parsing path
(tests/data/official/parsing/)."""
from __future__ import annotations

import json
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import hulk_mm.models.losses.parsing as parsing_losses
import hulk_mm.models.tasks.parsing  # noqa: F401  (registers ParsingPathway)
from hulk_mm.models import Hulk, HulkDataPreprocessor, convert_official_state_dict, dropped_official_keys
from hulk_mm.models.official import OfficialCheckpointMismatch, merge_official_state_dicts, unexpected_official_keys
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'parsing')
LIP_FLIP = [(14, 15), (16, 17), (18, 19)]

init_default_scope('hulk_mm')


pytestmark = pytest.mark.usefixtures('one_thread')


def parsing_cfg(c, grid, width, text=0, text_dim=16, upsample=16, points=64, ratios=None, flip_pairs=(), **kw):
    return dict(
        type='ParsingPathway', num_classes=c, grid=grid, embed_dim=width, flip_pairs=flip_pairs, upsample_dim=upsample,
        detokenizer=dict(type='MaskDetokenizer', text_dim=text_dim, text_features=text),
        loss_mask=dict(type='PointSampledMaskLoss', num_points=points, oversample_ratio=3.0,
                       importance_sample_ratio=0.75,
                       loss_bce=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=50.0, _scope_='mmdet'),
                       loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0,
                                      loss_weight=50.0, _scope_='mmdet')),
        loss_presence=dict(type='VisibilityBCELoss', ratios=ratios or [0.5] * c, loss_weight=0.3), **kw)


def tiny_hulk(img=32, patch=8, width=32, dec_depth=3, c=6, **kw) -> Hulk:
    """A Hulk small enough for unit tests: 4x4 token grid, 16x16 masks."""
    grid = (img // patch, img // patch)
    return Hulk(
        shared=dict(
            tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=patch, embed_dim=width)),
            encoder=dict(type='ViTEncoder', embed_dim=width, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=width, depth=dec_depth, num_heads=2, ffn_dim=64),
            projections=dict(dense=dict(text_dim=16))),
        tasks=dict(parsing=parsing_cfg(c, grid, width, **kw)),
        data_preprocessor=dict(type='HulkDataPreprocessor', tasks=dict(parsing=dict(
            type='SegDataPreProcessor', bgr_to_rgb=True, size=(img, img), pad_val=0, seg_pad_val=255,
            _scope_='mmseg'))))


def make_samples(labels: torch.Tensor, ori_shapes=None) -> list[SegDataSample]:
    """SegDataSamples with ``gt_sem_seg`` (1, H, W) from (B, H, W) labels."""
    out = []
    for i, lab in enumerate(labels):
        meta = dict(img_shape=tuple(lab.shape), ori_shape=tuple(ori_shapes[i]) if ori_shapes else tuple(lab.shape))
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=lab[None].clone())
        out.append(sample)
    return out


def blocky_labels(b=2, size=32, c=6, seed=0) -> torch.Tensor:
    """(B, size, size) labels constant on 8x8 blocks, with an ignored (255) top band."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, c, (b, 1, size // 8, size // 8), generator=g).float()
    labels = torch.nn.functional.interpolate(coarse, size=(size, size), mode='nearest')[:, 0].long()
    labels[:, :3] = 255
    return labels


def test_shapes_per_stage():
    model = tiny_hulk().eval()
    images = torch.rand(2, 3, 32, 32) * 255
    parsing = model.tasks['parsing']
    labels = parsing.label_outputs(model.shared, images)
    assert len(labels) == 3 and all(t.shape == (2, 16, 32) for t in labels)
    outs = model({'parsing': images}, mode='tensor')
    assert len(outs) == 3
    for masks, presence in outs:
        assert masks.shape == (2, 6, 16, 16) and presence.shape == (2, 6)


def test_state_dict_holds_the_pathway_tables_and_no_shared_module():
    model = tiny_hulk()
    keys = set(model.state_dict())
    assert not any('encoder' in k or 'tokenizers' in k or 'projections' in k for k in keys if k.startswith('tasks.'))
    assert {'tasks.parsing.indicator', 'tasks.parsing.query_embed_patch', 'tasks.parsing.query_embed_label',
            'tasks.parsing.detokenizer.semantic.text_features', 'tasks.parsing.upsampler.1.weight',
            'shared.projections.dense.patch_proj.weight'} <= keys
    assert 'tasks.parsing.flip_perm' not in keys  # derived from the config, not a weight


def test_parsing_pathways_share_indicator_and_upsampler():
    """Official share_modality_group 6: the parsing datasets share the modality indicator and the upsampler; their
    class tables and class-axis LayerNorms are their own."""
    grid = (4, 4)
    model = Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8, embed_dim=32)),
                    encoder=dict(type='ViTEncoder', embed_dim=32, depth=1, num_heads=2),
                    decoder=dict(type='HulkDecoder', embed_dim=32, depth=1, num_heads=2, ffn_dim=64),
                    projections=dict(dense=dict(text_dim=16))),
        tasks=dict(parsing_lip=parsing_cfg(20, grid, 32, text=1), parsing_h36m=parsing_cfg(25, grid, 32, text=2)))
    lip, h36m = model.tasks['parsing_lip'], model.tasks['parsing_h36m']
    assert lip.upsampler is h36m.upsampler and lip.indicator is h36m.indicator
    assert lip.detokenizer.semantic.text_features.shape == (20, 16)
    assert h36m.detokenizer.semantic.post_mul_norm.weight.shape == (25, )
    images = h36m.example_inputs(model.shared, batch_size=2)
    assert images.shape == (2, 3, 32, 32)
    with torch.no_grad():
        masks, presence = h36m.infer(model.shared, images)
    assert masks.shape == (2, 25, 16, 16) and presence.shape == (2, 25)


def test_one_loss_step_reaches_every_parameter():
    model = tiny_hulk().train()
    labels = blocky_labels()
    losses = model({'parsing': torch.rand(2, 3, 32, 32) * 255}, {'parsing': make_samples(labels)}, mode='loss')
    assert set(losses) == {'parsing.loss_mask', 'parsing.loss_dice', 'parsing.loss_presence'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    model.parse_losses(losses)[0].backward()
    # adapt_pos1d is the mesh task's depth PE MLP: shared, but no parsing input reaches it
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and 'adapt_pos1d' not in n]
    assert not missing, missing


def test_loss_decreases_when_overfitting_a_batch():
    """The sigmoid masks sit behind a class-axis LayerNorm whose gain starts at 1, so the per-pixel BCE/dice falls
    slowly (the release trains 60k steps); 40 steps at a high rate reliably take off ~14 % (0.85-0.86 over seeds)."""
    torch.manual_seed(0)
    model = tiny_hulk().train()
    samples = make_samples(blocky_labels())
    images = torch.rand(2, 3, 32, 32) * 255
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    history = []
    for _ in range(40):
        loss, _ = model.parse_losses(model({'parsing': images}, {'parsing': samples}, mode='loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-5:]) < 0.92 * sum(history[:5]), history


def test_loss_supervises_present_classes_only(monkeypatch):
    """Class c of image b gets a mask term iff it labels a pixel (255 selects nothing and is a negative everywhere);
    the mask terms are divided by the number of such pairs; presence targets are the same pairs."""
    model = tiny_hulk(c=4, dec_depth=1).eval()
    parsing = model.tasks['parsing']
    labels = torch.full((2, 32, 32), 255)
    labels[0, :16], labels[0, 16:20] = 2, 0  # image 0: classes 0 and 2; image 1: nothing labelled
    seen = {}

    def fake_loss(mask_logits, targets, avg_factor):
        seen.update(n=mask_logits.shape[0], targets=targets, avg=float(avg_factor))
        return mask_logits.sum() * 0, mask_logits.sum() * 0
    monkeypatch.setattr(parsing.loss_mask, 'forward', fake_loss)
    presence_targets = []
    monkeypatch.setattr(parsing.loss_presence, 'forward', lambda logits, t: presence_targets.append(t) or t.sum())
    model({'parsing': torch.rand(2, 3, 32, 32) * 255}, {'parsing': make_samples(labels)}, mode='loss')
    assert seen['n'] == 2 and seen['avg'] == 2.0
    assert torch.equal(seen['targets'][0], labels[0] == 0) and torch.equal(seen['targets'][1], labels[0] == 2)
    assert presence_targets[0].tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]
    # a batch without any labelled pixel: zero mask terms, no division by zero
    monkeypatch.undo()
    losses = model({'parsing': torch.rand(1, 3, 32, 32) * 255},
                   {'parsing': make_samples(torch.full((1, 32, 32), 255))}, mode='loss')
    assert losses['parsing.loss_mask'] == 0 and losses['parsing.loss_dice'] == 0


def test_predict_flip_test_swaps_left_right_channels():
    """Teacher forcing: the flipped pass returns the mirror image with left/right classes exchanged, so the
    flip-averaged probabilities must equal the unflipped ones; without the swap they would not."""
    model = tiny_hulk(c=4, flip_pairs=[(1, 2)]).eval()
    parsing = model.tasks['parsing']
    g = torch.Generator().manual_seed(0)
    masks, presence = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 4, generator=g)
    mirrored = masks.flip(-1)[:, [0, 2, 1, 3]], presence[:, [0, 2, 1, 3]]
    outputs = iter([(masks, presence), mirrored])
    parsing.detokenizer.forward = lambda tokens, projection, upsampler: next(outputs)
    with torch.no_grad():
        probs = parsing.probabilities(model.shared, torch.rand(1, 3, 32, 32) * 255)
    torch.testing.assert_close(probs, presence.sigmoid()[..., None, None] * masks.sigmoid())


def test_predict_crops_padding_and_resizes_to_the_original_image():
    """Teacher forcing on a padded canvas: the right half of the 32x32 input is padding; the content's left half is
    class 0, its right half class 1, the padding class 2. At the original size (10, 20) the labels must split at
    column 10 and class 2 must be gone."""
    model = tiny_hulk(c=3).eval()
    parsing = model.tasks['parsing']
    parsing.flip_test = False
    masks = torch.full((1, 3, 16, 16), -10.0)
    masks[:, 0, :, :4], masks[:, 1, :, 4:8], masks[:, 2, :, 8:] = 10.0, 10.0, 10.0
    parsing.detokenizer.forward = lambda tokens, projection, upsampler: (masks, torch.zeros(1, 3))
    sample = SegDataSample(metainfo=dict(ori_shape=(10, 20), img_shape=(32, 16), padding_size=[0, 16, 0, 0]))
    with torch.no_grad():
        result = model({'parsing': torch.rand(1, 3, 32, 32) * 255}, {'parsing': [sample]}, mode='predict')[0]
    assert result.seg_logits.data.shape == (3, 10, 20) and result.pred_sem_seg.data.shape == (1, 10, 20)
    expected = torch.zeros(10, 20, dtype=torch.long)
    expected[:, 10:] = 1
    assert torch.equal(result.pred_sem_seg.data[0], expected)


def test_predict_is_consumed_by_mmseg_iou_metric(synthhuman_root):
    """SynthHuman LIP crops through mmseg's LIPDataset test pipeline (resize to the fixed input, ignoring aspect),
    the preprocessor and predict, then mmseg's IoUMetric on the original-size label maps."""
    from mmengine.dataset import pseudo_collate
    from mmseg.datasets import LIPDataset
    from mmseg.evaluation import IoUMetric
    init_default_scope('mmseg')
    dataset = LIPDataset(
        data_root=osp.join(synthhuman_root, 'parsing', 'lip', 'val'),
        data_prefix=dict(img_path='images', seg_map_path='labels'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='Resize', scale=(32, 32), keep_ratio=False),
                  dict(type='LoadAnnotations'), dict(type='PackSegInputs')])
    init_default_scope('hulk_mm')
    assert len(dataset) >= 2
    model = tiny_hulk(c=20, flip_pairs=LIP_FLIP).eval()
    batch = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(2)]))
    assert batch['inputs']['parsing'].shape == (2, 3, 32, 32)
    with torch.no_grad():
        results = model(**batch, mode='predict')
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [r.to_dict() for r in results])
    for r in results:
        probs = r.seg_logits.data
        assert probs.shape[1:] == r.gt_sem_seg.data.shape[1:] == tuple(r.ori_shape)
        assert probs.min() >= 0 and probs.max() <= 1  # sigmoid(presence) * sigmoid(mask)
        assert torch.equal(r.pred_sem_seg.data[0], probs.argmax(0))
    assert 0 <= metric.compute_metrics(metric.results)['mIoU'] <= 100


def test_data_preprocessor_pads_labels_with_ignore():
    pre = HulkDataPreprocessor(tasks=dict(parsing=dict(type='SegDataPreProcessor', bgr_to_rgb=True, size=(32, 32),
                                                       pad_val=0, seg_pad_val=255, _scope_='mmseg')))
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.zeros(1, 24, 32, dtype=torch.long)))
    out = pre(dict(inputs=[torch.randint(0, 255, (3, 24, 32), dtype=torch.uint8)], data_samples=[sample]),
              training=True)
    assert out['inputs']['parsing'].shape == (1, 3, 32, 32) and out['inputs']['parsing'].dtype == torch.float32
    gt = out['data_samples']['parsing'][0].gt_sem_seg.data
    assert gt.shape == (1, 32, 32) and (gt[:, 24:] == 255).all() and (gt[:, :24] == 0).all()


def test_bad_inputs_give_clear_errors(tmp_path):
    model = tiny_hulk().eval()
    with pytest.raises(ValueError, match='fixed 4x4 token grid'):
        model({'parsing': torch.rand(1, 3, 48, 32)}, mode='tensor')
    labels = blocky_labels(b=1)
    labels[0, -1, -1] = 7
    with pytest.raises(ValueError, match=r'outside 0..5 .* num_classes=6'):
        model({'parsing': torch.rand(1, 3, 32, 32)}, {'parsing': make_samples(labels)}, mode='loss')
    with pytest.raises(ValueError, match='at the input size'):
        model({'parsing': torch.rand(1, 3, 32, 32)}, {'parsing': make_samples(blocky_labels(b=1, size=16))},
              mode='loss')
    with pytest.raises(ValueError, match=r'flip pair \(5, 6\) is outside the 6 classes'):
        tiny_hulk(flip_pairs=[(5, 6)])
    table = tmp_path / 'names.pth'
    torch.save(torch.zeros(20, 16), table)
    with pytest.raises(ValueError, match=r'\(20, 16\) does not match 6 classes'):
        tiny_hulk(text=str(table))
    with pytest.raises(ValueError, match="text table width 16 != the shared projection's text_dim 8"):
        model.tasks['parsing'](type(model.shared)(
            tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8, embed_dim=32)),
            encoder=dict(type='ViTEncoder', embed_dim=32, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=32, depth=1, num_heads=2, ffn_dim=64),
            projections=dict(dense=dict(text_dim=8))), torch.rand(1, 3, 32, 32))


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official parsing path. The fixture holds inputs, official outputs and the official key list;
# the weights are regenerated from a seed (README in tests/data/official/parsing/).
# ----------------------------------------------------------------------------------------------------------------
DEAD_KEYS = [  # spec §8.2: the parsing checkpoint's keys without a counterpart (dead modules, Norm2d aliases)
    'adapter_dense_labeling.pos_embed', 'adapter_dense_labeling.proj.weight', 'adapter_dense_labeling.proj.bias',
    'adapter_dense_labeling.type_embed.weight', 'adapter_dense_labeling.class_embed.weight',
    'backbone_module.global_tokens', 'neck_label.mask_map.0.weight', 'neck_label.mask_map.0.bias',
    'decoder_module.predictor.level_embed.weight', 'decoder_module.predictor.class_embed.weight',
    'decoder_module.predictor.class_embed.bias'] + [
    f'decoder_module.predictor.mask_embed.layers.{i}.{p}' for i in range(3) for p in ('weight', 'bias')] + [
    'proj_rgb.output_proj.weight', 'proj_rgb.output_proj.bias',
    'proj_dense_labeling.upsample_network.1.ln.weight', 'proj_dense_labeling.upsample_network.1.ln.bias']


def fixture_model(meta: dict, names=('parsing', )) -> Hulk:
    (h, w), (de, depth, heads), (d, dheads, ffn), c = meta['img'], meta['enc'], meta['dec'], meta['C']
    cfg = parsing_cfg(c, (h // 16, w // 16), d, text_dim=768, upsample=d, points=meta['num_points'],
                      ratios=meta['sample_weight'], flip_pairs=meta['flip_pairs'])
    cfg['loss_presence']['loss_weight'] = meta['class_weight']
    cfg['loss_mask']['loss_bce']['loss_weight'] = meta['mask_weight']
    cfg['loss_mask']['loss_dice']['loss_weight'] = meta['dice_weight']
    return Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=16, embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn),
                    projections=dict(dense=dict(text_dim=768))),
        tasks={name: cfg for name in names})


def load_fixture_model(meta: dict) -> Hulk:
    model = fixture_model(meta)
    sd = official_layout_state_dict(meta['keys'], meta['weight_seed'])
    model.load_state_dict(convert_official_state_dict(sd, 'parsing'), strict=True)
    return model.eval()


def fixture_inputs(meta: dict):
    """The fixture's seeded inputs, regenerated as the official run made them."""
    (h, w), c, b = meta['img'], meta['C'], meta['B']
    g = torch.Generator().manual_seed(meta['input_seed'])
    images = (torch.rand(b, 3, h, w, generator=g) * 255).round()
    coarse = torch.randint(0, c, (b, 1, h // 8, w // 8), generator=g).float()
    labels = torch.nn.functional.interpolate(coarse, size=(h, w), mode='nearest')[:, 0].long()
    labels[:, :, :w // 16] = 255
    labels[:, -h // 16:] = 255
    return images, labels


def fixed_point_sampler(seed: int):
    """The fixture's deterministic stand-in for the importance sampler: call k returns uniform points from a
    generator seeded with ``seed + k`` (the official run had its sampler replaced by the same function)."""
    calls = []

    def sample(mask_preds, labels, num_points, oversample_ratio, importance_sample_ratio):
        calls.append(None)
        g = torch.Generator().manual_seed(seed + len(calls) - 1)
        return torch.rand(mask_preds.shape[0], num_points, 2, generator=g)
    return sample


def fixture_outputs_and_losses(model, meta, images, labels, monkeypatch):
    """One forward pass: the per-layer outputs, and from them our loss terms (a) with the real sampler after
    ``torch.manual_seed(loss_seed)``, as the official run, and (b) with the fixed-point sampler."""
    parsing = model.tasks['parsing']
    with torch.no_grad():
        outputs = parsing(model.shared, images)
    monkeypatch.setattr(parsing, 'forward', lambda shared, inputs: outputs)  # both losses reuse the pass
    samples = make_samples(labels, meta['ori'])
    torch.manual_seed(meta['loss_seed'])
    seeded = model({'parsing': images}, {'parsing': samples}, mode='loss')
    monkeypatch.setattr(parsing_losses, 'get_uncertain_point_coords_with_randomness',
                        fixed_point_sampler(meta['fixed_points_seed']))
    fixed = model({'parsing': images}, {'parsing': samples}, mode='loss')
    return outputs, seeded, fixed


def test_dropped_official_keys_are_the_dead_modules():
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    sd = {k: torch.empty(0) for k, _ in meta['keys']}
    assert sorted(dropped_official_keys(sd, 'parsing')) == sorted(DEAD_KEYS)
    assert unexpected_official_keys(sd, 'parsing') == []


def test_official_lip_and_cihp_files_merge_into_one_model_sharing_the_group_parts():
    """Official tasks 17 (LIP) and 18 (CIHP): own tables, the same shared tensors and the same group-6 tensors
    (modality indicator, upsampler). They merge into parsing_lip + parsing_cihp and load strictly; a CIHP file whose
    upsampler differs is refused."""
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    sd17 = official_layout_state_dict(meta['keys'], seed=0)
    sd18 = official_layout_state_dict(meta['keys'], seed=1)
    group = ('decoder_module.predictor.mask_token', 'proj_dense_labeling.upsample_network.')
    for key in sd17:
        converted = convert_official_state_dict({key: sd17[key]}, 'parsing')
        if key.startswith(group) or any(k.startswith('shared.') for k in converted):
            sd18[key] = sd17[key].clone()
    pathways = {17: ('parsing', 'parsing_lip'), 18: ('parsing', 'parsing_cihp')}
    model = fixture_model(meta, names=('parsing_lip', 'parsing_cihp'))
    model.load_state_dict(merge_official_state_dicts({17: sd17, 18: sd18}, pathways), strict=True)
    lip, cihp = model.tasks['parsing_lip'], model.tasks['parsing_cihp']
    assert lip.upsampler is cihp.upsampler
    assert not torch.equal(lip.detokenizer.semantic.text_features, cihp.detokenizer.semantic.text_features)
    sd18['proj_dense_labeling.upsample_network.0.weight'] = sd18['proj_dense_labeling.upsample_network.0.weight'] + 1
    with pytest.raises(OfficialCheckpointMismatch, match='upsampler'):
        merge_official_state_dicts({17: sd17, 18: sd18}, pathways)


def test_converted_official_weights_reproduce_official_parsing_outputs(monkeypatch):
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    io = torch.load(osp.join(FIXTURE, 'parsing_tiny_io.pth'), weights_only=True)
    model = load_fixture_model(meta)
    images, labels = io['images'].float(), io['labels'].long()
    regenerated = fixture_inputs(meta)  # what the full-size test relies on
    assert torch.equal(images, regenerated[0]) and torch.equal(labels, regenerated[1])
    with torch.no_grad():
        results = model({'parsing': images}, {'parsing': make_samples(labels, meta['ori'])}, mode='predict')
    outputs, seeded, fixed = fixture_outputs_and_losses(model, meta, images, labels, monkeypatch)
    masks, presence = outputs[-1]
    assert (masks - io['mask_logits']).abs().max() <= 1e-4 * io['mask_logits'].abs().max()
    assert (presence - io['presence']).abs().max() <= 1e-4 * io['presence'].abs().max()
    for result, official in zip(results, io['flip_probs']):  # official par_flip test, mask_times_cls
        assert result.seg_logits.data.shape == official.shape
        assert (result.seg_logits.data - official).abs().max() <= 1e-4 * official.abs().max()
    for key in ('loss_mask', 'loss_dice', 'loss_presence'):
        torch.testing.assert_close(seeded[f'parsing.{key}'], io[f'{key}_seeded'], rtol=1e-5, atol=0)
        torch.testing.assert_close(fixed[f'parsing.{key}'], io[f'{key}_fixed'], rtol=1e-5, atol=0)


@pytest.mark.slow
def test_full_size_vitb_matches_official_parsing_summary(monkeypatch):
    """ViT-B (768 x 12) + decoder 256 x 9 at 480x480, 20 classes, batch 1, real point counts."""
    with open(osp.join(FIXTURE, 'parsing_full_summary.json')) as f:
        meta = json.load(f)
    model = load_fixture_model(meta)
    images, labels = fixture_inputs(meta)
    with torch.no_grad():
        results = model({'parsing': images}, {'parsing': make_samples(labels, meta['ori'])}, mode='predict')
    outputs, seeded, fixed = fixture_outputs_and_losses(model, meta, images, labels, monkeypatch)
    masks, presence = outputs[-1]

    def check(ours, summary):
        flat, scale = ours.flatten(), summary['absmax']
        assert list(ours.shape) == summary['shape']
        assert abs(flat.abs().max().item() - scale) <= 1e-4 * scale
        assert (flat[summary['index']] - torch.tensor(summary['values'])).abs().max() <= 1e-4 * scale
        assert abs(flat.double().sum().item() - summary['sum']) <= 1e-4 * scale * flat.numel() ** 0.5
    check(masks, meta['mask_logits'])
    check(presence, meta['presence'])
    for result, summary in zip(results, meta['flip_probs']):
        check(result.seg_logits.data, summary)
    for key in ('loss_mask', 'loss_dice', 'loss_presence'):
        assert seeded[f'parsing.{key}'].item() == pytest.approx(meta[f'{key}_seeded'], rel=1e-5)
        assert fixed[f'parsing.{key}'].item() == pytest.approx(meta[f'{key}_fixed'], rel=1e-5)

"""The Hulk model with its attribute pathway: shapes, sharing, gradients, learning, the one-sided masked BCE, predict
output read by AttributeMetric (on SynthHuman crops), errors, and fidelity to the official attribute path
(tests/data/official/attribute/)."""
from __future__ import annotations

import json
import os.path as osp
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import LoadImageFromFile, Resize
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

import hulk_mm.models.losses.attribute  # noqa: F401  (registers MaskedOneSideBCELoss)
import hulk_mm.models.tasks.attribute  # noqa: F401  (registers AttributePathway)
from hulk_mm.evaluation.metrics import AttributeMetric
from hulk_mm.models import Hulk, convert_official_state_dict, dropped_official_keys
from hulk_mm.models.official import unexpected_official_keys
from hulk_mm.models.losses.attribute import MaskedOneSideBCELoss
from hulk_mm.registry import DATASETS
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'attribute')
DATASETS_2 = dict(a=(0, 2), b=(2, 6))

init_default_scope('hulk_mm')


pytestmark = pytest.mark.usefixtures('one_thread')


def attribute_cfg(num_attributes=6, grid=(4, 3), width=32, datasets=DATASETS_2, text=0, ratios=None) -> dict:
    return dict(type='AttributePathway', num_attributes=num_attributes, grid=grid, embed_dim=width, datasets=datasets,
                detokenizer=dict(type='SemanticDetokenizer', text_dim=16, text_features=text),
                loss=dict(type='MaskedOneSideBCELoss', positive_ratios=ratios or [0.3] * num_attributes))


def tiny_hulk(img=(32, 24), patch=8, width=32, dec_depth=2, projections=True, **attribute) -> Hulk:
    """A Hulk small enough for unit tests: 4x3 token grid, 6 attributes in two datasets."""
    return Hulk(
        shared=dict(
            tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=patch, embed_dim=width)),
            encoder=dict(type='ViTEncoder', embed_dim=width, depth=1, num_heads=2),
            decoder=dict(type='HulkDecoder', embed_dim=width, depth=dec_depth, num_heads=2, ffn_dim=64),
            projections=dict(text=dict(text_dim=16)) if projections else None),
        tasks=dict(attribute=attribute_cfg(grid=(img[0] // patch, img[1] // patch), width=width, **attribute)))


def sample(dataset, labels) -> BaseDataElement:
    return BaseDataElement(metainfo=dict(dataset_name=dataset), gt_label=np.asarray(labels, np.int8))


def two_samples():
    return [sample('a', [1, 0]), sample('b', [0, 1, 1, 0])]


def test_shapes_per_stage():
    model = tiny_hulk().eval()
    images = torch.rand(2, 3, 32, 24) * 255
    attr = model.tasks['attribute']
    queries = attr.attribute_queries(model.shared, images)
    assert len(queries) == 2 and all(q.shape == (2, 6, 32) for q in queries)
    outs = model({'attribute': images}, mode='tensor')
    assert len(outs) == 2 and all(o.shape == (2, 6) for o in outs)
    assert attr.query_embed_patch.shape == (1, 12, 32) and attr.query_embed_label.shape == (1, 6, 32)
    example = attr.example_inputs(model.shared, 3)
    assert example.shape == (3, 3, 32, 24) and 0 <= example.min() and example.max() <= 255
    with torch.no_grad():
        torch.testing.assert_close(attr.infer(model.shared, images), outs[-1])


def test_query_k_is_scored_against_attribute_k_only():
    """Official ``einsum('bcd,cd->bc')``: permuting the text table permutes nothing but the matching cosines."""
    model = tiny_hulk().eval()
    attr, shared = model.tasks['attribute'], model.shared
    queries = torch.randn(2, 6, 32)
    with torch.no_grad():
        logits = attr.class_logits(shared, queries)
        projection = shared.projections['text']
        cos = F.normalize(projection.patch_proj(queries), dim=-1) @ F.normalize(
            projection.class_proj(attr.detokenizer.text_features), dim=-1).t()
        expected = F.layer_norm(torch.diagonal(cos, dim1=1, dim2=2), (6,), attr.detokenizer.post_mul_norm.weight,
                                attr.detokenizer.post_mul_norm.bias, eps=1e-6)
    torch.testing.assert_close(logits, expected)


def test_state_dict_has_each_shared_module_once():
    model = tiny_hulk()
    params = {name for name, _ in model.named_parameters()}
    keys = set(model.state_dict())
    assert params <= keys
    assert not any('encoder' in k or 'tokenizers' in k or 'projections' in k for k in keys if k.startswith('tasks.'))
    assert {'tasks.attribute.indicator', 'tasks.attribute.query_embed_patch', 'tasks.attribute.query_embed_label',
            'tasks.attribute.detokenizer.text_features', 'tasks.attribute.detokenizer.post_mul_norm.weight',
            'shared.projections.text.class_proj.weight'} <= keys
    assert not any('loss_attr' in k for k in keys)  # ratios/weights come from the config, not the weights


def test_one_loss_step_reaches_every_parameter():
    model = tiny_hulk().train()
    losses = model({'attribute': torch.rand(2, 3, 32, 24) * 255}, {'attribute': two_samples()}, mode='loss')
    assert set(losses) == {'attribute.loss_attr'}
    model.parse_losses(losses)[0].backward()
    # adapt_pos2d / adapt_pos1d are the shared PE MLPs of pose, parsing, detection and mesh: unused here (§2.8)
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and 'adapt_pos' not in n]
    assert not missing, missing


def test_loss_decreases_when_overfitting_a_batch():
    torch.manual_seed(0)
    model = tiny_hulk().train()
    images = torch.rand(2, 3, 32, 24) * 255
    samples = two_samples()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        loss, _ = model.parse_losses(model({'attribute': images}, {'attribute': samples}, mode='loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.3 * history[0], history
    model.eval()
    with torch.no_grad():
        results = model({'attribute': images}, {'attribute': two_samples()}, mode='predict')
    for result, labels in zip(results, ([1, 0], [0, 1, 1, 0])):
        assert ((result.pred_score > 0.5).numpy() == np.array(labels, bool)).all()


def test_masked_one_side_bce_matches_the_formula_and_ignores_minus_one():
    g = torch.Generator().manual_seed(0)
    ratios, weights = torch.tensor([0.1, 0.5, 0.8]), torch.tensor([0.5, 0.25, 1.0])
    loss_fn = MaskedOneSideBCELoss(ratios.tolist(), weights.tolist(), loss_weight=2.0)
    logits = torch.randn(4, 3, generator=g, requires_grad=True)
    targets = torch.tensor([[1., 0., -1.], [0., 1., 1.], [-1., -1., 0.], [1., 1., 0.]])
    valid = targets != -1
    y = targets.clamp(min=0)
    p = logits.sigmoid()
    p_t = p * y + (1 - p) * (1 - y)
    bce = -(y * p.log() + (1 - y) * (1 - p).log())
    per = bce * torch.exp(y * (1 - ratios) + (1 - y) * ratios) * (1 - p_t) ** 2 * weights
    expected = 2.0 * (per * valid).sum() / 4
    loss = loss_fn(logits, targets)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (logits.grad[~valid] == 0).all() and (logits.grad[valid] != 0).all()
    with pytest.raises(ValueError, match=r'shape \(B, 3\)'):
        loss_fn(logits[:, :2], targets[:, :2])
    with pytest.raises(ValueError, match='two \\(A,\\) sequences'):
        MaskedOneSideBCELoss([0.1, 0.2], [1.0])


def test_loss_targets_fill_each_dataset_columns():
    model = tiny_hulk()
    attr = model.tasks['attribute']
    captured = {}
    attr.loss_attr.forward = lambda logits, targets: captured.setdefault('targets', targets).sum()
    model({'attribute': torch.rand(2, 3, 32, 24) * 255}, {'attribute': two_samples()}, mode='loss')
    torch.testing.assert_close(captured['targets'], torch.tensor([[1., 0., -1., -1., -1., -1.],
                                                            [-1., -1., 0., 1., 1., 0.]]))


def test_predict_scores_the_dataset_columns():
    model = tiny_hulk().eval()
    attr = model.tasks['attribute']
    logits = torch.tensor([[0., 1., 2., 3., 4., 5.], [-1., -2., -3., -4., -5., -6.]])
    attr.class_logits = lambda shared, queries: logits
    with torch.no_grad():
        results = model({'attribute': torch.rand(2, 3, 32, 24) * 255}, {'attribute': two_samples()}, mode='predict')
    torch.testing.assert_close(results[0].pred_score, logits[0, :2].sigmoid())
    torch.testing.assert_close(results[1].pred_score, logits[1, 2:].sigmoid())


@pytest.fixture(scope='module')
def synth_attributes(tmp_path_factory):
    from hulk_mm.datasets.synthetic import generate
    root = str(tmp_path_factory.mktemp('synthhuman_attribute'))
    generate(root, num_train=2, num_val=4, seed=0, tasks=['attribute'], progress=False)
    return osp.join(root, 'attribute')


def test_predict_on_synthhuman_crops_feeds_attribute_metric(synth_attributes):
    """PedestrianAttributeDataset items (crop path, (A,) int8 labels) -> crops resized to the fixed grid ->
    loss and predict -> AttributeMetric (PA-100k's columns of a label space shared with RAPv2)."""
    pa100k = DATASETS.build(dict(type='PedestrianAttributeDataset', data_root=synth_attributes,
                                 ann_file='pa100k_val.json'))
    num = len(pa100k.metainfo['attr_names'])
    model = tiny_hulk(num_attributes=num + 3, datasets=dict(rapv2=(0, 3), pa100k=(3, 3 + num))).eval()
    load, resize = LoadImageFromFile(), Resize(scale=(24, 32), keep_ratio=False)
    images, samples = [], []
    for i in range(len(pa100k)):
        info = resize(load(pa100k.get_data_info(i)))
        images.append(torch.from_numpy(np.ascontiguousarray(info['img'][..., ::-1].transpose(2, 0, 1))).float())
        samples.append(BaseDataElement(metainfo=dict(dataset_name='pa100k', img_path=info['img_path']),
                                       gt_label=info['gt_label']))
    images = torch.stack(images)
    losses = model({'attribute': images}, {'attribute': samples}, mode='loss')
    assert torch.isfinite(losses['attribute.loss_attr'])
    with torch.no_grad():
        results = model({'attribute': images}, {'attribute': samples}, mode='predict')
    metric = AttributeMetric(threshold=0.3, prefix='attribute.pa100k')
    metric.process(None, [r.to_dict() for r in results])
    metrics = metric.evaluate(len(results))
    assert set(metrics) >= {'attribute.pa100k/mA', 'attribute.pa100k/F1'}
    assert 0.0 <= metrics['attribute.pa100k/mA'] <= 1.0
    assert all(r.pred_score.shape == (num,) for r in results)


def test_bad_inputs_give_clear_errors(tmp_path):
    model = tiny_hulk().eval()
    with pytest.raises(ValueError, match='fixed 4x3 token grid'):
        model({'attribute': torch.rand(1, 3, 48, 24)}, mode='tensor')
    with pytest.raises(ValueError, match='gt_label has 3 values, its dataset has 2 columns'):
        model({'attribute': torch.rand(1, 3, 32, 24)}, {'attribute': [sample('a', [1, 0, 1])]}, mode='loss')
    with pytest.raises(KeyError, match="unknown dataset_name 'c'"):
        model({'attribute': torch.rand(1, 3, 32, 24)}, {'attribute': [sample('c', [1, 0])]}, mode='predict')
    with pytest.raises(KeyError, match='without metainfo dataset_name'):
        model({'attribute': torch.rand(1, 3, 32, 24)}, {'attribute': [BaseDataElement(gt_label=[1, 0])]},
              mode='predict')
    with pytest.raises(ValueError, match=r"dataset 'b': columns \[2, 9\) outside the 6 classes"):
        tiny_hulk(datasets=dict(a=(0, 2), b=(2, 9)))
    table = tmp_path / 'attributes.pth'
    torch.save(torch.zeros(5, 16), table)
    with pytest.raises(ValueError, match=r'\(5, 16\) does not match 6 classes'):
        tiny_hulk(text=str(table))
    with pytest.raises(KeyError, match="shared semantic projection 'text'"):
        tiny_hulk(projections=False)({'attribute': torch.rand(1, 3, 32, 24)}, mode='tensor')


# ----------------------------------------------------------------------------------------------------------------
# Fidelity to the official attribute path. The fixture holds inputs, the official outputs and the official key list;
# the weights are regenerated from a seed (README in tests/data/official/attribute/).
# ----------------------------------------------------------------------------------------------------------------
def seeded_inputs(meta: dict, seed: int = 2):
    """The fixture's inputs, regenerated: crops (B, 3, H, W) of integer pixels and, per sample, the labels of its
    dataset (sample i belongs to the i-th dataset of ``meta['datasets']``, cyclically; positives with p 0.35)."""
    g = torch.Generator().manual_seed(seed)
    (h, w), b = meta['img'], meta['B']
    images = (torch.rand(b, 3, h, w, generator=g) * 255).round()
    names = list(meta['datasets'])
    names = [names[i % len(names)] for i in range(b)]
    labels = []
    for name in names:
        start, end = meta['datasets'][name]
        labels.append((torch.rand(end - start, generator=g) < 0.35).float())
    return images, labels, names


def fixture_model(meta: dict) -> Hulk:
    (h, w), (de, depth, heads), (d, dheads, ffn) = meta['img'], meta['enc'], meta['dec']
    return Hulk(
        shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=16, embed_dim=de)),
                    encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                    decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn),
                    projections=dict(text=dict(text_dim=meta['text_dim']))),
        tasks=dict(attribute=dict(
            type='AttributePathway', num_attributes=meta['L'], grid=(h // 16, w // 16), embed_dim=d,
            datasets=meta['datasets'], detokenizer=dict(type='SemanticDetokenizer', text_dim=meta['text_dim']),
            loss=dict(type='MaskedOneSideBCELoss', positive_ratios=meta['positive_ratios'],
                      attribute_weights=meta['attribute_weights']))))


def converted_model(meta: dict) -> Hulk:
    model = fixture_model(meta)
    official = official_layout_state_dict(meta['keys'], meta['seed'])
    model.load_state_dict(convert_official_state_dict(official, 'attribute'), strict=True)
    return model


def run_fixture(model, images, labels, names):
    samples = [BaseDataElement(metainfo=dict(dataset_name=n), gt_label=lab) for lab, n in zip(labels, names)]
    model.eval()
    with torch.no_grad():
        logits = model({'attribute': images}, mode='tensor')[-1]
        loss = model({'attribute': images}, {'attribute': samples}, mode='loss')['attribute.loss_attr']
    return logits, loss


def test_converted_official_weights_reproduce_official_attribute_outputs():
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    io = torch.load(osp.join(FIXTURE, 'attribute_tiny_io.pth'), weights_only=True)
    images, labels, names = seeded_inputs(meta)
    assert torch.equal(images, io['inputs']) and names == io['dataset_names']
    logits, loss = run_fixture(converted_model(meta), images, labels, names)
    assert (logits - io['logits']).abs().max() <= 1e-4 * io['logits'].abs().max()
    torch.testing.assert_close(loss, io['loss'], rtol=1e-5, atol=0)


def test_converter_drops_exactly_the_dead_official_keys():
    """Spec §8.2: the label-side text tokenizer, neck_label, the patch projector proj_rgb, the unused decoder heads
    and the encoder's empty global tokens are dead; everything else is mapped."""
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        meta = json.load(f)
    keys = dict(meta['keys'])
    dead = re.compile(r'^(adapter_text\.|neck_label\.|proj_rgb\.|backbone_module\.global_tokens$|'
                      r'decoder_module\.predictor\.(level_embed|class_embed|mask_embed)\.)')
    official = {k: torch.empty(0) for k in keys}
    assert sorted(dropped_official_keys(official, 'attribute')) == sorted(k for k in keys if dead.match(k))
    assert unexpected_official_keys(official, 'attribute') == []
    # The official sentence table is (L, 3, 768) (negative, positive, third sentence); the projector keeps the
    # positive one, so the live table is (L, 768) and the converter copies it as it is.
    assert keys['adapter_text.text_vectors'] == [meta['L'], 3, 768]
    assert keys['proj_text.text_vectors'] == [meta['L'], 768]


@pytest.mark.slow
def test_full_size_converted_weights_reproduce_official_attribute_outputs():
    """ViT-B (768 x 12), decoder 256 x 9, 256x192 crop, 168 attributes, batch 1; the official outputs summarised."""
    with open(osp.join(FIXTURE, 'official_full.json')) as f:
        meta = json.load(f)
    images, labels, names = seeded_inputs(meta)
    logits, loss = run_fixture(converted_model(meta), images, labels, names)
    assert list(logits.shape) == meta['logits_shape']
    flat = logits.flatten()
    scale = meta['logits_absmax']
    assert abs(flat.abs().max().item() - scale) <= 1e-4 * scale
    assert abs(flat.sum().item() - meta['logits_sum']) <= 1e-4 * scale * flat.numel() ** 0.5
    assert (flat[meta['sample_index']] - torch.tensor(meta['sample_values'])).abs().max() <= 1e-4 * scale
    assert abs(loss.item() - meta['loss']) <= 1e-5 * abs(meta['loss'])

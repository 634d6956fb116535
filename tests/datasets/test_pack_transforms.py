"""PackAttributeInputs / PackCaptionInputs: SynthHuman's attribute and caption sets through the real dataset
classes and pipelines, mmengine's collate, the pathways' loss and predict, and the metrics via mmengine's Evaluator."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from hulk_mm.datasets.synthetic import generate
from hulk_mm.evaluation.metrics import AttributeMetric, CaptionMetric, MeshMetric
from hulk_mm.models import Hulk
from hulk_mm.models.tokenizers.caption import CaptionVocabulary, clean_caption
from hulk_mm.registry import DATASETS

init_default_scope('hulk_mm')


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthhuman_pack'))
    generate(root, 3, 2, 0, tasks=['attribute', 'caption'], progress=False)
    return root


def tiny_model(task: str, pathway: dict) -> Hulk:
    return Hulk(shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8,
                                                       embed_dim=32)),
                            encoder=dict(type='ViTEncoder', embed_dim=32, depth=1, num_heads=2),
                            decoder=dict(type='HulkDecoder', embed_dim=32, depth=2, num_heads=2, ffn_dim=64),
                            projections=dict(text=dict(text_dim=16))),
                tasks={task: pathway},
                data_preprocessor=dict(type='HulkDataPreprocessor', tasks={task: dict(
                    type='ImgDataPreprocessor', bgr_to_rgb=True, _scope_='mmengine')}))


def test_attribute_samples_reach_the_pathway_and_the_metric(synth):
    dataset = DATASETS.build(dict(
        type='PedestrianAttributeDataset', data_root=synth, ann_file='attribute/pa100k_val.json',
        data_prefix=dict(img_path='attribute'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='Resize', scale=(24, 32), keep_ratio=False),
                  dict(type='PackAttributeInputs', dataset_name='pa100k')]))
    item = dataset[0]
    assert item['inputs'].shape == (3, 32, 24) and item['inputs'].dtype == torch.uint8
    sample = item['data_samples']
    num = len(dataset.metainfo['attr_names'])  # SynthHuman's PA-100k subset
    assert isinstance(sample, BaseDataElement) and sample.dataset_name == 'pa100k'
    assert sample.gt_label.dtype == np.int8 and sample.gt_label.shape == (num, )
    batch = pseudo_collate([dataset[i] for i in range(min(3, len(dataset)))])
    assert isinstance(batch['data_samples'], list)
    model = tiny_model('attribute', dict(
        type='AttributePathway', num_attributes=num, grid=(4, 3), datasets=dict(pa100k=(0, num)),
        detokenizer=dict(type='SemanticDetokenizer', text_dim=16),
        loss=dict(type='MaskedOneSideBCELoss', positive_ratios=[0.3] * num)))
    data = model.data_preprocessor(batch, training=True)
    assert set(model(**data, mode='loss')) == {'attribute.loss_attr'}
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch), mode='predict')
    evaluator = Evaluator(AttributeMetric(prefix='attribute.synthhuman'))
    evaluator.process(results, batch)
    assert 'attribute.synthhuman/mA' in evaluator.evaluate(len(results))


def test_caption_samples_reach_the_pathway_and_the_metric(synth):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(32, 32), keep_ratio=False)]
    dataset = DATASETS.build(dict(
        type='PedestrianCaptionDataset', data_root=synth, ann_file='caption/captions_train.json',
        data_prefix=dict(img_path='caption'), pipeline=pipeline + [dict(type='PackCaptionInputs', num_positions=12)]))
    vocabulary = CaptionVocabulary()
    np.random.seed(0)
    item = dataset[0]
    sample = item['data_samples']
    assert item['inputs'].shape == (3, 32, 32)
    ids = sample.gt_token_ids
    assert ids.shape == (13, ) and ids[0] == vocabulary.bos_id and vocabulary.eos_id in ids.tolist()
    decoded = vocabulary.decode(ids)
    assert any(decoded == vocabulary.decode(vocabulary.encode(c, 13)) for c in sample.gt_captions)
    assert any(clean_caption(c, 12).startswith(decoded.split(' ')[0]) for c in sample.gt_captions)
    test_set = DATASETS.build(dict(
        type='PedestrianCaptionDataset', data_root=synth, ann_file='caption/captions_val.json',
        data_prefix=dict(img_path='caption'), pipeline=pipeline + [dict(type='PackCaptionInputs', training=False)]))
    assert 'gt_token_ids' not in test_set[0]['data_samples']

    model = tiny_model('caption', dict(type='CaptionPathway', num_words=len(vocabulary), grid=(4, 4),
                                       num_positions=12, text_dim=16))
    batch = pseudo_collate([dataset[i] for i in range(2)])
    assert set(model(**model.data_preprocessor(batch, training=True), mode='loss')) == {
        'caption.loss_caption', 'caption.acc_word'}
    batch = pseudo_collate([test_set[i] for i in range(2)])
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch), mode='predict')
    evaluator = Evaluator(CaptionMetric(prefix='caption.synthhuman'))
    evaluator.process(results, batch)
    assert 'caption.synthhuman/BLEU-4' in evaluator.evaluate(len(results))


def test_mesh_samples_reach_the_pathway_and_the_metric(tmp_path):
    from tests.models.test_hulk_mesh import tiny_hulk
    generate(str(tmp_path), 2, 1, 0, tasks=['mesh'], progress=False)
    dataset = DATASETS.build(dict(type='HumanMeshDataset', data_root=str(tmp_path / 'mesh'), ann_file='val.npz',
                                  pipeline=[dict(type='LoadImageFromFile'), dict(type='PackMeshInputs')]))
    item = dataset[0]
    sample = item['data_samples']
    assert item['inputs'].shape == (3, 224, 224) and sample.crop_size == 224
    info = dataset.get_data_info(0)
    assert torch.equal(sample.gt_vertices, torch.as_tensor(info['vertices']))
    assert sample.gt_joints3d.shape == (14, 3) and sample.gt_joints2d.shape == (14, 2)
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    model = tiny_hulk(assets=str(tmp_path / 'mesh' / 'body_model.npz'), img=224, patch=16)
    images = torch.stack(batch['inputs']).float()
    losses = model({'mesh': images}, {'mesh': batch['data_samples']}, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    with torch.no_grad():
        results = model({'mesh': images}, {'mesh': batch['data_samples']}, mode='predict')
    evaluator = Evaluator(MeshMetric(prefix='mesh.synthhuman'))
    evaluator.process(results, batch)
    assert {'mesh.synthhuman/MPJPE', 'mesh.synthhuman/PA-MPJPE', 'mesh.synthhuman/MPVPE'} <= set(
        evaluator.evaluate(len(results)))
    resized = DATASETS.build(dict(type='HumanMeshDataset', data_root=str(tmp_path / 'mesh'), ann_file='val.npz',
                                  pipeline=[dict(type='LoadImageFromFile'),
                                            dict(type='Resize', scale=(112, 112), keep_ratio=False),
                                            dict(type='PackMeshInputs')]))
    with pytest.raises(ValueError, match='do not resize mesh crops'):
        resized[0]

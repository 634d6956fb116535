"""SynthHuman attribute (PA-100k/RAPv2-style) and caption (CUHK-PEDES-style) tasks: the files, their agreement
with the rendered scenes, the dataset classes, and the attribute/caption metrics (checked against hand-computed
values and pycocoevalcap)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu

from hulk_mm.datasets import PedestrianAttributeDataset, PedestrianCaptionDataset
from hulk_mm.datasets.synthetic import generate, generate_scene, scene_rng
from hulk_mm.datasets.synthetic.appearance import COLOR_NAMES, HAIR_COLORS
from hulk_mm.datasets.synthetic.body import POINT_INDEX
from hulk_mm.datasets.synthetic.writers.attribute import (ATTR_NAMES, BACK_MIN_ANGLE, FRONT_MAX_ANGLE, RAPV2_COLORS,
                                                          pa100k_labels, rapv2_labels)
from hulk_mm.evaluation.metrics import AttributeMetric, CaptionMetric, corpus_bleu, tokenize
from hulk_mm.registry import DATASETS, METRICS

NUM_TRAIN, NUM_VAL, SEED = 12, 8, 0
COVERAGE_IMAGES = 40
TASKS = ['attribute', 'caption']
ANNOTATION_FILES = [f'attribute/{s}_{split}.json' for s in ('pa100k', 'rapv2') for split in ('train', 'val')] + [
    f'caption/captions_{split}.json' for split in ('train', 'val')]

# PA-100k's 26 attributes in its order, and the RAPv2 (152-attribute release) names we use besides its colours.
PA100K_ALL = ('Female', 'AgeOver60', 'Age18-60', 'AgeLess18', 'Front', 'Side', 'Back', 'Hat', 'Glasses', 'HandBag',
              'ShoulderBag', 'Backpack', 'HoldObjectsInFront', 'ShortSleeve', 'LongSleeve', 'UpperStride',
              'UpperLogo', 'UpperPlaid', 'UpperSplice', 'LowerStripe', 'LowerPattern', 'LongCoat', 'Trousers',
              'Shorts', 'Skirt&Dress', 'boots')
RAPV2_NON_COLOR = ('BodyFat', 'BodyNormal', 'BodyThin', 'hs-LongHair', 'hs-BlackHair', 'hs-Hat', 'ub-ShortSleeve',
                   'lb-LongTrousers', 'lb-Shorts', 'attachment-Backpack', 'attachment-HandBag')
BAG_WORDS = {'backpack': ('backpack', 'rucksack'), 'handbag': ('handbag', 'hand bag')}


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    """(root, manifest) of a small SynthHuman set with the attribute and caption tasks."""
    root = str(tmp_path_factory.mktemp('synthhuman_attr_caption'))
    return root, generate(root, NUM_TRAIN, NUM_VAL, SEED, tasks=TASKS, progress=False)


@pytest.fixture(scope='session')
def coverage(tmp_path_factory):
    """Root of a train-only set of ``COVERAGE_IMAGES`` scenes with the attribute task."""
    root = str(tmp_path_factory.mktemp('synthhuman_attr_coverage'))
    generate(root, COVERAGE_IMAGES, 0, SEED, tasks=['attribute'], progress=False)
    return root


def _load_json(root, name):
    with open(osp.join(root, name)) as f:
        return json.load(f)


def _read(root, name):
    with open(osp.join(root, name), 'rb') as f:
        return f.read()


def _person(split, file_path):
    """(scene, person) behind crop ``.../<image id:06d>_<instance id:02d>.jpg``, rendered again."""
    image_id, instance_id = (int(v) for v in osp.basename(file_path)[:-4].split('_'))
    scene = generate_scene(scene_rng(SEED, split, image_id - 1))
    return scene, scene.persons[instance_id - 1]


def _viewpoint_from_hips(scene, person):
    """Viewpoint from the hip axis (not the yaw the writer uses) and the angle's distance to a bin edge."""
    level = person.points3d @ scene.camera.rotation  # camera -> level frame (Camera.to_camera multiplies by R^T)
    left = level[POINT_INDEX['left_hip']] - level[POINT_INDEX['right_hip']]
    forward = np.cross(left, [0.0, -1.0, 0.0])[[0, 2]]  # body frame (left, up, forward) is right-handed
    to_camera = -level[POINT_INDEX['pelvis']][[0, 2]]
    cos = forward @ to_camera / np.linalg.norm(forward) / np.linalg.norm(to_camera)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    view = 'front' if angle <= FRONT_MAX_ANGLE else 'back' if angle >= BACK_MIN_ANGLE else 'side'
    return view, min(abs(angle - FRONT_MAX_ANGLE), abs(angle - BACK_MIN_ANGLE))


# ---------------------------------------------------------------------------------------------- attribute files


def test_attribute_names_are_real_benchmark_names():
    pa100k = ATTR_NAMES['pa100k']
    assert set(pa100k) <= set(PA100K_ALL)
    assert pa100k == [n for n in PA100K_ALL if n in pa100k]  # PA-100k's own order
    colors = [f'{part}-Color{c.capitalize()}' for part in ('ub', 'lb') for c in RAPV2_COLORS]
    assert set(ATTR_NAMES['rapv2']) == set(RAPV2_NON_COLOR) | set(colors)
    assert set(RAPV2_COLORS) == set(COLOR_NAMES)


def test_attribute_datasets_load(synth):
    root, manifest = synth
    for label_set in ('pa100k', 'rapv2'):
        for split in ('train', 'val'):
            name = f'{label_set}_{split}.json'
            ds = DATASETS.build(dict(type='PedestrianAttributeDataset', data_root=osp.join(root, 'attribute'),
                                     ann_file=name))
            assert isinstance(ds, PedestrianAttributeDataset)
            assert len(ds) == manifest['files']['attribute'][f'attribute/{name}']['images'] > 0
            assert ds.metainfo['attr_names'] == ATTR_NAMES[label_set]
            assert sum(ds.metainfo['attr_groups'].values(), []) == ATTR_NAMES[label_set]
            for i in range(len(ds)):
                info = ds.get_data_info(i)
                assert osp.isfile(info['img_path'])
                assert info['gt_label'].dtype == np.int8 and info['gt_label'].shape == (len(ATTR_NAMES[label_set]),)
    for split in ('train', 'val'):  # both label sets describe the same crops
        pa100k, rapv2 = (_load_json(root, f'attribute/{s}_{split}.json') for s in ('pa100k', 'rapv2'))
        assert pa100k['images'] == rapv2['images']


def test_attribute_dataset_errors(tmp_path):
    ann = tmp_path / 'bad.json'
    ann.write_text(json.dumps(dict(attr_names=['Hat'], images=['a.jpg'])))
    with pytest.raises(KeyError, match=r"bad.json: missing key\(s\) \['labels'\]"):
        PedestrianAttributeDataset(ann_file=str(ann))
    ann.write_text(json.dumps(dict(attr_names=['Hat', 'Shorts'], images=['a.jpg'], labels=[[1]])))
    with pytest.raises(ValueError, match='bad.json: label row 0 has 1 values, attr_names has 2'):
        PedestrianAttributeDataset(ann_file=str(ann))
    ann.write_text(json.dumps(dict(attr_names=['Hat'], images=['a.jpg'], labels=[[1]])))
    with pytest.raises(ValueError, match='differ from metainfo attr_names'):
        PedestrianAttributeDataset(ann_file=str(ann), metainfo=dict(attr_names=['Backpack']))


def test_attribute_labels_match_scenes(synth):
    root, _ = synth
    pa100k, rapv2 = _load_json(root, 'attribute/pa100k_val.json'), _load_json(root, 'attribute/rapv2_val.json')
    checked_views = 0
    for path, pa_row, rap_row in zip(pa100k['images'], pa100k['labels'], rapv2['labels']):
        scene, person = _person('val', path)
        a = person.attributes
        pa, rap = dict(zip(pa100k['attr_names'], pa_row)), dict(zip(rapv2['attr_names'], rap_row))
        assert pa['Hat'] == rap['hs-Hat'] == a['hat']
        assert pa['ShortSleeve'] == rap['ub-ShortSleeve'] == (a['sleeve'] == 'short') != pa['LongSleeve']
        assert pa['Shorts'] == rap['lb-Shorts'] == (a['lower_length'] == 'short') != pa['Trousers']
        assert rap['lb-LongTrousers'] == pa['Trousers']
        assert rap['hs-LongHair'] == (a['hair'] == 'long')
        assert rap['hs-BlackHair'] == (np.abs(np.subtract(person.colors['hair'], HAIR_COLORS[0])).max() <= 8)
        build = {'slim': 'BodyThin', 'average': 'BodyNormal', 'heavy': 'BodyFat'}[a['build']]
        assert [n for n in ('BodyFat', 'BodyNormal', 'BodyThin') if rap[n]] == [build]
        assert [c for c in RAPV2_COLORS if rap[f'ub-Color{c.capitalize()}']] == [a['upper_color']]
        assert [c for c in RAPV2_COLORS if rap[f'lb-Color{c.capitalize()}']] == [a['lower_color']]
        # A bag is labelled only when the person has one of that type (and enough of it shows).
        for pa_name, rap_name, kind in (('Backpack', 'attachment-Backpack', 'backpack'),
                                        ('HandBag', 'attachment-HandBag', 'handbag')):
            assert pa[pa_name] == rap[rap_name] and (not pa[pa_name] or a['bag_type'] == kind)
        views = [v for v in ('Front', 'Side', 'Back') if pa[v]]
        assert len(views) == 1
        expected, margin = _viewpoint_from_hips(scene, person)
        if margin > 2:  # the writer bins the yaw angle; the hip axis agrees up to rounding
            assert views == [expected.capitalize()]
            checked_views += 1
    assert checked_views >= 3


def test_every_attribute_has_positives_and_negatives(coverage):
    for label_set in ('pa100k', 'rapv2'):
        ann = _load_json(coverage, f'attribute/{label_set}_train.json')
        labels = np.array(ann['labels'])
        positives = dict(zip(ann['attr_names'], labels.sum(0).tolist()))
        assert all(0 < p < len(labels) for p in positives.values()), positives


def test_label_functions_cover_their_names():
    facts = dict(upper_color='red', lower_color='blue', sleeve='short', lower_length='long', hat=False,
                 hat_color=None, bag='backpack', bag_color='green', hair='long', hair_color='black', build='slim',
                 viewpoint='side')
    assert list(pa100k_labels(facts)) == ATTR_NAMES['pa100k']
    assert list(rapv2_labels(facts)) == ATTR_NAMES['rapv2']


# ------------------------------------------------------------------------------------------------------- crops


def test_crops_match_scene_pixels(synth):
    root, _ = synth
    captions = _load_json(root, 'caption/captions_val.json')
    assert [e['file_path'] for e in captions] == _load_json(root, 'attribute/pa100k_val.json')['images']
    for entry in captions:
        path = entry['file_path']
        assert _read(osp.join(root, 'caption'), path) == _read(osp.join(root, 'attribute'), path)
        # Luma only: JPEG halves the chroma resolution, which blurs the sharp colour edges of small crops.
        crop = cv2.imread(osp.join(root, 'caption', path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        scene, person = _person('val', path)
        scene_img = cv2.cvtColor(scene.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        # Locate the crop in the (lossless, re-rendered) scene by template matching, compare the pixels there.
        match = cv2.matchTemplate(scene_img, crop, cv2.TM_SQDIFF)
        _, _, (x, y), _ = cv2.minMaxLoc(match)
        h, w = crop.shape
        assert np.abs(scene_img[y:y + h, x:x + w] - crop).mean() < 2.5
        x1, y1, x2, y2 = person.box_visible
        assert x <= x1 and y <= y1 and x2 <= x + w and y2 <= y + h


# ----------------------------------------------------------------------------------------------------- captions


def test_captions(synth):
    root, manifest = synth
    ids = []
    for split in ('train', 'val'):
        entries = _load_json(root, f'caption/captions_{split}.json')
        ds = DATASETS.build(dict(type='PedestrianCaptionDataset', data_root=osp.join(root, 'caption'),
                                 ann_file=f'captions_{split}.json'))
        assert isinstance(ds, PedestrianCaptionDataset)
        assert len(ds) == len(entries) == manifest['files']['caption'][f'caption/captions_{split}.json']['images']
        rapv2 = _load_json(root, f'attribute/rapv2_{split}.json') if split == 'val' else None
        for i, entry in enumerate(entries):
            info = ds.get_data_info(i)
            assert osp.isfile(info['img_path']) and info['gt_captions'] == entry['captions']
            assert entry['split'] == split and len(entry['captions']) == 2
            assert entry['captions'][0] != entry['captions'][1]
            ids.append(entry['id'])
            if split != 'val':
                continue
            _, person = _person(split, entry['file_path'])
            labels = dict(zip(rapv2['attr_names'], rapv2['labels'][i]))
            for sentence in entry['captions']:
                assert person.attributes['upper_color'] in tokenize(sentence), sentence
                # Captions mention a bag exactly when the attribute labels say one is visible.
                for kind, rap_name in (('backpack', 'attachment-Backpack'), ('handbag', 'attachment-HandBag')):
                    assert any(w in sentence for w in BAG_WORDS[kind]) == bool(labels[rap_name]), sentence
    assert ids == list(range(1, len(ids) + 1))


def test_caption_dataset_split_filter(synth, tmp_path):
    root, _ = synth
    entries = _load_json(root, 'caption/captions_train.json') + _load_json(root, 'caption/captions_val.json')
    (tmp_path / 'reid_raw.json').write_text(json.dumps(entries))
    ds = PedestrianCaptionDataset(ann_file=str(tmp_path / 'reid_raw.json'), split='val',
                                  data_prefix=dict(img_path=osp.join(root, 'caption')))
    assert len(ds) == len(_load_json(root, 'caption/captions_val.json'))
    assert all(osp.isfile(ds.get_data_info(i)['img_path']) for i in range(len(ds)))
    with pytest.raises(ValueError, match="no entry with split='test'"):
        PedestrianCaptionDataset(ann_file=str(tmp_path / 'reid_raw.json'), split='test')


def test_deterministic(synth, tmp_path):
    root, _ = synth
    again = str(tmp_path / 'again')
    generate(again, NUM_TRAIN, NUM_VAL, SEED, tasks=TASKS, workers=2, progress=False)
    for name in ANNOTATION_FILES:
        assert _read(root, name) == _read(again, name), name
    other = str(tmp_path / 'other')
    generate(other, NUM_TRAIN, NUM_VAL, SEED + 1, tasks=['caption'], progress=False)
    assert _read(root, 'caption/captions_val.json') != _read(other, 'caption/captions_val.json')


# ------------------------------------------------------------------------------------------------------ metrics


def _evaluate(metric, samples):
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_attribute_metric_extremes(coverage):
    ann = _load_json(coverage, 'attribute/rapv2_train.json')
    gt = np.array(ann['labels'])

    def run(scores):
        metric = METRICS.build(dict(type='AttributeMetric', prefix='attribute.synthhuman'))
        return _evaluate(metric, [dict(pred_score=torch.tensor(s), gt_label=g) for s, g in zip(scores, gt)])

    perfect = run(gt.astype(np.float32))
    assert perfect == {f'attribute.synthhuman/{k}': 1.0 for k in ('mA', 'Accu', 'Prec', 'Recall', 'F1')}
    assert run(1.0 - gt)['attribute.synthhuman/mA'] == 0.0
    assert run(np.zeros_like(gt, dtype=np.float32))['attribute.synthhuman/mA'] == 0.5


def test_attribute_metric_hand_example():
    gt = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]  # the third attribute has no positives
    probs = [[0.9, 0.2, 0.1], [0.4, 0.8, 0.6], [0.7, 0.9, 0.2], [0.1, 0.3, 0.5]]  # 0.5 is not > 0.5
    # label-based: (1/2 + 1/2)/2, (2/2 + 2/2)/2, (0 + 3/4)/2 -> mA 0.625
    # instance-based (sample 4 has no positives at all: 0 everywhere):
    #   accuracy (1 + 1/3 + 1/2 + 0)/4, precision (1 + 1/2 + 1/2 + 0)/4, recall (1 + 1/2 + 1 + 0)/4,
    #   F1 (1 + 1/2 + 2/3 + 0)/4
    expected = dict(mA=0.625, Accu=11 / 24, Prec=0.5, Recall=0.625, F1=13 / 24)
    result = _evaluate(AttributeMetric(), [dict(pred_score=np.array(p), gt_label=np.array(g)) for p, g in zip(
        probs, gt)])
    assert result == pytest.approx({f'attribute/{k}': v for k, v in expected.items()}, abs=1e-12)
    # The same scores as logits with threshold 0.
    logits = np.log(np.array(probs)) - np.log1p(-np.array(probs))
    result = _evaluate(AttributeMetric(threshold=0.0), [dict(pred_score=p, gt_label=g) for p, g in zip(logits, gt)])
    assert result == pytest.approx({f'attribute/{k}': v for k, v in expected.items()}, abs=1e-12)


def test_attribute_metric_errors():
    with pytest.raises(KeyError, match='misses'):
        AttributeMetric().process({}, [dict(pred_score=np.zeros(3))])
    with pytest.raises(ValueError, match='3 scores for 2 labels'):
        AttributeMetric().process({}, [dict(pred_score=np.zeros(3), gt_label=np.zeros(2))])
    with pytest.raises(ValueError, match=r'must hold 0/1 \(or -1\), got \[2\]'):
        AttributeMetric().process({}, [dict(pred_score=np.zeros(2), gt_label=np.array([0, 2]))])


def test_bleu_hand_example_matches_pycocoevalcap():
    pred, ref = 'A man in a red shirt.', 'a man wearing a red shirt'
    result = corpus_bleu([pred], [[ref]])
    # clipped n-gram precisions 5/6, 3/5, 1/4, 0/3; equal lengths, so no brevity penalty
    assert result['BLEU-1'] == pytest.approx(5 / 6, abs=1e-8)
    assert result['BLEU-2'] == pytest.approx((5 / 6 * 3 / 5) ** 0.5, abs=1e-8)
    assert result['BLEU-3'] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3), abs=1e-8)
    assert result['BLEU-4'] < 1e-3
    scores, _ = Bleu(4).compute_score({0: [ref]}, {0: ['a man in a red shirt']}, verbose=0)
    assert [result[f'BLEU-{n}'] for n in range(1, 5)] == scores
    assert tokenize("The person's T-shirt, and RED shorts!") == ['the', "person's", 't-shirt', 'and', 'red', 'shorts']


def test_caption_metric_on_synthhuman(synth):
    root, _ = synth
    entries = _load_json(root, 'caption/captions_val.json')

    def run(predict):
        metric = METRICS.build(dict(type='CaptionMetric', prefix='caption.synthhuman'))
        return _evaluate(metric, [dict(pred_caption=predict(e), gt_captions=e['captions']) for e in entries])

    assert run(lambda e: e['captions'][0])['caption.synthhuman/BLEU-4'] == pytest.approx(1.0, abs=1e-6)
    wrong = run(lambda e: 'The quick brown fox jumps over the lazy dog near a river bank.')
    assert wrong['caption.synthhuman/BLEU-4'] < 0.3
    with pytest.raises(TypeError, match='gt_captions of data sample 0 must be a non-empty list of str'):
        CaptionMetric().process({}, [dict(pred_caption='a', gt_captions='a person')])

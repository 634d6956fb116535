"""SynthHuman generator: determinism, geometry of the records, and that the upstream OpenMMLab datasets and
metrics read the files (GT as prediction scores perfectly, a wrong prediction scores low)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from hulk_mm.datasets.synthetic import COCO_KEYPOINTS, TASKS, generate, generate_scene, scene_rng

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NUM_TRAIN, NUM_VAL, SEED = 12, 8, 0
ANNOTATION_FILES = ('pose/person_keypoints_train.json', 'pose/person_keypoints_val.json', 'pose/aic_train.json',
                    'pose/aic_val.json', 'pose/person_detections_val.json', 'detection/annotation_train.odgt',
                    'detection/annotation_val.odgt', 'detection/id_hw_train.json', 'detection/id_hw_val.json')


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    """(root, manifest) of a small SynthHuman set rendered in one process."""
    root = str(tmp_path_factory.mktemp('synthhuman_small'))
    return root, generate(root, NUM_TRAIN, NUM_VAL, SEED, progress=False)


def _read(root, name):
    with open(osp.join(root, name), 'rb') as f:
        return f.read()


def _load_json(root, name):
    with open(osp.join(root, name)) as f:
        return json.load(f)


def _odgt(root, split):
    with open(osp.join(root, f'detection/annotation_{split}.odgt')) as f:
        return [json.loads(line) for line in f]


# ----------------------------------------------------------------------------------------------- generator


def test_manifest_and_tree(synth):
    root, manifest = synth
    assert manifest == _load_json(root, 'manifest.json')
    assert manifest['seed'] == SEED and manifest['counts'] == {'train': NUM_TRAIN, 'val': NUM_VAL}
    assert manifest['tasks'] == list(TASKS)
    for name in ANNOTATION_FILES:
        assert osp.isfile(osp.join(root, name)), name
    for split, n in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        assert sorted(os.listdir(osp.join(root, 'images', split))) == [f'{i:06d}.jpg' for i in range(1, n + 1)]
        for dataset in ('lip', 'cihp'):
            images = sorted(os.listdir(osp.join(root, 'parsing', dataset, split, 'images')))
            labels = sorted(os.listdir(osp.join(root, 'parsing', dataset, split, 'labels')))
            assert [f[:-4] for f in images] == [f[:-4] for f in labels] and images
            assert manifest['files']['parsing'][f'parsing/{dataset}/{split}']['images'] == len(images)
    coco = _load_json(root, 'pose/person_keypoints_val.json')
    assert manifest['files']['pose']['pose/person_keypoints_val.json']['annotations'] == len(coco['annotations'])


def test_deterministic_across_runs_and_workers(synth, tmp_path):
    root, _ = synth
    again = str(tmp_path / 'again')
    generate(again, NUM_TRAIN, NUM_VAL, SEED, workers=2, progress=False)
    for name in ANNOTATION_FILES:
        assert _read(root, name) == _read(again, name), name
    other = str(tmp_path / 'other')
    generate(other, NUM_TRAIN, NUM_VAL, SEED + 1, tasks=['pose', 'detection'], progress=False)
    for name in ANNOTATION_FILES:
        if 'id_hw' not in name:  # image sizes do not depend on the seed
            assert _read(root, name) != _read(other, name), name


def test_scene_independent_of_split_size(tmp_path):
    """Image i of a split depends on (seed, split, i) only."""
    small, large = str(tmp_path / 'small'), str(tmp_path / 'large')
    generate(small, 2, 1, SEED, tasks=['detection'], progress=False)
    generate(large, 4, 3, SEED, tasks=['detection'], progress=False)
    assert _odgt(small, 'train') == _odgt(large, 'train')[:2]
    assert _odgt(small, 'val') == _odgt(large, 'val')[:1]


def test_unknown_tasks(tmp_path):
    with pytest.raises(ValueError, match="'posture'.*valid names: pose, detection"):
        generate(str(tmp_path), 1, 1, SEED, tasks=['pose', 'posture'])


def test_cli(tmp_path):
    tool = osp.join(REPO, 'tools', 'make_synthhuman.py')
    out = str(tmp_path / 'cli')
    # The error path in-process (no second interpreter start-up), the normal path as a real command.
    spec = importlib.util.spec_from_file_location('make_synthhuman', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as err:
        module.main(['--out', out, '--num-train', '1', '--num-val', '1', '--tasks', 'pose', 'bogus_task'])
    assert 'bogus_task' in str(err.value.code) and 'skeleton_action' in str(err.value.code)
    assert not osp.exists(osp.join(out, 'manifest.json'))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    ok = subprocess.run([sys.executable, tool, '--out', out, '--num-train', '2', '--num-val', '1', '--seed', '5',
                         '--tasks', 'pose'], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    manifest = _load_json(out, 'manifest.json')
    assert manifest['seed'] == 5 and manifest['tasks'] == ['pose']
    assert osp.isfile(osp.join(out, 'images', 'val', '000001.jpg'))


# ------------------------------------------------------------------------------------------------ geometry


def _scenes(split, count):
    return [generate_scene(scene_rng(SEED, split, i)) for i in range(count)]


def _at(array, x, y, radius=1):
    """Values of ``array`` in the (2r+1)^2 neighbourhood of point (x, y), clipped to the image."""
    h, w = array.shape
    cx, cy = int(round(x)), int(round(y))
    return array[max(cy - radius, 0):min(cy + radius + 1, h), max(cx - radius, 0):min(cx + radius + 1, w)]


def test_keypoint_visibility_geometry():
    counts = np.zeros(3, int)
    for scene in _scenes('val', NUM_VAL):
        h, w = scene.labels.shape
        for person in scene.persons:
            kpts, vis = person.keypoints, person.keypoints_visible
            counts += np.bincount(vis, minlength=3)
            inside = (kpts[:, 0] > -0.5) & (kpts[:, 0] < w - 0.5) & (kpts[:, 1] > -0.5) & (kpts[:, 1] < h - 0.5)
            assert np.array_equal(vis == 0, ~inside)
            for (x, y), v in zip(kpts, vis):
                if v == 2:
                    assert (_at(scene.instances, x, y) == person.instance_id).any()
                    own = _at(scene.instances, x, y) == person.instance_id
                    assert (_at(scene.labels, x, y)[own] != 0).all()
            if (vis == 2).any():
                x1, y1, x2, y2 = person.box_visible
                pts = kpts[vis == 2]
                assert (pts[:, 0] >= x1 - 1).all() and (pts[:, 0] <= x2 + 1).all()
                assert (pts[:, 1] >= y1 - 1).all() and (pts[:, 1] <= y2 + 1).all()
            x1, y1, x2, y2 = person.box_full
            pts = kpts[vis > 0]
            assert (pts[:, 0] >= x1 - 1).all() and (pts[:, 0] <= x2 + 1).all()
            assert (pts[:, 1] >= y1 - 1).all() and (pts[:, 1] <= y2 + 1).all()
            assert person.area_visible == np.count_nonzero(scene.instances == person.instance_id)
            assert person.area_visible <= person.area_in_image <= person.area_amodal
    # All three visibility states occur: people are occluded and truncated.
    assert (counts > 0).all(), counts


def test_records_match_files(synth):
    """The COCO json holds the rendered keypoints; v=2 points land on person pixels of the saved label maps;
    boxes enclose every labelled keypoint and area is the visible pixel count."""
    root, _ = synth
    coco = _load_json(root, 'pose/person_keypoints_val.json')
    labels = {img['id']: cv2.imread(osp.join(root, 'parsing/cihp/val/labels', img['file_name'][:-4] + '.png'),
                                    cv2.IMREAD_UNCHANGED) for img in coco['images']}
    assert len(coco['annotations']) > NUM_VAL
    for ann in coco['annotations']:
        kpts = np.array(ann['keypoints'], float).reshape(len(COCO_KEYPOINTS), 3)
        assert ann['num_keypoints'] == int((kpts[:, 2] > 0).sum()) and (kpts[:, 2] == 2).any()
        assert ann['area'] > 0 and ann['iscrowd'] == 0 and ann['category_id'] == 1
        x, y, bw, bh = ann['bbox']
        assert x >= 0 and y >= 0 and x + bw <= 320 and y + bh <= 256
        labelled = kpts[kpts[:, 2] > 0]
        assert (labelled[:, 0] >= x - 1).all() and (labelled[:, 0] <= x + bw + 1).all()
        assert (labelled[:, 1] >= y - 1).all() and (labelled[:, 1] <= y + bh + 1).all()
        assert (kpts[kpts[:, 2] == 0] == 0).all()
        for px, py, v in kpts:
            if v == 2:
                assert (_at(labels[ann['image_id']], px, py) != 0).any()
    scenes = _scenes('val', NUM_VAL)
    first = coco['annotations'][0]
    person = next(p for p in scenes[first['image_id'] - 1].persons if p.area_visible == first['area'])
    assert np.allclose(np.array(first['keypoints']).reshape(-1, 3)[:, :2][person.keypoints_visible > 0],
                       person.keypoints[person.keypoints_visible > 0], atol=0.01)


def test_lip_crops_ignore_other_people(synth):
    root, _ = synth
    folder = osp.join(root, 'parsing/lip/val/labels')
    values = set()
    for name in os.listdir(folder):
        label = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.ndim == 2
        values |= set(np.unique(label).tolist())
        assert (label[(label != 255)] < 20).all() and (label[(label != 0) & (label != 255)]).size > 0
    assert {0, 5, 13}.issubset(values)


# ------------------------------------------------------------------------------------------- mmpose


def _coco_metric_samples(coco, offset):
    samples = []
    for ann in coco['annotations']:
        kpts = np.array(ann['keypoints'], np.float32).reshape(-1, 3)
        x, y, w, h = ann['bbox']
        samples.append(dict(
            id=ann['id'], img_id=ann['image_id'], category_id=1,
            gt_instances=dict(bbox_scales=np.array([[w, h]], np.float32), bbox_scores=np.ones(1, np.float32),
                              areas=np.array([ann['area']], np.float32)),
            pred_instances=dict(keypoints=kpts[None, :, :2] + offset,
                                keypoint_scores=np.ones((1, len(kpts)), np.float32))))
    return samples


def _coco_ap(root, name, dataset_meta, offset, **kwargs):
    from mmpose.evaluation import CocoMetric
    metric = CocoMetric(ann_file=osp.join(root, name), **kwargs)
    metric.dataset_meta = dataset_meta
    samples = _coco_metric_samples(_load_json(root, name), offset)
    metric.process([], samples)
    return metric.evaluate(size=len(samples))


def test_mmpose_coco_dataset_and_metric(synth):
    from mmpose.datasets import CocoDataset
    root, _ = synth
    coco = _load_json(root, 'pose/person_keypoints_val.json')
    ds = CocoDataset(data_root=root, ann_file='pose/person_keypoints_val.json', data_mode='topdown',
                     data_prefix=dict(img='images/val/'), test_mode=True, pipeline=[])
    assert len(ds) == len(coco['annotations'])
    info = ds.get_data_info(0)
    assert osp.isfile(info['img_path']) and info['keypoints'].shape == (1, 17, 2)
    assert info['keypoints_visible'].shape == (1, 17)
    dets = CocoDataset(data_root=root, ann_file='pose/person_keypoints_val.json', data_mode='topdown',
                       data_prefix=dict(img='images/val/'), bbox_file=osp.join(root, 'pose/person_detections_val.json'),
                       test_mode=True, pipeline=[])
    assert len(dets) == len(_load_json(root, 'pose/person_detections_val.json')) == len(coco['annotations'])

    exact = _coco_ap(root, 'pose/person_keypoints_val.json', ds.metainfo, 0.0)
    shifted = _coco_ap(root, 'pose/person_keypoints_val.json', ds.metainfo, 25.0)
    print('COCO AP: GT', exact['coco/AP'], 'shifted', shifted['coco/AP'])
    assert exact['coco/AP'] == pytest.approx(1.0)
    assert shifted['coco/AP'] < 0.2


def test_mmpose_aic_dataset_and_metric(synth):
    from mmpose.datasets import AicDataset
    root, _ = synth
    ds = AicDataset(data_root=root, ann_file='pose/aic_val.json', data_mode='topdown',
                    data_prefix=dict(img='images/val/'), test_mode=True, pipeline=[])
    assert len(ds) == len(_load_json(root, 'pose/aic_val.json')['annotations'])
    assert ds.get_data_info(0)['keypoints'].shape == (1, 14, 2)
    exact = _coco_ap(root, 'pose/aic_val.json', ds.metainfo, 0.0, use_area=False, prefix='aic')
    shifted = _coco_ap(root, 'pose/aic_val.json', ds.metainfo, 25.0, use_area=False, prefix='aic')
    print('AIC AP: GT', exact['aic/AP'], 'shifted', shifted['aic/AP'])
    assert exact['aic/AP'] == pytest.approx(1.0)
    assert shifted['aic/AP'] < 0.2


# -------------------------------------------------------------------------------------------- mmdet


def _crowdhuman_metric(root, shift):
    import torch
    from mmdet.evaluation import CrowdHumanMetric
    metric = CrowdHumanMetric(ann_file=osp.join(root, 'detection/annotation_val.odgt'), metric=['AP', 'MR', 'JI'],
                              num_ji_process=2)
    samples, num_gt = [], 0
    hw = _load_json(root, 'detection/id_hw_val.json')
    for rec in _odgt(root, 'val'):
        boxes = np.array([b['fbox'] for b in rec['gtboxes'] if not b['extra']['ignore']], np.float32).reshape(-1, 4)
        num_gt += len(boxes)
        boxes[:, 2:] += boxes[:, :2]
        boxes += shift * (boxes[:, 2:3] - boxes[:, 0:1])  # shift = a fraction of each box's width
        samples.append(dict(img_id=rec['ID'], ori_shape=tuple(hw[rec['ID']]),
                            pred_instances=dict(bboxes=torch.from_numpy(boxes), scores=torch.ones(len(boxes)))))
    metric.process([], samples)
    return metric.evaluate(size=len(samples)), num_gt


def test_mmdet_crowdhuman_dataset_and_metric(synth):
    from mmdet.datasets import CrowdHumanDataset
    root, _ = synth
    records = _odgt(root, 'val')
    ds = CrowdHumanDataset(data_root=root, ann_file='detection/annotation_val.odgt',
                           extra_ann_file=osp.join(root, 'detection/id_hw_val.json'),
                           data_prefix=dict(img='images/val/'), test_mode=True, pipeline=[])
    assert len(ds) == NUM_VAL
    for i, rec in enumerate(records):
        info = ds.get_data_info(i)
        assert osp.isfile(info['img_path']) and (info['height'], info['width']) == (256, 320)
        assert len(info['instances']) == len(rec['gtboxes']) > 0
        assert [inst['ignore_flag'] for inst in info['instances']] == [b['extra']['ignore'] for b in rec['gtboxes']]

    exact, num_gt = _crowdhuman_metric(root, 0.0)
    shifted, _ = _crowdhuman_metric(root, 1.5)
    print('CrowdHuman: GT', exact, 'shifted', shifted, 'non-ignored boxes', num_gt)
    # CrowdHumanMetric integrates precision over recall from the first detection on, so a perfect ranking of
    # N boxes scores 1 - 1/N, not 1.
    assert exact['crowd_human/mAP'] == pytest.approx(1 - 1 / num_gt, abs=1e-4)
    assert exact['crowd_human/JI'] == pytest.approx(1.0, abs=1e-4)
    assert exact['crowd_human/mMR'] == pytest.approx(0.0, abs=1e-4)
    assert shifted['crowd_human/mAP'] < 0.2 and shifted['crowd_human/JI'] < 0.2


# -------------------------------------------------------------------------------------------- mmseg


def _seg_miou(ds, wrong):
    import torch
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = ds.metainfo
    samples = []
    for i in range(len(ds)):
        gt = torch.from_numpy(cv2.imread(ds.get_data_info(i)['seg_map_path'], cv2.IMREAD_UNCHANGED)).long()
        pred = torch.where(gt == 255, gt, (gt + 1) % 20) if wrong else gt
        samples.append(dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None])))
    metric.process([], samples)
    return metric.evaluate(size=len(samples))['mIoU']


@pytest.mark.parametrize('dataset', ['lip', 'cihp'])
def test_mmseg_lip_dataset_and_metric(synth, dataset):
    from mmseg.datasets import LIPDataset
    root, _ = synth
    folder = osp.join(root, 'parsing', dataset)
    ds = LIPDataset(data_root=folder, data_prefix=dict(img_path='val/images', seg_map_path='val/labels'),
                    test_mode=True, pipeline=[])
    assert len(ds) == len(os.listdir(osp.join(folder, 'val', 'images'))) > 0
    info = ds.get_data_info(0)
    assert osp.isfile(info['img_path']) and osp.isfile(info['seg_map_path'])
    assert len(ds.metainfo['classes']) == 20
    exact, wrong = _seg_miou(ds, False), _seg_miou(ds, True)
    print(f'{dataset} mIoU: GT', exact, 'wrong', wrong)
    assert exact == pytest.approx(100.0)
    assert wrong < 20.0

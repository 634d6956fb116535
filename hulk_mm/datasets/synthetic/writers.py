"""Task writers: turn scenes into the files of real benchmarks (COCO/AIC keypoints, CrowdHuman, LIP/CIHP).

A writer works in two phases so that scenes can be rendered in worker processes:

* ``image_record(scene, split, image_id)`` runs in the worker right after a scene is rendered; it may write
  per-image files (label maps, crops) and returns a small JSON-safe record;
* ``finalize(records)`` runs once in the main process with ``{split: [record, ...]}`` in image order, writes the
  annotation files and returns the task's manifest entry.

Thresholds (pixels of the default 320x256 scene; documented here because they decide what counts as a target):

* pose: a person is annotated when at least one COCO keypoint is visible (v=2), the clipped full box is at least
  ``MIN_POSE_BOX`` px on both sides and at least ``MIN_POSE_AREA`` of its pixels are visible;
* detection: every person with a visible pixel gets a box; ``extra.ignore=1`` when fewer than
  ``MIN_DET_VISIBLE_FRACTION`` of the silhouette is visible (occluded or truncated) or the visible box is under
  ``MIN_DET_HEIGHT`` px tall;
* parsing (LIP crops): people with at least ``MIN_CROP_AREA`` visible pixels, a visible box at least
  ``MIN_CROP_HEIGHT`` px tall and at most ``MAX_CROP_OCCLUSION`` of their in-image silhouette hidden. A crop is
  the visible box padded by ``CROP_PAD`` of its size; pixels of other people inside it are 255 (ignored by
  mmseg), background and bags are 0.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

from .body import COCO_KEYPOINTS, POINT_INDEX

MIN_POSE_BOX = 8
MIN_POSE_AREA = 16
MIN_DET_VISIBLE_FRACTION = 0.15
MIN_DET_HEIGHT = 12
MIN_CROP_AREA = 400
MIN_CROP_HEIGHT = 40
MAX_CROP_OCCLUSION = 0.5
CROP_PAD = 0.1
JPEG_QUALITY = 95

SPLIT_IDS = {'train': 0, 'val': 1}

COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
AIC_KEYPOINTS = ('right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow', 'left_wrist',
                 'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'head_top', 'neck')
AIC_SKELETON = [[3, 2], [2, 1], [1, 14], [14, 4], [4, 5], [5, 6], [9, 8], [8, 7], [7, 10], [10, 11], [11, 12],
                [13, 14], [1, 7], [4, 10]]
_AIC_INDEX = [POINT_INDEX[name] for name in AIC_KEYPOINTS]


def image_name(image_id):
    """File name of a scene image (ids start at 1)."""
    return f'{image_id:06d}.jpg'


def encode_jpeg(rgb):
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return buf.tobytes()


def _write_png(path, array):
    ok, buf = cv2.imencode('.png', array)
    assert ok
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _write_bytes(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def _dump_json(path, obj):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, separators=(',', ':'))


def _xywh(box, ndigits=2):
    return [round(float(box[0]), ndigits), round(float(box[1]), ndigits),
            round(float(box[2] - box[0]), ndigits), round(float(box[3] - box[1]), ndigits)]


def _keypoint_list(points2d, visibility):
    """Flat COCO list [x1, y1, v1, ...]; points outside the image are written as 0, 0, 0."""
    flat = []
    for (x, y), v in zip(points2d, visibility):
        flat += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
    return flat


class TaskWriter:
    """Base of the task writers: holds the output folder and the seed; see the module docstring for the
    two phases."""

    name = None

    def __init__(self, out_dir, seed):
        self.out_dir, self.seed = out_dir, seed

    def prepare(self, splits):
        """Create the task's folders (main process, before any worker starts)."""
        os.makedirs(osp.join(self.out_dir, self.name), exist_ok=True)

    def image_record(self, scene, split, image_id, jpeg):
        """Per-image work in a worker; ``jpeg`` is the encoded scene image. Returns a JSON-safe record."""
        raise NotImplementedError

    def finalize(self, records):
        """Write the annotation files from ``{split: [record, ...]}``; return the manifest entry."""
        raise NotImplementedError


class PoseWriter(TaskWriter):
    """``pose/person_keypoints_{split}.json`` (COCO-17), ``pose/aic_{split}.json`` (AIC-14) and
    ``pose/person_detections_val.json`` (mmpose ``bbox_file``: GT boxes with deterministic jitter)."""

    name = 'pose'

    def image_record(self, scene, split, image_id, jpeg):
        people = []
        for person in scene.persons:
            coco_vis = person.keypoints_visible
            box = person.box_full_clipped
            if (box is None or not (coco_vis == 2).any() or min(box[2] - box[0], box[3] - box[1]) < MIN_POSE_BOX
                    or person.area_visible < MIN_POSE_AREA):
                continue
            aic_vis = person.visibility[_AIC_INDEX]
            people.append(dict(
                bbox=_xywh(box), area=int(person.area_visible),
                keypoints=_keypoint_list(person.keypoints, coco_vis), num_keypoints=int((coco_vis > 0).sum()),
                aic_keypoints=_keypoint_list(person.points2d[_AIC_INDEX], aic_vis),
                aic_num_keypoints=int((aic_vis > 0).sum())))
        height, width = scene.image.shape[:2]
        return dict(image=dict(id=image_id, file_name=image_name(image_id), width=width, height=height),
                    people=people)

    def finalize(self, records):
        files = {}
        for split, recs in records.items():
            images = [r['image'] for r in recs]
            coco, aic = [], []
            for rec in recs:
                for p in rec['people']:
                    common = dict(id=len(coco) + 1, image_id=rec['image']['id'], category_id=1, bbox=p['bbox'],
                                  area=p['area'], iscrowd=0)
                    coco.append(dict(common, num_keypoints=p['num_keypoints'], keypoints=p['keypoints']))
                    aic.append(dict(common, num_keypoints=p['aic_num_keypoints'], keypoints=p['aic_keypoints']))
            name = f'pose/person_keypoints_{split}.json'
            _dump_json(osp.join(self.out_dir, name), dict(
                images=images, annotations=coco, categories=[dict(
                    supercategory='person', id=1, name='person', keypoints=list(COCO_KEYPOINTS),
                    skeleton=COCO_SKELETON)]))
            files[name] = dict(images=len(images), annotations=len(coco))
            name = f'pose/aic_{split}.json'
            _dump_json(osp.join(self.out_dir, name), dict(
                images=images, annotations=aic, categories=[dict(
                    supercategory='person', id=1, name='person', keypoints=list(AIC_KEYPOINTS),
                    skeleton=AIC_SKELETON)]))
            files[name] = dict(images=len(images), annotations=len(aic))
        if 'val' in records:
            name = 'pose/person_detections_val.json'
            dets = self._detections(records['val'])
            _dump_json(osp.join(self.out_dir, name), dets)
            files[name] = dict(detections=len(dets))
        return files

    def _detections(self, recs):
        """GT boxes moved by ~3% of their size per side and scored in [0.75, 1): a detector-like bbox_file."""
        dets = []
        for rec in recs:
            img = rec['image']
            rng = np.random.default_rng([self.seed, SPLIT_IDS['val'], img['id'], 1])
            for p in rec['people']:
                x, y, w, h = p['bbox']
                dx1, dy1, dx2, dy2 = rng.normal(0.0, 0.03, 4) * (w, h, w, h)
                x1, y1 = max(x + dx1, 0.0), max(y + dy1, 0.0)
                x2, y2 = min(x + w + dx2, img['width']), min(y + h + dy2, img['height'])
                dets.append(dict(image_id=img['id'], category_id=1,
                                 bbox=[round(x1, 2), round(y1, 2), round(max(x2 - x1, 1.0), 2),
                                       round(max(y2 - y1, 1.0), 2)],
                                 score=round(float(rng.uniform(0.75, 1.0)), 4)))
        return dets


class DetectionWriter(TaskWriter):
    """CrowdHuman ``detection/annotation_{split}.odgt`` and ``detection/id_hw_{split}.json``.

    ``ID`` is the image stem, so ``CrowdHumanDataset(data_prefix=dict(img='images/<split>/'))`` finds
    ``images/<split>/<ID>.jpg``; pass ``extra_ann_file=<DIR>/detection/id_hw_<split>.json`` (mmdet 3.3 loads it
    as given, not under ``data_root``) so that no image has to be decoded to learn its size. ``fbox`` is the amodal full body (may extend beyond the image, as in
    CrowdHuman), ``vbox`` the visible pixels, ``hbox`` the head."""

    name = 'detection'

    def image_record(self, scene, split, image_id, jpeg):
        boxes = []
        for person in scene.persons:
            if person.box_visible is None:
                continue
            vbox = person.box_visible
            ignore = (person.visible_fraction < MIN_DET_VISIBLE_FRACTION or vbox[3] - vbox[1] < MIN_DET_HEIGHT)
            hx, hy = (person.box_head[0] + person.box_head[2]) / 2, (person.box_head[1] + person.box_head[3]) / 2
            head_in_image = 0 <= hx < scene.camera.width and 0 <= hy < scene.camera.height
            boxes.append(dict(
                tag='person', fbox=_xywh(person.box_full, 0), vbox=_xywh(vbox, 0), hbox=_xywh(person.box_head, 1),
                head_attr=dict(ignore=int(not head_in_image or person.head_visible_fraction < 0.3),
                               occ=int(person.head_visible_fraction < 0.9), unsure=0),
                extra=dict(box_id=len(boxes), occ=int(person.occlusion > 0.05), ignore=int(ignore))))
        height, width = scene.image.shape[:2]
        return dict(ID=image_name(image_id)[:-4], gtboxes=boxes, hw=[height, width])

    def finalize(self, records):
        files = {}
        for split, recs in records.items():
            name = f'detection/annotation_{split}.odgt'
            with open(osp.join(self.out_dir, name), 'w') as f:
                for rec in recs:
                    f.write(json.dumps(dict(ID=rec['ID'], gtboxes=rec['gtboxes']), separators=(',', ':')) + '\n')
            boxes = [b for rec in recs for b in rec['gtboxes']]
            files[name] = dict(images=len(recs), boxes=len(boxes),
                               ignored=sum(b['extra']['ignore'] for b in boxes))
            name = f'detection/id_hw_{split}.json'
            _dump_json(osp.join(self.out_dir, name), {rec['ID']: rec['hw'] for rec in recs})
            files[name] = dict(images=len(recs))
        return files


class ParsingWriter(TaskWriter):
    """LIP-style single-person crops (``parsing/lip``) and CIHP-style full scenes (``parsing/cihp``), both as
    ``<split>/images/*.jpg`` + ``<split>/labels/*.png`` with LIP's 20 classes (uint8, 255 = ignore)."""

    name = 'parsing'

    def prepare(self, splits):
        for dataset in ('lip', 'cihp'):
            for split in splits:
                for sub in ('images', 'labels'):
                    os.makedirs(osp.join(self.out_dir, 'parsing', dataset, split, sub), exist_ok=True)

    def image_record(self, scene, split, image_id, jpeg):
        stem = image_name(image_id)[:-4]
        cihp = osp.join(self.out_dir, 'parsing', 'cihp', split)
        _write_bytes(osp.join(cihp, 'images', stem + '.jpg'), jpeg)
        _write_png(osp.join(cihp, 'labels', stem + '.png'), scene.labels)

        lip = osp.join(self.out_dir, 'parsing', 'lip', split)
        height, width = scene.labels.shape
        crops = []
        for person in scene.persons:
            box = person.box_visible
            if (box is None or person.area_visible < MIN_CROP_AREA or box[3] - box[1] < MIN_CROP_HEIGHT
                    or person.occlusion > MAX_CROP_OCCLUSION):
                continue
            pad_x, pad_y = max(CROP_PAD * (box[2] - box[0]), 4), max(CROP_PAD * (box[3] - box[1]), 4)
            x1, y1 = int(max(box[0] - pad_x, 0)), int(max(box[1] - pad_y, 0))
            x2, y2 = int(min(box[2] + pad_x, width)), int(min(box[3] + pad_y, height))
            inst = scene.instances[y1:y2, x1:x2]
            label = np.where(inst == person.instance_id, scene.labels[y1:y2, x1:x2], 0).astype(np.uint8)
            label[(inst != 0) & (inst != person.instance_id)] = 255
            name = f'{stem}_{person.instance_id:02d}'
            _write_bytes(osp.join(lip, 'images', name + '.jpg'), encode_jpeg(scene.image[y1:y2, x1:x2]))
            _write_png(osp.join(lip, 'labels', name + '.png'), label)
            crops.append(name)
        return dict(cihp=stem, lip=crops)

    def finalize(self, records):
        files = {}
        for split, recs in records.items():
            files[f'parsing/lip/{split}'] = dict(images=sum(len(r['lip']) for r in recs))
            files[f'parsing/cihp/{split}'] = dict(images=len(recs))
        return files


WRITERS = {w.name: w for w in (PoseWriter, DetectionWriter, ParsingWriter)}

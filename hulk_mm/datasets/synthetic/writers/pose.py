"""COCO-17 / AIC-14 keypoints and the val ``bbox_file``."""
import os.path as osp

import numpy as np

from ..body import COCO_KEYPOINTS, POINT_INDEX
from .base import SPLIT_IDS, TaskWriter, _dump_json, _keypoint_list, _xywh, image_name

MIN_POSE_BOX = 8    # px, both sides of the clipped full box
MIN_POSE_AREA = 16  # visible pixels

COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
AIC_KEYPOINTS = ('right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow', 'left_wrist',
                 'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'head_top', 'neck')
AIC_SKELETON = [[3, 2], [2, 1], [1, 14], [14, 4], [4, 5], [5, 6], [9, 8], [8, 7], [7, 10], [10, 11], [11, 12],
                [13, 14], [1, 7], [4, 10]]
_AIC_INDEX = [POINT_INDEX[name] for name in AIC_KEYPOINTS]


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
            for name, annotations, keypoints, skeleton in (
                    (f'pose/person_keypoints_{split}.json', coco, COCO_KEYPOINTS, COCO_SKELETON),
                    (f'pose/aic_{split}.json', aic, AIC_KEYPOINTS, AIC_SKELETON)):
                _dump_json(osp.join(self.out_dir, name), dict(images=images, annotations=annotations, categories=[
                    dict(supercategory='person', id=1, name='person', keypoints=list(keypoints), skeleton=skeleton)]))
                files[name] = dict(images=len(images), annotations=len(annotations))
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

"""A contact sheet of a generated SynthHuman folder, drawn from the written files (not from the generator), so
it shows what the loaders will read: COCO keypoints and skeletons, CrowdHuman full/visible/head boxes, and the
CIHP-style parsing labels beside each scene."""
import json
import os.path as osp

import cv2
import numpy as np

from .writers.pose import COCO_SKELETON

# one colour per LIP class (0 = background stays black)
_LABEL_COLOURS = np.array([[0, 0, 0]] + [[int(c) for c in cv2.cvtColor(
    np.uint8([[[int(180 * i / 19), 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]] for i in range(19)], np.uint8)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _draw_scene(root, split, image, people, odgt_boxes, has_parsing):
    """(H, 2W, 3) BGR: the annotated scene and, if present, its parsing labels."""
    img = cv2.imread(osp.join(root, 'images', split, image['file_name']))
    if img is None:
        raise FileNotFoundError(f'{osp.join(root, "images", split, image["file_name"])} is missing')
    for box in odgt_boxes:
        ignore = box['extra']['ignore']
        for key, colour in (('fbox', (0, 200, 0)), ('vbox', (0, 220, 220)), ('hbox', (220, 120, 0))):
            x, y, w, h = map(int, box[key])
            cv2.rectangle(img, (x, y), (x + w, y + h), (0, 0, 255) if ignore else colour, 1)
    for ann in people:
        kpts = np.asarray(ann['keypoints'], dtype=np.float32).reshape(-1, 3)
        for a, b in COCO_SKELETON:
            if kpts[a - 1, 2] > 0 and kpts[b - 1, 2] > 0:
                cv2.line(img, tuple(map(int, kpts[a - 1, :2])), tuple(map(int, kpts[b - 1, :2])), (255, 255, 255), 1)
        for x, y, v in kpts:
            if v > 0:  # red: visible, blue: occluded
                cv2.circle(img, (int(x), int(y)), 2, (0, 0, 255) if v == 2 else (255, 0, 0), -1)
    if not has_parsing:
        return img
    stem = osp.splitext(image['file_name'])[0]
    label = cv2.imread(osp.join(root, 'parsing', 'cihp', split, 'labels', stem + '.png'), cv2.IMREAD_UNCHANGED)
    return np.hstack([img, _LABEL_COLOURS[np.minimum(label, 19)]])


def make_contact_sheet(root: str, split: str = 'val', num: int = 8, columns: int = 2) -> str:
    """Draw the first ``num`` scenes of ``split`` into ``root/contact_sheet.jpg``; returns the path.

    Needs the ``pose`` task's files; boxes and parsing maps are added when those tasks were generated."""
    coco = _read_json(osp.join(root, 'pose', f'person_keypoints_{split}.json'))
    people = {}
    for ann in coco['annotations']:
        people.setdefault(ann['image_id'], []).append(ann)
    odgt_file = osp.join(root, 'detection', f'annotation_{split}.odgt')
    boxes = {}
    if osp.isfile(odgt_file):
        with open(odgt_file) as f:
            boxes = {rec['ID']: rec['gtboxes'] for rec in map(json.loads, f)}
    has_parsing = osp.isdir(osp.join(root, 'parsing', 'cihp', split))
    tiles = [_draw_scene(root, split, image, people.get(image['id'], []),
                         boxes.get(osp.splitext(image['file_name'])[0], []), has_parsing)
             for image in coco['images'][:num]]
    if not tiles:
        raise ValueError(f'{root} has no {split} images to draw')
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    path = osp.join(root, 'contact_sheet.jpg')
    cv2.imwrite(path, np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path

"""Shared pieces of the task writers: the two-phase ``TaskWriter``, file helpers and single-person crops."""
import abc
import json
import os
import os.path as osp

import cv2

JPEG_QUALITY = 95

SPLIT_IDS = {'train': 0, 'val': 1}

# Single-person crops (LIP parsing, attributes, captions): who is worth a crop, and how much context it keeps.
MIN_CROP_AREA = 400       # visible pixels of the person
MIN_CROP_HEIGHT = 40      # px of its visible box
MAX_CROP_OCCLUSION = 0.5  # of its in-image silhouette
CROP_PAD = 0.1            # crop = box padded by this fraction of its size per side (at least MIN_CROP_PAD px)
MIN_CROP_PAD = 4


def image_name(image_id):
    """File name of a scene image (ids start at 1)."""
    return f'{image_id:06d}.jpg'


def encode_jpeg(rgb):
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f'JPEG encoding failed for an image of shape {rgb.shape}')
    return buf.tobytes()


def is_crop_candidate(person):
    """Whether ``person`` (``scene.Person``) is large and unoccluded enough for a single-person crop."""
    box = person.box_visible
    return not (box is None or person.area_visible < MIN_CROP_AREA or box[3] - box[1] < MIN_CROP_HEIGHT
                or person.occlusion > MAX_CROP_OCCLUSION)


def crop_box(box, width, height):
    """Integer crop window ``(x1, y1, x2, y2)`` (x2, y2 exclusive) of an image of ``width`` x ``height`` px: the
    float box ``(x1, y1, x2, y2)`` padded by ``CROP_PAD`` of its size per side and clipped to the image."""
    pad_x, pad_y = max(CROP_PAD * (box[2] - box[0]), MIN_CROP_PAD), max(CROP_PAD * (box[3] - box[1]), MIN_CROP_PAD)
    x1, y1 = int(max(box[0] - pad_x, 0)), int(max(box[1] - pad_y, 0))
    x2, y2 = int(min(box[2] + pad_x, width)), int(min(box[3] + pad_y, height))
    return x1, y1, x2, y2


def crop_name(image_id, instance_id):
    """Stem of a single-person crop file: ``<scene stem>_<instance id, 2 digits>``."""
    return f'{image_name(image_id)[:-4]}_{instance_id:02d}'


def _write_png(path, array):
    ok, buf = cv2.imencode('.png', array)
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
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


class TaskWriter(abc.ABC):
    """Base of the task writers: holds the output folder and the seed; see the module docstring for the
    two phases."""

    name = None

    def __init__(self, out_dir, seed):
        self.out_dir, self.seed = out_dir, seed

    def prepare(self, splits):
        """Create the task's folders (main process, before any worker starts)."""
        os.makedirs(osp.join(self.out_dir, self.name), exist_ok=True)

    @abc.abstractmethod
    def image_record(self, scene, split, image_id, jpeg):
        """Per-image work in a worker; ``jpeg`` is the encoded scene image. Returns a JSON-safe record."""

    @abc.abstractmethod
    def finalize(self, records):
        """Write the annotation files from ``{split: [record, ...]}``; return the manifest entry."""



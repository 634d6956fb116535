"""PA-100k- and RAPv2-style pedestrian attribute files from single-person crops.

Who gets a crop (on top of ``base.is_crop_candidate``): every attribute below must be judgeable from the crop,
so the person is almost entirely inside the image (truncation <= ``MAX_ATTR_TRUNCATION``), at most
``MAX_ATTR_OCCLUSION`` of the in-image silhouette is hidden, at least ``MIN_HEAD_VISIBLE`` of the head (hat, hair,
face) is visible, and an elbow, a knee and an ankle are visible (sleeves and trouser length show there).

What is labelled is what the pixels show (``visible_facts``): appearance attributes from
``appearance.sample_appearance``; a bag only when at least ``MIN_BAG_VISIBLE_FRACTION`` of its silhouette and
``MIN_BAG_VISIBLE_PIXELS`` pixels are front-most in the scene (a backpack seen from the front is hidden by the
torso); the viewpoint from the angle between the way the pelvis faces and the direction to the camera;
black hair from the rendered hair colour. The crop is the visible box joined with the visible bag, padded as in
``base.crop_box``.

Label sets (real benchmark names, only for attributes the renderer draws; ``ATTR_NAMES``):

* PA-100k (10 of 26): Front, Side, Back, Hat, HandBag, Backpack, ShortSleeve, LongSleeve, Trousers, Shorts;
* RAPv2 (33 of the 152-attribute release): BodyFat/BodyNormal/BodyThin (build), hs-LongHair, hs-BlackHair,
  hs-Hat, ub-ShortSleeve, ub-Color<c> and lb-Color<c> for the 11 palette colours, lb-LongTrousers, lb-Shorts,
  attachment-Backpack, attachment-HandBag.

Gender, age, glasses, garment types and patterns, skirts, boots, shoulder bags and actions are not rendered,
hence not labelled; shoe colours are rendered but only a few pixels large, so they are left out too.

Files (paths inside the json are relative to ``DIR/attribute/``)::

    attribute/images/{split}/<scene stem>_<instance id>.jpg      crops shared by both label sets
    attribute/{pa100k,rapv2}_{split}.json   {"attr_names": [A names], "attr_groups": {group: [names]},
                                             "images": [N paths], "labels": [N x A of 0/1]}
"""
import os
import os.path as osp
from typing import NamedTuple

import numpy as np

from ..appearance import HAIR_COLOR_NAMES, HAIR_COLORS
from ..body import POINT_INDEX
from ..render import person_primitives, rasterise
from .base import TaskWriter, _dump_json, _write_bytes, crop_box, crop_name, encode_jpeg, is_crop_candidate

MAX_ATTR_TRUNCATION = 0.05
MAX_ATTR_OCCLUSION = 0.3
MIN_HEAD_VISIBLE = 0.5
REQUIRED_POINTS = (('left_elbow', 'right_elbow'), ('left_knee', 'right_knee'), ('left_ankle', 'right_ankle'))
MIN_BAG_VISIBLE_FRACTION = 0.2
MIN_BAG_VISIBLE_PIXELS = 16
FRONT_MAX_ANGLE = 60.0  # degrees between facing direction and direction to the camera; up to here: front
BACK_MIN_ANGLE = 120.0  # from here: back; in between: side

# RAPv2's colour order (its 'Silver' has no palette counterpart); same set as appearance.COLOR_NAMES.
RAPV2_COLORS = ('black', 'white', 'gray', 'red', 'green', 'blue', 'yellow', 'brown', 'purple', 'pink', 'orange')


class PersonView(NamedTuple):
    """One person's crop: file stem, instance id, integer window ``(x1, y1, x2, y2)`` (exclusive ends) in the
    scene, and ``visible_facts``."""

    name: str
    instance_id: int
    window: tuple
    facts: dict


def _is_visible_point(person, names):
    return any(person.visibility[POINT_INDEX[n]] == 2 for n in names)


def is_attribute_candidate(person):
    """Whether every labelled attribute of ``person`` is judgeable from its crop (module docstring)."""
    return (is_crop_candidate(person) and person.truncation <= MAX_ATTR_TRUNCATION
            and person.occlusion <= MAX_ATTR_OCCLUSION and person.head_visible_fraction >= MIN_HEAD_VISIBLE
            and all(_is_visible_point(person, names) for names in REQUIRED_POINTS))


def viewpoint(person, camera):
    """'front' | 'side' | 'back': horizontal angle between the pelvis's facing direction (``yaw``) and the
    direction from the person to the camera (``FRONT_MAX_ANGLE``, ``BACK_MIN_ANGLE``)."""
    pelvis = camera.rotation.T @ person.points3d[POINT_INDEX['pelvis']]  # level frame: X right, Z away
    to_camera = -pelvis[[0, 2]]
    facing = np.array([np.sin(person.yaw), -np.cos(person.yaw)])  # body.forward_kinematics' forward axis
    cos = facing @ to_camera / max(np.linalg.norm(to_camera), 1e-9)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return 'front' if angle <= FRONT_MAX_ANGLE else 'back' if angle >= BACK_MIN_ANGLE else 'side'


def visible_bag_box(scene, person):
    """Box ``(x1, y1, x2, y2)`` (float px) of the bag pixels of ``person`` that are front-most in the scene, or
    None when the person has no bag or too little of it shows (``MIN_BAG_VISIBLE_*``).

    The bag is drawn with instance 0, so the scene maps cannot tell it apart; it is rasterised again alone
    (the same float32 computation as in the scene, so its depths equal the composited ones where it is in front)."""
    if not person.attributes['bag']:
        return None
    _, accessories = person_primitives(person.points3d, person.shape, person.attributes, person.colors)
    layer = rasterise(accessories, scene.camera, np.array([0.0, 0.0, -1.0]))  # the light only shades
    ys, xs = np.nonzero(layer.mask)
    gx, gy = xs + layer.x0, ys + layer.y0
    height, width = scene.depth.shape
    inside = (gx >= 0) & (gx < width) & (gy >= 0) & (gy < height)
    front = np.zeros(len(xs), bool)
    front[inside] = scene.depth[gy[inside], gx[inside]] >= layer.depth[ys[inside], xs[inside]] - 1e-4
    count = int(front.sum())
    if count < MIN_BAG_VISIBLE_PIXELS or count < MIN_BAG_VISIBLE_FRACTION * len(xs):
        return None
    return np.array([gx[front].min(), gy[front].min(), gx[front].max() + 1, gy[front].max() + 1], np.float64)


def _hair_color_name(rgb):
    distances = [sum((a - b) ** 2 for a, b in zip(rgb, ref)) for ref in HAIR_COLORS]
    return HAIR_COLOR_NAMES[int(np.argmin(distances))]


def visible_facts(scene, person, bag_box):
    """JSON-safe dict of what the crop of ``person`` shows: ``upper_color``, ``lower_color`` (palette names),
    ``sleeve`` and ``lower_length`` ('short'|'long'), ``hat`` (bool), ``hat_color`` (name|None), ``bag``
    ('backpack'|'handbag'|None: visible bags only), ``bag_color`` (name|None), ``hair`` ('short'|'long'),
    ``hair_color`` (``HAIR_COLOR_NAMES`` entry), ``build`` ('slim'|'average'|'heavy'), ``viewpoint``."""
    a = person.attributes
    bag = a['bag_type'] if bag_box is not None else None
    return dict(upper_color=a['upper_color'], lower_color=a['lower_color'], sleeve=a['sleeve'],
                lower_length=a['lower_length'], hat=a['hat'], hat_color=a['hat_color'], bag=bag,
                bag_color=a['bag_color'] if bag else None, hair=a['hair'],
                hair_color=_hair_color_name(person.colors['hair']), build=a['build'],
                viewpoint=viewpoint(person, scene.camera))


def person_views(scene, image_id):
    """Single-person views of a scene for the attribute and caption tasks.

    Returns:
        list of ``PersonView``; the window is the visible box joined with the visible bag's box, padded as in
        ``base.crop_box``.
    """
    height, width = scene.image.shape[:2]
    views = []
    for person in scene.persons:
        if not is_attribute_candidate(person):
            continue
        bag_box = visible_bag_box(scene, person)
        box = person.box_visible
        if bag_box is not None:
            box = np.concatenate([np.minimum(box[:2], bag_box[:2]), np.maximum(box[2:], bag_box[2:])])
        views.append(PersonView(crop_name(image_id, person.instance_id), person.instance_id,
                                crop_box(box, width, height), visible_facts(scene, person, bag_box)))
    return views


def write_crops(scene, views, folder):
    """Write the JPEG crop ``folder/<name>.jpg`` of every view of ``person_views``."""
    for view in views:
        x1, y1, x2, y2 = view.window
        _write_bytes(osp.join(folder, view.name + '.jpg'), encode_jpeg(scene.image[y1:y2, x1:x2]))


def pa100k_labels(facts):
    """PA-100k attributes (its names and relative order) that SynthHuman renders: dict name -> bool."""
    view, bag, long_sleeve, long_lower = (facts['viewpoint'], facts['bag'], facts['sleeve'] == 'long',
                                          facts['lower_length'] == 'long')
    return {'Front': view == 'front', 'Side': view == 'side', 'Back': view == 'back', 'Hat': facts['hat'],
            'HandBag': bag == 'handbag', 'Backpack': bag == 'backpack', 'ShortSleeve': not long_sleeve,
            'LongSleeve': long_sleeve, 'Trousers': long_lower, 'Shorts': not long_lower}


def rapv2_labels(facts):
    """RAPv2 attributes (names of its full 152-attribute release, its relative order) that SynthHuman renders:
    dict name -> bool. RAPv2 spells the red upper-body colour 'up-ColorRed'; we use the consistent
    'ub-ColorRed'."""
    build, long_lower = facts['build'], facts['lower_length'] == 'long'
    labels = {'BodyFat': build == 'heavy', 'BodyNormal': build == 'average', 'BodyThin': build == 'slim',
              'hs-LongHair': facts['hair'] == 'long', 'hs-BlackHair': facts['hair_color'] == 'black',
              'hs-Hat': facts['hat'], 'ub-ShortSleeve': facts['sleeve'] == 'short'}
    labels.update({f'ub-Color{c.capitalize()}': facts['upper_color'] == c for c in RAPV2_COLORS})
    labels.update({'lb-LongTrousers': long_lower, 'lb-Shorts': not long_lower})
    labels.update({f'lb-Color{c.capitalize()}': facts['lower_color'] == c for c in RAPV2_COLORS})
    labels.update({'attachment-Backpack': facts['bag'] == 'backpack', 'attachment-HandBag': facts['bag'] == 'handbag'})
    return labels


LABEL_SETS = {'pa100k': pa100k_labels, 'rapv2': rapv2_labels}
ATTR_GROUPS = {
    'pa100k': {'viewpoint': ['Front', 'Side', 'Back'], 'head': ['Hat'], 'bag': ['HandBag', 'Backpack'],
               'upper': ['ShortSleeve', 'LongSleeve'], 'lower': ['Trousers', 'Shorts']},
    'rapv2': {'body': ['BodyFat', 'BodyNormal', 'BodyThin'], 'head': ['hs-LongHair', 'hs-BlackHair', 'hs-Hat'],
              'upper': ['ub-ShortSleeve'] + [f'ub-Color{c.capitalize()}' for c in RAPV2_COLORS],
              'lower': ['lb-LongTrousers', 'lb-Shorts'] + [f'lb-Color{c.capitalize()}' for c in RAPV2_COLORS],
              'attachment': ['attachment-Backpack', 'attachment-HandBag']},
}
# label-vector order of each set: its groups in order (the order of the ``*_labels`` dicts as well)
ATTR_NAMES = {label_set: [n for names in groups.values() for n in names] for label_set, groups in ATTR_GROUPS.items()}


class PersonCropWriter(TaskWriter):
    """Base of the writers whose samples are the single-person crops of ``person_views``, kept under
    ``<task>/images/{split}/`` so that each task's folder is self-contained."""

    def prepare(self, splits):
        for split in splits:
            os.makedirs(osp.join(self.out_dir, self.name, 'images', split), exist_ok=True)

    def write_views(self, scene, split, image_id):
        """Write the crops of one scene; returns its ``PersonView`` list (crop ``images/<split>/<name>.jpg``)."""
        views = person_views(scene, image_id)
        write_crops(scene, views, osp.join(self.out_dir, self.name, 'images', split))
        return views


class AttributeWriter(PersonCropWriter):
    """``attribute/images/{split}/*.jpg`` crops and PA-100k/RAPv2-style ``attribute/{set}_{split}.json`` (module
    docstring)."""

    name = 'attribute'

    def image_record(self, scene, split, image_id, jpeg):
        return [dict(image=f'images/{split}/{v.name}.jpg', facts=v.facts)
                for v in self.write_views(scene, split, image_id)]

    def finalize(self, records):
        files = {}
        for split, recs in records.items():
            people = [p for rec in recs for p in rec]
            for label_set, to_labels in LABEL_SETS.items():
                attr_names = ATTR_NAMES[label_set]
                labels = [[int(row[a]) for a in attr_names] for row in (to_labels(p['facts']) for p in people)]
                name = f'attribute/{label_set}_{split}.json'
                _dump_json(osp.join(self.out_dir, name), dict(
                    attr_names=attr_names, attr_groups=ATTR_GROUPS[label_set], images=[p['image'] for p in people],
                    labels=labels))
                files[name] = dict(images=len(people), attributes=len(attr_names))
        return files

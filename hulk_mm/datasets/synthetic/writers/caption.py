"""CUHK-PEDES-style captions (``reid_raw.json`` layout) of single-person crops.

The same people and crop windows as the attribute task (``attribute.person_views``); the crops are written again
under ``caption/`` so that each task's folder is self-contained. Files (``file_path`` relative to
``DIR/caption/``)::

    caption/images/{split}/<scene stem>_<instance id>.jpg
    caption/captions_{split}.json   [{"id": person id, "file_path": "images/<split>/<name>.jpg",
                                      "captions": [2 sentences], "split": "train"|"val"}, ...]

Person ids count from 1 over train then val (every rendered person is a new identity). Sentences come from
``captions.describe`` with ``np.random.default_rng([seed, split id, image id, instance id, CAPTION_STREAM])``,
so they depend only on the seed and the person, not on the split sizes or the other tasks.
"""
import os.path as osp

import numpy as np

from ..captions import describe
from .attribute import PersonCropWriter
from .base import SPLIT_IDS, _dump_json

CAPTIONS_PER_PERSON = 2  # as in CUHK-PEDES
CAPTION_STREAM = 2  # keeps the caption generator apart from other per-image generators of the same seed


class CaptionWriter(PersonCropWriter):
    """``caption/images/{split}/*.jpg`` and ``caption/captions_{split}.json`` (module docstring)."""

    name = 'caption'

    def image_record(self, scene, split, image_id, jpeg):
        people = []
        for view in self.write_views(scene, split, image_id):
            rng = np.random.default_rng([self.seed, SPLIT_IDS[split], image_id, view.instance_id, CAPTION_STREAM])
            people.append(dict(file_path=f'images/{split}/{view.name}.jpg',
                               captions=describe(view.facts, rng, CAPTIONS_PER_PERSON)))
        return people

    def finalize(self, records):
        files, next_id = {}, 1
        for split, recs in records.items():
            entries = []
            for person in (p for rec in recs for p in rec):
                entries.append(dict(id=next_id, file_path=person['file_path'], captions=person['captions'],
                                    split=split))
                next_id += 1
            name = f'caption/captions_{split}.json'
            _dump_json(osp.join(self.out_dir, name), entries)
            files[name] = dict(images=len(entries), captions=sum(len(e['captions']) for e in entries))
        return files

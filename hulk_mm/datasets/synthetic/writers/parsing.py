"""LIP-style crops and CIHP-style scenes with LIP's 20 classes."""
import os
import os.path as osp

import numpy as np

from .base import TaskWriter, _write_bytes, _write_png, crop_box, crop_name, encode_jpeg, image_name, is_crop_candidate


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
            if not is_crop_candidate(person):
                continue
            x1, y1, x2, y2 = crop_box(person.box_visible, width, height)
            inst = scene.instances[y1:y2, x1:x2]
            label = np.where(inst == person.instance_id, scene.labels[y1:y2, x1:x2], 0).astype(np.uint8)
            label[(inst != 0) & (inst != person.instance_id)] = 255
            name = crop_name(image_id, person.instance_id)
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

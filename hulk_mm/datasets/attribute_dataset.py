"""Pedestrian attribute recognition (PA-100k, RAPv2 and SynthHuman's versions of both) from a json label table."""
import os.path as osp

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import load

from hulk_mm.registry import DATASETS


@DATASETS.register_module()
class PedestrianAttributeDataset(BaseDataset):
    """Multi-label attribute dataset.

    Annotation file (json)::

        {"attr_names": [A names], "attr_groups": {group: [names]} (optional),
         "images": [N image paths, relative to data_prefix['img_path']],
         "labels": [N rows of A values in {0, 1}]}

    SynthHuman writes ``DIR/attribute/{pa100k,rapv2}_{train,val}.json`` with paths relative to
    ``DIR/attribute``, so ``data_root='DIR/attribute', ann_file='pa100k_train.json'`` loads it.

    ``data_list`` items: ``img_path`` (str), ``gt_label`` ((A,) np.int8 of 0/1). The metainfo gets
    ``attr_names`` (and ``attr_groups`` when the file has them) from the file; an ``attr_names`` given in
    ``metainfo`` must equal the file's (guards against a config pointing at the other label set).
    """

    METAINFO = dict()

    def load_data_list(self):
        ann = load(self.ann_file, file_format='json')
        if not isinstance(ann, dict):
            raise TypeError(f'{self.ann_file}: expected a json object, got {type(ann).__name__}')
        missing = [k for k in ('attr_names', 'images', 'labels') if k not in ann]
        if missing:
            raise KeyError(f'{self.ann_file}: missing key(s) {missing}; expected attr_names, images, labels')
        names, images, rows = list(ann['attr_names']), ann['images'], ann['labels']
        if len(images) != len(rows):
            raise ValueError(f'{self.ann_file}: {len(images)} images but {len(rows)} label rows')
        bad = [i for i, row in enumerate(rows) if len(row) != len(names)]
        if bad:
            raise ValueError(f'{self.ann_file}: label row {bad[0]} has {len(rows[bad[0]])} values, attr_names has '
                             f'{len(names)}')
        labels = np.array(rows, dtype=np.int64).reshape(len(rows), len(names))
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f'{self.ann_file}: labels must be 0 or 1, found '
                             f'{sorted(set(labels.ravel().tolist()) - {0, 1})}')
        given = self._metainfo.get('attr_names')
        if given is not None and list(given) != names:
            raise ValueError(f'{self.ann_file}: attr_names {names} differ from metainfo attr_names {list(given)}')
        self._metainfo['attr_names'] = names
        if 'attr_groups' in ann:
            self._metainfo['attr_groups'] = ann['attr_groups']
        prefix = self.data_prefix.get('img_path', '')
        return [dict(img_path=osp.join(prefix, path), gt_label=row.astype(np.int8))
                for path, row in zip(images, labels)]

"""Pedestrian captioning (CUHK-PEDES and SynthHuman's version) from a ``reid_raw.json``-style list."""
import os.path as osp

from mmengine.dataset import BaseDataset
from mmengine.fileio import load

from hulk_mm.registry import DATASETS


@DATASETS.register_module()
class PedestrianCaptionDataset(BaseDataset):
    """Image-caption dataset in CUHK-PEDES's ``reid_raw.json`` layout.

    Annotation file (json): a list of ``{"id": person id, "file_path": image path relative to
    data_prefix['img_path'], "captions": [sentences], "split": "train"|"val"|"test"}``. CUHK-PEDES keeps every
    split in one file: pass ``split`` to keep one; SynthHuman writes one file per split
    (``DIR/caption/captions_{train,val}.json``, paths relative to ``DIR/caption``).

    Args:
        split: keep only entries whose ``split`` equals this (None = all).
        **kwargs: ``mmengine.dataset.BaseDataset`` arguments.

    ``data_list`` items: ``img_path`` (str), ``gt_captions`` (list of str), ``person_id`` (int).
    """

    METAINFO = dict()

    def __init__(self, *args, split=None, **kwargs):
        self.split = split
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        entries = load(self.ann_file, file_format='json')
        if not isinstance(entries, list):
            raise TypeError(f'{self.ann_file}: expected a json list of entries, got {type(entries).__name__}')
        prefix = self.data_prefix.get('img_path', '')
        data_list = []
        for i, entry in enumerate(entries):
            missing = [k for k in ('id', 'file_path', 'captions') if k not in entry]
            if missing:
                raise KeyError(f'{self.ann_file}: entry {i} misses key(s) {missing}')
            if self.split is not None and entry.get('split') != self.split:
                continue
            captions = entry['captions']
            if not captions or not all(isinstance(c, str) for c in captions):
                raise ValueError(f'{self.ann_file}: entry {i} needs a non-empty list of caption strings')
            data_list.append(dict(img_path=osp.join(prefix, entry['file_path']), gt_captions=list(captions),
                                  person_id=int(entry['id'])))
        if self.split is not None and not data_list:
            raise ValueError(f'{self.ann_file}: no entry with split={self.split!r}')
        return data_list

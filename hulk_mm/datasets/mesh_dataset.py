"""``HumanMeshDataset``: 3-D pose and mesh crops from a ``{split}.npz`` (SynthHuman ``mesh/``, 3DPW, H3.6M).

The npz layout is the contract of ``hulk_mm.datasets.synthetic.writers.mesh`` (its module docstring lists every
key); converters of real benchmarks write the same keys. Metres, camera frame; joints in the 14-joint LSP order
of ``MESH_JOINTS``.
"""
import os.path as osp

import numpy as np
from mmengine.dataset import BaseDataset

from hulk_mm.registry import DATASETS
from .synthetic.mesh_model import MESH_JOINTS

# Per-sample arrays copied into each data info (key in the npz -> key in the data info).
_SAMPLE_KEYS = ('joints3d', 'joints2d', 'joints2d_visibility', 'vertices', 'intrinsics', 'cam', 'center', 'scale',
                'bbox', 'pose', 'shape', 'global_orient', 'transl', 'has_joints3d', 'has_vertices')
REQUIRED_KEYS = ('imgname', 'crop_size') + _SAMPLE_KEYS
# Left/right swap of the 14 joints (for flip augmentation).
FLIP_INDICES = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13]


@DATASETS.register_module()
class HumanMeshDataset(BaseDataset):
    """Person crops with 3-D joints, a body mesh and cameras, read from one ``{split}.npz``.

    Each data info holds ``img_path`` (the crop), ``img_id`` (index in the file), ``crop_size`` and per sample:
    ``joints3d`` (14, 3) and ``vertices`` (V, 3) in metres (camera frame, absolute), ``joints2d`` (14, 2) crop
    pixels with ``joints2d_visibility`` (14,), ``intrinsics`` (f, cx, cy) crop pixels, ``cam`` weak-perspective
    (s, tx, ty), ``center``, ``scale``, ``bbox`` (source image), ``pose``, ``shape``, ``global_orient``,
    ``transl``, ``has_joints3d``, ``has_vertices`` (numpy arrays as stored, float32 / uint8).

    Args:
        ann_file: the npz, relative to ``data_root`` (e.g. ``'train.npz'`` with ``data_root='data/synthhuman/mesh'``).
        data_prefix: ``dict(img=...)``: folder that ``imgname`` is relative to (default: the npz's folder).
        other arguments: as ``mmengine.dataset.BaseDataset``.
    """

    METAINFO = dict(dataset_name='human_mesh', joint_names=MESH_JOINTS, num_joints=len(MESH_JOINTS),
                    flip_indices=FLIP_INDICES, root_joints=(2, 3))

    def __init__(self, ann_file='', data_root='', data_prefix=dict(img=''), **kwargs):
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix, **kwargs)

    def load_data_list(self):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'{type(self).__name__}: annotation file {self.ann_file!r} does not exist')
        with np.load(self.ann_file) as npz:
            missing = [key for key in REQUIRED_KEYS if key not in npz.files]
            if missing:
                raise KeyError(f'{type(self).__name__}: {self.ann_file!r} lacks the keys {", ".join(missing)} '
                               f'(it has {", ".join(npz.files)}); see hulk_mm.datasets.synthetic.writers.mesh')
            if 'joint_names' in npz.files and tuple(npz['joint_names']) != MESH_JOINTS:
                raise ValueError(f'{type(self).__name__}: {self.ann_file!r} stores the joints '
                                 f'{tuple(npz["joint_names"])}, expected {MESH_JOINTS}')
            arrays = {key: npz[key] for key in REQUIRED_KEYS}
        num = len(arrays['imgname'])
        wrong = [key for key in _SAMPLE_KEYS if len(arrays[key]) != num]
        if wrong:
            raise ValueError(f'{type(self).__name__}: {self.ann_file!r} has {num} images but '
                             f'{", ".join(f"{k} of length {len(arrays[k])}" for k in wrong)}')
        img_root = self.data_prefix.get('img', '') or osp.dirname(self.ann_file)
        crop_size = int(arrays['crop_size'])
        return [dict(img_path=osp.join(img_root, str(arrays['imgname'][i])), img_id=i, crop_size=crop_size,
                     **{key: arrays[key][i] for key in _SAMPLE_KEYS}) for i in range(num)]

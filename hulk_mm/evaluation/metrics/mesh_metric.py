"""``MeshMetric``: MPJPE, PA-MPJPE and MPVPE (millimetres) of 3-D human pose and mesh (3DPW / H3.6M protocol)."""
from collections.abc import Mapping

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpose.evaluation.functional import keypoint_mpjpe

from hulk_mm.registry import METRICS

ROOT_JOINTS = (2, 3)  # right and left hip of the 14-joint LSP order: the root is their mid-point


def _array(value):
    """Tensor or array-like -> float64 numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def root_align(joints, vertices=None, root_joints=ROOT_JOINTS):
    """Subtract the mid-hip of ``joints`` (..., 14, 3) from the joints and the vertices (..., V, 3)."""
    root = joints[..., list(root_joints), :].mean(axis=-2, keepdims=True)
    return joints - root, None if vertices is None else vertices - root


@METRICS.register_module()
class MeshMetric(BaseMetric):
    """Errors of predicted 3-D joints and mesh vertices against the ground truth, in millimetres.

    Protocol (Hulk / METRO on 3DPW and H3.6M): inputs in metres; prediction and ground truth are each
    root-aligned by subtracting their own mid-hip (mean of joints 2 and 3 of the 14-joint LSP order), also for
    the vertices; then

    * ``MPJPE``: mean Euclidean distance over the 14 joints;
    * ``PA-MPJPE``: the same after a similarity Procrustes alignment (scale, rotation, translation) of each
      predicted skeleton to its ground truth (``mmpose.evaluation.functional.keypoint_mpjpe``);
    * ``MPVPE``: mean Euclidean distance over the mesh vertices; only samples that have both ``pred_vertices``
      and ``gt_vertices`` count, and the key is left out when none has.

    ``process`` reads from each data sample (a dict; mmengine's evaluator turns data elements into dicts)
    ``pred_joints3d`` (14, 3), ``gt_joints3d`` (14, 3), and optionally ``pred_vertices`` (V, 3) and
    ``gt_vertices`` (V, 3), as tensors or arrays; samples with ``has_joints3d`` = 0 are skipped.

    Args:
        collect_device, prefix: as ``mmengine.evaluator.BaseMetric`` (default prefix ``mesh``; configs set
            ``<task>.<dataset>``, e.g. ``mesh.3dpw``).
    """

    default_prefix = 'mesh'

    def process(self, data_batch, data_samples):
        for i, sample in enumerate(data_samples):
            if not isinstance(sample, Mapping):
                raise TypeError(f'MeshMetric expects dict data samples, got {type(sample).__name__}')
            missing = [k for k in ('pred_joints3d', 'gt_joints3d') if k not in sample]
            if missing:
                raise KeyError(f'MeshMetric: data sample {i} lacks {", ".join(missing)} '
                               f'(it has {", ".join(map(str, sample))})')
            if 'has_joints3d' in sample and not int(_array(sample['has_joints3d'])):
                continue
            pred, gt = _array(sample['pred_joints3d']), _array(sample['gt_joints3d'])
            if pred.shape != gt.shape or pred.shape[-1] != 3 or pred.ndim != 2:
                raise ValueError(f'MeshMetric: pred_joints3d {pred.shape} and gt_joints3d {gt.shape} must both '
                                 f'be (14, 3)')
            result = dict(pred_joints3d=pred, gt_joints3d=gt)
            if sample.get('pred_vertices') is not None and sample.get('gt_vertices') is not None:
                pv, gv = _array(sample['pred_vertices']), _array(sample['gt_vertices'])
                if pv.shape != gv.shape or pv.ndim != 2 or pv.shape[-1] != 3:
                    raise ValueError(f'MeshMetric: pred_vertices {pv.shape} and gt_vertices {gv.shape} must both '
                                     f'be (V, 3)')
                result.update(pred_vertices=pv, gt_vertices=gv)
            self.results.append(result)

    def compute_metrics(self, results):
        if not results:
            raise ValueError('MeshMetric: no sample with 3-D joints was processed')
        pred_j, _ = root_align(np.stack([r['pred_joints3d'] for r in results]))
        gt_j, _ = root_align(np.stack([r['gt_joints3d'] for r in results]))
        mask = np.ones(pred_j.shape[:2], dtype=bool)
        metrics = {'MPJPE': 1000.0 * float(keypoint_mpjpe(pred_j, gt_j, mask, alignment='none')),
                   'PA-MPJPE': 1000.0 * float(keypoint_mpjpe(pred_j, gt_j, mask, alignment='procrustes'))}
        meshes = [r for r in results if 'pred_vertices' in r]
        if meshes:
            _, pred_v = root_align(np.stack([r['pred_joints3d'] for r in meshes]),
                                   np.stack([r['pred_vertices'] for r in meshes]))
            _, gt_v = root_align(np.stack([r['gt_joints3d'] for r in meshes]),
                                 np.stack([r['gt_vertices'] for r in meshes]))
            metrics['MPVPE'] = 1000.0 * float(keypoint_mpjpe(pred_v, gt_v, np.ones(pred_v.shape[:2], dtype=bool)))
        return metrics

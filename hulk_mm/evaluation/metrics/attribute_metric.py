"""Pedestrian attribute metrics of the PAR protocol (label-based mA, instance-based accuracy/precision/recall/F1)."""
from collections.abc import Mapping

import numpy as np
from mmengine.evaluator import BaseMetric

from hulk_mm.registry import METRICS

EPS = 1e-20  # as Hulk / Rethinking-of-PAR: an empty denominator gives 0, not NaN


def _to_numpy(value):
    if hasattr(value, 'detach'):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def pedestrian_attribute_metrics(gt_label, pred_label):
    """PAR metrics of binary predictions, as Hulk's ``core/solvers/utils/attr_tester_dev.py`` computes them.

    Args:
        gt_label: (N, A) array, 1 = present, 0 or -1 = absent (Hulk maps -1, "not annotated", to 0).
        pred_label: (N, A) bool array of predicted presence.

    Returns:
        dict of floats in [0, 1]:
        ``mA``: mean over attributes of (TP/P + TN/N) / 2, where P and N count the attribute's positive and
        negative samples. An attribute without positives (or negatives) in the set gets a recall of 0 for that
        side (TP/(0 + eps) = 0), so its mA is at most 0.5, as in Hulk;
        ``Accu``, ``Prec``, ``Recall``, ``F1``: means over samples of |GT & pred| / |GT | pred|,
        |GT & pred| / |pred|, |GT & pred| / |GT| and the per-sample harmonic mean of the last two (each 0 for an
        empty denominator).
    """
    gt = np.asarray(gt_label) == 1
    pred = np.asarray(pred_label, dtype=bool)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise ValueError(f'gt_label and pred_label must both be (N, A), got {gt.shape} and {pred.shape}')
    pos_recall = (gt & pred).sum(0) / (gt.sum(0) + EPS)
    neg_recall = (~gt & ~pred).sum(0) / ((~gt).sum(0) + EPS)
    hit = (gt & pred).sum(1)
    accu = hit / ((gt | pred).sum(1) + EPS)
    prec = hit / (pred.sum(1) + EPS)
    recall = hit / (gt.sum(1) + EPS)
    f1 = 2 * prec * recall / (prec + recall + EPS)
    return {'mA': float(np.mean((pos_recall + neg_recall) / 2)), 'Accu': float(accu.mean()),
            'Prec': float(prec.mean()), 'Recall': float(recall.mean()), 'F1': float(f1.mean())}


@METRICS.register_module()
class AttributeMetric(BaseMetric):
    """mA and instance-based accuracy/precision/recall/F1 of multi-label attribute predictions
    (``pedestrian_attribute_metrics``).

    Each data sample is a dict with ``pred_score`` ((A,) scores, tensor or array) and ``gt_label`` ((A,) 0/1,
    -1 counts as 0). An attribute is predicted present when its score is strictly greater than ``threshold``
    (Hulk's rule): 0.5 for probabilities (sigmoid applied), 0 for logits.

    Args:
        threshold: decision threshold on ``pred_score``.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``; keys are ``<prefix>/mA`` etc.
    """

    default_prefix = 'attribute'

    def __init__(self, threshold=0.5, collect_device='cpu', prefix=None, collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.threshold = float(threshold)

    def process(self, data_batch, data_samples):
        for i, sample in enumerate(data_samples):
            if not isinstance(sample, Mapping):
                raise TypeError(f'AttributeMetric: data sample {i} must be a dict, got {type(sample).__name__}')
            missing = [k for k in ('pred_score', 'gt_label') if k not in sample]
            if missing:
                raise KeyError(f'AttributeMetric: data sample {i} misses {missing}; it needs pred_score (A,) and '
                               'gt_label (A,)')
            score = _to_numpy(sample['pred_score']).astype(np.float64).reshape(-1)
            gt = _to_numpy(sample['gt_label']).astype(np.int64).reshape(-1)
            if score.shape != gt.shape:
                raise ValueError(f'AttributeMetric: data sample {i} has {score.size} scores for {gt.size} labels')
            if not np.isin(gt, (-1, 0, 1)).all():
                raise ValueError(f'AttributeMetric: gt_label of data sample {i} must hold 0/1 (or -1), got '
                                 f'{sorted(set(gt.tolist()) - {-1, 0, 1})}')
            self.results.append((score, gt))

    def compute_metrics(self, results):
        if not results:
            raise ValueError('AttributeMetric: no data samples were processed')
        sizes = {score.size for score, _ in results}
        if len(sizes) != 1:
            raise ValueError(f'AttributeMetric: samples have different numbers of attributes {sorted(sizes)}')
        scores = np.stack([score for score, _ in results])
        gt = np.stack([label for _, label in results])
        return pedestrian_attribute_metrics(gt, scores > self.threshold)

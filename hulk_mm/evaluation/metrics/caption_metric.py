"""Corpus BLEU-1..4 of generated captions with pycocoevalcap's pure-python BLEU scorer."""
import re
from collections.abc import Mapping

from mmengine.evaluator import BaseMetric
from pycocoevalcap.bleu.bleu import Bleu

from hulk_mm.registry import METRICS

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def tokenize(text):
    """Lower-cased words of ``text``, punctuation dropped: runs of letters/digits, inner hyphens and apostrophes
    kept ("t-shirt", "person's" are one token, as in PTB tokenisation). Stands in for pycocoevalcap's
    ``PTBTokenizer``, which needs Java."""
    return _WORD.findall(text.lower())


def corpus_bleu(predictions, references):
    """BLEU-1..4 over a corpus, as pycocoevalcap's ``Bleu(4)`` computes it (clipped n-gram counts summed over
    all sentences, brevity penalty from the closest reference length).

    Args:
        predictions: list of N strings.
        references: list of N non-empty lists of strings.

    Returns:
        dict ``BLEU-1``..``BLEU-4`` of floats in [0, 1].
    """
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f'need the same positive number of predictions and reference lists, got '
                         f'{len(predictions)} and {len(references)}')
    res = {i: [' '.join(tokenize(p))] for i, p in enumerate(predictions)}
    gts = {i: [' '.join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {f'BLEU-{n}': float(s) for n, s in enumerate(scores, 1)}


@METRICS.register_module()
class CaptionMetric(BaseMetric):
    """Corpus BLEU-1..4 (``corpus_bleu``) of one predicted caption per image against its reference captions.

    Each data sample is a dict with ``pred_caption`` (str) and ``gt_captions`` (non-empty list of str).

    Args:
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``; keys are ``<prefix>/BLEU-4``
            etc.
    """

    default_prefix = 'caption'

    def process(self, data_batch, data_samples):
        for i, sample in enumerate(data_samples):
            if not isinstance(sample, Mapping):
                raise TypeError(f'CaptionMetric: data sample {i} must be a dict, got {type(sample).__name__}')
            missing = [k for k in ('pred_caption', 'gt_captions') if k not in sample]
            if missing:
                raise KeyError(f'CaptionMetric: data sample {i} misses {missing}; it needs pred_caption (str) and '
                               'gt_captions (list of str)')
            pred, refs = sample['pred_caption'], sample['gt_captions']
            if not isinstance(pred, str):
                raise TypeError(f'CaptionMetric: pred_caption of data sample {i} must be a str, got '
                                f'{type(pred).__name__}')
            if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
                raise TypeError(f'CaptionMetric: gt_captions of data sample {i} must be a non-empty list of str')
            self.results.append((pred, list(refs)))

    def compute_metrics(self, results):
        if not results:
            raise ValueError('CaptionMetric: no data samples were processed')
        return corpus_bleu([p for p, _ in results], [r for _, r in results])

"""Pedestrian attribute pathway of Hulk (spec §3.2 "Attributes", §4 row "Attributes PA-100k / RAPv2").

    person crop (B, 3, H, W), RGB 0-255
      -> shared image tokenizer + ViT encoder + neck             (B, P, d), P = h * w (attributes: 16 x 12)
      -> one query per attribute, shared decoder (ClassQueryPathway)   (B, L, d), L = 168 attributes in the release
      -> query a against the positive sentence of attribute a    (B, L) logits

Only the final decoder layer is supervised (the official text projector reads ``decoder_output`` alone). Testing
scores a sample's dataset columns with a sigmoid; :class:`~hulk_mm.evaluation.metrics.AttributeMetric` thresholds
them (Hulk: 0.3).
"""
from __future__ import annotations

import torch
from torch import Tensor

from hulk_mm.models.tasks.class_query import ClassQueryPathway
from hulk_mm.registry import MODELS


@MODELS.register_module()
class AttributePathway(ClassQueryPathway):
    """Multi-label attributes from a person crop; one label token per attribute.

    The text table holds one vector per attribute: the embedding of its *positive* sentence (e.g. "with a hat";
    official ``one_way_semantics``). The official sentence files are (L, 3, 768): negative, positive and a third
    sentence; the official projector keeps index 1 only, and so do its checkpoints (``proj_text.text_vectors`` is
    (L, 768)), which the converter copies as they are.

    Data samples carry ``gt_label`` ((A,) 0/1, or -1 = not annotated) for the A columns of their dataset (see
    :meth:`ClassQueryPathway.columns`); the other columns of the label space are ignored in the loss.

    Args:
        num_attributes: L.
        grid: (h, w) token grid of the crop (the image tokenizer's patch grid).
        embed_dim: decoder width d.
        detokenizer: ``SemanticDetokenizer`` config (positive-sentence table).
        loss: config of :class:`~hulk_mm.models.losses.attribute.MaskedOneSideBCELoss` over the L attributes.
        datasets: dataset name -> [start, end) attribute columns (release: rapv2 (0, 54), pa100k (54, 80), ...).
        input_dim: encoder width D, of the task's input position table (filled in by :class:`Hulk`).
    """

    task = 'attribute'
    modality = 'image'

    def __init__(self, num_attributes: int, grid: tuple[int, int], embed_dim: int, detokenizer: dict, loss: dict,
                 datasets: dict[str, tuple[int, int]] | None = None, input_dim: int = 768, init_cfg=None):
        super().__init__(num_attributes, grid, embed_dim, detokenizer, datasets, init_cfg=init_cfg)
        self.register_input_table(input_dim, self.grid)
        self.loss_attr = MODELS.build(loss)

    def attribute_queries(self, shared, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) crops -> one (B, L, d) attribute-query output per decoder layer."""
        self.check_image_size(shared, images)
        return self.decode_queries(shared, self.encode(shared, images))

    def forward(self, shared, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> per decoder layer the (B, L) attribute logits; last = final."""
        return [self.class_logits(shared, q) for q in self.attribute_queries(shared, images)]

    def infer(self, shared, images: Tensor) -> Tensor:
        """Test-time forward, last decoder layer only: (B, 3, H, W) -> (B, L) attribute logits."""
        return self.class_logits(shared, self.attribute_queries(shared, images)[-1])

    def loss(self, shared, images: Tensor, data_samples: list) -> dict[str, Tensor]:
        """One-sided masked BCE of the final layer's logits against each sample's labels in its dataset's columns
        (the rest of the label space is -1, ignored)."""
        logits = self.infer(shared, images)
        targets = logits.new_full(logits.shape, -1.0)
        for i, sample in enumerate(data_samples):
            cols = self.columns(sample)
            label = torch.as_tensor(sample.gt_label, dtype=logits.dtype, device=logits.device).reshape(-1)
            if label.numel() != cols.stop - cols.start:
                raise ValueError(f'attribute: gt_label has {label.numel()} values, its dataset has '
                                 f'{cols.stop - cols.start} columns ({cols.start}-{cols.stop - 1})')
            targets[i, cols] = label
        return dict(loss_attr=self.loss_attr(logits, targets))

    def predict(self, shared, images: Tensor, data_samples: list) -> list:
        """Sets ``pred_score`` on each sample: (A,) sigmoid probabilities of its dataset's attribute columns, what
        ``AttributeMetric`` thresholds."""
        scores = self.infer(shared, images).sigmoid().detach()
        for sample, score in zip(data_samples, scores):
            sample.set_field(score[self.columns(sample)], 'pred_score')
        return data_samples

"""Skeleton action recognition pathway of Hulk (spec §3.2 "Skeleton action", §4 row "Skeleton NTU60-XSub").

    keypoints (N, nc, M, T, V, 3), mmaction2's FormatGCNInput layout (clips nc, persons M = 2, x/y/score)
      -> every person sequence on its own: shared skeleton tokenizer + ViT encoder + neck   (N nc M, P, d), P = 25 x 8
      -> one query per action class, shared decoder (ClassQueryPathway)                   (N nc M, L, d)
      -> mean over the M persons of a clip                                                (N nc, L, d)
      -> query k against the name of class k                                              (N nc, L) logits

Training: plain cross-entropy of the final layer over the whole label space (classes of other datasets are
negatives). Testing: softmax over the sample's dataset columns, averaged over its clips, as mmaction2's recognizers
average clip probabilities; ``AccMetric`` reads ``pred_score`` and ``gt_label``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from hulk_mm.models.tasks.class_query import ClassQueryPathway
from hulk_mm.registry import MODELS


@MODELS.register_module()
class SkeletonActionPathway(ClassQueryPathway):
    """Action class of 2-D keypoint sequences; one label token per action class.

    Data samples are mmaction2 ``ActionDataSample`` with ``gt_label`` (1,), the class index within the sample's
    dataset (its columns: :meth:`ClassQueryPathway.columns`).

    Args:
        num_classes: L (release: 279 = NTU60 60 + NTU120 120 + FineGym 99).
        grid: (h, w) token grid of one person sequence (release: 175 frames / 7 x 17 joints // 2 = (25, 8)).
        embed_dim: decoder width d.
        detokenizer: ``SemanticDetokenizer`` config (class-name table).
        loss_cls: classification loss config (mmdet ``CrossEntropyLoss``: mean cross-entropy).
        datasets: dataset name -> [start, end) class columns (release: ntu60 (0, 60), ntu120 (60, 180),
            gym (180, 279)).
    """

    task = 'skeleton_action'
    modality = 'skeleton'
    # Tokenizer tensors of the skeleton checkpoints (official ``adapter_sparse_labeling``, the *input* tokenizer only
    # for these tasks; the detection and mesh files hold a dead label-side module of the same name). Absolute keys.
    official_shared_rules = (
        (r'^adapter_sparse_labeling\.(proj_kernel_weight|proj_kernel_bias|merge_kernel_weight|merge_kernel_bias|'
         r'pos_embed)$', r'shared.tokenizers.skeleton.\1'),
        (r'^adapter_sparse_labeling\.text_embedding$', 'shared.tokenizers.skeleton.joint_text'),
        (r'^adapter_sparse_labeling\.proj\.0\.norm\.(weight|bias)$', r'shared.tokenizers.skeleton.norm.\1'),
    )
    # Dead here, live in the detection and mesh files: the skeleton tasks' patch projector (keypoint reconstruction
    # head, zero loss with nothing masked; spec §3.4).
    official_dead_rules = (r'^proj_sparse_labeling\.', )

    def __init__(self, num_classes: int, grid: tuple[int, int], embed_dim: int, detokenizer: dict, loss_cls: dict,
                 datasets: dict[str, tuple[int, int]] | None = None, init_cfg=None):
        super().__init__(num_classes, grid, embed_dim, detokenizer, datasets, init_cfg=init_cfg)
        self.loss_cls = MODELS.build(loss_cls)

    def class_queries(self, shared, keypoints: Tensor) -> list[Tensor]:
        """(N, nc, M, T, V, 3) -> one (N * nc, L, d) class-query output per decoder layer, averaged over persons."""
        frames = self.grid[0] * self.tokenizer(shared).patch_size[0]
        if keypoints.dim() != 6 or keypoints.shape[3] != frames:
            raise ValueError(f'skeleton_action expects keypoints of shape (N, clips, persons, {frames}, V, 3) '
                             f'(mmaction2 FormatGCNInput) for its fixed {self.grid[0]}x{self.grid[1]} token grid, '
                             f'got {tuple(keypoints.shape)}')
        persons = keypoints.shape[2]
        memory = shared.encode(self.modality, keypoints.flatten(0, 2))
        return [q.unflatten(0, (-1, persons)).mean(1) for q in self.decode_queries(shared, memory)]

    def forward(self, shared, keypoints: Tensor) -> list[Tensor]:
        """(N, nc, M, T, V, 3) -> per decoder layer the (N * nc, L) clip logits; last = final."""
        return [self.class_logits(shared, q) for q in self.class_queries(shared, keypoints)]

    def infer(self, shared, keypoints: Tensor) -> Tensor:
        """Test-time forward, last decoder layer only: (N, nc, M, T, V, 3) -> (N * nc, L) clip logits."""
        return self.class_logits(shared, self.class_queries(shared, keypoints)[-1])

    def example_inputs(self, shared, batch_size: int = 1) -> Tensor:
        """Random normalised clips of the task's geometry, (B, 1, 2, T, V, 3): x, y in [-1, 1] (mmaction2's
        PreNormalize2D range), score in [0, 1]."""
        tokenizer = self.tokenizer(shared)
        shape = (batch_size, 1, 2, self.grid[0] * tokenizer.patch_size[0], tokenizer.num_joints)
        return torch.cat([torch.rand(*shape, 2) * 2 - 1, torch.rand(*shape, 1)], dim=-1)

    def loss(self, shared, keypoints: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Cross-entropy over all L classes of every clip's final logits; ``acc_top1`` is logged."""
        logits = self.infer(shared, keypoints)
        labels = torch.cat([torch.as_tensor(s.gt_label, device=logits.device).reshape(1) + self.columns(s).start
                            for s in data_samples])
        labels = labels.repeat_interleave(keypoints.shape[1])  # one target per clip
        with torch.no_grad():
            acc = (logits.argmax(-1) == labels).float().mean()
        return dict(loss_cls=self.loss_cls(logits, labels), acc_top1=acc)

    def predict(self, shared, keypoints: Tensor, data_samples: list) -> list:
        """Sets ``pred_score`` (softmax over the sample's dataset columns, mean over its clips) and ``pred_label``
        (its argmax, an index within the dataset) on each sample."""
        logits = self.infer(shared, keypoints).detach()
        for sample, clips in zip(data_samples, logits.unflatten(0, (len(data_samples), -1))):
            score = clips[:, self.columns(sample)].softmax(-1).mean(0)
            sample.set_pred_score(score)
            sample.set_pred_label(score.argmax(keepdim=True))
        return data_samples

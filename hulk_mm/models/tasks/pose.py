"""Top-down 2-D pose pathway of Hulk (spec §3.1, §4 row "2-D pose COCO").

    person crop (B, 3, H, W), RGB 0-255
      -> shared image tokenizer + ViT encoder + neck             (B, P, d), P = h * w tokens (pose: 16 x 12)
      -> [memory ; modality indicator x L]                        (B, P + L, d), L = P (one label token per patch)
      -> shared decoder, full attention, PE added to q/k per layer
      -> per layer: HeatmapDetokenizer                            heatmaps (B, K, 4h, 4w), visibility logits (B, K)

Training supervises every decoder layer with the same head and the same weights (deep supervision: official
``aux_outputs`` go through the same ``forward_mask``). Testing uses the last layer, averages it with the flipped
image's heatmaps (mmpose ``HeatmapHead.predict``), decodes with an mmpose codec and maps keypoints to image space.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.registry import KEYPOINT_CODECS
from torch import Tensor

import hulk_mm.codecs  # noqa: F401  (registers the batched DARK / DARK-UDP codecs in mmpose's KEYPOINT_CODECS)
from hulk_mm.models.attention_masks import full_mask
from hulk_mm.models.positional import mae_pos_embed
from hulk_mm.models.tasks.base import Pathway
from hulk_mm.registry import MODELS


@MODELS.register_module()
class PosePathway(Pathway):
    """2-D keypoints from a person crop; one label token per image patch.

    Owns only what is pose-specific: the modality indicator, the decoder's fixed PE tables, the de-tokenizer, the
    codec and the losses. The shared modules arrive as ``shared`` (:class:`~hulk_mm.models.hulk.HulkShared`) in
    every call and are never stored.

    Args:
        num_keypoints: K.
        grid: (h, w) token grid of the crop (the image tokenizer's patch grid; fixed: pose does not resample PE).
        embed_dim: decoder width d.
        detokenizer: config of the de-tokenizer (``HeatmapDetokenizer``); ``num_keypoints`` and ``grid`` are
            filled in here.
        codec: mmpose codec config (``UDPHeatmap``); its heatmap size must be (4w, 4h).
        loss_kpt: heatmap loss config (mmpose ``KeypointMSELoss`` with ``use_target_weight=True``).
        loss_vis: visibility loss config (:class:`~hulk_mm.models.losses.VisibilityBCELoss`).
        flip_test: average with the horizontally flipped crop at test time.
        shift_heatmap: shift the flipped-back heatmaps by one pixel (Hulk: False).
        input_dim: encoder width D, of the task's input position table (filled in by :class:`Hulk`).
    """

    task = 'pose'
    projection = 'dense'
    group_shared = ('indicator', )
    official_rules = (
        (r'^decoder_module\.predictor\.mask_token$', 'indicator'),
        (r'^decoder_module\.predictor\.(query_embed_patch|query_embed_label)$', r'\1'),
        (r'^proj_dense_labeling\.(text_features|post_mul_norm\.(weight|bias))$', r'detokenizer.semantic.\1'),
        (r'^proj_dense_labeling\.upsample_network\.([013])\.(weight|bias)$', r'detokenizer.upsampler.\1.\2'),
    )

    def __init__(self, num_keypoints: int, grid: tuple[int, int], embed_dim: int, detokenizer: dict, codec: dict,
                 loss_kpt: dict, loss_vis: dict, flip_test: bool = True, shift_heatmap: bool = False,
                 input_dim: int = 768, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_keypoints = num_keypoints
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_tokens = self.grid[0] * self.grid[1]
        self.flip_test = flip_test
        self.shift_heatmap = shift_heatmap
        # The modality indicator: one learned vector, replicated over all L label positions, told apart only by PE.
        self.indicator = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_input_table(input_dim, self.grid)
        # Fixed decoder PE of the patch (P) and label (L) sides, MAE's 14x14 sin-cos grid resampled to the task
        # grid. Identical for pose; both kept (persistent) because the official checkpoints store both.
        self.register_buffer('query_embed_patch', mae_pos_embed(embed_dim, self.grid))
        self.register_buffer('query_embed_label', mae_pos_embed(embed_dim, self.grid))
        self.detokenizer = MODELS.build(
            dict(detokenizer, num_keypoints=num_keypoints, grid=self.grid))
        with DefaultScope.overwrite_default_scope('mmpose'):  # codecs live in mmpose's registry only
            self.codec = KEYPOINT_CODECS.build(codec)
        expected = (4 * self.grid[1], 4 * self.grid[0])
        if tuple(self.codec.heatmap_size) != expected:
            raise ValueError(f'codec heatmap_size {tuple(self.codec.heatmap_size)} must be (w, h) = {expected}: '
                             f'the de-tokenizer upsamples the {self.grid} token grid x4')
        self.loss_kpt = MODELS.build(loss_kpt)
        self.loss_vis = MODELS.build(loss_vis)

    def label_outputs(self, shared, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) crops -> one (B, L, d) label-side output per decoder layer."""
        self.check_image_size(shared, images)
        memory = self.encode(shared, images)
        queries = self.indicator.expand(images.shape[0], self.num_tokens, -1)
        pos = shared.decoder.adapt_pos2d(torch.cat([self.query_embed_patch, self.query_embed_label], dim=1))
        mask = full_mask(memory.shape[1], self.num_tokens, images.device)
        return shared.decode(memory, queries, pos, mask, pos_per_layer=True)

    def forward(self, shared, images: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(B, 3, H, W) -> per decoder layer (heatmaps (B, K, 4h, 4w), visibility logits (B, K)); last = final."""
        projection = self.semantic_projection(shared)
        return [self.detokenizer(tokens, projection) for tokens in self.label_outputs(shared, images)]

    def infer(self, shared, images: Tensor) -> tuple[Tensor, Tensor]:
        """Test-time forward, last decoder layer only: (B, 3, H, W) -> heatmaps (B, K, 4h, 4w), visibility (B, K)."""
        return self.detokenizer(self.label_outputs(shared, images)[-1], self.semantic_projection(shared))

    def loss(self, shared, images: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Heatmap MSE + weighted visibility BCE, each summed over all decoder layers.

        ``data_samples`` carry the codec's targets (mmpose ``GenerateTarget``): ``gt_fields.heatmaps`` (K, 4h, 4w)
        and ``gt_instance_labels.keypoint_weights`` (1, K), which are also the visibility targets.
        """
        gt_heatmaps = torch.stack([d.gt_fields.heatmaps for d in data_samples])
        weights = torch.cat([d.gt_instance_labels.keypoint_weights for d in data_samples])
        loss_kpt = loss_vis = 0
        for heatmaps, visibility in self(shared, images):
            loss_kpt = loss_kpt + self.loss_kpt(heatmaps, gt_heatmaps, weights)
            loss_vis = loss_vis + self.loss_vis(visibility, weights)
        return dict(loss_kpt=loss_kpt, loss_vis=loss_vis)

    def predict(self, shared, images: Tensor, data_samples: list) -> list:
        """Keypoints in image space, as mmpose's top-down estimator returns them.

        Sets ``pred_instances`` on each sample: ``keypoints`` (1, K, 2) in image pixels, ``keypoint_scores``
        (1, K) from the heatmaps (what CocoMetric rescores with), ``keypoints_visible`` (1, K) = sigmoid of the
        visibility logits of the unflipped pass, and the sample's ``bboxes`` / ``bbox_scores``.
        """
        heatmaps, visibility = self.infer(shared, images)
        if self.flip_test:
            flipped, _ = self.infer(shared, images.flip(-1))
            flipped = flip_heatmaps(flipped, flip_indices=data_samples[0].metainfo['flip_indices'],
                                    flip_mode='heatmap', shift_heatmap=self.shift_heatmap)
            heatmaps = (heatmaps + flipped) * 0.5
        visibility = visibility.sigmoid().detach().cpu().numpy()
        for sample, pred, vis in zip(data_samples, self.decode(heatmaps), visibility):
            meta = sample.metainfo
            scale, center = np.asarray(meta['input_scale']), np.asarray(meta['input_center'])
            pred.keypoints = pred.keypoints / np.asarray(meta['input_size']) * scale + center - 0.5 * scale
            pred.keypoints_visible = vis[None]
            pred.bboxes = sample.gt_instances.bboxes
            pred.bbox_scores = sample.gt_instances.bbox_scores
            sample.pred_instances = pred
        return data_samples

    def decode(self, heatmaps: Tensor) -> list[InstanceData]:
        """(B, K, H, W) heatmaps -> per sample ``InstanceData(keypoints (1, K, 2), keypoint_scores (1, K))`` in
        crop pixels; a codec with ``batch_decode`` (torch DARK) gets the batch, others one numpy sample at a time."""
        if self.codec.support_batch_decoding:
            keypoints, scores = self.codec.batch_decode(heatmaps)
        else:
            decoded = [self.codec.decode(h) for h in heatmaps.detach().cpu().numpy()]
            keypoints, scores = zip(*decoded) if decoded else ((), ())
        return [InstanceData(keypoints=k, keypoint_scores=s) for k, s in zip(keypoints, scores)]

"""Pedestrian detection pathway of Hulk (spec §2.1, §2.6, §2.8, §2.9, §3.3, §4 row "Pedestrian detection", §7).

    image batch (B, 3, Hp, Wp), RGB 0-255, each image top-left with its valid size (h_i, w_i) (mmdet img_shape)
      -> round padding to /16; shared image tokenizer with per-image PE      (B, P, D), P = Hp/16 * Wp/16
      -> shared ViT encoder (padded tokens attended to, as released) + neck    (B, P, d)
      -> [memory ; modality indicator: 3 content vectors x A anchors]         (B, P + L, d), L = 3 * A (867)
      -> shared decoder, PE per layer; label rows blind to padded patches     (padded_patch_diag_label_row_mask)
      -> per layer: BoxDetokenizer                                             boxes (B, L, 4), logits (B, L, 1)

Query t = c * A + a has content vector c and anchor a. Its PE is row a of the decoder's patch table resampled to the
sqrt(A) x sqrt(A) anchor grid (row-major: a // 17 is the grid *row*, y) while its box reference is anchor a, whose
*first* coordinate, x, is the outer index a // 17. The official model was trained with this transposition
(spec §2.8); it is reproduced, not fixed.

Training supervises all decoder layers with :class:`~hulk_mm.models.losses.DetectionSetLoss` (deep supervision).
Testing keeps the last layer's (query, class) pairs with score >= ``score_thr`` in query order, no NMS, boxes in
original-image pixels (mmdet ``CrowdHumanMetric`` reads ``pred_instances`` as is).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor

from hulk_mm.models.attention_masks import padded_patch_diag_label_row_mask
from hulk_mm.models.detokenizers.boxes import BoxDetokenizer  # noqa: F401  (registers the default de-tokenizer)
from hulk_mm.models.detokenizers.semantic import load_text_features
from hulk_mm.models.losses.detection import DetectionSetLoss  # noqa: F401  (registers the default loss)
from hulk_mm.models.positional import mae_pos_embed, resample_2d
from hulk_mm.models.tasks.base import Pathway
from hulk_mm.models.tokenizers.image import grid_padding_mask, resample_2d_per_image, valid_grids
from hulk_mm.registry import MODELS


def anchor_points(side: int) -> Tensor:
    """(side^2, 3) anchor points: cell centres ((i + 0.5) / side, (j + 0.5) / side, 0) with the outer index i as x,
    the layout of the official ``289_points_3d.npy`` (side 17)."""
    centres = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    xy = torch.stack(torch.meshgrid(centres, centres, indexing='ij'), dim=-1).reshape(-1, 2)
    return torch.cat([xy, xy.new_zeros(len(xy), 1)], dim=1).float()


@MODELS.register_module()
class DetectionPathway(Pathway):
    """Pedestrian boxes from a whole image; one query per (content vector, anchor).

    Args:
        embed_dim: decoder width d.
        pe_grid: grid of the decoder's patch-side PE table (official: 84 x 84, from ``img_size`` 1344).
        anchor_grid: anchors per side, A = anchor_grid^2 (17).
        num_content: content vectors of the modality indicator (official ``share_content_query``: 3).
        num_classes: K, rows of the text table (1: pedestrian).
        text_dim: width of the text vectors.
        text_features: source of the class table, see :func:`~hulk_mm.models.detokenizers.load_text_features`.
        detokenizer: :class:`~hulk_mm.models.detokenizers.BoxDetokenizer` config (``embed_dim``/``text_dim`` filled).
        loss: :class:`~hulk_mm.models.losses.DetectionSetLoss` config.
        score_thr: test-time score threshold (official ``pos_thr`` 0.05).
        mask_padding_in_encoder: hide padded tokens from the encoder's attention. The release does not (its
            encoder attends to them, spec §12), so False reproduces the official outputs.
        input_dim: encoder width D, of the task's input position table (filled in by :class:`Hulk`).
    """

    task = 'detection'
    group_shared = ('indicator', 'detokenizer')  # official share_modality_group 4: tasks 3 and 4
    official_rules = (
        (r'^decoder_module\.predictor\.mask_token$', 'indicator'),
        (r'^decoder_module\.predictor\.query_embed_patch$', 'query_embed_patch'),
        (r'^decoder_module\.predictor\.anchor$', 'anchors'),
        (r'^proj_sparse_labeling\.text_features$', 'text_features'),
        (r'^proj_sparse_labeling\.output_proj\.layers\.(\d)\.(weight|bias)$', r'detokenizer.regressor.layers.\1.\2'),
        (r'^proj_sparse_labeling\.(patch_proj|class_proj)\.weight$', r'detokenizer.classifier.projection.\1.weight'),
        (r'^proj_sparse_labeling\.(translate_weight|translate_bias)$', r'detokenizer.classifier.\1'),
    )

    def __init__(self, embed_dim: int = 256, pe_grid: tuple[int, int] = (84, 84), anchor_grid: int = 17,
                 num_content: int = 3, num_classes: int = 1, text_dim: int = 768, text_features: str | int = 0,
                 detokenizer: dict | None = None, loss: dict | None = None, score_thr: float = 0.05,
                 mask_padding_in_encoder: bool = False, input_dim: int = 768, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.pe_grid = (int(pe_grid[0]), int(pe_grid[1]))
        self.anchor_grid = anchor_grid
        self.num_content = num_content
        self.num_queries = num_content * anchor_grid ** 2
        self.score_thr = score_thr
        self.mask_padding_in_encoder = mask_padding_in_encoder
        # the input position table of the PE grid, resampled per image to each valid grid
        self.register_input_table(input_dim, self.pe_grid)
        # The modality indicator: 3 learned content vectors (N(0, 1) init), each replicated over all anchors.
        self.indicator = nn.Parameter(torch.randn(1, num_content, embed_dim))
        # Fixed tables, persistent because the official checkpoints store them: the decoder's patch-side PE (also
        # the source of the query PE) and the anchor points.
        self.register_buffer('query_embed_patch', mae_pos_embed(embed_dim, self.pe_grid))
        self.register_buffer('anchors', anchor_points(anchor_grid)[None])
        self.register_buffer('text_features', load_text_features(text_features, num_classes, text_dim))
        self.detokenizer = MODELS.build(dict(dict(type='BoxDetokenizer'), **(detokenizer or {}),
                                             embed_dim=embed_dim, text_dim=text_dim))
        self.criterion = MODELS.build(loss or dict(type='DetectionSetLoss'))

    def forward(self, shared, images: Tensor, valid_hw: list[tuple[int, int]] | None = None
                ) -> list[tuple[Tensor, Tensor]]:
        """
        Args:
            shared: the model's :class:`~hulk_mm.models.hulk.HulkShared`.
            images: (B, 3, H, W) RGB 0-255, each image in the top-left corner of its slot.
            valid_hw: per image (h, w) of its valid pixels (mmdet ``img_shape``); None: the whole slot.

        Returns:
            per decoder layer (boxes (B, L, 4) xyxy normalised by the valid image size, logits (B, L, K)).
        """
        tokenizer = shared.tokenizers[self.modality]
        patch = tokenizer.patch_size
        b, _, h, w = images.shape
        valid_hw = [(h, w)] * b if valid_hw is None else [tuple(int(v) for v in hw) for hw in valid_hw]
        # official round padding: up to a multiple of the patch; the tokenizer sets padded pixels to the mean
        images = F.pad(images, (0, -w % patch, 0, -h % patch))
        grid = (images.shape[-2] // patch, images.shape[-1] // patch)
        grids = valid_grids(valid_hw, patch)
        padding = grid_padding_mask(grids, grid, images.device)
        memory = self.encode(shared, images, padding if self.mask_padding_in_encoder else None,
                               valid_hw=valid_hw)
        queries = self.indicator.repeat_interleave(self.anchor_grid ** 2, dim=1).expand(b, -1, -1)
        patch_pos = resample_2d_per_image(self.query_embed_patch[0], self.pe_grid, grid, grids)
        label_pos = resample_2d(self.query_embed_patch[0], self.pe_grid, (self.anchor_grid, self.anchor_grid))
        pos = torch.cat([patch_pos, label_pos.repeat(self.num_content, 1).expand(b, -1, -1)], dim=1)
        mask = padded_patch_diag_label_row_mask(padding, self.num_queries)
        outs = shared.decode(memory, queries, shared.decoder.adapt_pos2d(pos), mask, pos_per_layer=True)
        anchors = self.anchors[0].repeat(self.num_content, 1)
        return [self.detokenizer(tokens, anchors, self.text_features) for tokens in outs]

    def loss(self, shared, images: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Set loss of every decoder layer, summed: ``loss_cls``, ``loss_bbox``, ``loss_iou``.

        ``data_samples`` are mmdet ``DetDataSample``: ``img_shape``, ``gt_instances.bboxes`` / ``labels`` (pixels of
        the resized image) and, for CrowdHuman, ``ignored_instances.bboxes`` (mmdet ``PackDetInputs`` moves the
        boxes flagged ``ignore_flag`` there).
        """
        img_shapes = [tuple(s.metainfo['img_shape'][:2]) for s in data_samples]
        outputs = self(shared, images, img_shapes)
        gt_boxes = [get_box_tensor(s.gt_instances.bboxes).to(images) for s in data_samples]
        gt_labels = [s.gt_instances.labels.to(images.device) for s in data_samples]
        ignore = [get_box_tensor(s.ignored_instances.bboxes).to(images)
                  if 'ignored_instances' in s and 'bboxes' in s.ignored_instances else images.new_zeros(0, 4)
                  for s in data_samples]
        return self.criterion(outputs, gt_boxes, gt_labels, ignore, img_shapes)

    def infer(self, shared, images: Tensor, valid_hw: list[tuple[int, int]] | None = None
              ) -> tuple[Tensor, Tensor]:
        """Test-time forward, last decoder layer only: boxes (B, L, 4) normalised xyxy, logits (B, L, K)."""
        return self(shared, images, valid_hw)[-1]

    def example_inputs(self, shared, batch_size: int = 1) -> Tensor:
        """Random images of the test geometry, short side 800 / long side 1333, (B, 3, 800, 1333) in 0-255."""
        return torch.rand(batch_size, 3, 800, 1333) * 255

    @torch.no_grad()
    def predict(self, shared, images: Tensor, data_samples: list) -> list:
        """Sets ``pred_instances`` (``bboxes`` xyxy in original-image pixels, ``scores``, ``labels``) on each sample:
        every (query, class) of the last layer with sigmoid score >= ``score_thr``, in query order, no NMS."""
        img_shapes = [tuple(s.metainfo['img_shape'][:2]) for s in data_samples]
        boxes, logits = self.infer(shared, images, img_shapes)
        k = logits.shape[-1]
        for sample, box, logit in zip(data_samples, boxes, logits):
            h, w = sample.metainfo['ori_shape'][:2]
            scores = logit.sigmoid().flatten()
            keep = torch.nonzero(scores >= self.score_thr, as_tuple=True)[0]
            sample.pred_instances = InstanceData(
                bboxes=box[keep // k] * box.new_tensor([w, h, w, h]), scores=scores[keep], labels=keep % k)
        return data_samples

"""Human parsing pathway of Hulk (spec §3.1 "Parsing", §4 row "Human parsing LIP", §7).

    image (B, 3, H, W), RGB 0-255 (release: 480 x 480, a 30 x 30 token grid)
      -> shared image tokenizer + ViT encoder + neck              (B, P, d), P = h * w
      -> [memory ; modality indicator x L]                        (B, P + L, d), L = P (one label token per patch)
      -> shared decoder: patch rows see only themselves, label rows see everything; PE on q/k of every layer
      -> per layer: MaskDetokenizer (+ the parsing upsampler)      mask logits (B, C, 4h, 4w), presence logits (B, C)

Training supervises every decoder layer alike (deep supervision): point-sampled BCE + dice on the mask channels of
the classes present in each image (class c is channel c, no matching), and a ratio-weighted BCE on the presence
logits of all C classes. Testing uses the last layer: sigmoid(presence) * sigmoid(mask) (official
``mask_times_cls``), averaged with the flipped image's maps (left/right channels swapped), resized bilinearly to the
network input and then to the original image, as mmseg's ``seg_logits`` / ``pred_sem_seg``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.utils import reduce_mean
from mmengine.structures import PixelData
from torch import Tensor

from hulk_mm.models.detokenizers.dense import DenseUpsampler
from hulk_mm.models.losses import parsing as _parsing_losses  # noqa: F401  (registers PointSampledMaskLoss)
from hulk_mm.models.positional import mae_pos_embed
from hulk_mm.models.tasks.base import Pathway
from hulk_mm.registry import MODELS


@MODELS.register_module()
class ParsingPathway(Pathway):
    """Per-pixel human part labels from a whole image resized to a fixed size; one label token per image patch.

    Owns what is parsing-specific: the modality indicator, the decoder's fixed PE tables, the x4 upsampler, the
    mask de-tokenizer (class table and class-axis LayerNorm of the dataset), the losses and the test-time decoding.
    The indicator and the upsampler are ``group_shared``: the official parsing datasets share them
    (``share_modality_group`` 6), and :class:`~hulk_mm.models.Hulk` makes them one object across ``parsing_*``
    pathways. The shared modules arrive as ``shared`` (:class:`~hulk_mm.models.hulk.HulkShared`) in every call and
    are never stored.

    Args:
        num_classes: C, classes of the dataset (LIP / CIHP 20, H3.6M 25, ModaNet / DeepFashion 14).
        grid: (h, w) token grid of the input (the image tokenizer's patch grid; fixed: PE is not resampled).
        embed_dim: decoder width d.
        detokenizer: config of the de-tokenizer (``MaskDetokenizer``); ``num_classes`` and ``grid`` are filled
            in here.
        loss_mask: config of the point-sampled mask loss
            (:class:`~hulk_mm.models.losses.parsing.PointSampledMaskLoss`).
        loss_presence: config of the presence loss (Hulk: ratio-weighted BCE,
            :class:`~hulk_mm.models.losses.VisibilityBCELoss` with the dataset's class ratios).
        ignore_index: label value of unlabelled pixels in ``gt_sem_seg`` (255). As in the official loss (which
            maps them to an extra "end" class and leaves that class out), they select no mask of their own and
            are negatives in the masks of the classes present.
        flip_test: average with the horizontally flipped image at test time.
        flip_pairs: (left, right) class pairs swapped when flipping (LIP / CIHP: (14, 15), (16, 17), (18, 19)).
        upsample_dim: hidden channels of the upsampler (d -> upsample_dim -> d; release 256).
        input_dim: encoder width D, of the task's input position table (filled in by :class:`Hulk`).
    """

    task = 'parsing'
    projection = 'dense'
    group_shared = ('indicator', 'upsampler')
    official_rules = (
        (r'^decoder_module\.predictor\.mask_token$', 'indicator'),
        (r'^decoder_module\.predictor\.(query_embed_patch|query_embed_label)$', r'\1'),
        (r'^proj_dense_labeling\.(text_features|post_mul_norm\.(weight|bias))$', r'detokenizer.semantic.\1'),
        (r'^proj_dense_labeling\.upsample_network\.([013])\.(weight|bias)$', r'upsampler.\1.\2'),
    )

    def __init__(self, num_classes: int, grid: tuple[int, int], embed_dim: int, detokenizer: dict,
                 loss_mask: dict, loss_presence: dict, ignore_index: int = 255, flip_test: bool = True,
                 flip_pairs: Sequence[Sequence[int]] = (), upsample_dim: int = 256, input_dim: int = 768,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.grid = (int(grid[0]), int(grid[1]))
        self.register_input_table(input_dim, self.grid)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.ignore_index = ignore_index
        self.flip_test = flip_test
        # The modality indicator: one learned vector, replicated over all L label positions, told apart only by PE.
        self.indicator = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Fixed decoder PE of the patch and label sides: MAE's 14x14 sin-cos grid resampled to the task grid (the
        # official checkpoints store both tables).
        self.register_buffer('query_embed_patch', mae_pos_embed(embed_dim, self.grid))
        self.register_buffer('query_embed_label', mae_pos_embed(embed_dim, self.grid))
        # ConvT(k2, s2) -> Norm2d -> GELU -> ConvT(k2, s2): (B, d, h, w) -> (B, d, 4h, 4w)
        self.upsampler = DenseUpsampler(embed_dim, upsample_dim, embed_dim)
        self.detokenizer = MODELS.build(dict(detokenizer, num_classes=num_classes, grid=self.grid))
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_presence = MODELS.build(loss_presence)
        self.register_buffer('flip_perm', _flip_permutation(num_classes, flip_pairs), persistent=False)

    def label_outputs(self, shared, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) images -> one (B, L, d) label-side output per decoder layer."""
        self.check_image_size(shared, images, hint=': resize them to that size in the pipeline (the release '
                                                   'resizes to 480x480, ignoring aspect)')
        memory = self.encode(shared, images)
        queries = self.indicator.expand(images.shape[0], self.num_tokens, -1)
        pos = shared.decoder.adapt_pos2d(torch.cat([self.query_embed_patch, self.query_embed_label], dim=1))
        # patch_diag_label_row: patches see only themselves, label rows everything
        return shared.decode_patch_diagonal(memory, queries, pos, pos_per_layer=True)

    def forward(self, shared, images: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(B, 3, H, W) -> per decoder layer (mask logits (B, C, 4h, 4w), presence logits (B, C)); last = final."""
        projection = self.semantic_projection(shared)
        return [self.detokenizer(tokens, projection, self.upsampler) for tokens in self.label_outputs(shared, images)]

    def infer(self, shared, images: Tensor) -> tuple[Tensor, Tensor]:
        """Test-time forward, last decoder layer only: (B, 3, H, W) -> mask logits (B, C, 4h, 4w), presence logits
        (B, C)."""
        return self.detokenizer(self.label_outputs(shared, images)[-1], self.semantic_projection(shared),
                                self.upsampler)

    def loss(self, shared, images: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Point-sampled mask BCE + dice and presence BCE, each summed over all decoder layers.

        ``data_samples`` are mmseg ``SegDataSample`` with ``gt_sem_seg`` (1, H, W) at the input size: labels
        0..C-1, ``ignore_index`` for unlabelled pixels (mmseg's ``SegDataPreProcessor`` pads with it).

        The mask terms are normalised by the number of (image, present class) pairs, averaged over ranks as mmdet's
        Mask2Former does (the same number in one process).
        """
        labels = self._labels(images, data_samples)
        present = self._present(labels)                                          # (B, C) bool
        # (image, class) pairs, image-major and classes ascending: the official order of the target masks. The label
        # check above and this data-dependent gather wait for the device, as mmdet's Mask2Former loss does.
        pairs = present.nonzero()
        targets = labels[pairs[:, 0]] == pairs[:, 1, None, None]                  # (N, H, W)
        num_masks = reduce_mean(present.sum().float()).clamp(min=1)
        presence_targets = present.to(images.dtype)
        outputs = self(shared, images)
        loss_mask = loss_dice = loss_presence = 0
        # Final layer first, then layers 1..8: the official order, so a seeded run samples the same points.
        for masks, presence in outputs[-1:] + outputs[:-1]:
            bce, dice = self.loss_mask(masks[pairs[:, 0], pairs[:, 1]], targets, num_masks)
            loss_mask = loss_mask + bce
            loss_dice = loss_dice + dice
            loss_presence = loss_presence + self.loss_presence(presence, presence_targets)
        return dict(loss_mask=loss_mask, loss_dice=loss_dice, loss_presence=loss_presence)

    def predict(self, shared, images: Tensor, data_samples: list) -> list:
        """Per-pixel labels at the original image size, as mmseg's segmentors return them.

        Sets ``seg_logits`` (C, H0, W0), the per-class probabilities sigmoid(presence) * sigmoid(mask) of the
        official test (flip-averaged if ``flip_test``), and ``pred_sem_seg`` (1, H0, W0), their argmax, on each
        sample. (H0, W0) is the metainfo ``ori_shape`` (the input size if absent); padding recorded by mmseg's
        preprocessor (``img_padding_size`` / ``padding_size``: left, right, top, bottom) is cut off first.
        """
        probs = self.probabilities(shared, images)
        # 1/4 grid -> input size -> original size, the official two-step resize (sem_seg_postprocess)
        probs = F.interpolate(probs, size=images.shape[-2:], mode='bilinear', align_corners=False)
        height, width = images.shape[-2:]
        for sample, prob in zip(data_samples, probs):
            meta = sample.metainfo
            left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', (0, 0, 0, 0)))
            prob = prob[:, top:height - bottom, left:width - right]
            size = tuple(meta.get('ori_shape', prob.shape[-2:]))[:2]
            prob = F.interpolate(prob[None], size=size, mode='bilinear', align_corners=False)[0]
            sample.seg_logits = PixelData(data=prob)
            sample.pred_sem_seg = PixelData(data=prob.argmax(0, keepdim=True))
        return data_samples

    def probabilities(self, shared, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, 4h, 4w) test-time class probabilities: sigmoid(presence) * sigmoid(mask) of
        :meth:`infer`, flip-averaged if ``flip_test``."""
        masks, presence = self.infer(shared, images)
        probs = presence.sigmoid()[:, :, None, None] * masks.sigmoid()
        if self.flip_test:
            masks, presence = self.infer(shared, images.flip(-1))
            flipped = presence.sigmoid()[:, :, None, None] * masks.sigmoid()
            probs = (probs + flipped.flip(-1)[:, self.flip_perm]) * 0.5
        return probs

    def _labels(self, images: Tensor, data_samples: list) -> Tensor:
        """The (B, H, W) label maps of the batch, checked against the input size and the class count."""
        labels = torch.stack([sample.gt_sem_seg.data for sample in data_samples]).to(images.device).long()
        if labels.dim() != 4 or labels.shape[1] != 1 or labels.shape[-2:] != images.shape[-2:]:
            raise ValueError(f'gt_sem_seg must be (1, H, W) at the input size {tuple(images.shape[-2:])}, got '
                             f'{tuple(labels.shape[1:])}')
        labels = labels[:, 0]
        if ((labels < 0) | ((labels >= self.num_classes) & (labels != self.ignore_index))).any():
            raise ValueError(f'gt_sem_seg holds labels outside 0..{self.num_classes - 1} other than the ignore '
                             f'index {self.ignore_index}: is num_classes={self.num_classes} right for this dataset?')
        return labels

    def _present(self, labels: Tensor) -> Tensor:
        """(B, H, W) labels -> (B, C) bool, whether class c labels any pixel of image b."""
        end = labels.masked_fill(labels == self.ignore_index, self.num_classes)  # ignore -> an extra "end" class
        present = labels.new_zeros(labels.shape[0], self.num_classes + 1, dtype=torch.bool)
        return present.scatter_(1, end.flatten(1), True)[:, :self.num_classes]


def _flip_permutation(num_classes: int, flip_pairs: Sequence[Sequence[int]]) -> Tensor:
    """Channel order of a horizontally flipped prediction: each (left, right) pair swapped."""
    perm = torch.arange(num_classes)
    for pair in flip_pairs:
        left, right = pair
        if not (0 <= left < num_classes and 0 <= right < num_classes):
            raise ValueError(f'flip pair {tuple(pair)} is outside the {num_classes} classes')
        perm[left], perm[right] = right, left
    return perm

"""3-D pose and mesh pathway of Hulk (spec §2.8, §2.9, §3.3, §4 row "3-D pose / mesh").

    person crop (B, 3, 224, 224), RGB 0-255
      -> shared image tokenizer + ViT encoder + neck             (B, P, d), P = 14 x 14
      -> [memory ; modality indicator x L]                        L = 1 camera + J joints + Vc coarse vertices
                                                                  (SMPL: 1 + 14 + 431 = 446)
      -> shared decoder, full attention except vertex rows, which see only adjacent vertices (mesh adjacency),
         PE added to q/k of every layer
      -> last layer: MeshDetokenizer                              camera (B, 3), joints (B, J, 3),
                                                                  vertices (B, Vc / Vi / V, 3)

Label-side PE ("smpl_xyz"): the camera token gets a zero vector; each joint / coarse vertex gets
``adapt_pos2d(E_xy) + adapt_pos1d(E_z)`` at its point of the template (turned by pi about x, relative to the template
pelvis), with x, y -> (v + 1) / 2 * 100 and z -> (v + 0.2) / 0.4 * 100 floored to a cell of a 100 x 100 (x, y) and a
100-entry (z) sin-cos table; ``adapt_pos2d`` is then applied once more to the whole [patch ; label] PE. Only the
last decoder layer is supervised (no deep supervision for this task), and the test-time decoding needs no ground
truth (the official evaluation runs through the loss).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from torch import Tensor

from hulk_mm.models.attention_masks import mesh_adjacency_mask
from hulk_mm.models.body_model import BodyModel
from hulk_mm.models.detokenizers.mesh import MeshDetokenizer, weak_perspective  # noqa: F401 (registers it)
from hulk_mm.models.losses.mesh import FastMETROLoss  # noqa: F401 (registers it)
from hulk_mm.models.positional import mae_pos_embed, sincos_1d
from hulk_mm.models.tasks.base import Pathway
from hulk_mm.registry import MODELS

TEMPLATE_GRID = 100  # cells per axis of the template PE tables (official: 100)
XY_RANGE = (-1.0, 1.0)  # metres of template x, y mapped onto the table (official: (v + 1) / 2)
Z_RANGE = (-0.2, 0.2)  # metres of template z (official: (v + 0.2) / 0.4)


def template_cells(points: Tensor, cells: int = TEMPLATE_GRID) -> tuple[Tensor, Tensor]:
    """Template points (N, 3) -> cell of the (x, y) table (N,) = y * cells + x and of the z table (N,).

    The official arithmetic in float32: ``((v + 1) / 2 * 100).long()`` for x, y, ``((v + 0.2) / 0.4 * 100).long()``
    for z. SMPL's template lies inside the ranges; a point outside (SynthHuman's feet reach z = -0.25 m) is clamped to
    the border cell, where the official code would index outside its table.
    """
    (xy0, xy1), (z0, z1) = XY_RANGE, Z_RANGE
    xy = ((points[:, :2] - xy0) / (xy1 - xy0) * cells).long().clamp(0, cells - 1)
    z = ((points[:, 2] - z0) / (z1 - z0) * cells).long().clamp(0, cells - 1)
    return xy[:, 1] * cells + xy[:, 0], z


def template_tables(dim: int, cells: int = TEMPLATE_GRID, base: int = 14) -> tuple[Tensor, Tensor]:
    """The fixed tables the template PE reads: E_xy (cells * cells, dim), MAE's base x base 2-D sin-cos table
    resampled bicubically to cells x cells (row-major, y * cells + x), and E_z (cells, dim), the 1-D sin-cos table over
    ``base`` positions resampled linearly to ``cells`` entries (official ``interpolate_pos_embed_1d``)."""
    e_xy = mae_pos_embed(dim, (cells, cells), (base, base))[0]
    e_z = F.interpolate(sincos_1d(dim, torch.arange(base)).t()[None], size=cells, mode='linear', align_corners=False)
    return e_xy, e_z[0].t()


@MODELS.register_module()
class MeshPathway(Pathway):
    """3-D joints and body mesh from a person crop (official task 2, SMPL).

    Owns the modality indicator, the fixed patch-side PE, the template PE tables, the body model (assets loaded from
    ``body_model``: never part of a weights file), the attention mask, the de-tokenizer and the loss. The shared
    modules arrive as ``shared`` in every call and are never stored.

    Args:
        grid: (h, w) token grid of the crop (14 x 14 for 224 x 224; fixed, the patch PE is not resampled).
        embed_dim: decoder width d.
        body_model: ``body_model.npz`` path or mapping of arrays (:class:`~hulk_mm.models.body_model.BodyModel`).
        detokenizer: de-tokenizer config (``MeshDetokenizer``); widths and counts are filled in here.
        loss: loss config (``FastMETROLoss``); the intermediate mesh's faces and edges are filled in here.
        input_dim: encoder width D, of the task's input position table (filled in by :class:`Hulk`).
    """

    task = 'mesh'
    group_shared = ('indicator', )  # official share_modality_group 3: task 2 alone
    official_rules = (
        (r'^decoder_module\.predictor\.mask_token$', 'indicator'),
        (r'^decoder_module\.predictor\.query_embed_patch$', 'query_embed_patch'),
        (r'^proj_sparse_labeling\.output_proj\.(weight|bias)$', r'detokenizer.output_proj.\1'),
        (r'^proj_sparse_labeling\.loss_fn\.coarse2intermediate_upsample\.(weight|bias)$',
         r'detokenizer.coarse2intermediate_upsample.\1'),
    )

    def __init__(self, grid: tuple[int, int], embed_dim: int, body_model: str | Mapping, detokenizer: dict,
                 loss: dict, input_dim: int = 768, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.grid = (int(grid[0]), int(grid[1]))
        self.register_input_table(input_dim, self.grid)
        self.body_model = BodyModel(body_model)
        counts = self.body_model.num_vertices
        self.num_labels = 1 + self.body_model.num_joints + counts['coarse']
        # The modality indicator: one learned vector, replicated over all L label positions, told apart only by PE.
        self.indicator = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer('query_embed_patch', mae_pos_embed(embed_dim, self.grid))
        # Template PE inputs, rebuilt from the assets (the official code computes them at its first forward and
        # never stores them): rows of the fixed tables at each joint / coarse vertex of the template.
        e_xy, e_z = template_tables(embed_dim)
        xy, z = template_cells(self.body_model.template_points())
        self.register_buffer('template_pe_xy', e_xy[xy][None], persistent=False)
        self.register_buffer('template_pe_z', e_z[z][None], persistent=False)
        num_patches = self.grid[0] * self.grid[1]
        self.register_buffer('attn_mask', mesh_adjacency_mask(num_patches, self.num_labels, self.body_model.adjacency),
                             persistent=False)
        self.detokenizer = MODELS.build(dict(
            detokenizer, embed_dim=embed_dim, num_joints=self.body_model.num_joints, num_coarse=counts['coarse'],
            num_intermediate=counts['intermediate']))
        self.loss_fn = MODELS.build(dict(loss, faces=self.body_model.faces, edges=self.body_model.edges))

    def label_outputs(self, shared, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) crops -> one (B, L, d) label-side output per decoder layer."""
        self.check_image_size(shared, images)
        memory = self.encode(shared, images)
        queries = self.indicator.expand(images.shape[0], self.num_labels, -1)
        decoder = shared.decoder
        points = decoder.adapt_pos2d(self.template_pe_xy) + decoder.adapt_pos1d(self.template_pe_z)
        label_pos = torch.cat([points.new_zeros(1, 1, points.shape[-1]), points], dim=1)  # camera token: zeros
        pos = decoder.adapt_pos2d(torch.cat([self.query_embed_patch, label_pos], dim=1))
        return shared.decode(memory, queries, pos, self.attn_mask, pos_per_layer=True)

    def forward(self, shared, images: Tensor) -> list[dict[str, Tensor]]:
        """(B, 3, H, W) -> per decoder layer the de-tokenizer's dict (camera, joints, meshes); last = final."""
        return [self.detokenizer(tokens, self.body_model) for tokens in self.label_outputs(shared, images)]

    def infer(self, shared, images: Tensor) -> dict[str, Tensor]:
        """Test-time forward, last decoder layer only: (B, 3, H, W) -> the de-tokenizer's dict (what loss and
        predict use: the official task supervises the last layer only)."""
        return self.detokenizer(self.label_outputs(shared, images)[-1], self.body_model)

    def loss(self, shared, images: Tensor, data_samples: list) -> dict[str, Tensor]:
        """FastMETRO losses on the final layer (:class:`~hulk_mm.models.losses.FastMETROLoss`).

        Each data sample (``BaseDataElement``) carries, as data fields: ``gt_joints3d`` (J, 3) and ``gt_vertices``
        (V, 3) in metres (camera frame, any origin), ``gt_joints2d`` (J, 2) in crop pixels (pixel centres at
        integers, as ``images``) with ``joints2d_visibility`` (J,) (> 0: the 2-D joint is valid), ``has_joints3d``
        and ``has_vertices`` (0 / 1).
        """
        return self.loss_fn(self.infer(shared, images), self.targets(data_samples, images))

    def targets(self, data_samples: list, images: Tensor) -> dict[str, Tensor]:
        """The loss targets of a batch: ground-truth meshes down-sampled and relative to their regressed pelvis,
        2-D joints normalised to [-1, 1] across the crop."""
        fields = ('gt_joints3d', 'gt_vertices', 'gt_joints2d', 'joints2d_visibility', 'has_joints3d', 'has_vertices')
        batch = {k: torch.stack([torch.as_tensor(_field(s, k, i)) for i, s in enumerate(data_samples)]).to(
            images.device) for k in fields}
        fine = batch['gt_vertices'].float()
        fine = fine - self.body_model.joints(fine)[1][:, None]
        intermediate, coarse = self.body_model.downsample(fine)
        size = fine.new_tensor([images.shape[-1], images.shape[-2]])
        return dict(joints3d=batch['gt_joints3d'].float(), has_joints3d=batch['has_joints3d'].float(),
                    vertices_fine=fine, vertices_intermediate=intermediate, vertices_coarse=coarse,
                    has_vertices=batch['has_vertices'].float(),
                    joints2d=2 * batch['gt_joints2d'].float() / size - 1,
                    joints2d_confidence=(batch['joints2d_visibility'] > 0).float())

    def predict(self, shared, images: Tensor, data_samples: list) -> list:
        """Sets on each data sample (CPU tensors, metres, what ``MeshMetric`` reads): ``pred_joints3d`` (J, 3), the
        joints regressed from the mesh (the evaluated ones), ``pred_vertices`` (V, 3), the fine mesh, both relative
        to the regressed pelvis; ``pred_cam`` (3,) weak-perspective (s, tx, ty); ``pred_joints2d`` (J, 2), the
        mesh joints projected into crop pixels; ``pred_joints3d_token`` (J, 3), the joint tokens (mid-hip relative).
        """
        out = self.infer(shared, images)
        size = out['cam'].new_tensor([images.shape[-1], images.shape[-2]])
        joints2d = (weak_perspective(out['joints_from_mesh'], out['cam']) + 1) * size / 2
        preds = dict(pred_joints3d=out['joints_from_mesh'], pred_vertices=out['vertices_fine'], pred_cam=out['cam'],
                     pred_joints2d=joints2d, pred_joints3d_token=out['joints'])
        preds = {k: v.detach().cpu() for k, v in preds.items()}
        for i, sample in enumerate(data_samples):
            if not isinstance(sample, BaseDataElement):
                raise TypeError(f'mesh data samples must be mmengine BaseDataElement, got {type(sample).__name__}')
            sample.set_data({k: v[i] for k, v in preds.items()})
        return data_samples


def _field(sample, key: str, index: int):
    if key not in sample:
        raise KeyError(f'mesh data sample {index} lacks {key!r} (it has {sorted(sample.keys())}); see '
                       f'MeshPathway.loss for the fields a mesh training sample carries')
    return sample.get(key)

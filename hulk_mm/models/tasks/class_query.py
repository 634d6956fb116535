"""What the attribute and skeleton-action pathways share (spec §2.8, §2.9, §3.2): one decoder query per class.

    memory (B, P, d)  ;  modality indicator x L, L = classes of the task's label space
      -> + PE added once to the decoder input: patch side MAE 14x14 sin-cos resampled to the token grid, label side
         1-D sin-cos over 0..L-1 (no adapt_pos MLP)
      -> shared decoder, ``patch_diag_label_row`` mask (patch rows see themselves, label rows see everything)
      -> query k scored against class k only: LayerNorm_L(cos(patch_proj(q_k), class_proj(text_k)))   (B, L) logits

The label space can span several datasets (Hulk: 168 attributes of five datasets, 279 actions of three); each
dataset owns a column range, and its samples are supervised and evaluated on those columns only.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from hulk_mm.models.positional import mae_pos_embed, sincos_1d
from hulk_mm.models.tasks.base import Pathway
from hulk_mm.registry import MODELS


class ClassQueryPathway(Pathway):
    """Base of the pathways whose L decoder queries are the L classes of a text-described label space.

    Subclasses tokenize and encode their input, call :meth:`decode_queries` and :meth:`class_logits`, and set
    ``task`` and ``modality``. Samples name their dataset in ``metainfo['dataset_name']``; that key may be left out
    when a single dataset (or none) is configured.

    Args:
        num_classes: L, the size of the label space (rows of the text table).
        grid: (h, w) token grid of the input; fixed, as the decoder's patch PE is not resampled.
        embed_dim: decoder width d.
        detokenizer: :class:`~hulk_mm.models.detokenizers.SemanticDetokenizer` config (``num_classes`` is filled
            in here). Its LayerNorm spans all L classes, so every dataset's scores depend on the whole space.
        datasets: dataset name -> [start, end) column range of the label space; None = one dataset on all columns.
    """

    projection = 'text'
    group_shared = ('indicator', )  # official share_modality_group: attributes {5, 6}, skeletons {0, 1}
    official_rules = (
        (r'^decoder_module\.predictor\.mask_token$', 'indicator'),
        (r'^decoder_module\.predictor\.(query_embed_patch|query_embed_label)$', r'\1'),
        (r'^proj_text\.text_vectors$', 'detokenizer.text_features'),
        (r'^proj_text\.post_mul_norm\.(weight|bias)$', r'detokenizer.post_mul_norm.\1'),
    )

    def __init__(self, num_classes: int, grid: tuple[int, int], embed_dim: int, detokenizer: dict,
                 datasets: dict[str, tuple[int, int]] | None = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_patches = self.grid[0] * self.grid[1]
        self.datasets = {name: (int(start), int(end)) for name, (start, end) in (datasets or {}).items()}
        for name, (start, end) in self.datasets.items():
            if not 0 <= start < end <= num_classes:
                raise ValueError(f'dataset {name!r}: columns [{start}, {end}) outside the {num_classes} classes')
        # The modality indicator: one learned vector, replicated over the L class queries, told apart only by PE.
        self.indicator = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer('query_embed_patch', mae_pos_embed(embed_dim, self.grid))
        self.register_buffer('query_embed_label', sincos_1d(embed_dim, torch.arange(num_classes))[None])
        self.detokenizer = MODELS.build(dict(detokenizer, num_classes=num_classes))

    def tokenizer(self, shared):
        """The shared input tokenizer of this task's modality, with a clear error if the model lacks it."""
        if self.modality not in shared.tokenizers:
            raise KeyError(f'{self.task} reads {self.modality!r} inputs, but the model has no {self.modality!r} '
                           f'tokenizer; it has {list(shared.tokenizers)}')
        return shared.tokenizers[self.modality]

    def decode_queries(self, shared, memory: Tensor) -> list[Tensor]:
        """(B, P, d) encoded input -> one (B, L, d) class-query output per decoder layer."""
        if memory.shape[1] != self.num_patches:
            raise ValueError(f'{self.task}: {memory.shape[1]} input tokens, but the decoder position table is '
                             f'built for the {self.grid[0]}x{self.grid[1]} grid')
        queries = self.indicator.expand(memory.shape[0], self.num_classes, -1)
        pos = torch.cat([self.query_embed_patch, self.query_embed_label], dim=1)
        # patch_diag_label_row: patches see only themselves, label rows everything
        return shared.decode_patch_diagonal(memory, queries, pos, pos_per_layer=False)

    def class_logits(self, shared, queries: Tensor) -> Tensor:
        """(B, L, d) class-query outputs -> (B, L) logits: query k against class k (official
        ``einsum('bcd,cd->bc')``), then the class-axis LayerNorm."""
        projection = self.semantic_projection(shared)
        cosine = (projection.tokens(queries) * self.detokenizer.class_embeddings(projection)).sum(-1)
        return self.detokenizer.post_mul_norm(cosine)

    def columns(self, sample) -> slice:
        """The label-space columns of a data sample's dataset (``metainfo['dataset_name']``)."""
        if not self.datasets:
            return slice(0, self.num_classes)
        name = sample.metainfo.get('dataset_name')
        if name is None and len(self.datasets) == 1:
            name = next(iter(self.datasets))
        if name is None:
            raise KeyError(f'{self.task}: a data sample without metainfo dataset_name, but the label space has '
                           f'several datasets {sorted(self.datasets)}')
        if name not in self.datasets:
            raise KeyError(f'{self.task}: unknown dataset_name {name!r}; configured datasets: {sorted(self.datasets)}')
        return slice(*self.datasets[name])

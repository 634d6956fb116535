"""The Hulk model: shared modules owned once, one pathway per task, and the multi-task batch plumbing.

    Hulk(BaseModel)
      shared: HulkShared         tokenizers by input modality, ViT encoder, neck (Linear D -> d), decoder
      tasks:  ModuleDict         canonical task name -> pathway (hulk_mm/models/tasks/)

Pathways receive ``shared`` as an argument at call time instead of storing it: ``state_dict`` recurses without
de-duplication, so a stored reference would save the encoder once per task. Sharing is module identity.

A training step takes one batch per task, ``{task: batch}``, and sums the weighted task losses (the official recipe
runs every task every step), so plain DDP works on any number of ranks. The per-task loop lives in
:class:`HulkDataPreprocessor` and ``forward(mode='loss')`` because MMEngine's DDP wrapper calls those itself and
never reaches a model's own ``train_step``.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn as nn
from mmengine.model import BaseDataPreprocessor, BaseModel, BaseModule
from torch import Tensor

from hulk_mm.models.detokenizers.semantic import SemanticProjection
from hulk_mm.models.pretrained import init_weights_with_pretrained
from hulk_mm.registry import MODELS

TASKS = ('pose', 'detection', 'parsing', 'attribute', 'caption', 'skeleton_action', 'mesh')


def task_of(name: str) -> str:
    """The canonical task of a pathway name: the task itself (``'pose'``) or the task and a dataset joined by an
    underscore (``'pose_coco'``, ``'pose_aic'``, ``'skeleton_action_ntu60'``), one pathway per dataset as in the
    release recipe."""
    for task in sorted(TASKS, key=len, reverse=True):
        if name == task or (name.startswith(task + '_') and len(name) > len(task) + 1):
            return task
    raise ValueError(f'unknown task {name!r}: a pathway name is a task or <task>_<dataset>, tasks are {TASKS}')


class HulkShared(BaseModule):
    """The modules every task shares, each built once.

    Args:
        tokenizers: input modality (``'image'``, ``'skeleton'``) -> tokenizer config; width D.
        encoder: ViT encoder config (width D).
        decoder: decoder config (width d); the neck maps D -> d.
        projections: semantic family (``'dense'``: pose, parsing; ``'text'``: attribute, skeleton action,
            caption) -> keyword arguments of :class:`SemanticProjection` (``text_dim``); the ``patch_proj`` /
            ``class_proj`` pair every semantic head of the family shares.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='mae_pretrain_vit_base.pth')``: the encoder and the
            image patch conv from an MAE checkpoint (as the release initialises them), or from a hulk_mm weights
            file (keys under ``prefix``, default ``'shared.'``); see :mod:`hulk_mm.models.pretrained`.
    """

    def __init__(self, tokenizers: dict[str, dict], encoder: dict, decoder: dict,
                 projections: dict[str, dict] | None = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.tokenizers = nn.ModuleDict({name: MODELS.build(cfg) for name, cfg in tokenizers.items()})
        self.encoder = MODELS.build(encoder)
        self.decoder = MODELS.build(decoder)
        self.projections = nn.ModuleDict({
            name: SemanticProjection(self.decoder.embed_dim, **cfg) for name, cfg in (projections or {}).items()})
        for name, tokenizer in self.tokenizers.items():
            width = tokenizer.embed_dim
            if width != self.encoder.embed_dim:
                raise ValueError(f'{name} tokenizer width {width} != encoder width {self.encoder.embed_dim}')
        self.neck = nn.Linear(self.encoder.embed_dim, self.decoder.embed_dim)
        nn.init.xavier_uniform_(self.neck.weight)  # official MAEdecoder_proj_neck init
        nn.init.zeros_(self.neck.bias)

    def init_weights(self):
        init_weights_with_pretrained(self, super().init_weights, default_prefix='shared.')

    def encode(self, modality: str, inputs: Tensor, pad_mask: Tensor | None = None, **tokenizer_kwargs) -> Tensor:
        """Tokenize, encode and project to the decoder width: (B, ...) -> (B, P, d).

        ``pad_mask`` (B, P), True = padded token, is the encoder's optional key-padding mask; extra keyword
        arguments go to the tokenizer."""
        if modality not in self.tokenizers:
            raise KeyError(f'no {modality!r} tokenizer in this model; it has {list(self.tokenizers)}')
        tokens, _ = self.tokenizers[modality](inputs, **tokenizer_kwargs)
        return self.neck(self.encoder(tokens, pad_mask))

    def decode(self, memory: Tensor, queries: Tensor, pos: Tensor | None, attn_mask: Tensor | None,
               pos_per_layer: bool) -> list[Tensor]:
        """Decoder over [memory (B, P, d) ; queries (B, L, d)] -> the label side (B, L, d) of every layer's
        output (after the shared final norm; the last entry is the final output). The patch side is dropped:
        no released task reads it (the official patch projector's loss is identically zero)."""
        outs = self.decoder(torch.cat([memory, queries], dim=1), pos, attn_mask, pos_per_layer)
        return [out[:, memory.shape[1]:] for out in outs]

    def decode_patch_diagonal(self, memory: Tensor, queries: Tensor, pos: Tensor | None, pos_per_layer: bool,
                              label_mask: Tensor | None = None) -> list[Tensor]:
        """:meth:`decode` for masks whose patch rows attend only to themselves (``patch_diag_label_row``, caption):
        the same outputs, but the patch side runs without attention over the others (it cannot see them) and the
        label rows attend to [patches ; labels] under ``label_mask`` ((L, P + L) or (B, 1, L, P + L), True = may
        attend; None = everything, as in ``patch_diag_label_row``), so no (P + L)^2 masked attention is computed."""
        p = memory.shape[1]
        states = self.decoder.patch_states(memory, None if pos is None else pos[:, :p], pos_per_layer)
        return self.decoder.forward_labels(queries, None if pos is None else pos[:, p:], states, label_mask,
                                           pos_per_layer)


@MODELS.register_module()
class HulkDataPreprocessor(BaseDataPreprocessor):
    """Batches of several tasks -> ``dict(inputs={task: Tensor}, data_samples={task: list})``.

    Each task's batch goes through that task's own upstream preprocessor (pose: mmpose ``PoseDataPreprocessor``
    without mean/std; the tokenizers normalise). Two batch layouts are accepted:

    * ``{task: {'inputs': [...], 'data_samples': [...]}}`` from a multi-task loader;
    * a plain single-task batch ``{'inputs': [...], 'data_samples': [...]}`` from an ordinary mm data loader,
      which is the batch of the only configured task (so single-task configs need no special loader).

    Args:
        tasks: pathway name (a task, or ``<task>_<dataset>``) -> preprocessor config.
    """

    def __init__(self, tasks: dict[str, dict], non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)
        for name in tasks:
            task_of(name)
        self.tasks = nn.ModuleDict({task: MODELS.build(cfg) for task, cfg in tasks.items()})

    def forward(self, data: dict, training: bool = False) -> dict:
        if set(data) <= {'inputs', 'data_samples'}:
            if len(self.tasks) != 1:
                raise ValueError(f'a plain batch (keys inputs/data_samples) is ambiguous with {len(self.tasks)} '
                                 f'tasks configured ({list(self.tasks)}); give a dict of task batches')
            data = {next(iter(self.tasks)): data}
        unknown = set(data) - set(self.tasks)
        if unknown:
            raise KeyError(f'batch for task(s) {sorted(unknown)} without a preprocessor; configured: '
                           f'{list(self.tasks)}')
        inputs, samples = {}, {}
        for task, batch in data.items():
            out = self.tasks[task](batch, training)
            inputs[task], samples[task] = out['inputs'], out.get('data_samples')
        return dict(inputs=inputs, data_samples=samples)


@MODELS.register_module()
class Hulk(BaseModel):
    """Hulk: shared tokenizers/encoder/neck/decoder plus one pathway per task.

    Args:
        shared: keyword arguments of :class:`HulkShared`.
        tasks: pathway name -> pathway config. A name is a canonical task (``'pose'``) or ``<task>_<dataset>``
            (``'pose_coco'``, ``'pose_aic'``: the release has one pathway per dataset, each with its own text
            table, PE tables and head, all sharing the encoder, neck and decoder).
        task_weights: pathway name -> loss weight (default 1.0; the release uses e.g. pose_coco 28000).
        data_preprocessor: usually :class:`HulkDataPreprocessor`.
    """

    def __init__(self, shared: dict, tasks: dict[str, dict], task_weights: dict[str, float] | None = None,
                 data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        task_weights = dict(task_weights or {})
        for name in set(tasks) | set(task_weights):
            task_of(name)
        if set(task_weights) - set(tasks):
            raise ValueError(f'task_weights for {sorted(set(task_weights) - set(tasks))} without a pathway')
        self.shared = HulkShared(**shared)
        self.tasks = nn.ModuleDict({name: MODELS.build(self._with_widths(cfg)) for name, cfg in tasks.items()})
        for name, pathway in self.tasks.items():
            if getattr(pathway, 'task', None) != task_of(name):
                raise ValueError(f'pathway {name!r} is a {type(pathway).__name__} (task '
                                 f'{getattr(pathway, "task", None)!r}), not a {task_of(name)!r} pathway')
        self._share_within_task_groups()
        self.task_weights = {name: float(task_weights.get(name, 1.0)) for name in tasks}

    def _with_widths(self, cfg: dict) -> dict:
        """A pathway config with ``embed_dim`` (decoder width d) and ``input_dim`` (encoder width D) filled in from
        the shared modules where the pathway takes them and the config leaves them out."""
        cfg = dict(cfg)
        cls = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else cfg.get('type')
        params = inspect.signature(cls.__init__).parameters if cls is not None else {}
        for key, value in (('embed_dim', self.shared.decoder.embed_dim), ('input_dim', self.shared.encoder.embed_dim)):
            if key in params:
                cfg.setdefault(key, value)
        return cfg

    def _share_within_task_groups(self):
        """Make each ``group_shared`` attribute one object across the pathways of a task (first pathway's wins)."""
        first: dict[str, nn.Module] = {}
        for name, pathway in self.tasks.items():
            owner = first.setdefault(pathway.task, pathway)
            if owner is pathway:
                continue
            for attr in pathway.group_shared:
                mine, theirs = getattr(pathway, attr), getattr(owner, attr)
                shapes = [tuple(t.shape) for t in (mine.state_dict().values() if isinstance(mine, nn.Module)
                                                   else [mine])]
                owner_shapes = [tuple(t.shape) for t in (theirs.state_dict().values()
                                                         if isinstance(theirs, nn.Module) else [theirs])]
                if shapes != owner_shapes:
                    raise ValueError(f'pathways of task {pathway.task!r} share `{attr}`, but {name!r} builds it '
                                     f'with shapes {shapes} and the first one with {owner_shapes}')
                setattr(pathway, attr, theirs)

    def forward(self, inputs: dict[str, Tensor], data_samples: dict[str, list] | None = None,
                mode: str = 'tensor'):
        """
        Args:
            inputs: task -> batched inputs (the preprocessor's output).
            data_samples: task -> list of mm data samples.
            mode: ``'loss'`` (any number of tasks) -> dict of ``'<task>.<key>'`` tensors, loss terms multiplied by
                the task weight; ``'predict'`` (one task) -> that task's data samples with predictions;
                ``'tensor'`` (one task) -> the pathway's raw per-layer outputs.
        """
        if not isinstance(inputs, dict):
            raise TypeError(f'Hulk expects inputs as a dict task -> tensor (HulkDataPreprocessor output), '
                            f'got {type(inputs).__name__}')
        if mode not in ('loss', 'predict', 'tensor'):
            raise ValueError(f"invalid mode '{mode}'; use 'loss', 'predict' or 'tensor'")
        if mode != 'loss' and len(inputs) != 1:
            raise ValueError(f"mode '{mode}' takes the batch of one task, got {list(inputs)}")
        unknown = set(inputs) - set(self.tasks)
        if unknown:
            raise KeyError(f'no pathway for task(s) {sorted(unknown)}; this model has {list(self.tasks)}')
        data_samples = data_samples or {}
        if mode == 'loss':
            losses = {}
            for task, batch in inputs.items():
                weight = self.task_weights[task]
                for key, value in self.tasks[task].loss(self.shared, batch, data_samples[task]).items():
                    losses[f'{task}.{key}'] = value * weight if 'loss' in key else value
            return losses
        task, batch = next(iter(inputs.items()))
        if mode == 'predict':
            return self.tasks[task].predict(self.shared, batch, data_samples[task])
        return self.tasks[task](self.shared, batch)

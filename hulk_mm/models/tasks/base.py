"""What every task pathway has in common: its name, its input modality, its semantic family, and how its official
checkpoint keys map onto it."""
from __future__ import annotations

import torch
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.models.positional import mae_pos_embed


class Pathway(BaseModule):
    """Base class of the task pathways (``hulk_mm/models/tasks/<task>.py``).

    A pathway owns only what is specific to its task (modality indicator, decoder PE tables, de-tokenizer,
    losses, test-time decoding). The shared modules (:class:`~hulk_mm.models.hulk.HulkShared`) arrive as the
    ``shared`` argument of every call and are never stored, so ``state_dict`` holds them once.

    Subclasses set the class attributes and implement

    * ``forward(shared, inputs)``: raw outputs of every decoder layer (last = final);
    * ``loss(shared, inputs, data_samples)``: dict of ``loss_*`` terms;
    * ``infer(shared, inputs)``: the test-time network forward (last layer, no test-time augmentation, no decoding
      to data samples) — what ``predict`` builds on and what the FLOP count and speed benchmark measure;
    * ``predict(shared, inputs, data_samples)``: the upstream data samples with predictions;
    * ``example_inputs(shared, batch_size)``: random inputs of the release geometry for ``infer``.

    Class attributes:
        task: canonical task name (``hulk_mm.models.hulk.TASKS``).
        modality: key of the shared input tokenizer the task reads (``'image'`` or ``'skeleton'``).
        projection: key of the shared :class:`~hulk_mm.models.detokenizers.SemanticProjection` family the task's
            semantic head uses (``'dense'``, ``'text'``), or None.
        official_rules: (official key regex, replacement relative to ``tasks.<name>.``) pairs for the task's own
            tensors in an official checkpoint (keys after the ``module.`` prefix); first match wins.
        official_shared_rules: (official key regex, absolute hulk_mm key) pairs for tensors of shared modules that
            only this task's checkpoints hold live, tried after ``SHARED_RULES`` and before ``official_rules``
            (skeleton action: its input tokenizer ``adapter_sparse_labeling``; the detection and mesh files use that
            name for a dead label tokenizer, so it cannot be a rule of every task).
        official_dead_rules: regexes of official keys that are dead in this task's checkpoints although other tasks
            map them (skeleton action: ``proj_sparse_labeling``, its zero-loss patch projector, is the detection and
            mesh head); added to ``DEAD_RULES`` by :func:`~hulk_mm.models.official.unexpected_official_keys`.
        group_shared: attributes (parameters or sub-modules) that every pathway of the same task shares, as the
            official ``share_modality_group`` does (the modality indicator; parsing's upsampler; ...). With
            several pathways of one task (``pose_coco``, ``pose_aic``) :class:`~hulk_mm.models.Hulk` makes them one
            object; ``state_dict`` then lists it under each pathway name, always with equal values.
        official_twins: (dropped key, kept key) pairs of official keys that hold the same tensor in one official file
            (caption's vocabulary table is stored twice); the converter checks they are equal.
    """

    task: str = ''
    modality: str = 'image'
    projection: str | None = None
    official_rules: tuple[tuple[str, str], ...] = ()
    official_shared_rules: tuple[tuple[str, str], ...] = ()
    official_dead_rules: tuple[str, ...] = ()
    group_shared: tuple[str, ...] = ()
    official_twins: tuple[tuple[str, str], ...] = ()
    input_grid: tuple[int, int] | None = None  # set by register_input_table (every image task has one)

    _by_task: dict[str, type[Pathway]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.task:
            Pathway._by_task[cls.task] = cls

    @staticmethod
    def for_task(task: str) -> type[Pathway]:
        """The pathway class of a task name."""
        import hulk_mm.models.tasks  # noqa: F401  (imports every pathway module, which registers the classes)
        if task not in Pathway._by_task:
            raise KeyError(f'no pathway for task {task!r}; available: {sorted(Pathway._by_task)}')
        return Pathway._by_task[task]

    def register_input_table(self, input_dim: int, grid: tuple[int, int]):
        """Give the task its own input position table (buffer ``pos_embed``, (1, h * w, D)): MAE's 14x14 sin-cos grid
        resampled bicubically to the task's token grid, the official per-task ``adapter_rgb.pos_embed``.

        Each task keeps its own table because resampling one task's table to another grid is not the official
        table of that grid (bicubic of bicubic); the shared image tokenizer adds the table it is given."""
        self.input_grid = (int(grid[0]), int(grid[1]))
        self.register_buffer('pos_embed', mae_pos_embed(input_dim, self.input_grid))

    def check_image_size(self, shared, images: Tensor, hint: str = ''):
        """Fixed-grid image tasks: ``images`` must be (B, 3, h * p, w * p) for the task's token grid (h, w), or a
        clear error (the position tables are not resampled for these tasks, as in the official code)."""
        patch = shared.tokenizers[self.modality].patch_size
        expected = (self.input_grid[0] * patch, self.input_grid[1] * patch)
        if images.dim() != 4 or tuple(images.shape[-2:]) != expected:
            raise ValueError(f'{self.task} expects images of shape (B, 3, {expected[0]}, {expected[1]}) for its fixed '
                             f'{self.input_grid[0]}x{self.input_grid[1]} token grid, got {tuple(images.shape)}{hint}')

    def example_inputs(self, shared, batch_size: int = 1) -> Tensor:
        """Fixed-grid image tasks: random images of the task's size, (B, 3, h * p, w * p) in 0-255."""
        patch = shared.tokenizers[self.modality].patch_size
        return torch.rand(batch_size, 3, self.input_grid[0] * patch, self.input_grid[1] * patch) * 255

    def encode(self, shared, inputs: Tensor, pad_mask: Tensor | None = None, **tokenizer_kwargs) -> Tensor:
        """Shared tokenizer (with this task's input table, if it has one) + encoder + neck: -> (B, P, d)."""
        if self.input_grid is not None:
            tokenizer_kwargs['pos_embed'] = (self.pos_embed, self.input_grid)
        return shared.encode(self.modality, inputs, pad_mask, **tokenizer_kwargs)

    def semantic_projection(self, shared):
        """The shared semantic projection of this task's family, with a clear error if the model lacks it."""
        if self.projection not in shared.projections:
            raise KeyError(f"task {self.task!r} needs the shared semantic projection {self.projection!r}: add "
                           f"projections=dict({self.projection}=dict(text_dim=...)) to the model's `shared` config")
        return shared.projections[self.projection]

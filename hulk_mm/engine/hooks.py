"""Hooks upstream lacks."""
from __future__ import annotations

import hashlib
import json
import os.path as osp

import torch
from mmengine.dist import all_gather_object, get_rank, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from hulk_mm.registry import HOOKS


def tensors_digest(named_tensors) -> str:
    """sha256 over the names and bytes of ``(name, tensor)`` pairs (device-independent)."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@HOOKS.register_module()
class RankConsistencyHook(Hook):
    """Checks that every rank holds the same weights: DDP keeps replicas in step only if every rank reduces the
    same gradients, and a rank-dependent branch or a skipped step silently breaks that.

    After training (and every ``interval`` iterations if > 0) each rank hashes its parameters and its buffers;
    rank 0 writes ``work_dir/rank_consistency.json`` (``{"iter", "parameters": [per-rank sha256], "buffers": [...]}``).
    Differing parameters raise ``RuntimeError`` naming the ranks. Differing buffers only warn: MMEngine wraps DDP
    with ``broadcast_buffers=False``, so e.g. BatchNorm running statistics are per rank unless SyncBN is used, and
    checkpoints keep rank 0's.
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: int = 0):
        self.interval = interval

    def _check(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params = all_gather_object(tensors_digest(model.named_parameters()))
        buffers = all_gather_object(tensors_digest(model.named_buffers()))
        if is_main_process():
            with open(osp.join(runner.work_dir, 'rank_consistency.json'), 'w') as f:
                json.dump(dict(iter=runner.iter, parameters=params, buffers=buffers), f, indent=2)
        differing = [rank for rank, d in enumerate(params) if d != params[0]]
        if differing:
            raise RuntimeError(f'parameters differ between ranks at iteration {runner.iter}: ranks {differing} '
                               f'differ from rank 0 (this is rank {get_rank()})')
        runner.logger.info(f'parameters identical on {len(params)} rank(s) at iteration {runner.iter}')
        if any(d != buffers[0] for d in buffers):
            runner.logger.warning('buffers (e.g. BatchNorm running statistics) differ between ranks; checkpoints '
                                  "keep rank 0's (use SyncBN to keep them equal)")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.interval > 0 and self.every_n_train_iters(runner, self.interval):
            self._check(runner)

    def after_train(self, runner) -> None:
        self._check(runner)

"""Every workaround for the pinned upstream stack, in one place.

Pinned stack: torch 2.14 (CPU and CUDA builds), numpy 2, transformers 5, mmengine 0.10.7, mmcv 2.1.0 (compiled),
mmpose 1.3.2, mmdet 3.3.0, mmsegmentation 1.2.2, mmaction2 1.2.0. :func:`apply` runs once on ``import hulk_mm``.
Each patch names the upstream problem it works around; none edits an installed file. Workarounds that live in
the installer instead (setuptools<82 for pkg_resources, the C++20 patch of the mmcv sdist, the xtcocotools
rebuild for numpy 2, ``--no-deps`` installs) are explained in ``tools/install.sh``.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.abc
import importlib.machinery
import sys
import os.path as osp
import pickle

import torch

__all__ = [
    'apply', 'load_weights', 'load_training_checkpoint', 'training_checkpoint_loading', 'CheckpointNotWeightsError',
    'UnsafeCheckpointError'
]

_applied = False


# --------------------------------------------------------------------------------------------------------------
# 1. torch >= 2.6 loads with weights_only=True by default; mmengine 0.10.7 calls torch.load without the argument
#    (open-mmlab/mmengine#1655; fix #1670 merged after 0.10.7, unreleased). Its training checkpoints pickle
#    HistoryBuffer and numpy objects, so `--resume` fails with "Unsupported global". Weights load with plain
#    weights_only=True. Training checkpoints (resume, publish_model.py) load with weights_only=True plus an
#    allowlist of exactly the types MMEngine's own checkpoints hold, so no file is ever fully unpickled.
# --------------------------------------------------------------------------------------------------------------
_training_checkpoint = contextvars.ContextVar('hulk_mm_training_checkpoint', default=False)


class CheckpointNotWeightsError(RuntimeError):
    """A training checkpoint (optimizer, message hub, ...) was passed where a weights file is expected."""


class UnsafeCheckpointError(RuntimeError):
    """A file needs arbitrary unpickling (it could run code) and is refused."""


def training_checkpoint_globals() -> list:
    """The non-tensor types MMEngine training checkpoints pickle: the message hub's ``HistoryBuffer`` (whose
    statistics table pickles as ``getattr(HistoryBuffer, 'min')`` etc.) and numpy arrays/scalars/dtypes in meta.
    ``getattr`` is safe here: the restricted unpickler only calls allowlisted callables, so nothing it returns
    can be invoked."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return [HistoryBuffer, getattr, np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct, *dtypes]


@contextlib.contextmanager
def training_checkpoint_loading():
    """Within this context, local checkpoints load as training checkpoints (:func:`load_training_checkpoint`).

    Used by ``Runner.resume`` only; files given as weights never load this way.
    """
    token = _training_checkpoint.set(True)
    try:
        yield
    finally:
        _training_checkpoint.reset(token)


def _unsafe_globals(filename: str) -> list[str]:
    """Globals a pickle would import, found by a static scan that executes nothing."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except Exception:  # legacy (non-zip) file: scan the opcodes of its consecutive pickles instead
        import pickletools
        names, strings = [], []
        with open(filename, 'rb') as f:
            while True:  # legacy files are several pickles in a row, then raw storage bytes
                try:
                    for op, arg, _ in pickletools.genops(f):
                        if op.name == 'GLOBAL':
                            names.append(str(arg).replace(' ', '.'))
                        elif op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
                            strings.append(arg)
                        elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                            names.append(f'{strings[-2]}.{strings[-1]}')
                except Exception:
                    break
        safe = ('collections.OrderedDict', 'torch._utils.', 'torch.', '_codecs.encode')
        return [n for n in dict.fromkeys(names) if not n.startswith(safe)]


def _check_file(filename) -> str:
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return filename


def _refuse(filename: str, err: Exception, what: str) -> UnsafeCheckpointError:
    unsafe = _unsafe_globals(filename)
    shown = ', '.join(unsafe[:8]) or str(err).splitlines()[0]
    return UnsafeCheckpointError(
        f'Refused to load {filename} as {what}: unpickling it would import {shown}, which could run arbitrary '
        f'code. Nothing from the file was executed.')


def load_weights(filename: str, map_location=None) -> dict:
    """Load a weights file with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        CheckpointNotWeightsError: it is an MMEngine training checkpoint; the message names ``publish_model.py``.
        UnsafeCheckpointError: it would import other objects while unpickling; the message lists them. Nothing
            from the file is executed in either case.
    """
    filename = _check_file(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if any(name.startswith('mmengine.') for name in _unsafe_globals(filename)):
            raise CheckpointNotWeightsError(
                f'{filename} is a training checkpoint (it holds optimizer/message-hub state), not a weights file. '
                f'Training checkpoints are only for `--resume` of your own runs. Publish it first:\n'
                f'  python tools/model_converters/publish_model.py {filename} OUT.pth\n'
                f'and pass OUT.pth as weights.') from None
        raise _refuse(filename, err, 'weights') from None


def load_training_checkpoint(filename: str, map_location=None) -> dict:
    """Load an MMEngine training checkpoint (``iter_N.pth``) without unpickling anything outside
    :func:`training_checkpoint_globals`; other files are refused with :class:`UnsafeCheckpointError`."""
    filename = _check_file(filename)
    try:
        with torch.serialization.safe_globals(training_checkpoint_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refuse(filename, err, 'a training checkpoint') from None


def _load_local_checkpoint(filename, map_location=None):
    if _training_checkpoint.get():
        return load_training_checkpoint(filename, map_location)
    return load_weights(filename, map_location)


def _patch_checkpoint_loading():
    from mmengine.runner import CheckpointLoader, Runner

    # '' is mmengine's scheme for local paths; `load_from`, `load_checkpoint` and our tools all come here.
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local_checkpoint, force=True)

    resume = Runner.resume

    @functools.wraps(resume)
    def resume_training_checkpoint(self, filename, *args, **kwargs):
        with training_checkpoint_loading():
            return resume(self, filename, *args, **kwargs)

    Runner.resume = resume_training_checkpoint


# --------------------------------------------------------------------------------------------------------------
# 2. `launcher='pytorch'` on a CPU-only machine: mmengine/dist/utils.py `_init_dist_pytorch` calls
#    torch.cuda.set_device unconditionally ("module 'torch._C' has no attribute '_cuda_setDevice'"), configs ask
#    for nccl, and Runner.wrap_model passes device_ids=[LOCAL_RANK] to DDP, which CPU modules reject.
#    On a machine without CUDA we initialise gloo and build DDP without device ids.
# --------------------------------------------------------------------------------------------------------------
def _patch_cpu_distributed():
    import torch.distributed as torch_dist
    from mmengine.dist import utils as dist_utils
    from mmengine.model import MMDistributedDataParallel

    init_dist_pytorch = dist_utils._init_dist_pytorch

    @functools.wraps(init_dist_pytorch)
    def cpu_safe_init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return init_dist_pytorch(backend, init_backend=init_backend, **kwargs)
        torch_dist.init_process_group(backend='gloo', **kwargs)

    dist_utils._init_dist_pytorch = cpu_safe_init_dist_pytorch

    ddp_init = MMDistributedDataParallel.__init__

    @functools.wraps(ddp_init)
    def cpu_safe_ddp_init(self, module, *args, **kwargs):
        param = next(module.parameters(), None)
        if param is None or param.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        ddp_init(self, module, *args, **kwargs)

    MMDistributedDataParallel.__init__ = cpu_safe_ddp_init


# --------------------------------------------------------------------------------------------------------------
# 3. transformers 5.x: mmpretrain (utils/dependency.py:68) and mmaction2 turn on their BLIP/VindLU code whenever
#    transformers >= 4.28 is installed, and that code imports helpers transformers 5 removed
#    (`apply_chunking_to_forward`, ...), so `import mmpretrain.models` / `mmaction.models` die with
#    "NoneType takes no arguments". We use none of their multimodal models; switch them off before they import.
# --------------------------------------------------------------------------------------------------------------
class _MultimodalOff(importlib.abc.MetaPathFinder):
    """Sets ``WITH_MULTIMODAL = False`` in ``<pkg>.utils.dependency`` right after it is imported."""

    targets = ('mmpretrain.utils.dependency', 'mmaction.utils.dependency')

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.targets:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_switch_off(module):
            exec_module(module)
            module.WITH_MULTIMODAL = False

        spec.loader.exec_module = exec_and_switch_off
        return spec


def _patch_transformers_multimodal():
    if not any(isinstance(f, _MultimodalOff) for f in sys.meta_path):
        sys.meta_path.insert(0, _MultimodalOff())
    for name in _MultimodalOff.targets:  # already imported before hulk_mm
        if name in sys.modules:
            sys.modules[name].WITH_MULTIMODAL = False


def apply():
    """Apply every workaround once (idempotent)."""
    global _applied
    if _applied:
        return
    _patch_checkpoint_loading()
    _patch_cpu_distributed()
    _patch_transformers_multimodal()
    _applied = True

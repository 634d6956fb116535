"""The logic of ``tools/train.py`` and ``tools/test.py``, importable so tests run it in-process.

Flags follow mmpose's tools; ``tools/test.py`` adds ``--metrics-out FILE.json`` (flat ``"<task>.<dataset>/<metric>"``
keys, as the evaluators' prefixes produce them).
"""
from __future__ import annotations

import argparse
import json
import numbers
import os
import os.path as osp
from typing import Sequence

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']


def _common_args(parser: argparse.ArgumentParser, samples: str) -> None:
    parser.add_argument('--show-dir', help=f'save visualisations of {samples} samples under work_dir/SHOW_DIR')
    parser.add_argument('--show', action='store_true', help=f'display {samples} results')
    parser.add_argument('--interval', type=int, default=1, help='visualisation interval (samples)')
    parser.add_argument('--wait-time', type=float, default=1, help='display time of every window (s)')
    parser.add_argument('--work-dir', help='the directory to save logs and checkpoints in')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. data_root=/data/synthhuman train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torchrun passes LOCAL_RANK in the environment; torch.distributed.launch passes --local-rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a hulk_mm model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given training checkpoint, or from the latest one in the work dir '
                             'when no path is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument('--no-validate', action='store_true', help='do not evaluate during training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the lr by the actual batch size')
    _common_args(parser, samples='validation')
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Evaluate a hulk_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('weights', help='weights file (publish_model.py output or converted official weights)')
    parser.add_argument('--metrics-out', help='write the metrics as flat JSON to this file')
    _common_args(parser, samples='test')
    return parser


def _load_config(args: argparse.Namespace) -> Config:
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        old_root = cfg.get('data_root')
        cfg.merge_from_dict(args.cfg_options)
        if 'data_root' in args.cfg_options and isinstance(old_root, str):
            reroot(cfg, old_root, args.cfg_options['data_root'])
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return cfg


def reroot(cfg: Config, old_root: str, new_root: str) -> None:
    """Re-root every path of ``cfg`` that starts with ``old_root`` (the config's ``data_root``) at ``new_root``.

    Configs resolve ``data_root + 'file'`` when they are parsed, so overriding ``data_root`` alone would leave the
    dataset and evaluator paths pointing at the old folder; ``--cfg-options data_root=D`` moves them all.
    """
    if old_root.endswith('/') and not new_root.endswith('/'):
        new_root += '/'

    def walk(node):
        if isinstance(node, str):
            return new_root + node[len(old_root):] if node.startswith(old_root) else node
        if isinstance(node, (list, tuple)):
            return type(node)(walk(v) for v in node)
        if isinstance(node, dict):
            for key in list(node.keys()):
                node[key] = walk(node[key])
        return node

    for key in list(cfg.keys()):
        cfg[key] = walk(cfg[key])


def _enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    if not (args.show or args.show_dir):
        return
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError(f'{args.config} has no default_hooks.visualization, so --show/--show-dir cannot be used')
    hook.update(enable=True, show=args.show, wait_time=args.wait_time, interval=args.interval)
    if args.show_dir:
        hook['out_dir'] = args.show_dir


def _shutdown_distributed() -> None:
    """Destroy the process group before the interpreter exits, as torch.distributed asks: gloo ranks exiting
    with a live group can abort ("terminate called without an active exception") while another rank still
    tears down, which turns a finished run into a failed one."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _build_runner(cfg: Config) -> Runner:
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train(argv: Sequence[str] | None = None) -> Runner:
    """Parse ``tools/train.py`` arguments, build the runner from the config and train. Returns the runner."""
    args = train_parser().parse_args(argv)
    cfg = _load_config(args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume}: no such checkpoint')
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise ValueError(f'{args.config} has no auto_scale_lr.base_batch_size, needed by --auto-scale-lr')
        cfg.auto_scale_lr.enable = True
    _enable_visualization(cfg, args)
    runner = _build_runner(cfg)
    runner.train()
    _shutdown_distributed()
    return runner


def flat_metrics(metrics: dict) -> dict[str, float | int]:
    """Evaluator output -> JSON-safe flat dict (numpy / tensor scalars to Python numbers)."""
    out = {}
    for key, value in metrics.items():
        if hasattr(value, 'item'):
            value = value.item()
        if not isinstance(value, numbers.Number):
            raise TypeError(f'metric {key!r} is not a number: {value!r}')
        out[key] = value
    return out


def test(argv: Sequence[str] | None = None) -> dict:
    """Parse ``tools/test.py`` arguments, evaluate the weights and return the metrics.

    The weights load with ``torch.load(weights_only=True)``; a training checkpoint is refused with a message that
    names ``tools/model_converters/publish_model.py``.
    """
    args = test_parser().parse_args(argv)
    if not osp.isfile(args.weights):
        raise FileNotFoundError(f'weights file {args.weights} does not exist')
    cfg = _load_config(args)
    cfg.load_from = args.weights
    cfg.resume = False
    _enable_visualization(cfg, args)
    runner = _build_runner(cfg)
    metrics = flat_metrics(runner.test())
    if args.metrics_out and is_main_process():
        os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
        with open(args.metrics_out, 'w') as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
    _shutdown_distributed()
    return metrics

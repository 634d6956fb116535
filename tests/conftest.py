"""Shared fixtures: a small SynthHuman set and a briefly trained tiny model, built once per session in
temporary folders (never in the checkout's data/ or work_dirs/)."""
from __future__ import annotations

import os
import os.path as osp
import socket

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_POSE_CFG = osp.join(REPO, 'configs', 'vitpose', 'vitpose-tiny_synthhuman-128x96.py')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def short_run_options(data_root: str, max_iters: int = 4, ckpt_interval: int = 2) -> list[str]:
    """--cfg-options for a few deterministic CPU iterations of the tiny pose config."""
    return [
        f'data_root={data_root}',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        f'default_hooks.checkpoint.interval={ckpt_interval}',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=4',
        'val_dataloader.batch_size=4',
        'model.backbone.encoder.drop_path_rate=0.0',
    ]


@pytest.fixture(scope='session')
def synthhuman_root(tmp_path_factory) -> str:
    """A small SynthHuman set (pose, detection, parsing), generated once per session."""
    from hulk_mm.datasets.synthetic import generate
    root = str(tmp_path_factory.mktemp('synthhuman'))
    generate(root, num_train=16, num_val=6, seed=0, tasks=['pose', 'detection', 'parsing'])
    return root


@pytest.fixture(scope='session')
def tiny_pose_run(synthhuman_root, tmp_path_factory) -> str:
    """Work dir of a 4-iteration training run of the tiny pose config (checkpoints iter_2.pth, iter_4.pth)."""
    from hulk_mm.engine.launch import train
    work_dir = str(tmp_path_factory.mktemp('tiny_pose_run'))
    train([TINY_POSE_CFG, '--work-dir', work_dir, '--cfg-options', *short_run_options(synthhuman_root)])
    return work_dir


@pytest.fixture(autouse=True)
def _no_checkout_writes(monkeypatch, tmp_path):
    """Run every test from a temporary cwd so relative defaults (work_dirs/, data/) never land in the checkout."""
    monkeypatch.chdir(tmp_path)
    yield
    for name in ('data', 'work_dirs'):
        assert not osp.exists(osp.join(REPO, name)) or name in _preexisting, \
            f'a test wrote into the checkout: {osp.join(REPO, name)}'


_preexisting = {name for name in ('data', 'work_dirs') if os.path.exists(osp.join(REPO, name))}

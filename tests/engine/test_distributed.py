"""tools/dist_train.sh and tools/dist_test.sh on 2 CPU ranks (torchrun + gloo)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from hulk_mm.compat import load_training_checkpoint
from hulk_mm.engine.launch import test as run_test
from hulk_mm.engine.publish import publish_model
from tests.conftest import REPO, TINY_POSE_CFG, free_port, short_run_options


def _run(script, *args, cwd):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}'
    return proc


@pytest.fixture(scope='module')
def two_rank_run(synthhuman_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('dist_train'))
    # per-rank batch 2 on 2 ranks = the global batch 4 of the single-rank run
    opts = short_run_options(synthhuman_root) + ['train_dataloader.batch_size=2']
    _run('dist_train.sh', TINY_POSE_CFG, '2', '--work-dir', work, '--cfg-options', *opts, cwd=work)
    return work


def test_dist_train_two_ranks_identical_weights(two_rank_run):
    with open(osp.join(two_rank_run, 'rank_consistency.json')) as f:
        record = json.load(f)
    assert record['iter'] == 4
    assert len(record['parameters']) == 2 and record['parameters'][0] == record['parameters'][1]
    # the head's BatchNorm statistics are per rank (MMEngine's DDP does not broadcast buffers): the hook sees it
    assert record['buffers'][0] != record['buffers'][1]
    ckpt = load_training_checkpoint(osp.join(two_rank_run, 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4


def test_dist_test_matches_one_rank(two_rank_run, synthhuman_root, tmp_path):
    weights = str(tmp_path / 'weights.pth')
    publish_model(osp.join(two_rank_run, 'iter_4.pth'), weights)
    opts = ['--cfg-options', *short_run_options(synthhuman_root)]
    one = run_test([TINY_POSE_CFG, weights, '--work-dir', str(tmp_path / 'one'), *opts])
    out = str(tmp_path / 'two.json')
    _run('dist_test.sh', TINY_POSE_CFG, weights, '2', '--work-dir', str(tmp_path / 'two'), '--metrics-out', out,
         *opts, cwd=str(tmp_path))
    with open(out) as f:
        two = json.load(f)
    assert set(one) == set(two) and 'pose.synthhuman/AP' in one
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key

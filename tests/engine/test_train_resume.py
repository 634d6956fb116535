"""tools/train.py in-process: a few CPU iterations, checkpoints, and --resume restoring iteration and weights."""
import json
import os.path as osp

import torch

from hulk_mm.compat import load_training_checkpoint
from hulk_mm.engine.launch import train
from tests.conftest import TINY_POSE_CFG, short_run_options


def _model_state(runner):
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_train_writes_checkpoints(tiny_pose_run):
    for it in (2, 4):
        ckpt = load_training_checkpoint(osp.join(tiny_pose_run, f'iter_{it}.pth'))
        assert ckpt['meta']['iter'] == it
        assert {'state_dict', 'optimizer', 'message_hub', 'param_schedulers'} <= set(ckpt)
    with open(osp.join(tiny_pose_run, 'rank_consistency.json')) as f:
        record = json.load(f)
    assert record['iter'] == 4 and len(record['parameters']) == len(record['buffers']) == 1


def test_resume_restores_iteration_and_weights(tiny_pose_run, synthhuman_root, tmp_path):
    ckpt = load_training_checkpoint(osp.join(tiny_pose_run, 'iter_2.pth'))
    # resume at iteration 2 with max_iters 2: nothing more is trained, so the model must equal the checkpoint
    runner = train([TINY_POSE_CFG, '--work-dir', str(tmp_path / 'a'), '--resume', osp.join(tiny_pose_run, 'iter_2.pth'),
                    '--cfg-options', *short_run_options(synthhuman_root, max_iters=2)])
    assert runner.iter == 2
    state = _model_state(runner)
    assert state.keys() == ckpt['state_dict'].keys()
    for k, v in ckpt['state_dict'].items():
        assert torch.equal(state[k], v), k


def test_resume_continues_like_an_uninterrupted_run(tiny_pose_run, synthhuman_root, tmp_path):
    """Resuming from iter_2 and training to 4 reaches the weights of the uninterrupted 4-iteration run."""
    runner = train([TINY_POSE_CFG, '--work-dir', str(tmp_path / 'b'), '--resume', osp.join(tiny_pose_run, 'iter_2.pth'),
                    '--cfg-options', *short_run_options(synthhuman_root, max_iters=4)])
    assert runner.iter == 4
    reference = load_training_checkpoint(osp.join(tiny_pose_run, 'iter_4.pth'))['state_dict']
    state = _model_state(runner)
    for k, v in reference.items():
        torch.testing.assert_close(state[k], v, rtol=0, atol=1e-6, msg=k)


def test_resume_auto_finds_latest(tiny_pose_run, synthhuman_root, tmp_path):
    import shutil
    work = tmp_path / 'auto'
    shutil.copytree(tiny_pose_run, work)
    runner = train([TINY_POSE_CFG, '--work-dir', str(work), '--resume',
                    '--cfg-options', *short_run_options(synthhuman_root, max_iters=4)])
    assert runner.iter == 4

"""Weights vs training checkpoints: publish_model, weights-only loading, and refusing unsafe pickles."""
import os
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from hulk_mm.compat import CheckpointNotWeightsError, UnsafeCheckpointError, load_training_checkpoint, load_weights
from hulk_mm.engine.launch import test as run_test
from hulk_mm.engine.publish import publish_model
from tests.conftest import TINY_POSE_CFG, short_run_options


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: the file appears only if the payload executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _build_model():
    init_default_scope('hulk_mm')
    from hulk_mm.registry import MODELS
    return MODELS.build(Config.fromfile(TINY_POSE_CFG).model).eval()


def test_published_weights_load_weights_only_and_predict_the_same(tiny_pose_run, tmp_path):
    ckpt_file = osp.join(tiny_pose_run, 'iter_4.pth')
    out = str(tmp_path / 'weights.pth')
    sha = publish_model(ckpt_file, out)
    assert len(sha) == 64
    weights = torch.load(out, weights_only=True)
    assert set(weights) == {'state_dict', 'meta'}
    assert weights['meta']['iter'] == 4
    assert isinstance(weights['meta']['dataset_meta']['sigmas'], list)  # numpy made JSON-safe

    from_ckpt, from_weights = _build_model(), _build_model()
    from_ckpt.load_state_dict(load_training_checkpoint(ckpt_file)['state_dict'])
    from_weights.load_state_dict(load_weights(out)['state_dict'])
    images = torch.rand(2, 3, 128, 96) * 255
    with torch.no_grad():
        a, b = from_ckpt(images, None, mode='tensor'), from_weights(images, None, mode='tensor')
    assert torch.equal(a, b)
    assert not torch.equal(a, _build_model()(images, None, mode='tensor'))  # and they are the trained weights


def test_training_checkpoint_as_weights_names_publish_model(tiny_pose_run, synthhuman_root):
    ckpt_file = osp.join(tiny_pose_run, 'iter_4.pth')
    with pytest.raises(CheckpointNotWeightsError, match='publish_model.py'):
        run_test([TINY_POSE_CFG, ckpt_file, '--cfg-options', f'data_root={synthhuman_root}'])


@pytest.mark.parametrize('zip_format', [True, False])
def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, zip_format, synthhuman_root):
    marker = str(tmp_path / 'payload_ran')
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _Payload(marker)}, evil,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match='Refused to load'):
        load_weights(evil)
    with pytest.raises(UnsafeCheckpointError, match='builtins.open|io.open'):
        run_test([TINY_POSE_CFG, evil, '--cfg-options', f'data_root={synthhuman_root}'])
    with pytest.raises(UnsafeCheckpointError):
        publish_model(evil, str(tmp_path / 'out.pth'))
    with pytest.raises(UnsafeCheckpointError):  # not even the resume path unpickles arbitrary objects
        load_training_checkpoint(evil)
    assert not os.path.exists(marker)
    # sanity: the payload is real, plain pickle does run it
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert os.path.exists(marker)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        run_test([TINY_POSE_CFG, str(tmp_path / 'nope.pth')])


def test_tools_test_writes_flat_metrics(tiny_pose_run, synthhuman_root, tmp_path):
    import json
    weights = str(tmp_path / 'w.pth')
    publish_model(osp.join(tiny_pose_run, 'iter_4.pth'), weights)
    out = str(tmp_path / 'm.json')
    metrics = run_test([TINY_POSE_CFG, weights, '--work-dir', str(tmp_path / 'wd'), '--metrics-out', out,
                        '--cfg-options', *short_run_options(synthhuman_root)])
    with open(out) as f:
        written = json.load(f)
    assert written == metrics
    assert 'pose.synthhuman/AP' in written and 0.0 <= written['pose.synthhuman/AP'] <= 1.0

"""tools/quickstart.py: resume only an interrupted run of the same configuration."""
import importlib.util
import os.path as osp

from tests.conftest import REPO, TINY_POSE_CFG


def _quickstart():
    spec = importlib.util.spec_from_file_location('quickstart', osp.join(REPO, 'tools', 'quickstart.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_only_the_same_configuration(tmp_path):
    same_run_interrupted = _quickstart().same_run_interrupted
    work = str(tmp_path / 'work')
    options = ['data_root=/somewhere']
    assert not same_run_interrupted(work, TINY_POSE_CFG, options)  # nothing there yet
    (tmp_path / 'work' / 'last_checkpoint').write_text('iter_500.pth')
    assert same_run_interrupted(work, TINY_POSE_CFG, options)  # same config text: resume
    assert not same_run_interrupted(work, TINY_POSE_CFG, ['data_root=/elsewhere'])  # changed: start afresh
    assert not (tmp_path / 'work' / 'last_checkpoint').exists()  # ... so `--resume auto` cannot pick it up

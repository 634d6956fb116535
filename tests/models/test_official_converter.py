"""tools/model_converters/hulk_official_to_mm.py: several official task files -> one strict-loading weights file,
with shared tensors checked across files, dead keys dropped, unknown keys reported, and the weights-only boundary."""
from __future__ import annotations

import importlib.util
import json
import os.path as osp

import pytest
import torch

from hulk_mm.compat import UnsafeCheckpointError, load_weights
from hulk_mm.models import Hulk, convert_official_state_dict
from hulk_mm.models.official import OfficialCheckpointMismatch
from tests.models.official_fixture import official_layout_state_dict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'official', 'pose')


def load_tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'hulk_official_to_mm.py')
    spec = importlib.util.spec_from_file_location('hulk_official_to_mm', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def meta():
    with open(osp.join(FIXTURE, 'official_keys.json')) as f:
        return json.load(f)


def official_task_files(meta, folder, perturb_shared=False):
    """Official-format files of tasks 8 (COCO pose) and 9 (AIC pose): own random task tensors, the same shared
    tensors (as one official run writes them), plus a dead key; optionally one shared tensor perturbed in task 9."""
    sd8 = official_layout_state_dict(meta['keys'], seed=0)
    sd9 = official_layout_state_dict(meta['keys'], seed=1)
    shared = [k for k in sd8 if convert_official_state_dict({k: sd8[k]}, 'pose').keys() and
              next(iter(convert_official_state_dict({k: sd8[k]}, 'pose'))).startswith('shared.')]
    for k in shared + ['decoder_module.predictor.mask_token']:  # + the pose group's modality indicator
        sd9[k] = sd8[k].clone()
    if perturb_shared:
        sd9['backbone_module.blocks.1.mlp.fc2.weight'][0, 0] += 0.5
    for index, sd in ((8, sd8), (9, sd9)):
        sd = {f'module.{k}': v for k, v in sd.items()}
        sd['module.neck_label.mask_map.0.weight'] = torch.zeros(2, 2)  # dead in the release
        torch.save({'step': 60000, 'state_dict': sd, 'optimizer': {'state': {}}},
                   osp.join(folder, f'ckpt_task{index}_iter_newest.pth.tar'))
    return sd8, sd9, shared


def two_pose_model(meta) -> Hulk:
    return Hulk(**two_pose_model_cfg(meta))


def two_pose_model_cfg(meta) -> dict:
    (h, w), (de, depth, heads), (d, dheads, ffn), k = meta['img'], meta['enc'], meta['dec'], meta['K']
    pose = dict(type='PosePathway', num_keypoints=k, grid=(h // 16, w // 16), embed_dim=d,
                detokenizer=dict(type='HeatmapDetokenizer', text_dim=768, upsample_dim=d),
                codec=dict(type='UDPHeatmap', input_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2),
                loss_kpt=dict(type='KeypointMSELoss', use_target_weight=True, _scope_='mmpose'),
                loss_vis=dict(type='VisibilityBCELoss', ratios=meta['sample_weight']))
    return dict(shared=dict(tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, embed_dim=de)),
                            encoder=dict(type='ViTEncoder', embed_dim=de, depth=depth, num_heads=heads),
                            decoder=dict(type='HulkDecoder', embed_dim=d, depth=9, num_heads=dheads, ffn_dim=ffn),
                            projections=dict(dense=dict(text_dim=768))),
                tasks=dict(pose_coco=pose, pose_aic=pose))


def test_converts_task_files_into_one_strict_loading_weights_file(meta, tmp_path, capsys):
    sd8, sd9, shared = official_task_files(meta, tmp_path)
    assert len(shared) > 40
    out = tmp_path / 'hulk.pth'
    load_tool().convert([str(tmp_path)], str(out))
    printed = capsys.readouterr().out
    assert 'task  8 -> pose_coco' in printed and 'task  9 -> pose_aic' in printed and 'UNEXPECTED' not in printed
    weights = load_weights(str(out))
    assert weights['meta']['tasks'] == {'8': 'pose_coco', '9': 'pose_aic'}
    model = two_pose_model(meta)
    model.load_state_dict(weights['state_dict'], strict=True)
    # each pathway got its own file's task tensors, the shared modules come once
    assert torch.equal(model.tasks['pose_coco'].detokenizer.semantic.text_features,
                       sd8['proj_dense_labeling.text_features'])
    assert torch.equal(model.tasks['pose_aic'].detokenizer.semantic.text_features,
                       sd9['proj_dense_labeling.text_features'])
    assert torch.equal(model.shared.neck.weight, sd8['neck_patch.mask_map.0.weight'])
    assert model.tasks['pose_coco'].indicator is model.tasks['pose_aic'].indicator


def test_group_shared_indicator_mismatch_is_refused(meta, tmp_path):
    official_task_files(meta, tmp_path)
    path = tmp_path / 'ckpt_task9_iter_newest.pth.tar'
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['module.decoder_module.predictor.mask_token'] += 1
    torch.save(ckpt, path)
    with pytest.raises(OfficialCheckpointMismatch, match=r'tasks\.pose_aic\.indicator differs from '
                                                         r'tasks\.pose_coco\.indicator \(official tasks 9 and 8\)'):
        load_tool().convert([str(tmp_path)], str(tmp_path / 'o.pth'))


def test_config_option_loads_strictly_and_names_missing_pathways(meta, tmp_path, capsys):
    official_task_files(meta, tmp_path)
    config = tmp_path / 'two_pose.py'
    config.write_text(f"model = dict(type='Hulk', **{two_pose_model_cfg(meta)!r})\n")
    load_tool().convert([str(tmp_path)], str(tmp_path / 'out.pth'), config=str(config))
    assert f'loaded strictly into {config}' in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"has pathways \['pose_aic', 'pose_coco'\], the files give \['pose_coco'\]"):
        load_tool().convert([str(tmp_path / 'ckpt_task8_iter_newest.pth.tar')], str(tmp_path / 'o.pth'),
                            config=str(config))


def test_shared_tensor_mismatch_names_key_and_tasks(meta, tmp_path):
    official_task_files(meta, tmp_path, perturb_shared=True)
    with pytest.raises(OfficialCheckpointMismatch,
                       match=r'shared\.encoder\.blocks\.1\.mlp\.fc2\.weight differs between official task 8 and '
                             r'task 9 \(max \|d\| 5\.000e-01\)'):
        load_tool().convert([str(tmp_path)], str(tmp_path / 'out.pth'))


def test_unknown_key_is_reported(meta, tmp_path, capsys):
    official_task_files(meta, tmp_path)
    path = tmp_path / 'ckpt_task8_iter_newest.pth.tar'
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['module.decoder_module.predictor.new_thing'] = torch.zeros(3)
    torch.save(ckpt, path)
    load_tool().convert([str(path)], str(tmp_path / 'out.pth'))
    assert "UNEXPECTED (neither mapped nor known-dead): ['decoder_module.predictor.new_thing']" in \
        capsys.readouterr().out


def test_bad_sources_and_unsafe_files_are_refused(meta, tmp_path):
    tool = load_tool()
    with pytest.raises(FileNotFoundError, match='no such file or folder'):
        tool.convert([str(tmp_path / 'missing')], str(tmp_path / 'o.pth'))
    with pytest.raises(FileNotFoundError, match='no ckpt_task'):
        tool.convert([str(tmp_path)], str(tmp_path / 'o.pth'))
    odd = tmp_path / 'model.pth'
    torch.save({}, odd)
    with pytest.raises(ValueError, match='not an official task checkpoint name'):
        tool.convert([str(odd)], str(tmp_path / 'o.pth'))
    evil = tmp_path / 'ckpt_task8_iter_newest.pth.tar'
    torch.save({'state_dict': {}, 'extra': torch.nn.Linear(1, 1)}, evil)  # unpickling would import torch.nn
    with pytest.raises(UnsafeCheckpointError):
        tool.convert([str(evil)], str(tmp_path / 'o.pth'))

"""configs/vitpose: ViTPose on hulk_mm's tokenizer + encoder. The recipes follow mmpose's ViTPose configs, the models
have their parameter counts, train (forward / backward, layer decay), and official ViTPose weights converted by
tools/model_converters/vitpose_official_to_mm.py give mmpose's own ViTPose heatmaps. The slow test trains a short
SynthHuman run and scores it with CocoMetric."""
from __future__ import annotations

import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData

from tests.conftest import REPO, TINY_POSE_CFG

CONFIGS = osp.join(REPO, 'configs', 'vitpose')
SIZES = dict(small=(384, 12, 12), base=(768, 12, 12), large=(1024, 24, 16), huge=(1280, 32, 16))  # width, depth, heads


def ours(size: str, variant: str = '') -> str:
    """Our config path; variant '', '-simple' or '_dark'."""
    separator = '-' if variant == '_dark' else '_'
    return osp.join(CONFIGS, f'vitpose-{size}{variant}{separator}8xb64-210e_coco-256x192.py')


def mmpose_vitpose_config(size: str, variant: str = '') -> Config:
    """mmpose's own ViTPose config (mmpretrain VisionTransformer backbone), without its pretrained init."""
    import mmpose
    cfg = Config.fromfile(osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', 'body_2d_keypoint',
                                   'topdown_heatmap', 'coco',
                                   f'td-hm_ViTPose-{size}{variant}_8xb64-210e_coco-256x192.py'))
    cfg.model.backbone.pop('init_cfg')
    return cfg


def build(model_cfg):
    import hulk_mm  # noqa: F401  (mmpretrain imports only after hulk_mm.compat)
    from mmpose.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(model_cfg)


def num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def converter():
    path = osp.join(REPO, 'tools', 'model_converters', 'vitpose_official_to_mm.py')
    spec = importlib.util.spec_from_file_location('vitpose_official_to_mm', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def vitpose_b():
    """Our ViTPose-B (classic decoder), built once for the module."""
    return build(Config.fromfile(ours('base')).model)


def reduced_config(variant: str = '', width: int = 64, depth: int = 2, heads: int = 4, deconv=(32, 32)) -> Config:
    """A ViTPose-B config of ours at reduced width / depth; the 256x192 input, the 16x12 grid and everything else
    as configured. No stochastic depth: it would drop whole blocks of a one-image batch and leave them without
    gradient."""
    cfg = Config.fromfile(ours('base', variant))
    cfg.model.backbone.tokenizer.embed_dim = width
    cfg.model.backbone.encoder.update(depth=depth, num_heads=heads, drop_path_rate=0.0)
    cfg.model.head.in_channels = width
    if cfg.model.head.deconv_out_channels:
        cfg.model.head.deconv_out_channels = deconv
    return cfg


# ------------------------------------------------------------------------------------------------------------------
# the recipes


@pytest.mark.parametrize('size', list(SIZES))
@pytest.mark.parametrize('variant', ['', '-simple'])
def test_recipe_is_mmpose_vitpose(size, variant):
    """Schedule, optimizer, layer decay, drop path, head, codec geometry, pipelines and test-time flip as mmpose's
    config; the codec is the batched DARK-UDP one and the preprocessor leaves normalisation to the tokenizer."""
    cfg, ref = Config.fromfile(ours(size, variant)), mmpose_vitpose_config(size, variant)
    width, depth, heads = SIZES[size]
    backbone = cfg.model.backbone
    assert backbone.type == 'hulk_mm.HulkEncoder' and backbone.tokenizer.embed_dim == width
    assert (backbone.encoder.depth, backbone.encoder.num_heads) == (depth, heads)
    assert backbone.tokenizer.patch_padding == ref.model.backbone.patch_cfg.padding == 2
    assert backbone.encoder.drop_path_rate == ref.model.backbone.drop_path_rate
    assert 'mean' not in cfg.model.data_preprocessor and cfg.model.data_preprocessor.bgr_to_rgb
    assert cfg.optim_wrapper.constructor == 'HulkLayerDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == ref.optim_wrapper.paramwise_cfg.num_layers + 2 == depth + 2
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == ref.optim_wrapper.paramwise_cfg.layer_decay_rate
    assert cfg.optim_wrapper.optimizer == ref.optim_wrapper.optimizer
    assert cfg.optim_wrapper.clip_grad == ref.optim_wrapper.clip_grad
    assert cfg.param_scheduler == ref.param_scheduler and cfg.auto_scale_lr == ref.auto_scale_lr
    assert cfg.train_cfg.max_epochs == ref.train_cfg.max_epochs and cfg.train_cfg.val_interval == 10
    head, ref_head = cfg.model.head, ref.model.head
    for key in ('in_channels', 'out_channels', 'deconv_out_channels', 'deconv_kernel_sizes', 'loss'):
        assert head[key] == ref_head[key], key
    assert head.get('final_layer') == ref_head.get('final_layer') and cfg.model.get('neck') == ref.model.get('neck')
    assert cfg.model.test_cfg == ref.model.test_cfg
    codec = dict(head.decoder)
    assert codec.pop('type') == 'BatchedUDPHeatmap' and codec.pop('blur_kernel_size') == 11
    assert codec == {k: v for k, v in ref.codec.items() if k != 'type'}
    for loader in ('train_dataloader', 'val_dataloader'):
        ours_steps, ref_steps = cfg[loader].dataset.pipeline, ref[loader].dataset.pipeline
        assert [s.type for s in ours_steps] == [s.type for s in ref_steps]
        assert cfg[loader].batch_size == ref[loader].batch_size
    assert cfg.val_dataloader.dataset.bbox_file == ref.val_dataloader.dataset.bbox_file
    assert 'hulk_mm.codecs' in cfg.custom_imports.imports


def test_dark_variant():
    cfg = Config.fromfile(ours('base', '_dark'))
    assert cfg.model.head.decoder == dict(type='BatchedMSRAHeatmap', input_size=(192, 256), heatmap_size=(48, 64),
                                          sigma=2, unbiased=True, blur_kernel_size=11)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        affine = [s for s in cfg[loader].dataset.pipeline if s.type == 'TopdownAffine'][0]
        assert not affine.get('use_udp', False)  # DARK targets live on the non-UDP pixel grid
    target = [s for s in cfg.train_dataloader.dataset.pipeline if s.type == 'GenerateTarget'][0]
    assert target.encoder == cfg.model.head.decoder


def test_synthhuman_base_uses_the_batched_codec():
    cfg = Config.fromfile(TINY_POSE_CFG)
    assert cfg.codec == dict(type='BatchedUDPHeatmap', input_size=(96, 128), heatmap_size=(48, 64), sigma=2,
                             blur_kernel_size=11)
    assert cfg.model.head.decoder == cfg.codec


# ------------------------------------------------------------------------------------------------------------------
# the models


@pytest.mark.parametrize('size', [pytest.param('small', marks=pytest.mark.slow), 'base',
                                  pytest.param('large', marks=pytest.mark.slow),
                                  pytest.param('huge', marks=pytest.mark.slow)])
@pytest.mark.parametrize('variant', ['', '-simple'], ids=['classic', 'simple'])
def test_parameter_counts_equal_mmpose(size, variant, vitpose_b):
    reference = num_params(build(mmpose_vitpose_config(size, variant).model))
    model = vitpose_b if (size, variant) == ('base', '') else build(Config.fromfile(ours(size, variant)).model)
    assert num_params(model) == reference


def pose_samples(codec, batch: int, k: int = 17, seed: int = 0):
    """PoseDataSamples with the codec's targets for random keypoints, and the metainfo predict needs."""
    from mmpose.structures import PoseDataSample
    rng = np.random.default_rng(seed)
    w, h = codec.input_size
    samples = []
    for _ in range(batch):
        kpts = rng.uniform([10, 10], [w - 10, h - 10], (1, k, 2)).astype(np.float32)
        enc = codec.encode(kpts, np.ones((1, k), np.float32))
        sample = PoseDataSample(metainfo=dict(
            input_size=(w, h), input_center=np.array([w / 2, h / 2]), input_scale=np.array([w, h], np.float32),
            flip_indices=[0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]))
        sample.gt_fields = PixelData(heatmaps=torch.from_numpy(enc['heatmaps']))
        sample.gt_instance_labels = InstanceData(keypoint_weights=torch.from_numpy(enc['keypoint_weights']))
        sample.gt_instances = InstanceData(bboxes=np.array([[0, 0, w, h]], np.float32), bbox_scores=np.ones(1))
        samples.append(sample)
    return samples


def check_forward_backward_and_predict(model):
    torch.manual_seed(0)
    model.train()
    samples = pose_samples(model.head.decoder, batch=1)
    images = torch.rand(1, 3, 256, 192) * 255
    losses = model(images, samples, mode='loss')
    losses['loss_kpt'].backward()
    assert torch.isfinite(losses['loss_kpt'])
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing
    assert model.backbone.tokenizer.pos_embed.requires_grad  # ViTPose fine-tunes its position table
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        preds = model.eval()(images, samples, mode='predict')
    assert type(model.head.decoder).__name__ in ('BatchedUDPHeatmap', 'BatchedMSRAHeatmap')
    assert preds[0].pred_instances.keypoints.shape == (1, 17, 2)
    assert preds[0].pred_instances.keypoint_scores.shape == (1, 17)


@pytest.mark.parametrize('variant', ['', '-simple', '_dark'], ids=['classic', 'simple', 'dark'])
def test_forward_backward_and_predict(variant):
    """A loss step reaches every parameter; predict decodes with the batched codec into image-space keypoints.
    At reduced width and depth (full size: the slow test below)."""
    check_forward_backward_and_predict(build(reduced_config(variant).model))


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['', '-simple', '_dark'], ids=['classic', 'simple', 'dark'])
def test_forward_backward_and_predict_full_size(variant):
    cfg = Config.fromfile(ours('base', variant))
    cfg.model.backbone.encoder.drop_path_rate = 0.0
    check_forward_backward_and_predict(build(cfg.model))


def test_layer_decay_groups(vitpose_b):
    """The config's optimizer: mmpose's ViTPose multipliers through HulkLayerDecayOptimWrapperConstructor."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(ours('base'))
    model = vitpose_b
    with DefaultScope.overwrite_default_scope('hulk_mm'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    lr, rate, depth = 5e-4, 0.75, 12
    blocks = model.backbone.encoder.blocks
    # block i x rate^(depth - i), tokenizer x rate^(depth + 1), final norm and head x 1
    expected = [(blocks[0].attn.qkv.weight, lr * rate**depth, 0.1), (blocks[11].mlp.fc2.weight, lr * rate, 0.1),
                (blocks[5].norm1.weight, lr * rate**7, 0.0), (blocks[5].attn.proj.bias, lr * rate**7, 0.0),
                (model.backbone.encoder.norm.weight, lr, 0.0),
                (model.backbone.tokenizer.proj.weight, lr * rate**(depth + 1), 0.1),
                (model.backbone.tokenizer.pos_embed, lr * rate**(depth + 1), 0.0),
                (model.head.final_layer.weight, lr, 0.1)]
    for param, group_lr, decay in expected:
        group = group_of[id(param)]
        assert group['lr'] == pytest.approx(group_lr) and group['weight_decay'] == decay


# ------------------------------------------------------------------------------------------------------------------
# official weights


def official_vitpose_state_dict(width: int, depth: int, simple: bool = False, deconv=(256, 256), k: int = 17,
                                grid=(16, 12), seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the keys and shapes of a released ViTPose checkpoint (ViTAE-Transformer/ViTPose,
    ``ViT`` backbone with ``qkv_bias=True`` and ``TopdownHeatmapSimpleHead``)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, std=0.02, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    sd = {'backbone.pos_embed': rand(1, 1 + grid[0] * grid[1], width, std=0.5),
          'backbone.patch_embed.proj.weight': rand(width, 3, 16, 16, std=0.05),
          'backbone.patch_embed.proj.bias': rand(width)}
    for i in range(depth):
        p = f'backbone.blocks.{i}.'
        for norm in ('norm1', 'norm2'):
            sd[p + norm + '.weight'], sd[p + norm + '.bias'] = rand(width, std=0.1, mean=1), rand(width, std=0.1)
        for name, (out, inp) in dict(qkv=(3 * width, width), proj=(width, width), fc1=(4 * width, width),
                                     fc2=(width, 4 * width)).items():
            layer = f'{p}attn.{name}' if name in ('qkv', 'proj') else f'{p}mlp.{name}'
            sd[layer + '.weight'], sd[layer + '.bias'] = rand(out, inp, std=inp**-0.5), rand(out)
    sd['backbone.last_norm.weight'], sd['backbone.last_norm.bias'] = rand(width, std=0.1, mean=1), rand(width)
    if simple:
        sd['keypoint_head.final_layer.weight'], sd['keypoint_head.final_layer.bias'] = rand(k, width, 3, 3), rand(k)
        return sd
    channels = width
    for i, out in enumerate(deconv):
        p = f'keypoint_head.deconv_layers.{3 * i}.weight'
        sd[p] = rand(channels, out, 4, 4, std=0.05)
        bn = f'keypoint_head.deconv_layers.{3 * i + 1}.'
        sd[bn + 'weight'], sd[bn + 'bias'] = rand(out, std=0.1, mean=1), rand(out, std=0.1)
        sd[bn + 'running_mean'], sd[bn + 'running_var'] = rand(out, std=0.1), rand(out, std=0.1).abs() + 0.5
        sd[bn + 'num_batches_tracked'] = torch.tensor(1000)
        channels = out
    sd['keypoint_head.final_layer.weight'], sd['keypoint_head.final_layer.bias'] = rand(k, channels, 1, 1), rand(k)
    return sd


def official_to_mmpretrain(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same official weights for mmpose's own ViTPose (mmpretrain ``VisionTransformer`` names), written
    independently of the converter under test."""
    names = {'norm1': 'ln1', 'norm2': 'ln2', 'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj',
             'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1'}
    out = {}
    for key, value in sd.items():
        parts = key.split('.')
        if key == 'backbone.pos_embed':
            out[key] = value[:, 1:] + value[:, :1]
        elif key.startswith('backbone.patch_embed.proj.'):
            out['backbone.patch_embed.projection.' + parts[-1]] = value
        elif key.startswith('backbone.blocks.'):
            out[f'backbone.layers.{parts[2]}.{names[".".join(parts[3:-1])]}.{parts[-1]}'] = value
        elif key.startswith('backbone.last_norm.'):
            out['backbone.ln1.' + parts[-1]] = value
        else:
            out['head.' + key[len('keypoint_head.'):]] = value
    return out


def heatmaps_of_both(size_cfg: dict, simple: bool, seed: int = 0):
    """Heatmaps of our converted model and of mmpose's ViTPose on the same official weights and image."""
    variant = '-simple' if simple else ''
    width, depth, heads, deconv = size_cfg['width'], size_cfg['depth'], size_cfg['heads'], size_cfg['deconv']
    sd = official_vitpose_state_dict(width, depth, simple=simple, deconv=deconv, seed=seed)

    cfg = reduced_config(variant, width, depth, heads, deconv)
    model = build(cfg.model).eval()
    model.load_state_dict(converter().convert_vitpose_state_dict(sd), strict=True)

    ref_cfg = mmpose_vitpose_config('base', variant)
    ref_cfg.model.backbone.arch = dict(embed_dims=width, num_layers=depth, num_heads=heads,
                                       feedforward_channels=4 * width)
    ref_cfg.model.head.in_channels = width
    if not simple:
        ref_cfg.model.head.deconv_out_channels = deconv
    reference = build(ref_cfg.model).eval()
    reference.load_state_dict(official_to_mmpretrain(sd), strict=True)

    images = torch.rand(2, 3, 256, 192, generator=torch.Generator().manual_seed(seed + 1)) * 255
    mean, std = torch.tensor([123.675, 116.28, 103.53]), torch.tensor([58.395, 57.12, 57.375])
    with torch.no_grad():
        heatmaps = model(images, None, mode='tensor')  # the tokenizer normalises
        expected = reference((images - mean[:, None, None]) / std[:, None, None], None, mode='tensor')
    return heatmaps, expected


@pytest.mark.parametrize('simple', [False, True], ids=['classic', 'simple'])
def test_converted_official_weights_give_mmpose_vitpose_heatmaps(simple):
    """Reduced width / depth (the 16x12 token grid and the 2 px patch padding as released)."""
    heatmaps, expected = heatmaps_of_both(dict(width=64, depth=2, heads=4, deconv=(32, 32)), simple)
    assert heatmaps.shape == expected.shape == (2, 17, 64, 48)
    assert (heatmaps - expected).abs().max() <= 1e-4 * expected.abs().max()


@pytest.mark.slow
@pytest.mark.parametrize('simple', [False, True], ids=['classic', 'simple'])
def test_converted_official_weights_full_size_vitpose_b(simple):
    heatmaps, expected = heatmaps_of_both(dict(width=768, depth=12, heads=12, deconv=(256, 256)), simple)
    assert (heatmaps - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_converter_cli_writes_a_weights_file_that_loads_strictly(tmp_path):
    cfg = reduced_config()
    cfg.dump(str(tmp_path / 'vitpose.py'))
    sd = official_vitpose_state_dict(64, 2, deconv=(32, 32))
    src, out = tmp_path / 'vitpose-official.pth', tmp_path / 'converted.pth'
    torch.save({'meta': {'epoch': 210}, 'state_dict': sd}, src)
    converter().main([str(src), str(out), '--config', str(tmp_path / 'vitpose.py')])
    weights = torch.load(out, weights_only=True)
    model = build(cfg.model)
    model.load_state_dict(weights['state_dict'], strict=True)
    torch.testing.assert_close(model.backbone.tokenizer.pos_embed,
                               sd['backbone.pos_embed'][:, 1:] + sd['backbone.pos_embed'][:, :1])


def test_converter_rejects_what_it_cannot_place():
    conv = converter()
    sd = official_vitpose_state_dict(16, 1, simple=True)
    sd['backbone.blocks.0.mlp.experts.0.weight'] = torch.zeros(1)  # ViTPose+ mixture of experts
    with pytest.raises(KeyError, match='no place'):
        conv.convert_vitpose_state_dict(sd)
    with pytest.raises(KeyError, match='not an official ViTPose'):
        conv.convert_vitpose_state_dict({'backbone.blocks.0.norm1.weight': torch.zeros(1)})


# ------------------------------------------------------------------------------------------------------------------
# learning


@pytest.mark.slow
def test_short_synthhuman_run_scores_well_above_chance(synthhuman_root, tmp_path):
    """The tiny ViTPose config (batched DARK-UDP codec for the targets and the decoding) trained 300 iterations on
    SynthHuman's 16 training scenes, then scored by tools/test.py with CocoMetric on those scenes with their GT
    boxes, against the same model untrained. Held-out scenes are out of reach of a short run: the quickstart's
    1000 scenes x 1500 iterations reach val AP ~0.02 with this tiny model."""
    from hulk_mm.engine.launch import test, train
    from hulk_mm.engine.publish import publish_model
    from hulk_mm.registry import MODELS
    from tests.conftest import short_run_options
    work = str(tmp_path / 'run')
    options = [o for o in short_run_options(synthhuman_root, max_iters=300, ckpt_interval=300)
               if not o.startswith(('train_dataloader.batch_size', 'default_hooks.logger'))]
    train([TINY_POSE_CFG, '--work-dir', work, '--no-validate', '--cfg-options', *options,
           'train_dataloader.batch_size=16', 'default_hooks.logger.interval=50'])
    publish_model(osp.join(work, 'iter_300.pth'), osp.join(work, 'trained.pth'))
    with DefaultScope.overwrite_default_scope('hulk_mm'):
        untrained = MODELS.build(Config.fromfile(TINY_POSE_CFG).model)
    torch.save({'state_dict': untrained.state_dict(), 'meta': {}}, osp.join(work, 'untrained.pth'))

    on_training_scenes = [
        f'data_root={synthhuman_root}', 'test_dataloader.dataset.ann_file=pose/person_keypoints_train.json',
        'test_dataloader.dataset.bbox_file=None', 'test_dataloader.dataset.data_prefix.img=images/train/',
        f'test_evaluator.ann_file={osp.join(synthhuman_root, "pose", "person_keypoints_train.json")}']
    scores = {}
    for name in ('untrained', 'trained'):
        metrics_file = str(tmp_path / f'{name}.json')
        test([TINY_POSE_CFG, osp.join(work, f'{name}.pth'), '--work-dir', work, '--metrics-out', metrics_file,
              '--cfg-options', *on_training_scenes])
        with open(metrics_file) as f:
            scores[name] = json.load(f)
    print({name: (m['pose.synthhuman/AP'], m['pose.synthhuman/AP .5']) for name, m in scores.items()})
    assert scores['untrained']['pose.synthhuman/AP'] < 0.02
    assert scores['trained']['pose.synthhuman/AP'] > 0.15 and scores['trained']['pose.synthhuman/AP .5'] > 0.6

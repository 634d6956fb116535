"""HulkLayerDecayOptimWrapperConstructor: the release multipliers on every parameter of a small Hulk and of an
mmpose model with the HulkEncoder backbone, mmpose's ViTPose rule reproduced (and mmpose's own constructor missing
our names), the no-decay rules, and an optimizer step."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import hulk_mm.engine.optim_constructor as optim_constructor
from hulk_mm.engine.optim_constructor import HulkLayerDecayOptimWrapperConstructor
from hulk_mm.models.backbone import HulkEncoder
from hulk_mm.models.hulk import Hulk

RATE = 0.75


def small_hulk(depth: int = 12) -> Hulk:
    """A Hulk with a 12-block (narrow) encoder, the pose pathway and a second, skeleton-like tokenizer."""
    with DefaultScope.overwrite_default_scope('hulk_mm'):
        model = Hulk(
            shared=dict(
                tokenizers=dict(image=dict(type='ImageTokenizer', img_size=None, patch_size=8, embed_dim=16)),
                encoder=dict(type='ViTEncoder', embed_dim=16, depth=depth, num_heads=2),
                decoder=dict(type='HulkDecoder', embed_dim=16, depth=2, num_heads=2, ffn_dim=32),
                projections=dict(dense=dict(text_dim=8))),
            tasks=dict(pose=dict(
                type='PosePathway', num_keypoints=3, grid=(4, 3), embed_dim=16,
                detokenizer=dict(type='HeatmapDetokenizer', text_dim=8, upsample_dim=8),
                codec=dict(type='UDPHeatmap', input_size=(24, 32), heatmap_size=(12, 16), sigma=2),
                loss_kpt=dict(type='KeypointMSELoss', use_target_weight=True, _scope_='mmpose'),
                loss_vis=dict(type='VisibilityBCELoss', ratios=[0.3] * 3))))
    skeleton = nn.Module()  # the official skeleton adapter's parameter kinds: conv kernel, its bias, a LayerNorm
    skeleton.proj_kernel_weight = nn.Parameter(torch.randn(16, 4, 7, 2))
    skeleton.proj_kernel_bias = nn.Parameter(torch.zeros(16))
    skeleton.norm = nn.LayerNorm(16)
    model.shared.tokenizers['skeleton'] = skeleton
    return model


def groups_by_param(optim_wrapper) -> dict[int, dict]:
    """id(param) -> its param group; every parameter in exactly one group."""
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in out
            out[id(p)] = group
    return out


def build(model, num_layers, rate=RATE, lr=1e-3, wd=0.05, scope='hulk_mm'):
    """The optim wrapper as the runner builds it: found through hulk_mm's registry under the hulk_mm scope, or
    with the ``hulk_mm.`` prefix from another codebase's config."""
    constructor = 'HulkLayerDecayOptimWrapperConstructor'
    cfg = dict(optimizer=dict(type='AdamW', lr=lr, weight_decay=wd),
               constructor=constructor if scope == 'hulk_mm' else f'hulk_mm.{constructor}',
               paramwise_cfg=dict(num_layers=num_layers, layer_decay_rate=rate))
    with DefaultScope.overwrite_default_scope(scope):
        return build_optim_wrapper(model, cfg)


def test_release_multipliers_on_every_hulk_parameter(monkeypatch):
    logged = []
    monkeypatch.setattr(optim_constructor, 'print_log', lambda msg, **kw: logged.append(msg))
    model = small_hulk()
    groups = groups_by_param(build(model, num_layers=12))
    names = dict(model.named_parameters())
    assert set(groups) == {id(p) for p in names.values()}
    for name, p in names.items():
        block = re.match(r'shared\.encoder\.blocks\.(\d+)\.', name)
        if name.startswith('shared.tokenizers.'):  # image conv, type embedding, skeleton kernels and LN
            lr_mult = RATE ** 11
        elif block:
            lr_mult = RATE ** (10 - int(block.group(1)))
        else:  # encoder final norm, neck, decoder, projections, pathway
            lr_mult = 1.0
        no_decay = (name.endswith(('bias', 'type_embed')) or re.search(r'norm\d?\.weight$', name) is not None
                    or name == 'tasks.pose.detokenizer.upsampler.1.weight')  # Norm2d, a LayerNorm
        group = groups[id(p)]
        assert group['lr_mult'] == pytest.approx(lr_mult, rel=1e-12), name
        assert group['lr'] == pytest.approx(1e-3 * lr_mult, rel=1e-12), name
        assert group['weight_decay'] == (0.0 if no_decay else 0.05), name
    # the spec's figures: block 0 ~ 0.056, block 10 = 1, block 11 = 4/3 (release quirk), tokenizers ~ 0.042
    mult = {n: groups[id(p)]['lr_mult'] for n, p in names.items()}
    assert mult['shared.encoder.blocks.0.attn.qkv.weight'] == pytest.approx(0.0563135147)
    assert mult['shared.encoder.blocks.10.attn.qkv.weight'] == 1.0
    assert mult['shared.encoder.blocks.11.attn.qkv.weight'] == pytest.approx(4 / 3)
    assert mult['shared.tokenizers.skeleton.proj_kernel_weight'] == pytest.approx(0.0422351360)
    assert mult['shared.encoder.norm.weight'] == mult['tasks.pose.indicator'] == 1.0
    # equal (lr_mult, decay_mult) share a group: 2 tokenizer + 2 x 11 blocks + 2 at 1.0 (block 10 and the rest)
    assert len(build(model, num_layers=12).optimizer.param_groups) == 26
    assert len(logged) == 2 and '26 parameter groups' in logged[0]
    row = next(line for line in logged[0].splitlines() if line.lstrip().startswith('0.0422') and ' 1.0 ' in line)
    assert 'shared.tokenizers.image' in row and 'shared.tokenizers.skeleton' in row


def pose_model(depth=4, width=16):
    """An mmpose top-down model with the HulkEncoder backbone and mmpose's HeatmapHead (BN deconvs)."""
    from mmpose.registry import MODELS as MMPOSE_MODELS
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MMPOSE_MODELS.build(dict(
            type='TopdownPoseEstimator',
            backbone=dict(type='hulk_mm.HulkEncoder', tokenizer=dict(img_size=(32, 24), patch_size=8,
                                                                    embed_dim=width),
                          encoder=dict(depth=depth, num_heads=2)),
            head=dict(type='HeatmapHead', in_channels=width, out_channels=3, deconv_out_channels=(8, ),
                      deconv_kernel_sizes=(4, ), loss=dict(type='KeypointMSELoss', use_target_weight=True))))


def test_mm_backbone_multipliers_and_mmpose_vitpose_rule():
    depth = 4
    model = pose_model(depth)
    groups = groups_by_param(build(model, num_layers=depth + 2, scope='mmpose'))
    names = dict(model.named_parameters())
    assert set(groups) == {id(p) for p in names.values()}
    for name, p in names.items():
        block = re.match(r'backbone\.encoder\.blocks\.(\d+)\.', name)
        # ViTPose: block i x rate^(depth - i), patch embedding x rate^(depth + 1), the rest x 1
        lr_mult = RATE ** (depth + 1) if name.startswith('backbone.tokenizer.') else \
            RATE ** (depth - int(block.group(1))) if block else 1.0
        no_decay = name.endswith(('bias', 'type_embed')) or re.search(r'norm\d?\.weight$', name) is not None or \
            name == 'head.deconv_layers.1.weight'  # BatchNorm2d
        assert groups[id(p)]['lr_mult'] == pytest.approx(lr_mult, rel=1e-12), name
        assert groups[id(p)]['weight_decay'] == (0.0 if no_decay else 0.05), name


def mmpose_constructor_groups(model, num_layers):
    from mmpose.engine.optim_wrappers.layer_decay_optim_wrapper import LayerDecayOptimWrapperConstructor
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        paramwise_cfg=dict(num_layers=num_layers, layer_decay_rate=RATE))
    return groups_by_param(constructor(model))


def test_mmpose_constructor_misses_our_names_and_ours_reproduces_it():
    depth = 4
    model = pose_model(depth)
    # mmpose's constructor reads mmpretrain names: with ours every block (and the tokenizer) lands in the last group
    theirs = mmpose_constructor_groups(model, depth)
    assert {theirs[id(p)]['lr_scale'] for p in model.backbone.parameters()} == {1.0}
    # the same parameters under mmpretrain VisionTransformer names get mmpose's intended multipliers, and ours,
    # with num_layers = depth + 2, gives every parameter the same lr and weight decay on our names
    mirror = nn.Module()
    mirror.backbone = nn.Module()
    mirror.backbone.patch_embed = model.backbone.tokenizer.proj
    mirror.backbone.pos_embed = model.backbone.tokenizer.type_embed  # layer 0, no decay in both rules
    mirror.backbone.layers = model.backbone.encoder.blocks
    mirror.backbone.ln1 = model.backbone.encoder.norm
    mirror.head = model.head
    reference = mmpose_constructor_groups(mirror, depth)
    assert reference[id(model.backbone.encoder.blocks[0].attn.qkv.weight)]['lr_scale'] == pytest.approx(RATE ** 4)
    ours = groups_by_param(build(model, num_layers=depth + 2))
    assert set(ours) == set(reference)
    for name, p in model.named_parameters():
        assert ours[id(p)]['lr'] == pytest.approx(reference[id(p)]['lr'], rel=1e-12), name
        assert ours[id(p)]['weight_decay'] == reference[id(p)]['weight_decay'], name


def test_no_decay_rules():
    model = nn.Module()
    model.backbone = HulkEncoder(tokenizer=dict(img_size=(16, 16), patch_size=8, embed_dim=8),
                                 encoder=dict(depth=1, num_heads=1))
    extra = model.extra = nn.Module()
    decayed = dict(mask_token=(1, 1, 8), translate_weight=(1, ), indicator=(1, 1, 8))
    exempt = dict(translate_bias=(1, ), cls_token=(1, 1, 8), pos_embed=(1, 4, 8), rel_pos_h=(3, 8),
                  relative_position_bias_table=(9, 2), absolute_pos_embed=(1, 4, 8), type_embed=(1, 1, 8))
    for name, shape in {**decayed, **exempt}.items():
        setattr(extra, name, nn.Parameter(torch.zeros(shape)))
    extra.conv = nn.Conv2d(2, 2, 3)
    extra.embedding = nn.Embedding(4, 8)
    extra.gn, extra.bn, extra.inorm = nn.GroupNorm(1, 2), nn.BatchNorm2d(2), nn.InstanceNorm2d(2, affine=True)
    extra.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)
    groups = groups_by_param(build(model, num_layers=3))
    wd = {n: groups[id(p)]['weight_decay'] for n, p in model.named_parameters() if p.requires_grad}
    assert id(extra.frozen) not in groups
    assert {n for n, v in wd.items() if n.startswith('extra.') and v > 0} == {
        *(f'extra.{n}' for n in decayed), 'extra.conv.weight'}
    assert wd['backbone.tokenizer.proj.weight'] == 0.05  # conv kernels decay
    assert wd['extra.embedding.weight'] == wd['extra.gn.weight'] == wd['extra.bn.weight'] == 0.0
    assert wd['extra.inorm.weight'] == wd['backbone.encoder.blocks.0.norm1.weight'] == 0.0


def test_optimizer_step_applies_each_group():
    """One AdamW step: p <- p (1 - lr wd) - lr g / (|g| + eps) with the parameter's own lr and wd."""
    model = small_hulk(depth=3)
    model.shared.tokenizers['image'].type_embed.requires_grad_(False)
    wrapper = build(model, num_layers=5, lr=1e-2, wd=0.1)
    groups = groups_by_param(wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    grads = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    loss = sum((p * grads[n]).sum() for n, p in model.named_parameters() if p.requires_grad)
    wrapper.update_params(loss)
    lrs = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[name]) and id(p) not in groups
            continue
        lr, wd = groups[id(p)]['lr'], groups[id(p)]['weight_decay']
        lrs.add(round(lr, 12))
        expected = before[name] * (1 - lr * wd) - lr * grads[name] / (grads[name].abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7, msg=name)
    assert lrs == {round(1e-2 * RATE ** k, 12) for k in (4, 3, 2, 1, 0)}  # tokenizer, blocks 0-2, the rest


def test_constructor_errors():
    model = small_hulk(depth=1)
    with pytest.raises(ValueError, match='nothing else'):  # mmpose configs carry custom_keys, which do nothing
        HulkLayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(num_layers=12, layer_decay_rate=0.75, custom_keys={'bias': dict(decay_mult=0.)}))
    with pytest.raises(ValueError, match='layer_decay_rate must be in'):
        HulkLayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1e-3)),
                                              dict(num_layers=12, layer_decay_rate=1.5))
    with pytest.raises(ValueError, match='set optimizer.lr'):
        HulkLayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW')),
                                              dict(num_layers=12, layer_decay_rate=0.75))
    with pytest.raises(ValueError, match='holds no hulk_mm ViTEncoder'):
        build(nn.Linear(2, 2), 3)
    model.shared.encoder.extra_token = nn.Parameter(torch.zeros(1, 1, 16))
    with pytest.raises(ValueError, match="no layer-decay rule for encoder parameter 'shared.encoder.extra_token'"):
        build(model, 3)

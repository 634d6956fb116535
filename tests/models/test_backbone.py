"""HulkEncoder as an mm backbone: chosen block outputs, the ViTDet simple feature pyramid (also inside an mmdet model
built by mmdet's registry), and encoder weights from MAE checkpoints and hulk_mm weights files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from hulk_mm.compat import CheckpointNotWeightsError
from hulk_mm.models.backbone import HulkEncoder
from hulk_mm.models.necks import HulkSimpleFPN, LayerNorm2d
from hulk_mm.models.positional import mae_pos_embed, sincos_2d
from hulk_mm.models.pretrained import load_encoder_weights, mae_to_hulk_state_dict
from tests.models.test_hulk_pose import tiny_hulk

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


def small_backbone(depth=3, width=32, img=(64, 48), patch=8, **kw) -> HulkEncoder:
    torch.manual_seed(0)
    backbone = HulkEncoder(tokenizer=dict(img_size=img, patch_size=patch, embed_dim=width),
                           encoder=dict(depth=depth, num_heads=4), **kw)
    with torch.no_grad():  # non-zero type embedding and norm affines, so every tensor matters in comparisons
        backbone.tokenizer.type_embed.normal_()
        for name, p in backbone.named_parameters():
            if 'norm' in name:
                p.normal_()
    return backbone.eval()


# --------------------------------------------------------------------------------------------------------------
# out_indices
# --------------------------------------------------------------------------------------------------------------
def test_out_indices_give_raw_blocks_and_normed_last():
    backbone = small_backbone(depth=3, out_indices=(0, -1, 1))
    assert backbone.out_indices == (0, 1, 2)
    images = torch.rand(2, 3, 64, 48) * 255
    maps = backbone(images)
    tokens, _ = backbone.tokenizer(images)
    x, expected = tokens, []
    for block in backbone.encoder.blocks:
        x = block(x)
        expected.append(x)
    expected[-1] = backbone.encoder.norm(expected[-1])  # final norm on the last block only (mmpretrain ViT)
    assert len(maps) == 3
    for fmap, ref in zip(maps, expected):
        assert fmap.shape == (2, 32, 8, 6)
        torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), ref)
    # the default is the last block = the encoder's output, unchanged from before out_indices existed
    default = small_backbone(depth=3)
    torch.testing.assert_close(default(images)[0].flatten(2).transpose(1, 2), backbone.encoder(tokens))
    # a middle block alone: blocks after it are not run
    (mid, ) = small_backbone(depth=3, out_indices=1)(images)
    torch.testing.assert_close(mid, maps[1])


def test_out_indices_with_checkpointing_keeps_outputs_and_grads():
    a = small_backbone(depth=2, out_indices=(0, 1)).train()
    b = HulkEncoder(tokenizer=dict(img_size=(64, 48), patch_size=8, embed_dim=32),
                    encoder=dict(depth=2, num_heads=4, with_cp=True), out_indices=(0, 1)).train()
    b.load_state_dict(a.state_dict())
    images = torch.rand(1, 3, 64, 48) * 255
    ya, yb = a(images), b(images)
    for u, v in zip(ya, yb):
        torch.testing.assert_close(u, v)
    ga = torch.autograd.grad(sum(y.square().sum() for y in ya), a.encoder.blocks[0].attn.qkv.weight)[0]
    gb = torch.autograd.grad(sum(y.square().sum() for y in yb), b.encoder.blocks[0].attn.qkv.weight)[0]
    torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize('indices, match', [(3, 'out of range'), ((-4, ), 'out of range'), ((), 'out of range'),
                                            ((1, -2), 'twice')])
def test_out_indices_errors(indices, match):
    with pytest.raises(ValueError, match=match):
        HulkEncoder(tokenizer=dict(embed_dim=32), encoder=dict(depth=3, num_heads=4), out_indices=indices)


# --------------------------------------------------------------------------------------------------------------
# simple feature pyramid
# --------------------------------------------------------------------------------------------------------------
def test_simple_fpn_levels_and_layers():
    neck = HulkSimpleFPN(in_channels=32, out_channels=24, num_outs=5)
    x = torch.randn(2, 32, 8, 6)
    outs = neck((torch.randn(2, 32, 8, 6), x))  # the last backbone map is used
    assert [tuple(o.shape) for o in outs] == [(2, 24, 32, 24), (2, 24, 16, 12), (2, 24, 8, 6), (2, 24, 4, 3),
                                              (2, 24, 2, 2)]
    for o, ref in zip(outs, neck(x)):
        torch.testing.assert_close(o, ref)
    torch.testing.assert_close(outs[4], outs[3][..., ::2, ::2])  # extra level: 1x1 max-pool, stride 2
    # scale 4: ConvT -> LayerNorm2d -> GELU -> ConvT to C/4; scale 2: ConvT to C/2; 1: identity; 0.5: max-pool
    assert [neck.resamplers[0][i].out_channels for i in (0, 3)] == [16, 8]
    assert isinstance(neck.resamplers[0][1], LayerNorm2d) and neck.resamplers[1].out_channels == 16
    assert isinstance(neck.resamplers[2], torch.nn.Identity) and isinstance(neck.resamplers[3], torch.nn.MaxPool2d)
    for conv in [*neck.lateral_convs, *neck.output_convs]:  # conv without bias, then LayerNorm2d, no activation
        assert conv.conv.bias is None and isinstance(conv.norm, LayerNorm2d) and not conv.with_activation
    assert [c.conv.in_channels for c in neck.lateral_convs] == [8, 16, 32, 32]
    # identity level by hand: 1x1 conv -> LN over channels -> 3x3 conv -> LN over channels
    lat, out = neck.lateral_convs[2], neck.output_convs[2]

    def ln2d(t, norm):
        return F.layer_norm(t.permute(0, 2, 3, 1), (24, ), norm.weight, norm.bias, 1e-6).permute(0, 3, 1, 2)

    ref = ln2d(F.conv2d(ln2d(F.conv2d(x, lat.conv.weight), lat.norm), out.conv.weight, padding=1), out.norm)
    torch.testing.assert_close(outs[2], ref, rtol=1e-5, atol=1e-4)
    # fewer scales, no extra level
    assert len(HulkSimpleFPN(32, 8, scale_factors=(2.0, 1.0))(x)) == 2


def test_simple_fpn_errors():
    with pytest.raises(ValueError, match='scale factor 3.0'):
        HulkSimpleFPN(32, 8, scale_factors=(3.0, ))
    with pytest.raises(ValueError, match='num_outs 2'):
        HulkSimpleFPN(32, 8, num_outs=2)


def test_backbone_and_neck_inside_an_mmdet_model_built_by_mmdet():
    """``type='hulk_mm.X'`` reaches hulk_mm's registry from an mmdet model under mmdet's default scope."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.structures import DetDataSample
    cfg = dict(
        type='RPN',
        data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=32),
        backbone=dict(type='hulk_mm.HulkEncoder', tokenizer=dict(img_size=(64, 64), patch_size=16, embed_dim=32),
                      encoder=dict(depth=2, num_heads=4)),
        neck=dict(type='hulk_mm.HulkSimpleFPN', in_channels=32, out_channels=16, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=16, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', scales=[2], ratios=[1.0], strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.3, min_pos_iou=0.3),
            sampler=dict(type='RandomSampler', num=32, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1, pos_weight=-1, debug=False)),
        test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=10, nms=dict(type='nms', iou_threshold=0.7),
                               min_bbox_size=0)))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MMDET_MODELS.build(cfg)
        assert type(model.backbone) is HulkEncoder and type(model.neck) is HulkSimpleFPN
        sample = DetDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64), batch_input_shape=(64, 64),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[8., 8., 40., 56.]]), labels=torch.tensor([0]))
        images = torch.rand(1, 3, 64, 64) * 255
        feats = model.extract_feat(images)
        assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
        losses = model.loss(images, [sample])
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v) for k, v in losses.items()
                if 'loss' in k)
    total.backward()
    assert model.backbone.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.neck.resamplers[0][0].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------------------
# weights: MAE checkpoints
# --------------------------------------------------------------------------------------------------------------
def mae_sincos(dim: int, size: int = 14) -> np.ndarray:
    """MAE's ``get_2d_sincos_pos_embed(dim, size, cls_token=True)``, written out in numpy (float64)."""
    omega = 1. / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.))
    ys, xs = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing='ij')

    def emb(pos):
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([np.zeros([1, dim]), np.concatenate([emb(xs), emb(ys)], axis=1)], axis=0)


def write_mae(path, width=32, depth=2, patch=8, pos_embed=None, seed=0) -> dict:
    """A synthetic MAE checkpoint (``{'model': ...}``, timm names) with random weights; returns its state dict."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    sd = {'cls_token': rnd(1, 1, width), 'mask_token': rnd(1, 1, width),
          'pos_embed': torch.from_numpy(mae_sincos(width)).float()[None] if pos_embed is None else pos_embed,
          'patch_embed.proj.weight': rnd(width, 3, patch, patch), 'patch_embed.proj.bias': rnd(width),
          'norm.weight': 1 + rnd(width), 'norm.bias': rnd(width),
          'decoder_embed.weight': rnd(16, width), 'decoder_pos_embed': rnd(1, 197, 16),
          'decoder_blocks.0.norm1.weight': rnd(16), 'decoder_pred.weight': rnd(3 * patch * patch, 16)}
    for i in range(depth):
        p = f'blocks.{i}.'
        sd.update({p + 'norm1.weight': 1 + rnd(width), p + 'norm1.bias': rnd(width),
                   p + 'attn.qkv.weight': rnd(3 * width, width, scale=0.2), p + 'attn.qkv.bias': rnd(3 * width),
                   p + 'attn.proj.weight': rnd(width, width, scale=0.2), p + 'attn.proj.bias': rnd(width),
                   p + 'norm2.weight': 1 + rnd(width), p + 'norm2.bias': rnd(width),
                   p + 'mlp.fc1.weight': rnd(4 * width, width, scale=0.2), p + 'mlp.fc1.bias': rnd(4 * width),
                   p + 'mlp.fc2.weight': rnd(width, 4 * width, scale=0.2), p + 'mlp.fc2.bias': rnd(width)})
    torch.save({'model': sd}, path)
    return sd


def mae_reference(sd: dict, images: torch.Tensor, patch: int, heads: int) -> torch.Tensor:
    """The encoder map by hand, as official Hulk runs an MAE-initialised encoder: normalise, patch conv, MAE's
    table without its CLS slot resampled bicubically to the grid, pre-norm blocks, final norm."""
    x = F.conv2d((images - MEAN) / STD, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'], stride=patch)
    b, c, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    pos = sd['pos_embed'][0, 1:].reshape(1, 14, 14, c).permute(0, 3, 1, 2)
    x = x + F.interpolate(pos, size=(h, w), mode='bicubic', align_corners=False).flatten(2).transpose(1, 2)
    depth = len({k.split('.')[1] for k in sd if k.startswith('blocks.')})
    for i in range(depth):
        p = {k[len(f'blocks.{i}.'):]: v for k, v in sd.items() if k.startswith(f'blocks.{i}.')}
        y = F.layer_norm(x, (c, ), p['norm1.weight'], p['norm1.bias'], 1e-6)
        q, k, v = F.linear(y, p['attn.qkv.weight'], p['attn.qkv.bias']).reshape(
            b, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(-1)
        x = x + F.linear((attn @ v).transpose(1, 2).reshape(b, h * w, c), p['attn.proj.weight'], p['attn.proj.bias'])
        y = F.layer_norm(x, (c, ), p['norm2.weight'], p['norm2.bias'], 1e-6)
        x = x + F.linear(F.gelu(F.linear(y, p['mlp.fc1.weight'], p['mlp.fc1.bias'])), p['mlp.fc2.weight'],
                         p['mlp.fc2.bias'])
    x = F.layer_norm(x, (c, ), sd['norm.weight'], sd['norm.bias'], 1e-6)
    return x.transpose(1, 2).reshape(b, c, h, w)


def test_computed_position_table_equals_mae_table():
    """Ours (float64 grid -> float32) and MAE's released construction (numpy float64 -> float32) agree exactly."""
    for dim in (768, 32):
        assert torch.equal(sincos_2d(dim, (14, 14)), torch.from_numpy(mae_sincos(dim)[1:]).float())


@pytest.mark.parametrize('standard_pe', [True, False])
def test_mae_checkpoint_into_backbone_matches_reference(tmp_path, standard_pe):
    path = str(tmp_path / 'mae.pth')
    pos = None if standard_pe else torch.randn(1, 197, 32, generator=torch.Generator().manual_seed(1)) * 0.1
    sd = write_mae(path, pos_embed=pos)
    backbone = HulkEncoder(tokenizer=dict(img_size=(64, 48), patch_size=8, embed_dim=32),
                           encoder=dict(depth=2, num_heads=4), init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    backbone.eval()
    images = torch.rand(2, 3, 64, 48) * 255
    torch.testing.assert_close(backbone(images)[0], mae_reference(sd, images, patch=8, heads=4),
                               rtol=1e-5, atol=1e-5)
    report = load_encoder_weights(backbone, path)  # again, for the report
    assert report.layout == 'mae'
    assert report.pos_embed == ('computed' if standard_pe else 'resampled from file')
    block_keys = {f'encoder.{k}' for k in sd if k.startswith('blocks.')}
    expected = block_keys | {'encoder.norm.weight', 'encoder.norm.bias', 'tokenizer.proj.weight',
                             'tokenizer.proj.bias'}
    assert set(report.loaded) == expected | (set() if standard_pe else {'tokenizer.pos_embed'})
    assert set(report.missing) == {'tokenizer.type_embed'} | ({'tokenizer.pos_embed'} if standard_pe else set())
    assert report.unexpected == []
    assert set(report.ignored) == {'cls_token', 'mask_token', 'decoder_embed.weight', 'decoder_pos_embed',
                                   'decoder_blocks.0.norm1.weight', 'decoder_pred.weight'}


def test_mae_into_hulk_shared(tmp_path):
    path = str(tmp_path / 'mae.pth')
    sd = write_mae(path, width=32, depth=1)
    model = tiny_hulk()  # encoder 32 wide, 1 block, 8x8 patches
    report = load_encoder_weights(model, path)
    assert set(report.loaded) == {f'shared.encoder.{k}' for k in sd if k.startswith(('blocks.', 'norm.'))} | {
        'shared.tokenizers.image.proj.weight', 'shared.tokenizers.image.proj.bias'}
    assert torch.equal(model.shared.encoder.blocks[0].attn.qkv.weight, sd['blocks.0.attn.qkv.weight'])
    assert torch.equal(model.shared.tokenizers['image'].proj.weight, sd['patch_embed.proj.weight'])
    # the pure key mapping: exactly the encoder and the image patch conv, and all of them fit the model
    mapped = mae_to_hulk_state_dict(torch.load(path, weights_only=True))
    assert set(mapped) == set(report.loaded)
    result = tiny_hulk().load_state_dict(mapped, strict=False)
    assert result.unexpected_keys == []
    assert not any(k.startswith('shared.encoder.') for k in result.missing_keys)
    with pytest.raises(ValueError, match='not an MAE checkpoint'):
        mae_to_hulk_state_dict({'state_dict': model.state_dict()})


def test_pretrained_init_cfg_runs_after_the_other_inits(tmp_path):
    """``HulkShared.init_weights`` keeps mmengine's order (other init_cfg entries and the children's own init,
    then the checkpoint)."""
    path = str(tmp_path / 'mae.pth')
    sd = write_mae(path, width=32, depth=1)
    shared = tiny_hulk().shared
    shared.init_cfg = [dict(type='Constant', val=0.5, layer='Linear', bias=0.),
                       dict(type='Pretrained', checkpoint=path)]
    shared.init_weights()
    assert torch.equal(shared.encoder.blocks[0].mlp.fc1.weight, sd['blocks.0.mlp.fc1.weight'])
    assert torch.equal(shared.tokenizers['image'].proj.bias, sd['patch_embed.proj.bias'])
    assert (shared.decoder.layers[0].ffn.fc1.weight == 0.5).all()  # the Constant entry, applied first
    assert len(shared.init_cfg) == 2  # restored


# --------------------------------------------------------------------------------------------------------------
# weights: hulk_mm files
# --------------------------------------------------------------------------------------------------------------
def randomised(model):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def test_hulk_weights_file_round_trip(tmp_path):
    torch.manual_seed(0)
    hulk = randomised(tiny_hulk())
    sd = hulk.state_dict()
    path = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': sd, 'meta': {'iter': 4}}, path)  # publish_model.py's layout
    backbone = HulkEncoder(tokenizer=dict(img_size=(32, 24), patch_size=8, embed_dim=32),
                           encoder=dict(depth=1, num_heads=2), init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    own = backbone.state_dict()
    for key, value in own.items():
        if key == 'tokenizer.pos_embed':  # a Hulk file has per-task tables only: the backbone computes its own
            assert torch.equal(value, mae_pos_embed(32, (4, 3)))
            continue
        source = f'shared.tokenizers.image.{key[len("tokenizer."):]}' if key.startswith('tokenizer.') \
            else f'shared.{key}'
        assert torch.equal(value, sd[source]), key
    report = load_encoder_weights(backbone, path)
    assert set(report.loaded) == set(own) - {'tokenizer.pos_embed'} and report.unexpected == []
    assert report.missing == ['tokenizer.pos_embed'] and report.pos_embed == 'computed'
    assert set(report.ignored) == {k for k in sd if not k.startswith(('shared.encoder.', 'shared.tokenizers.'))}
    # the same file through a HulkShared, and an mm-model file (backbone.*) with prefix 'backbone.'
    other = randomised(tiny_hulk())
    load_encoder_weights(other.shared, path)
    for key, value in other.shared.encoder.state_dict().items():
        assert torch.equal(value, sd[f'shared.encoder.{key}'])
    mm_path = str(tmp_path / 'mm.pth')
    torch.save({'state_dict': {**{f'backbone.{k}': v for k, v in own.items()}, 'head.w': torch.ones(1)}}, mm_path)
    fresh = HulkEncoder(tokenizer=dict(img_size=(32, 24), patch_size=8, embed_dim=32),
                        encoder=dict(depth=1, num_heads=2))
    report = load_encoder_weights(fresh, mm_path, prefix='backbone.')
    assert set(report.loaded) == set(own) and report.ignored == ['head.w'] and report.pos_embed == 'file'
    assert all(torch.equal(v, own[k]) for k, v in fresh.state_dict().items())


def test_hulk_weights_into_a_backbone_of_another_grid(tmp_path):
    hulk = randomised(tiny_hulk())  # 32x24 crops: a 4x3 table
    path = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': hulk.state_dict()}, path)
    backbone = HulkEncoder(tokenizer=dict(img_size=(64, 64), patch_size=8, embed_dim=32),
                           encoder=dict(depth=1, num_heads=2))
    table = backbone.tokenizer.pos_embed.clone()
    report = load_encoder_weights(backbone, path)
    assert report.pos_embed == 'computed'  # the Hulk file holds per-task tables only
    assert torch.equal(backbone.tokenizer.pos_embed, table)  # the 8x8 table stays the computed one
    assert torch.equal(backbone.encoder.blocks[0].mlp.fc1.weight, hulk.shared.encoder.blocks[0].mlp.fc1.weight)


def test_weight_loading_errors(tmp_path):
    hulk = tiny_hulk()
    path = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': hulk.state_dict()}, path)
    backbone = HulkEncoder(tokenizer=dict(img_size=(32, 24), patch_size=8, embed_dim=32),
                           encoder=dict(depth=1, num_heads=2))
    with pytest.raises(ValueError, match=rf"{path}: no encoder weights under prefix 'backbone\.'.*'shared\.', "
                                         r"'tasks\.'"):
        load_encoder_weights(backbone, path, prefix='backbone.')
    wide = HulkEncoder(tokenizer=dict(img_size=(32, 24), patch_size=8, embed_dim=64),
                       encoder=dict(depth=1, num_heads=2))
    with pytest.raises(ValueError, match=r'shape mismatch for tokenizer\.type_embed: file \(1, 1, 32\) vs model '
                                         r'\(1, 1, 64\)'):
        load_encoder_weights(wide, path)
    ckpt = str(tmp_path / 'iter_4.pth')
    torch.save({'state_dict': hulk.state_dict(), 'message_hub': {'loss': HistoryBuffer()}}, ckpt)
    with pytest.raises(CheckpointNotWeightsError, match='publish_model.py'):
        load_encoder_weights(backbone, ckpt)
    with pytest.raises(FileNotFoundError):
        load_encoder_weights(backbone, str(tmp_path / 'absent.pth'))
    bad_cfg = HulkEncoder(tokenizer=dict(embed_dim=32), encoder=dict(depth=1, num_heads=2),
                          init_cfg=dict(type='Pretrained', checkpoint=path, strict=True))
    with pytest.raises(ValueError, match='checkpoint, prefix and map_location'):
        bad_cfg.init_weights()
    with pytest.raises(TypeError, match='not a HulkEncoder'):
        load_encoder_weights(torch.nn.Linear(2, 2), path)

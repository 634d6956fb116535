"""The shared post-norm decoder: equality with an nn.MultiheadAttention reference layer, per-layer outputs,
position-embedding modes, checkpointing, sizes."""
import math

import pytest
import torch
import torch.nn as nn

from hulk_mm.models import DecoderLayer, HulkDecoder
from hulk_mm.models import attention_masks as am
from hulk_mm.models.attention_masks import caption_mask, patch_diag_label_row_mask
from hulk_mm.registry import MODELS

DIM, HEADS, FFN = 32, 4, 64


class ReferenceLayer(nn.Module):
    """The official layer pair in its own terms: nn.MultiheadAttention (True = blocked masks), post-norm."""

    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.norm_sa = nn.LayerNorm(DIM)
        self.linear1, self.linear2 = nn.Linear(DIM, FFN), nn.Linear(FFN, DIM)
        self.norm_ffn = nn.LayerNorm(DIM)

    def forward(self, x, pos, blocked):
        q = k = x if pos is None else x + pos
        x = self.norm_sa(x + self.self_attn(q, k, x, attn_mask=blocked, need_weights=False)[0])
        return self.norm_ffn(x + self.linear2(torch.relu(self.linear1(x))))


def _randomized(module, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))  # biases and norms away from 0 / 1, so a wrong mapping shows
    return module.eval()


def _reference_from(layer: DecoderLayer) -> ReferenceLayer:
    """Official names <- ours: in_proj <- qkv (same [q; k; v] rows), out_proj <- proj, linear1/2 <- fc1/2."""
    ref = ReferenceLayer()
    ref.load_state_dict({
        'self_attn.in_proj_weight': layer.attn.qkv.weight, 'self_attn.in_proj_bias': layer.attn.qkv.bias,
        'self_attn.out_proj.weight': layer.attn.proj.weight, 'self_attn.out_proj.bias': layer.attn.proj.bias,
        'norm_sa.weight': layer.norm1.weight, 'norm_sa.bias': layer.norm1.bias,
        'linear1.weight': layer.ffn.fc1.weight, 'linear1.bias': layer.ffn.fc1.bias,
        'linear2.weight': layer.ffn.fc2.weight, 'linear2.bias': layer.ffn.fc2.bias,
        'norm_ffn.weight': layer.norm2.weight, 'norm_ffn.bias': layer.norm2.bias})
    return ref.eval()


def _tiny_decoder(**kw):
    torch.manual_seed(0)
    return _randomized(HulkDecoder(embed_dim=DIM, depth=3, num_heads=HEADS, ffn_dim=FFN, **kw))


@pytest.mark.parametrize('with_pos', [False, True])
@pytest.mark.parametrize('mask_kind', ['full', 'patch_diag', 'padded'])
def test_layer_equals_multihead_attention_reference(with_pos, mask_kind):
    layer = _randomized(DecoderLayer(DIM, HEADS, FFN))
    ref = _reference_from(layer)
    b, p, l = 2, 5, 3
    x = torch.randn(b, p + l, DIM)
    pos = torch.randn(1, p + l, DIM) if with_pos else None
    if mask_kind == 'full':
        mask, blocked = am.full_mask(p, l, x.device), None
    elif mask_kind == 'patch_diag':
        mask = am.patch_diag_label_row_mask(p, l, x.device)
        blocked = ~mask
    else:  # per-image mask; nn.MultiheadAttention wants it repeated per head, image-major
        padding = torch.zeros(b, p, dtype=torch.bool)
        padding[0, 3:] = True
        mask = am.padded_patch_diag_label_row_mask(padding, l)
        blocked = (~mask).repeat_interleave(HEADS, dim=0).flatten(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, pos, mask), ref(x, pos, blocked), rtol=1e-5, atol=1e-5)


def test_state_dict_names():
    keys = set(HulkDecoder(embed_dim=DIM, depth=1, num_heads=HEADS, ffn_dim=FFN).state_dict())
    layer = {f'layers.0.{m}.{t}' for m in ('attn.qkv', 'attn.proj', 'norm1', 'ffn.fc1', 'ffn.fc2', 'norm2')
             for t in ('weight', 'bias')}
    mlps = {f'adapt_pos{d}.{i}.{t}' for d in ('1d', '2d') for i in (0, 2) for t in ('weight', 'bias')}
    assert keys == layer | mlps | {'norm.weight', 'norm.bias'}


def test_vitb_decoder_size_and_registry():
    dec = MODELS.build(dict(type='HulkDecoder'))
    assert len(dec.layers) == 9
    assert sum(p.numel() for p in dec.layers.parameters()) == 9 * 1_315_072  # spec §2.7: 11.84 M
    mlps = sum(p.numel() for m in (dec.adapt_pos2d, dec.adapt_pos1d) for p in m.parameters())
    assert mlps == 263_168  # 0.26 M


def test_fan_in_init():
    torch.manual_seed(0)
    layer = DecoderLayer(256, 8, 2048)
    for linear in (layer.attn.qkv, layer.attn.proj, layer.ffn.fc1, layer.ffn.fc2):
        assert linear.weight.std().item() == pytest.approx(1 / math.sqrt(linear.in_features), rel=0.03)
    assert not layer.attn.qkv.bias.any() and not layer.attn.proj.bias.any()  # nn.MultiheadAttention's zeros


def test_outputs_are_the_final_norm_of_every_layer():
    dec = _tiny_decoder()
    x, pos = torch.randn(2, 7, DIM), torch.randn(2, 7, DIM)
    mask = am.patch_diag_label_row_mask(4, 3, x.device)
    with torch.no_grad():
        outs = dec(x, pos, mask)
        assert len(outs) == 3 and all(o.shape == (2, 7, DIM) for o in outs)
        raw = x
        for layer, out in zip(dec.layers, outs):
            raw = layer(raw, pos, mask)
            torch.testing.assert_close(out, dec.norm(raw))


def test_position_embedding_once_or_per_layer():
    dec = _tiny_decoder()
    x, pos = torch.randn(2, 7, DIM), torch.randn(1, 7, DIM)
    with torch.no_grad():
        per_layer = dec(x, pos, pos_per_layer=True)[-1]
        once = dec(x, pos, pos_per_layer=False)[-1]
        torch.testing.assert_close(once, dec(x + pos, None)[-1])
        raw = x
        for layer in dec.layers:
            raw = layer(raw, pos)
        torch.testing.assert_close(per_layer, dec.norm(raw))
    assert (per_layer - once).abs().max() > 1e-2


def test_activation_checkpointing_keeps_outputs_and_grads():
    a, b = _tiny_decoder(), _tiny_decoder(with_cp=True)
    a.train(), b.train()
    x = torch.randn(2, 7, DIM, requires_grad=True)
    pos = torch.randn(1, 7, DIM)
    mask = am.caption_mask(4, 3, x.device, torch.tensor([[False, False, True], [False] * 3]))
    outs_a, outs_b = a(x, pos, mask), b(x, pos, mask)
    for ya, yb in zip(outs_a, outs_b):
        torch.testing.assert_close(ya, yb)
    loss_a = sum(o.square().sum() for o in outs_a)
    loss_b = sum(o.square().sum() for o in outs_b)
    ga = torch.autograd.grad(loss_a, [x, a.layers[0].attn.qkv.weight])
    gb = torch.autograd.grad(loss_b, [x, b.layers[0].attn.qkv.weight])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)


def test_clear_errors_for_wrong_inputs():
    dec = _tiny_decoder()
    x = torch.randn(2, 7, DIM)
    with pytest.raises(ValueError, match='tokens of shape'):
        dec(torch.randn(2, 7, DIM + 1))
    with pytest.raises(ValueError, match='position embedding'):
        dec(x, torch.randn(3, 7, DIM))
    with pytest.raises(TypeError, match='boolean'):
        dec(x, attn_mask=torch.zeros(7, 7))
    with pytest.raises(ValueError, match='attn_mask of shape'):
        dec(x, attn_mask=torch.ones(6, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match='attn_mask of shape'):
        dec(x, attn_mask=torch.ones(2, 3, 7, 7, dtype=torch.bool))


@pytest.mark.parametrize('pos_per_layer', [True, False])
def test_cached_patch_side_equals_the_full_decoder_for_patch_diagonal_masks(pos_per_layer):
    """patch_states + forward_labels == forward(...)[:, P:] when patch rows attend only to themselves (caption,
    patch_diag_label_row), with a per-sample key-padding mask on the label side."""
    torch.manual_seed(0)
    decoder = HulkDecoder(embed_dim=32, depth=3, num_heads=4, ffn_dim=64).eval()
    b, p, l = 2, 6, 5
    patches, labels = torch.randn(b, p, 32), torch.randn(b, l, 32)
    pos = torch.randn(1, p + l, 32)
    padding = torch.zeros(b, l, dtype=torch.bool)
    padding[0, 3:] = True
    mask = caption_mask(p, l, 'cpu', padding)
    full = decoder(torch.cat([patches, labels], 1), pos, mask, pos_per_layer)
    states = decoder.patch_states(patches, pos[:, :p], pos_per_layer)
    cached = decoder.forward_labels(labels, pos[:, p:], states, mask[..., p:, :], pos_per_layer)
    assert len(cached) == 3
    for f, c in zip(full, cached):
        torch.testing.assert_close(c, f[:, p:], rtol=1e-5, atol=1e-5)
    # the plain (N, N) patch-diagonal mask too
    mask = patch_diag_label_row_mask(p, l, 'cpu')
    full = decoder(torch.cat([patches, labels], 1), pos, mask, pos_per_layer)[-1]
    cached = decoder.forward_labels(labels, pos[:, p:], states, mask[p:], pos_per_layer)[-1]
    torch.testing.assert_close(cached, full[:, p:], rtol=1e-5, atol=1e-5)

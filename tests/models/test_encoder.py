"""The shared ViT encoder, image tokenizer and position tables."""
import math

import pytest
import torch

from hulk_mm.models import HulkEncoder, ImageTokenizer, ViTEncoder
from hulk_mm.models.positional import mae_pos_embed, resample_2d, sincos_1d, sincos_2d


def _tiny_encoder(**kw):
    torch.manual_seed(0)
    enc = ViTEncoder(embed_dim=32, depth=2, num_heads=4, **kw)
    enc.init_weights()
    return enc.eval()


def test_timm_key_names_and_vitb_size():
    keys = set(ViTEncoder(embed_dim=32, depth=1, num_heads=4).state_dict())
    assert keys == {'blocks.0.norm1.weight', 'blocks.0.norm1.bias', 'blocks.0.attn.qkv.weight', 'blocks.0.attn.qkv.bias',
                    'blocks.0.attn.proj.weight', 'blocks.0.attn.proj.bias', 'blocks.0.norm2.weight',
                    'blocks.0.norm2.bias', 'blocks.0.mlp.fc1.weight', 'blocks.0.mlp.fc1.bias',
                    'blocks.0.mlp.fc2.weight', 'blocks.0.mlp.fc2.bias', 'norm.weight', 'norm.bias'}
    vitb = ViTEncoder()  # the spec: 85.05 M parameters in the 12 blocks of ViT-B
    assert sum(p.numel() for p in vitb.blocks.parameters()) == 85_054_464


def test_attention_equals_softmax_attention():
    enc = _tiny_encoder()
    attn = enc.blocks[0].attn
    x = torch.randn(2, 5, 32)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 4, 8).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(8)).softmax(-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 32))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


def test_key_padding_mask_hides_padded_tokens():
    enc = _tiny_encoder()
    tokens = torch.randn(2, 7, 32)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 5:] = True  # sample 0 has 5 real tokens
    out = enc(tokens, pad)
    torch.testing.assert_close(out[0, :5], enc(tokens[:1, :5])[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], enc(tokens[1:])[0], rtol=1e-5, atol=1e-5)
    # and without the mask the padded tokens do change the result
    assert not torch.allclose(enc(tokens)[0, :5], out[0, :5], atol=1e-4)


def test_activation_checkpointing_keeps_outputs_and_grads():
    a, b = _tiny_encoder(), _tiny_encoder(with_cp=True)
    a.train(), b.train()
    x = torch.randn(2, 6, 32, requires_grad=True)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    ga = torch.autograd.grad(ya.square().sum(), a.blocks[0].attn.qkv.weight)[0]
    gb = torch.autograd.grad(yb.square().sum(), b.blocks[0].attn.qkv.weight)[0]
    torch.testing.assert_close(ga, gb)


def test_drop_path_rises_linearly():
    enc = ViTEncoder(embed_dim=32, depth=3, num_heads=4, drop_path_rate=0.2)
    assert isinstance(enc.blocks[0].drop_path, torch.nn.Identity)
    assert [round(b.drop_path.drop_prob, 6) for b in enc.blocks[1:]] == [0.1, 0.2]


def test_encoder_rejects_wrong_width():
    with pytest.raises(ValueError, match='width 32'):
        _tiny_encoder()(torch.zeros(1, 4, 16))


def test_sincos_tables_follow_mae():
    pos = torch.tensor([0., 3.])
    table = sincos_1d(4, pos)
    omega = [1.0, 1.0 / 100.0]  # 10000 ** (-k / 2), k = 0, 1
    expected = [[math.sin(3 * w) for w in omega] + [math.cos(3 * w) for w in omega]]
    torch.testing.assert_close(table[1:], torch.tensor(expected))
    grid = sincos_2d(8, (2, 3))  # row-major: index = y * 3 + x; first half encodes x
    assert grid.shape == (6, 8)
    torch.testing.assert_close(grid[1 * 3 + 2, :4], sincos_1d(4, torch.tensor([2.]))[0])
    torch.testing.assert_close(grid[1 * 3 + 2, 4:], sincos_1d(4, torch.tensor([1.]))[0])
    assert mae_pos_embed(8, (14, 14)).shape == (1, 196, 8)
    torch.testing.assert_close(mae_pos_embed(8, (14, 14))[0], sincos_2d(8, (14, 14)))  # identity resampling
    assert resample_2d(sincos_2d(8, (14, 14)), (14, 14), (16, 12)).shape == (192, 8)


def test_image_tokenizer_and_backbone_layout():
    tok = ImageTokenizer(img_size=(64, 48), embed_dim=32)
    images = torch.rand(2, 3, 64, 48) * 255
    tokens, grid = tok(images)
    assert tokens.shape == (2, 12, 32) and grid == (4, 3)
    assert torch.equal(tok.pos_embed, mae_pos_embed(32, (4, 3)))
    # another input size gets the table resampled to its grid
    tokens2, grid2 = tok(torch.rand(1, 3, 32, 48) * 255)
    assert tokens2.shape == (1, 6, 32) and grid2 == (2, 3)
    with pytest.raises(ValueError, match=r'\(2, 3, 60, 48\)'):
        tok(torch.rand(2, 3, 60, 48))

    backbone = HulkEncoder(tokenizer=dict(img_size=(64, 48), embed_dim=32), encoder=dict(depth=1, num_heads=4)).eval()
    fmap = backbone(images)[0]
    assert fmap.shape == (2, 32, 4, 3)
    enc_out = backbone.encoder(backbone.tokenizer(images)[0])
    torch.testing.assert_close(fmap[:, :, 2, 1], enc_out[:, 2 * 3 + 1])  # token (row 2, col 1)

"""The shared ViT encoder of Hulk (timm / MAE key names: ``blocks.N.attn.qkv``, ``norm``, ...).

No CLS token and no position embedding inside: tokens arrive from a tokenizer with their fixed PE already added.
Attention runs through ``F.scaled_dot_product_attention`` with the same optional key-padding mask on every path,
including activation checkpointing.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.registry import MODELS


def key_padding_bias(pad_mask: Tensor | None) -> Tensor | None:
    """(B, P) bool, True = padded key  ->  (B, 1, 1, P) bool SDPA mask, True = may attend."""
    return None if pad_mask is None else ~pad_mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection. (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'width {dim} is not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


@MODELS.register_module()
class ViTEncoder(BaseModule):
    """Plain ViT over tokens: (B, P, C) -> (B, P, C).

    Args:
        embed_dim: token width (768 for ViT-B, 1024 for ViT-L).
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / token width.
        qkv_bias: bias on the qkv projection.
        drop_path_rate: stochastic depth, rising linearly from 0 to this rate over the blocks.
        with_cp: activation checkpointing of every block while training (memory only; outputs unchanged).
        init_cfg: MMEngine init config. MAE / hulk_mm weights files hold the encoder under other prefixes: load
            them through ``HulkEncoder`` / ``HulkShared``'s ``init_cfg`` or
            :func:`hulk_mm.models.pretrained.load_encoder_weights`, which map the keys.
    """

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.0, with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dim = embed_dim
        self.with_cp = with_cp
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=rate) for rate in rates)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def init_weights(self):
        super().init_weights()
        if self.init_cfg is None:  # timm/MAE default: xavier-uniform linears, zero biases
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, tokens: Tensor, pad_mask: Tensor | None = None) -> Tensor:
        """
        Args:
            tokens: (B, P, C) input tokens (position embedding included).
            pad_mask: optional (B, P) bool, True where a token is padding; such keys are not attended to.

        Returns:
            (B, P, C) encoded tokens after the final LayerNorm.
        """
        if tokens.shape[-1] != self.embed_dim:
            raise ValueError(f'ViTEncoder expects tokens of width {self.embed_dim}, got shape {tuple(tokens.shape)}')
        attn_mask = key_padding_bias(pad_mask)
        x = tokens
        for block in self.blocks:
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, attn_mask, use_reentrant=False)
            else:
                x = block(x, attn_mask)
        return self.norm(x)

"""Hulk's shared decoder: a stack of post-norm self-attention + FFN layers over [patch tokens ; label queries].

There is no cross-attention: the P encoded input tokens (after the 768->256 neck) and the L output queries (the
modality indicator) form one sequence of N = P + L tokens, and a task-specific self-attention mask
(``attention_masks.py``) decides who sees whom. Every layer's output goes through the shared final LayerNorm, and the
whole list is returned, because pose, parsing and detection supervise all layers (DETR's deep supervision).

Masks use the convention of ``F.scaled_dot_product_attention``: boolean, **True = may attend** (the official code's
``nn.MultiheadAttention`` masks mean the opposite; ``attention_masks.py`` is the only place that deals with that).

Key map from the official checkpoint (prefix ``decoder_module.predictor.``). ``nn.MultiheadAttention.in_proj_weight``
stacks the q, k, v projections as rows [q; k; v], the layout of timm's fused ``qkv``, so weights copy unchanged::

    transformer_self_attention_layers.{j}.self_attn.in_proj_{weight,bias}   -> layers.{j}.attn.qkv.{weight,bias}
    transformer_self_attention_layers.{j}.self_attn.out_proj.{weight,bias}  -> layers.{j}.attn.proj.{weight,bias}
    transformer_self_attention_layers.{j}.norm.{weight,bias}                -> layers.{j}.norm1.{weight,bias}
    transformer_ffn_layers.{j}.linear1.{weight,bias}                        -> layers.{j}.ffn.fc1.{weight,bias}
    transformer_ffn_layers.{j}.linear2.{weight,bias}                        -> layers.{j}.ffn.fc2.{weight,bias}
    transformer_ffn_layers.{j}.norm.{weight,bias}                           -> layers.{j}.norm2.{weight,bias}
    decoder_norm.{weight,bias}                                              -> norm.{weight,bias}
    adapt_pos2d.{0,2}.{weight,bias}, adapt_pos1d.{0,2}.{weight,bias}        -> unchanged
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import Tensor

from hulk_mm.registry import MODELS


class PosSelfAttention(nn.Module):
    """Multi-head self-attention whose queries and keys see the position embedding and whose values do not.

    Same math as ``nn.MultiheadAttention(query=x + pos, key=x + pos, value=x)``. (B, N, C) -> (B, N, C).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'width {dim} is not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, pos: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        return self.attend(*self.project(x, pos), attn_mask)

    def project(self, x: Tensor, pos: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(B, N, C) -> q, k, v, each (B, heads, N, C / heads); q and k see ``pos``, v does not."""
        b, n, c = x.shape
        h = self.num_heads
        if pos is None:
            return self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        # q, k come from x + pos and v from x: apply the matching row blocks of the fused weight.
        w_qk, w_v = self.qkv.weight.split((2 * c, c))
        b_qk, b_v = self.qkv.bias.split((2 * c, c))
        q, k = F.linear(x + pos, w_qk, b_qk).reshape(b, n, 2, h, c // h).permute(2, 0, 3, 1, 4)
        v = F.linear(x, w_v, b_v).reshape(b, n, h, c // h).transpose(1, 2)
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Attention of q (B, heads, N, e) over k, v (B, heads, S, e) and the output projection -> (B, N, C)."""
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(x.transpose(1, 2).flatten(2))


class FFN(nn.Module):
    """fc1 -> ReLU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DecoderLayer(nn.Module):
    """Post-norm layer: x = LN(x + SA(q = k = x + pos, v = x)); x = LN(x + FFN(x)). (B, N, C) -> (B, N, C).

    Initialised as the official ``arch: fan_in``: every weight matrix ~ N(0, 1 / fan_in); the attention biases are
    zero (``nn.MultiheadAttention``'s default), the FFN biases keep ``nn.Linear``'s default.
    """

    def __init__(self, dim: int = 256, num_heads: int = 8, ffn_dim: int = 2048):
        super().__init__()
        self.attn = PosSelfAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FFN(dim, ffn_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        for linear in (self.attn.qkv, self.attn.proj, self.ffn.fc1, self.ffn.fc2):
            linear.weight.normal_(0, 1 / math.sqrt(linear.in_features))
        nn.init.zeros_(self.attn.qkv.bias)
        nn.init.zeros_(self.attn.proj.bias)

    def forward(self, x: Tensor, pos: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.attn(x, pos, attn_mask))
        return self.norm2(x + self.ffn(x))

    def forward_keyed(self, x: Tensor, pos: Tensor | None, keys: Tensor, values: Tensor,
                      attn_mask: Tensor | None) -> Tensor:
        """The layer on some rows x (B, L, C) whose attention also sees extra keys / values (B, heads, S, e) put
        before their own (the cached patch side, :meth:`HulkDecoder.patch_states`)."""
        q, k, v = self.attn.project(x, pos)
        x = self.norm1(x + self.attn.attend(q, torch.cat([keys, k], 2), torch.cat([values, v], 2), attn_mask))
        return self.norm2(x + self.ffn(x))

    def forward_diagonal(self, x: Tensor, pos: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """The layer on rows that attend only to themselves (softmax over one key is 1, so attention returns the
        row's own value): -> (output (B, N, C), its keys and values (B, heads, N, e) as other rows see them)."""
        _, k, v = self.attn.project(x, pos)
        x = self.norm1(x + self.attn.proj(v.transpose(1, 2).flatten(2)))
        return self.norm2(x + self.ffn(x)), k, v


def _pos_mlp(dim: int) -> nn.Sequential:
    # Indices 0 and 2 of the Sequential are the official key names (adapt_pos2d.0, adapt_pos2d.2).
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))


@MODELS.register_module()
class HulkDecoder(BaseModule):
    """The decoder shared by all Hulk tasks: ``depth`` post-norm layers, a final LayerNorm applied to every layer's
    output, and the two position-embedding MLPs the task pathways use.

    ``adapt_pos2d`` / ``adapt_pos1d`` (Linear-ReLU-Linear) live here because all tasks share them; the pathways
    apply them to their fixed sin-cos tables (pose, parsing, detection and mesh use ``adapt_pos2d``; mesh also
    ``adapt_pos1d`` for depth) before calling :meth:`forward`.

    Args:
        embed_dim: token width d (256).
        depth: number of layers (9).
        num_heads: attention heads (8, head width 32).
        ffn_dim: FFN hidden width (2048).
        with_cp: activation checkpointing of every layer while training (memory only; outputs unchanged).
        init_cfg: MMEngine init config (e.g. ``Pretrained``); the layers initialise themselves at construction.
    """

    def __init__(self, embed_dim: int = 256, depth: int = 9, num_heads: int = 8, ffn_dim: int = 2048,
                 with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.with_cp = with_cp
        self.layers = nn.ModuleList(DecoderLayer(embed_dim, num_heads, ffn_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.adapt_pos2d = _pos_mlp(embed_dim)
        self.adapt_pos1d = _pos_mlp(embed_dim)

    def forward(self, tokens: Tensor, pos: Tensor | None = None, attn_mask: Tensor | None = None,
                pos_per_layer: bool = True) -> list[Tensor]:
        """
        Args:
            tokens: (B, N, d), the neck output of the P input tokens followed by the L query tokens.
            pos: (B, N, d) or (1, N, d) position embedding of the same N tokens, or None.
            attn_mask: None (everyone attends to everyone), or bool (N, N) / (B, 1, N, N) / (B, heads, N, N),
                True = the query (row) may attend to the key (column). See ``attention_masks.py``.
            pos_per_layer: True adds ``pos`` to the queries and keys of every layer (pose, parsing, detection,
                mesh); False adds it once to the input tokens (attributes, caption, skeleton action).

        Returns:
            One (B, N, d) tensor per layer, each after the shared final LayerNorm; the last one is the decoder
            output (official ``decoder_output``), the others feed deep supervision (``decoder_output_aux``).
        """
        self._check_inputs(tokens, pos, attn_mask)
        x = tokens
        if pos is not None and not pos_per_layer:
            x, pos = x + pos, None
        outs = []
        for layer in self.layers:
            if self._checkpointing():
                x = cp.checkpoint(layer, x, pos, attn_mask, use_reentrant=False)
            else:
                x = layer(x, pos, attn_mask)
            outs.append(self.norm(x))
        return outs

    def patch_states(self, patches: Tensor, pos: Tensor | None, pos_per_layer: bool) -> list[tuple[Tensor, Tensor]]:
        """Keys and values of the patch tokens at every layer, for masks whose patch rows attend only to themselves
        (``patch_diag_label_row``, caption): the patch side then evolves independently of the labels, so it can be
        computed once and reused, e.g. by every step of greedy caption decoding (:meth:`forward_labels`).

        Args:
            patches: (B, P, d) neck output.
            pos: (B or 1, P, d) their position embedding, or None.
            pos_per_layer: as in :meth:`forward`.

        Returns:
            per layer (keys, values), each (B, heads, P, d / heads).
        """
        x = patches
        if pos is not None and not pos_per_layer:
            x, pos = x + pos, None
        states = []
        for layer in self.layers:
            if self._checkpointing():
                x, k, v = cp.checkpoint(layer.forward_diagonal, x, pos, use_reentrant=False)
            else:
                x, k, v = layer.forward_diagonal(x, pos)
            states.append((k, v))
        return states

    def forward_labels(self, labels: Tensor, pos: Tensor | None, patch_states: list[tuple[Tensor, Tensor]],
                       attn_mask: Tensor | None, pos_per_layer: bool) -> list[Tensor]:
        """The label rows of :meth:`forward` given the cached patch side: equal to ``forward(cat([patches,
        labels]), ...)[i][:, P:]`` when the patch rows attend only to themselves.

        Args:
            labels: (B, L, d) query tokens.
            pos: (B or 1, L, d) their position embedding, or None.
            patch_states: :meth:`patch_states` of the patches.
            attn_mask: the label rows of the full mask, (L, P + L) or (B, 1, L, P + L), True = may attend; or None.
            pos_per_layer: as in :meth:`forward`.

        Returns:
            one (B, L, d) tensor per layer, after the final norm.
        """
        x = labels
        if pos is not None and not pos_per_layer:
            x, pos = x + pos, None
        outs = []
        for layer, (keys, values) in zip(self.layers, patch_states):
            if self._checkpointing():
                x = cp.checkpoint(layer.forward_keyed, x, pos, keys, values, attn_mask, use_reentrant=False)
            else:
                x = layer.forward_keyed(x, pos, keys, values, attn_mask)
            outs.append(self.norm(x))
        return outs

    def _checkpointing(self) -> bool:
        return self.with_cp and self.training and torch.is_grad_enabled()

    def _check_inputs(self, tokens: Tensor, pos: Tensor | None, attn_mask: Tensor | None):
        if tokens.dim() != 3 or tokens.shape[-1] != self.embed_dim:
            raise ValueError(f'HulkDecoder expects tokens of shape (B, N, {self.embed_dim}), '
                             f'got {tuple(tokens.shape)}')
        b, n, _ = tokens.shape
        if pos is not None and (pos.dim() != 3 or pos.shape[0] not in (1, b) or pos.shape[1:] != tokens.shape[1:]):
            raise ValueError(f'position embedding of shape {tuple(pos.shape)} does not match tokens '
                             f'{tuple(tokens.shape)}; expected ({b} or 1, {n}, {self.embed_dim})')
        if attn_mask is None:
            return
        if attn_mask.dtype != torch.bool:
            raise TypeError(f'attn_mask must be boolean (True = may attend), got {attn_mask.dtype}')
        ok = attn_mask.shape == (n, n) or (
            attn_mask.dim() == 4 and attn_mask.shape[0] in (1, b) and attn_mask.shape[1] in (1, self.num_heads)
            and attn_mask.shape[2:] == (n, n))
        if not ok:
            raise ValueError(f'attn_mask of shape {tuple(attn_mask.shape)} does not fit {n} tokens, batch {b}, '
                             f'{self.num_heads} heads; expected ({n}, {n}) or (B, 1 or heads, {n}, {n})')

"""Self-attention masks of the Hulk decoder, one builder per rule of the official ``self_attn_mask_type``.

The decoder sequence is [P patch tokens ; L label tokens], N = P + L; a mask row is a query, a column a key.
Every mask here is boolean in the convention of ``F.scaled_dot_product_attention``: **True = may attend**.
The official code passes ``nn.MultiheadAttention`` masks where True = blocked. Padding masks keep their usual meaning
(True = padded); the builders below are the only place that inverts them. Every row keeps at least its own diagonal
or the patch columns, so no query is left without keys (which would give NaN).

Builders and the official rules they reproduce::

    builder                               official ``self_attn_mask_type``                  tasks
    ------------------------------------  ------------------------------------------------  --------------------
    full_mask                             full                                              pose
    patch_diag_label_row_mask             patch_diag_label_row (..._textlabelfull: same)    attribute, skeleton
                                                                                            action, parsing
    caption_mask                          caption_mask + word key-padding                   caption
    padded_patch_diag_label_row_mask      patch_diag_label_row_nested                       detection
    mesh_adjacency_mask                   full + use_smpl_label_attention_mask              mesh

Masks that depend only on (P, L) are built on the requested device once and cached per (P, L, device): the same
tensor object comes back on every call, so treat it as read-only.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


def full_mask(num_patches: int, num_labels: int, device: torch.device | str) -> None:
    """Every token attends to every token. Returns None, which lets SDPA take its unmasked fast path (the arguments
    are those every input-independent builder takes, so pathways can call any of them alike)."""
    return None


def patch_diag_label_row_mask(num_patches: int, num_labels: int, device: torch.device | str) -> Tensor:
    """(N, N): each patch row attends only to itself; each label row attends to all N tokens.

    The patch tokens are thus carried through the decoder unchanged by the others, and the label queries read
    from all of them. Official ``patch_diag_label_row``; ``patch_diag_label_row_textlabelfull`` is the same mask
    (its extra text tokens are never used).
    """
    return _patch_diag_label_row(num_patches, num_labels, torch.device(device))


@lru_cache(maxsize=16)
def _patch_diag_label_row(num_patches: int, num_labels: int, device: torch.device) -> Tensor:
    mask = torch.eye(num_patches + num_labels, dtype=torch.bool, device=device)
    mask[num_patches:] = True
    return mask


def caption_mask(num_patches: int, num_labels: int, device: torch.device | str,
                 word_padding: Tensor | None = None) -> Tensor:
    """Caption mask: label (word) rows see all patches and the words up to their own position (causal); each
    patch row sees only itself.

    Args:
        num_patches: P.
        num_labels: L, the number of word positions.
        device: where to build the mask (take it from an input tensor).
        word_padding: optional (B, L) bool, True = padded word position; no row attends to it (the official
            key-padding mask: BERT padding in training, positions >= the current length in greedy decoding).

    Returns:
        (N, N) without ``word_padding`` (cached), else (B, 1, N, N).
    """
    mask = _caption(num_patches, num_labels, torch.device(device))
    if word_padding is None:
        return mask
    if word_padding.dim() != 2 or word_padding.shape[1] != num_labels or word_padding.dtype != torch.bool:
        raise ValueError(f'word_padding must be a (B, {num_labels}) bool tensor, got {tuple(word_padding.shape)} '
                         f'{word_padding.dtype}')
    visible_keys = torch.cat([word_padding.new_ones(word_padding.shape[0], num_patches), ~word_padding], dim=1)
    return mask & visible_keys[:, None, None, :]


@lru_cache(maxsize=16)
def _caption(num_patches: int, num_labels: int, device: torch.device) -> Tensor:
    mask = torch.eye(num_patches + num_labels, dtype=torch.bool, device=device)
    mask[num_patches:, :num_patches] = True
    mask[num_patches:, num_patches:] = torch.ones(num_labels, num_labels, dtype=torch.bool, device=device).tril()
    return mask


def padded_patch_diag_label_row_mask(patch_padding: Tensor, num_labels: int) -> Tensor:
    """:func:`patch_diag_label_row_mask` per image, where the label rows do not attend to that image's padded
    patches (detection batches images of different sizes).

    The official code repeats this mask per head, (B * heads, N, N); one copy per image broadcast over the heads is
    the same. Not cached: it depends on the padding. Built on ``patch_padding``'s device.

    Args:
        patch_padding: (B, P) bool, True = the patch token covers padding only.
        num_labels: L.

    Returns:
        (B, 1, N, N).
    """
    if patch_padding.dim() != 2 or patch_padding.dtype != torch.bool:
        raise ValueError(f'patch_padding must be a (B, P) bool tensor, got {tuple(patch_padding.shape)} '
                         f'{patch_padding.dtype}')
    b, p = patch_padding.shape
    n = p + num_labels
    mask = torch.eye(n, dtype=torch.bool, device=patch_padding.device).repeat(b, 1, 1, 1)
    mask[:, 0, p:, :p] = ~patch_padding[:, None, :]
    mask[:, 0, p:, p:] = True
    return mask


def mesh_adjacency_mask(num_patches: int, num_labels: int, adjacency: Tensor) -> Tensor:
    """Full attention, except that the rows of the coarse mesh vertices attend, among the vertex columns, only to
    the vertices adjacent to them.

    The last V = ``adjacency.shape[0]`` label tokens are the vertices; the label tokens before them (Hulk: the
    camera token and the 14 joints) are unrestricted rows and remain visible to every row. Official: the ``full``
    mask with ``use_smpl_label_attention_mask`` and ``smpl_attention_mask_flag``.

    Not cached (it depends on a tensor): a mesh pathway builds it once and keeps it as a non-persistent buffer.
    Built on ``adjacency``'s device.

    Args:
        num_patches: P.
        num_labels: L (Hulk: 1 camera + 14 joints + 431 vertices = 446).
        adjacency: (V, V), non-zero = adjacent. SMPL's 431-vertex matrix includes self-loops, which this mask keeps
            as given (a vertex row without its self-loop still sees the patches, the camera and the joints).

    Returns:
        (N, N).
    """
    v = adjacency.shape[0]
    if adjacency.dim() != 2 or adjacency.shape[1] != v or v > num_labels:
        raise ValueError(f'adjacency must be a square (V, V) matrix with V <= {num_labels} label tokens, '
                         f'got {tuple(adjacency.shape)}')
    n = num_patches + num_labels
    mask = torch.ones(n, n, dtype=torch.bool, device=adjacency.device)
    mask[n - v:, n - v:] = adjacency != 0
    return mask

"""Seed recipe of the official-fidelity fixtures (tests/data/official/<group>/): the official-layout weights are
regenerated here from the committed key list and a seed, so no weights are committed."""
from __future__ import annotations

import numpy as np
import torch


def official_layout_state_dict(keys_shapes: list, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic official-layout weights: per key in the given order, N(0, 1) scaled by 1/sqrt(fan_in) for
    tensors of 2+ dims, 1 + 0.1 N(0, 1) for norm gains, 0.1 N(0, 1) for other vectors. ``Norm2d``'s ``ln.*``
    aliases repeat the tensors they alias (they are one parameter in the official module), and so do the two copies
    of the caption vocabulary table."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys_shapes:
        if '.ln.' in key:
            sd[key] = sd[key.replace('.ln.', '.')]
            continue
        if key.endswith('predictor.anchor'):  # detection anchors: the official grid, not noise (see below)
            sd[key] = _anchor_grid(shape)
            continue
        twin = _vocabulary_twin(key, sd)
        if twin is not None:
            sd[key] = twin.reshape(shape)
            continue
        t = torch.randn(shape, generator=g)
        if key.endswith(_VOCABULARY_TABLES[0]):  # (1, V, D): scaled per row like the (V, D) copy
            t = t / shape[-1] ** 0.5
        elif len(shape) >= 2:
            t = t / max(1, int(np.prod(shape[1:]))) ** 0.5
        elif key.endswith('weight') and ('norm' in key or 'upsample_network.1' in key):
            t = 1 + 0.1 * t
        else:
            t = 0.1 * t
        sd[key] = t
    return sd


# Caption (task 7) stores its vocabulary table twice, as the decoder's word table (1, V, D) and as the text head's
# class table (V, D); a real checkpoint holds one tensor in both, so the copy met second repeats the first.
_VOCABULARY_TABLES = ('decoder_module.predictor.mask_token_buffer', 'proj_text.text_vectors')


def _vocabulary_twin(key: str, sd: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The other copy of the caption vocabulary table if ``key`` is one copy and the other is already in ``sd``."""
    for mine, other in (_VOCABULARY_TABLES, _VOCABULARY_TABLES[::-1]):
        if key.endswith(mine):
            return sd.get(key[:len(key) - len(mine)] + other)
    return None


def _anchor_grid(shape: list) -> torch.Tensor:
    """(1, n*n, 3) anchor points as in the official ``289_points_3d.npy`` (n = 17): cell centres
    ((i + 0.5) / n, (j + 0.5) / n, 0), outer index i as x. Random values would put boxes at the image border."""
    n = int(round(shape[1] ** 0.5))
    centres = (np.arange(n) + 0.5) / n
    xy = np.stack(np.meshgrid(centres, centres, indexing='ij'), -1).reshape(-1, 2)
    points = np.concatenate([xy, np.zeros((n * n, 1))], 1)
    return torch.from_numpy(points).float().reshape(shape)

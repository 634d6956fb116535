"""Seed recipe of the official-fidelity fixtures (tests/data/official/<group>/): the official-layout weights are
regenerated here from the committed key list and a seed, so no weights are committed."""
from __future__ import annotations

import numpy as np
import torch


def official_layout_state_dict(keys_shapes: list, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic official-layout weights: per key in the given order, N(0, 1) scaled by 1/sqrt(fan_in) for
    tensors of 2+ dims, 1 + 0.1 N(0, 1) for norm gains, 0.1 N(0, 1) for other vectors. ``Norm2d``'s ``ln.*``
    aliases repeat the tensors they alias (they are one parameter in the official module)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys_shapes:
        if '.ln.' in key:
            sd[key] = sd[key.replace('.ln.', '.')]
            continue
        t = torch.randn(shape, generator=g)
        if len(shape) >= 2:
            t = t / max(1, int(np.prod(shape[1:]))) ** 0.5
        elif key.endswith('weight') and ('norm' in key or 'upsample_network.1' in key):
            t = 1 + 0.1 * t
        else:
            t = 0.1 * t
        sd[key] = t
    return sd

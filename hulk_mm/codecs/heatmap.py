"""mmpose's MSRA and UDP heatmap codecs with a batched decoder that runs on the heatmaps' device.

Drop-in replacements: change ``type='MSRAHeatmap'`` to ``'BatchedMSRAHeatmap'`` (or ``'UDPHeatmap'`` to
``'BatchedUDPHeatmap'``) in any mmpose config (with ``hulk_mm.codecs`` in ``custom_imports``). Encoding is mmpose's
own. Decoding returns what mmpose's ``decode`` returns, but every mmpose head (``BaseHead.decode``) and Hulk's pose
pathway pass it the whole (B, K, H, W) batch through ``batch_decode``; the only host transfer is the final
(B, K, 3) coordinates-and-scores tensor.

Coordinate conventions (kept from mmpose, so both codecs are interchangeable with the originals):

* MSRA: heatmap pixel (x, y) <-> input pixel (x, y) * input_size / heatmap_size in both directions.
* UDP encodes with (input_size - 1) / (heatmap_size - 1) (the first and last pixel centres coincide) but mmpose
  decodes with input_size / (heatmap_size - 1); the decoded keypoint of an input pixel u is therefore
  u * w / (w - 1), up to one input pixel at the far border. This is mmpose 1.x's behaviour and is kept as is.
"""
from __future__ import annotations

import numpy as np
import torch
from mmpose.codecs import MSRAHeatmap, UDPHeatmap
from mmpose.registry import KEYPOINT_CODECS
from torch import Tensor

from hulk_mm.codecs.dark import WINDOW, heatmap_argmax, refine_dark, refine_dark_udp, refine_quarter_offset


def _check_size(codec, heatmap_size) -> None:
    if min(heatmap_size) < WINDOW:
        raise ValueError(f'{type(codec).__name__} needs heatmaps of at least {WINDOW}x{WINDOW} pixels (the DARK '
                         f'window), got heatmap_size {tuple(heatmap_size)}')


def _to_host(keypoints: Tensor, scores: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, K, 2) and (B, K) on any device -> numpy, in one transfer (none on CPU, where packing would be a copy)."""
    if keypoints.device.type == 'cpu':
        return keypoints.numpy(), scores.float().numpy()
    packed = torch.cat([keypoints, scores.float()[..., None]], dim=-1).cpu().numpy()
    return packed[..., :2], packed[..., 2]


def _per_sample(keypoints: np.ndarray, scores: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(B, K, 2), (B, K) -> per sample (1, K, 2), (1, K): one instance per top-down crop, as mmpose's decode."""
    return list(keypoints[:, None]), list(scores[:, None])


@KEYPOINT_CODECS.register_module()
class BatchedMSRAHeatmap(MSRAHeatmap):
    """mmpose's ``MSRAHeatmap`` (same arguments, same encoding) whose decoding — argmax, then DARK (``unbiased``)
    or the quarter-pixel shift — runs batched in torch (:mod:`hulk_mm.codecs.dark`).

    Keypoints are heatmap (x, y) * input_size / heatmap_size, as mmpose's.
    """

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], sigma: float,
                 unbiased: bool = False, blur_kernel_size: int = 11) -> None:
        super().__init__(input_size, heatmap_size, sigma, unbiased=unbiased, blur_kernel_size=blur_kernel_size)
        _check_size(self, heatmap_size)

    def decode_tensor(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """(B, K, H, W) -> keypoints (B, K, 2) in heatmap pixels and scores (B, K), on the heatmaps' device."""
        heatmaps = heatmaps.detach().float()
        locs, scores = heatmap_argmax(heatmaps)
        if self.unbiased:
            return refine_dark(heatmaps, locs, scores, self.blur_kernel_size), scores
        return refine_quarter_offset(heatmaps, locs), scores

    def batch_decode(self, batch_heatmaps: Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(B, K, H, W) tensor -> per sample keypoints (1, K, 2) in input pixels and scores (1, K)."""
        keypoints, scores = _to_host(*self.decode_tensor(batch_heatmaps))
        return _per_sample(keypoints * self.scale_factor, scores)

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) numpy heatmaps -> keypoints (1, K, 2), scores (1, K); mmpose's ``decode``."""
        keypoints, scores = self.batch_decode(torch.from_numpy(np.ascontiguousarray(encoded))[None])
        return keypoints[0], scores[0]


@KEYPOINT_CODECS.register_module()
class BatchedUDPHeatmap(UDPHeatmap):
    """mmpose's ``UDPHeatmap`` with Gaussian heatmaps (same arguments, same encoding) whose DARK-UDP decoding runs
    batched in torch (:mod:`hulk_mm.codecs.dark`). Hulk decodes its pose heatmaps this way (kernel 11).

    Keypoints are heatmap (x, y) * input_size / (heatmap_size - 1), as mmpose's decode (its encode uses
    (input_size - 1) / (heatmap_size - 1); see the module docstring).
    """

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], heatmap_type: str = 'gaussian',
                 sigma: float = 2., blur_kernel_size: int = 11) -> None:
        if heatmap_type != 'gaussian':
            raise ValueError(f"{type(self).__name__} decodes Gaussian heatmaps only, got heatmap_type "
                             f"{heatmap_type!r}; use mmpose's UDPHeatmap for 'combined'")
        super().__init__(input_size, heatmap_size, heatmap_type=heatmap_type, sigma=sigma,
                         blur_kernel_size=blur_kernel_size)
        _check_size(self, heatmap_size)

    def decode_tensor(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """(B, K, H, W) -> keypoints (B, K, 2) in heatmap pixels and scores (B, K), on the heatmaps' device."""
        heatmaps = heatmaps.detach().float()
        locs, scores = heatmap_argmax(heatmaps)
        return refine_dark_udp(heatmaps, locs, scores, self.blur_kernel_size), scores

    def batch_decode(self, batch_heatmaps: Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(B, K, H, W) tensor -> per sample keypoints (1, K, 2) in input pixels and scores (1, K)."""
        keypoints, scores = _to_host(*self.decode_tensor(batch_heatmaps))
        w, h = self.heatmap_size
        return _per_sample(keypoints / [w - 1, h - 1] * self.input_size, scores)

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) numpy heatmaps -> keypoints (1, K, 2), scores (1, K); mmpose's ``decode``."""
        keypoints, scores = self.batch_decode(torch.from_numpy(np.ascontiguousarray(encoded))[None])
        return keypoints[0], scores[0]

"""Keypoint codecs with batched, device-resident DARK / DARK-UDP decoding, registered in mmpose's
``KEYPOINT_CODECS`` (configs: ``custom_imports=dict(imports=['hulk_mm.codecs'])``)."""
from .dark import heatmap_argmax, refine_dark, refine_dark_udp, refine_quarter_offset
from .heatmap import BatchedMSRAHeatmap, BatchedUDPHeatmap

__all__ = [
    'BatchedMSRAHeatmap', 'BatchedUDPHeatmap', 'heatmap_argmax', 'refine_dark', 'refine_dark_udp',
    'refine_quarter_offset'
]

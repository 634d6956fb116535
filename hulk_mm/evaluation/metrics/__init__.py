"""hulk_mm metrics; importing this module registers them in ``hulk_mm.registry.METRICS``."""
from .attribute_metric import AttributeMetric, pedestrian_attribute_metrics
from .caption_metric import CaptionMetric, corpus_bleu, tokenize
from .mesh_metric import MeshMetric

__all__ = ['AttributeMetric', 'pedestrian_attribute_metrics', 'CaptionMetric', 'corpus_bleu', 'tokenize', 'MeshMetric']

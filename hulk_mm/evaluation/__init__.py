"""Metrics upstream lacks (attribute mA, caption BLEU-4, mesh errors)."""

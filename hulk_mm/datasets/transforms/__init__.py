"""Data transforms upstream lacks."""

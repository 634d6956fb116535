"""Datasets upstream lacks, the SynthHuman generator (``synthetic``) and multi-task loading."""

"""Visualisation of Hulk outputs."""

"""Baselines a genomic language model must beat."""

"""Metrics shared by the downstream tasks."""

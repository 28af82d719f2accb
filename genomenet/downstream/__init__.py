"""What users do with a trained backbone: classify regions (regions.py), linear probes (probes.py)."""

"""genomenet: long-context genomic language models on LongNet's exact dilated attention."""

__version__ = "0.1.0"

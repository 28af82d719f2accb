"""Exact dilated attention (LongNet), its kernels, and the multi-head module built on it."""

from genomenet.attention.backends import available_backends, last_backend
from genomenet.attention.dilated import dilated_attention
from genomenet.attention.module import DilatedMultiheadAttention, RotaryEmbedding

__all__ = ["DilatedMultiheadAttention", "RotaryEmbedding", "available_backends", "dilated_attention", "last_backend"]

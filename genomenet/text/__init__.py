"""Byte-level text language modelling through the same backbone and CLI: the LongNet paper's validation setting."""

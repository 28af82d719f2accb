"""Bytes as tokens: ids 0..255 are the bytes themselves, the special ids follow (the objectives need pad and mask)."""

from __future__ import annotations

import numpy as np

NUM_BYTES = 256


class ByteTokenizer:
    """The tokenizer interface `GenomeLM` reads (`n_id`, `pad_id`, `mask_id`, `vocab_size`, `k`), for bytes.

    Ids below `n_id` are scored; `n_id` (256) is never produced (text has no unknown byte), the specials follow it
    as in `KmerTokenizer`, so `vocab_size` is 262.
    """

    k = 1
    stride = 1

    def __init__(self) -> None:
        self.n_id = NUM_BYTES
        self.pad_id, self.mask_id, self.bos_id, self.eos_id, self.unk_id = range(self.n_id + 1, self.n_id + 6)
        self.vocab_size = self.n_id + 6
        self.dtype = np.int64

    def __repr__(self) -> str:
        return "ByteTokenizer()"

    def encode(self, data: bytes | np.ndarray) -> np.ndarray:
        """Bytes -> token ids (int64)."""
        array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
        return array.astype(np.int64)

    def decode(self, ids: np.ndarray) -> bytes:
        """Token ids -> bytes (specials dropped)."""
        ids = np.asarray(ids)
        return ids[ids < NUM_BYTES].astype(np.uint8).tobytes()

    def num_tokens(self, num_bytes: int) -> int:
        return num_bytes

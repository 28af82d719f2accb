"""Bases to token ids and back, vectorised over bytes with numpy lookup tables (no Python loop per base).

Base codes (the prepared cache stores these, see `genomenet.data.cache`): A=0, C=1, G=2, T=3, N=4. IUPAC ambiguity
codes (R Y S W K M B D H V N, and U read as T) become N. A stored byte packs the base code in its low bits and the
soft mask (lowercase in the FASTA, usually a repeat) in bit 7, so `packed & 0x7F` is the base code.

Token ids are stable and shared by both tokenizers; `NucleotideTokenizer` is `KmerTokenizer(k=1)`:

| ids | meaning |
|---|---|
| `0 .. 4**k - 1` | the k-mer of A/C/G/T bases, base 4 digits, first base most significant (k=1: A0 C1 G2 T3) |
| `4**k` (`n_id`) | any k-mer holding an N or another IUPAC ambiguity code (k=1: N=4) |
| `4**k + 1` .. `4**k + 5` | `pad_id`, `mask_id`, `bos_id`, `eos_id`, `unk_id` (a byte that is not IUPAC at all) |

`vocab_size` is `4**k + 6`: 10 for nucleotides, 4102 for 6-mers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from genomenet.errors import ConfigError

BASES = "ACGTN"
N_CODE = 4
SOFT_MASK_BIT = 0x80
CODE_MASK = 0x7F
INVALID = 0xFF
"""Packed value of a byte that is not an IUPAC nucleotide code; never a valid packed byte (those are <= 0x84)."""

_IUPAC_AMBIGUOUS = "RYSWKMBDHVN"
NUM_SPECIALS = 5


def _pack_table() -> np.ndarray:
    table = np.full(256, INVALID, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        table[ord(base)] = code
        table[ord(base.lower())] = code | SOFT_MASK_BIT
    for base in _IUPAC_AMBIGUOUS:
        table[ord(base)] = N_CODE
        table[ord(base.lower())] = N_CODE | SOFT_MASK_BIT
    table[ord("U")], table[ord("u")] = 3, 3 | SOFT_MASK_BIT
    return table


PACK_TABLE = _pack_table()
"""ASCII byte -> packed byte (base code | soft-mask bit), `INVALID` for bytes outside IUPAC."""

_COMPLEMENT_PACKED = np.arange(256, dtype=np.uint8)
_COMPLEMENT_PACKED[[0, 1, 2, 3]] = [3, 2, 1, 0]
_COMPLEMENT_PACKED[[0x80, 0x81, 0x82, 0x83]] = [0x83, 0x82, 0x81, 0x80]


def as_bytes_array(seq: bytes | str | np.ndarray) -> np.ndarray:
    """A uint8 view of ASCII text without copying where possible."""
    if isinstance(seq, np.ndarray):
        if seq.dtype != np.uint8:
            raise TypeError(f"expected a uint8 array of ASCII bytes, got dtype {seq.dtype}")
        return seq
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")  # one byte per character, non-ASCII -> '?' (invalid)
    return np.frombuffer(seq, dtype=np.uint8)


def pack(seq: bytes | str | np.ndarray) -> np.ndarray:
    """ASCII bases -> packed bytes (base code | soft-mask bit); bytes outside IUPAC become `INVALID`."""
    return np.take(PACK_TABLE, as_bytes_array(seq))


def soft_mask(seq: bytes | str | np.ndarray) -> np.ndarray:
    """Per-base boolean mask of soft-masked (lowercase) bases; kept apart from the ids so tokens stay small."""
    return (pack(seq) & SOFT_MASK_BIT).astype(bool)


def reverse_complement_packed(packed: np.ndarray) -> np.ndarray:
    """Reverse complement of packed bytes; the soft mask travels with its base."""
    return np.take(_COMPLEMENT_PACKED, packed[::-1])


class KmerTokenizer:
    """k-mers of bases, taken every `stride` bases (non-overlapping when stride == k, the default).

    A window of L bases gives `(L - k) // stride + 1` tokens; trailing bases that do not fill a k-mer are dropped,
    so choose L with `(L - k) % stride == 0` (any multiple of k when stride == k) to keep every base.
    """

    def __init__(self, k: int = 1, stride: int | None = None):
        stride = k if stride is None else stride
        if k < 1 or k > 12:
            raise ConfigError(f"kmer_size must be in 1..12, got {k}")
        if stride < 1 or stride > k:
            raise ConfigError(f"kmer_stride must be in 1..k={k} (a larger stride would skip bases), got {stride}")
        self.k, self.stride = k, stride
        self.n_id = 4**k
        self.pad_id, self.mask_id, self.bos_id, self.eos_id, self.unk_id = range(self.n_id + 1, self.n_id + 6)
        self.vocab_size = self.n_id + 1 + NUM_SPECIALS
        self.dtype = np.uint8 if self.vocab_size <= 256 else np.int32
        self._rc_table = self._reverse_complement_table()
        self._decode_table = self._kmer_strings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, stride={self.stride})"

    # encoding -----------------------------------------------------------------------------------------
    def encode(self, seq: bytes | str | np.ndarray) -> np.ndarray:
        """ASCII bases (any case, IUPAC) -> token ids; a byte outside IUPAC gives `unk_id` (its k-mer's id)."""
        return self.encode_packed(pack(seq))

    def encode_packed(self, packed: np.ndarray) -> np.ndarray:
        """Packed bytes (as stored in the prepared cache, or `INVALID`) -> token ids."""
        codes = packed & CODE_MASK                              # one SIMD pass; k=1 ids are the codes
        if codes.size and codes.max() > N_CODE:                 # rare: bytes outside IUPAC
            codes[codes > N_CODE] = N_CODE + 1
            if self.k == 1:
                codes[codes > N_CODE] = self.unk_id
        return codes if self.k == 1 else self._combine(codes)

    def _combine(self, codes: np.ndarray) -> np.ndarray:
        """Codes (0-3 bases, 4 N, 5 invalid) -> k-mer ids; one vectorised pass per k-mer position."""
        n = self.num_tokens(len(codes))
        starts = np.arange(n) * self.stride
        ids = np.zeros(n, dtype=np.int64)
        worst = np.zeros(n, dtype=np.uint8)
        for j in range(self.k):
            column = codes[starts + j]
            ids = ids * 4 + (column & 3)
            np.maximum(worst, column, out=worst)
        ids[worst == N_CODE] = self.n_id
        ids[worst > N_CODE] = self.unk_id
        return ids.astype(self.dtype)

    def num_tokens(self, num_bases: int) -> int:
        """How many tokens a window of `num_bases` bases gives."""
        return 0 if num_bases < self.k else (num_bases - self.k) // self.stride + 1

    def token_index(self, position: ArrayLike) -> np.ndarray | int:
        """Index of the token that starts in the stride block holding base `position` of the encoded window.

        With stride == k that token holds the base; with overlapping k-mers it is the last token starting at or
        before the base (which holds it). Positions past the last full k-mer map past the last token.
        """
        pos = np.asarray(position)
        if np.any(pos < 0):
            raise ValueError(f"positions must be >= 0, got {position}")
        out = pos // self.stride
        return int(out) if out.ndim == 0 else out

    def token_mask(self, base_mask: np.ndarray) -> np.ndarray:
        """Per-base mask -> per-token mask: a token is masked when any of its bases is."""
        if self.k == 1:
            return base_mask.astype(bool, copy=False)
        n = self.num_tokens(len(base_mask))
        if self.stride == self.k:
            return base_mask[: n * self.k].reshape(n, self.k).any(1)
        starts = np.arange(n) * self.stride
        return np.stack([base_mask[starts + j] for j in range(self.k)]).any(0)

    # decoding / reverse complement ----------------------------------------------------------------------
    def decode(self, ids: ArrayLike) -> str:
        """Token ids -> uppercase bases; special tokens (pad, mask, bos, eos) decode to nothing, unk to '?'."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in 0..{self.vocab_size - 1}")
        ids = ids[(ids <= self.n_id) | (ids == self.unk_id)]
        if ids.size == 0:
            return ""
        chars = self._decode_table[ids]                       # (tokens, k)
        if self.stride < self.k:                              # overlapping: first k-mer whole, then new bases
            chars = np.concatenate([chars[0], chars[1:, self.k - self.stride :].ravel()])
        return chars.tobytes().decode("ascii")

    @property
    def reverse_complement_ids(self) -> np.ndarray:
        """The reverse-complement id of every token id (specials map to themselves), for models that flip windows."""
        return self._rc_table

    @property
    def base_codes(self) -> np.ndarray:
        """(vocab, k) base codes of every token id (A0 C1 G2 T3, first base first); N and the specials give 4."""
        return np.concatenate([self._kmer_digits(), np.full((self.vocab_size - self.n_id, self.k), N_CODE)])

    def reverse_complement(self, ids: ArrayLike) -> np.ndarray:
        """Reverse complement on token ids: equals encoding the reverse-complemented bases when the tokens cover
        the window exactly ((L - k) % stride == 0); specials keep their id."""
        ids = np.asarray(ids)
        return self._rc_table[ids[::-1]].astype(ids.dtype if ids.dtype.kind in "iu" else self.dtype)

    def _kmer_digits(self) -> np.ndarray:
        kmers = np.arange(self.n_id)
        return (kmers[:, None] // 4 ** np.arange(self.k - 1, -1, -1)) % 4  # (4**k, k) base codes

    def _reverse_complement_table(self) -> np.ndarray:
        digits = 3 - self._kmer_digits()[:, ::-1]
        rc = digits @ (4 ** np.arange(self.k - 1, -1, -1))
        return np.concatenate([rc, np.arange(self.n_id, self.vocab_size)]).astype(np.int64)

    def _kmer_strings(self) -> np.ndarray:
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)[self._kmer_digits()]
        specials = np.full((NUM_SPECIALS + 1, self.k), ord("N"), dtype=np.uint8)
        specials[self.unk_id - self.n_id] = ord("?")
        return np.concatenate([letters, specials])               # (vocab, k) ASCII


class NucleotideTokenizer(KmerTokenizer):
    """One token per base: A0 C1 G2 T3 N4, pad 5, mask 6, bos 7, eos 8, unk 9."""

    def __init__(self):
        super().__init__(k=1, stride=1)

    def __repr__(self) -> str:
        return "NucleotideTokenizer()"


Tokenizer = KmerTokenizer
"""The interface every tokenizer offers (encode, encode_packed, decode, reverse_complement, token_index, ...)."""


def make_tokenizer(kmer_size: int = 1, stride: int | None = None) -> KmerTokenizer:
    """The tokenizer a config names: nucleotides for k=1, k-mers otherwise."""
    return NucleotideTokenizer() if kmer_size == 1 and stride in (None, 1) else KmerTokenizer(kmer_size, stride)

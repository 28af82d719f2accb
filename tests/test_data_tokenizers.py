"""Tokenizers as specifications: round trips, reverse complement, IUPAC, soft mask, token positions."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import LAMBDA

from genomenet.data.tokenizers import (
    KmerTokenizer,
    NucleotideTokenizer,
    make_tokenizer,
    pack,
    reverse_complement_packed,
    soft_mask,
)

COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def random_bases(n: int, alphabet: str = "ACGTN", rng: np.random.Generator | None = None) -> str:
    rng = rng or np.random.default_rng(n)  # seeded by the length: a failure reproduces
    return "".join(rng.choice(list(alphabet), size=n))


def lambda_text() -> str:
    lines = gzip.open(LAMBDA, "rt").read().splitlines()
    return "".join(lines[1:])


TOKENIZERS = [NucleotideTokenizer(), KmerTokenizer(3), KmerTokenizer(6), KmerTokenizer(4, 2), KmerTokenizer(5, 1)]


@pytest.mark.parametrize("tok", TOKENIZERS, ids=repr)
def test_encode_then_decode_is_identity(tok):
    n = tok.k + tok.stride * int(np.random.default_rng(tok.k * 10 + tok.stride).integers(0, 200))
    seq = random_bases(n, "ACGTN" if tok.k == 1 else "ACGT")  # a k-mer with an N is one N token
    assert tok.decode(tok.encode(seq)) == seq


def test_kmer_with_n_decodes_as_k_ns():
    tok = KmerTokenizer(3)
    assert tok.decode(tok.encode("ACGTNAGGG")) == "ACGNNNGGG"


def test_encode_then_decode_is_identity_on_lambda_phage():
    seq = lambda_text()
    for tok in (NucleotideTokenizer(), KmerTokenizer(2)):
        assert tok.decode(tok.encode(seq)) == seq[: len(seq) // tok.k * tok.k]


@pytest.mark.parametrize("tok", TOKENIZERS, ids=repr)
def test_reverse_complement_twice_is_identity(tok):
    ids = tok.encode(random_bases(tok.k + tok.stride * 50))
    np.testing.assert_array_equal(tok.reverse_complement(tok.reverse_complement(ids)), ids)


@pytest.mark.parametrize("tok", TOKENIZERS, ids=repr)
def test_reverse_complement_of_ids_equals_encoding_the_reverse_complement(tok):
    seq = random_bases(tok.k + tok.stride * 80)
    rc = seq.translate(COMPLEMENT)[::-1]
    np.testing.assert_array_equal(tok.reverse_complement(tok.encode(seq)), tok.encode(rc))


def test_reverse_complement_packed_keeps_soft_mask_with_its_base():
    packed = pack("AcgTN")
    assert _unpack(reverse_complement_packed(packed)) == "NAcgT"


def _unpack(packed: np.ndarray) -> str:
    letters = "ACGTN"
    return "".join(letters[b & 0x7F].lower() if b & 0x80 else letters[b & 0x7F] for b in packed)


def test_nucleotide_ids_are_the_documented_ones():
    tok = NucleotideTokenizer()
    assert list(tok.encode("ACGTN")) == [0, 1, 2, 3, 4]
    assert (tok.pad_id, tok.mask_id, tok.bos_id, tok.eos_id, tok.unk_id, tok.vocab_size) == (5, 6, 7, 8, 9, 10)


def test_kmer_ids_count_in_base_four_first_base_most_significant():
    tok = KmerTokenizer(3)
    assert list(tok.encode("AAAACTTTT")) == [0, 0 * 16 + 1 * 4 + 3, 63]
    assert tok.vocab_size == 64 + 6 and tok.n_id == 64


def test_iupac_ambiguity_codes_map_to_n():
    tok = NucleotideTokenizer()
    assert set(tok.encode("RYSWKMBDHVNryswkmbdhvn").tolist()) == {tok.n_id}


def test_uracil_reads_as_thymine():
    assert NucleotideTokenizer().decode(NucleotideTokenizer().encode("ACGU")) == "ACGT"


def test_bytes_outside_iupac_become_unk():
    tok = NucleotideTokenizer()
    assert tok.encode("A!C-").tolist() == [0, tok.unk_id, 1, tok.unk_id]


def test_kmer_holding_an_n_becomes_the_one_n_token():
    tok = KmerTokenizer(4)
    ids = tok.encode("ACGTACNTRCGTAC?T")
    assert ids.tolist()[1:3] == [tok.n_id, tok.n_id]
    assert ids[0] != tok.n_id and ids[3] == tok.unk_id


def test_lowercase_encodes_like_uppercase_and_soft_mask_keeps_case():
    seq = random_bases(300, "ACGTNacgtn")
    tok = KmerTokenizer(3)
    np.testing.assert_array_equal(tok.encode(seq), tok.encode(seq.upper()))
    np.testing.assert_array_equal(soft_mask(seq), np.array([c.islower() for c in seq]))


def test_token_mask_marks_a_kmer_when_any_base_is_soft_masked():
    tok = KmerTokenizer(3)
    mask = soft_mask("ACGtAAACGGGg")
    assert tok.token_mask(mask).tolist() == [False, True, False, True]


def test_encode_accepts_bytes_str_and_uint8_arrays():
    tok = KmerTokenizer(2)
    seq = random_bases(40)
    from_bytes = tok.encode(seq.encode())
    np.testing.assert_array_equal(from_bytes, tok.encode(seq))
    np.testing.assert_array_equal(from_bytes, tok.encode(np.frombuffer(seq.encode(), dtype=np.uint8)))


@pytest.mark.parametrize("tok", TOKENIZERS, ids=repr)
def test_token_index_points_at_a_token_that_holds_the_base(tok):
    seq = random_bases(tok.k + tok.stride * 30, "ACGT")
    ids = tok.encode(seq)
    for position in np.random.default_rng(tok.k).integers(0, len(seq) - tok.k, size=20):
        token = tok.token_index(int(position))
        token_start = token * tok.stride
        assert token_start <= position < token_start + tok.k
        assert tok.decode(ids[token : token + 1])[position - token_start] == seq[position]


def test_token_index_is_vectorised():
    np.testing.assert_array_equal(KmerTokenizer(6).token_index(np.array([0, 5, 6, 13])), [0, 0, 1, 2])


def test_trailing_bases_that_do_not_fill_a_kmer_are_dropped():
    tok = KmerTokenizer(4)
    assert len(tok.encode("ACGTACGTAC")) == tok.num_tokens(10) == 2


def test_decode_skips_special_tokens():
    tok = NucleotideTokenizer()
    assert tok.decode([tok.bos_id, 0, 1, tok.pad_id, 2, tok.eos_id]) == "ACG"


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="token ids"):
        KmerTokenizer(2).decode([16 + 6])


def test_stride_larger_than_k_is_refused():
    with pytest.raises(ValueError, match="stride"):
        KmerTokenizer(3, stride=4)


def test_make_tokenizer_gives_nucleotides_for_k1():
    assert isinstance(make_tokenizer(1), NucleotideTokenizer)
    assert make_tokenizer(6).k == 6

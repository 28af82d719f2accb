"""Where a region classifier reads: pooling over the region's own tokens, and both strands of a causal backbone.

Specifications: the region's token span is where its bases sit in the window on its reading strand; pooling over the
region equals pooling those states by hand; with both strands each base's vector is [its state reading the window,
its state reading the window's reverse complement], so a causal backbone's vector at the region depends on sequence
on both sides of it, and reading the reverse-complemented window swaps the two halves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genomenet.data.intervals import Interval, Region
from genomenet.data.region_windows import WindowSpec, region_span
from genomenet.data.tokenizers import make_tokenizer
from genomenet.model.heads import RegionClassifierNet
from genomenet.model.longnet import LongNet, LongNetConfig


def tiny_net(pooling: str = "mean", pool_over: str = "region", strands: str = "both", k: int = 1,
             seed: int = 0) -> tuple[RegionClassifierNet, object]:
    tokenizer = make_tokenizer(k)
    torch.manual_seed(seed)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=2, segment_lengths=[16, 32],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=True), 2, pooling, tokenizer.pad_id, pool_over=pool_over,
                              strands=strands, reverse_complement_ids=tokenizer.reverse_complement_ids).eval()
    return net, tokenizer


@pytest.mark.parametrize(("strand", "k", "expected"), [("+", 1, (49, 51)), ("-", 1, (50, 52)), ("+", 2, (24, 26)),
                                                       ("-", 2, (25, 26))])
def test_the_region_span_is_where_its_bases_sit_on_its_reading_strand(strand: str, k: int, expected) -> None:
    # a 2-base region in a 101-base window starting at 999: bases 49..50 forward, 50..51 once the window is reversed
    region = Region("chr", 1048, 1050, "site", strand)
    assert WindowSpec(101, "centered").interval(region).start == 999
    assert region_span(region, WindowSpec(101, "centered"), make_tokenizer(k)) == expected


def test_region_mode_spans_the_region_without_its_flanks() -> None:
    region = Region("chr", 500, 530, "x", "+")
    assert region_span(region, WindowSpec(64, "region", flank=10), make_tokenizer(1)) == (10, 40)
    assert region_span(region, WindowSpec(20, "region", flank=10), make_tokenizer(1)) == (0, 20)  # cropped: all


def test_pooling_over_the_region_averages_the_states_of_its_tokens_only() -> None:
    net, tokenizer = tiny_net(pool_over="region", strands="one")
    ids = torch.randint(0, 4, (2, 64))
    spans = torch.tensor([[10, 14], [30, 31]])
    with torch.no_grad():
        hidden = net.backbone.hidden_states(ids)
        expected = torch.stack([hidden[0, 10:14].mean(0), hidden[1, 30]])
        assert torch.allclose(net.features(ids, spans), expected, atol=1e-6)


def test_both_strands_pair_each_base_with_its_reverse_complement_state() -> None:
    net, tokenizer = tiny_net(pool_over="region", strands="both")
    ids = torch.randint(0, 4, (1, 64))
    rc = torch.from_numpy(tokenizer.reverse_complement(ids[0].numpy())).unsqueeze(0)
    with torch.no_grad():
        forward, reverse = net.backbone.hidden_states(ids), net.backbone.hidden_states(rc)
        got = net.features(ids, torch.tensor([[20, 21]]))
    assert torch.allclose(got, torch.cat([forward[0, 20], reverse[0, 63 - 20]])[None], atol=1e-6)
    # the reverse-complemented window, read at the same base, gives the two halves swapped
    with torch.no_grad():
        swapped = net.features(rc, torch.tensor([[63 - 20, 64 - 20]]))
    assert torch.allclose(swapped, torch.cat([got[0, 32:], got[0, :32]])[None], atol=1e-5)


def test_a_causal_backbone_read_on_both_strands_sees_both_sides_of_the_region() -> None:
    net, _ = tiny_net(pool_over="region", strands="both")
    one, _ = tiny_net(pool_over="region", strands="one")
    ids = torch.randint(0, 4, (1, 64))
    later = ids.clone()
    later[0, 30] = (later[0, 30] + 1) % 4  # a base after the region, inside its longest segment
    spans = torch.tensor([[20, 22]])
    with torch.no_grad():
        assert torch.equal(one.features(ids, spans), one.features(later, spans))   # one strand cannot see it
        assert not torch.allclose(net.features(ids, spans), net.features(later, spans))


def test_a_padded_window_is_reversed_within_its_real_tokens() -> None:
    net, tokenizer = tiny_net(pooling="mean", pool_over="window", strands="both")
    ids = torch.randint(0, 4, (2, 64))
    ids[1, 40:] = tokenizer.pad_id
    with torch.no_grad():
        short = net.features(ids[1:, :40], None)   # the same region without its padding
        padded = net.features(ids, None)[1:]
    assert torch.allclose(short, padded, atol=1e-5)


def test_kmer_tokens_are_reverse_complemented_as_kmers() -> None:
    net, tokenizer = tiny_net(pool_over="region", strands="both", k=2)
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), 64))
    ids = torch.from_numpy(tokenizer.encode(bases).astype(np.int64))[None]
    rc_bases = bases[::-1].translate(str.maketrans("ACGT", "TGCA"))
    rc_ids = torch.from_numpy(tokenizer.encode(rc_bases).astype(np.int64))[None]
    with torch.no_grad():
        reverse = net.backbone.hidden_states(rc_ids)
        got = net.features(ids, torch.tensor([[5, 6]]))
    assert torch.allclose(got[0, 32:], reverse[0, 31 - 5], atol=1e-6)


def test_a_region_shorter_than_one_kmer_still_reads_one_token_about_its_centre() -> None:
    # region mode, no flank, k = 3: a 2-base region used to give a window of 0 tokens (all padding, span (-1, 0))
    region, tokenizer = Region("chr", 1000, 1002, "x", "+"), make_tokenizer(3)
    spec = WindowSpec(30, "region", flank=0, min_length=3)
    assert spec.interval(region) == Interval("chr", 1000, 1003)
    assert region_span(region, spec, tokenizer) == (0, 1)
    assert WindowSpec(30, "region", flank=2, min_length=3).interval(region) == Interval("chr", 998, 1004)  # as before

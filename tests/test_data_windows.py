"""Windows, samplers and GenomeDataModule: splits, N filter, augmentation, determinism, DDP and sequence parallel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import DMEL

from genomenet.data.cache import prepare
from genomenet.data.datamodule import GenomeDataModule, split_regions
from genomenet.data.intervals import Interval
from genomenet.data.tokenizers import KmerTokenizer, NucleotideTokenizer
from genomenet.data.windows import GenomeWindows, WindowSampler
from genomenet.errors import ConfigError

DMEL_NAME = "NC_004353.4:1100001-1300000"
N_RUN = (100_662, 117_662)


def windows(genome, **kwargs) -> GenomeWindows:
    defaults = dict(regions=[Interval(DMEL_NAME, 0, 200_000)], context_length=1000, tokenizer=NucleotideTokenizer())
    return GenomeWindows(genome, **{**defaults, **kwargs})


def module(session_cache, **kwargs) -> GenomeDataModule:
    defaults = dict(fasta=str(DMEL), context_length=512, batch_size=4, cache_dir=str(session_cache))
    return GenomeDataModule(**{**defaults, **kwargs})


def test_window_tokens_are_the_cached_bases(dmel):
    ds = windows(dmel, sampling="random", seed=int(np.random.default_rng(1).integers(1 << 30)))
    item = ds[3]
    expected = NucleotideTokenizer().encode(dmel.sequence(item["chrom"], item["start"], item["start"] + 1000))
    np.testing.assert_array_equal(item["input_ids"].numpy(), expected)


def test_soft_mask_of_a_window_is_the_lowercase_of_the_fasta(dmel):
    item = windows(dmel, sampling="tiled")[7]
    text = dmel.sequence(item["chrom"], item["start"], item["start"] + 1000)
    np.testing.assert_array_equal(item["soft_mask"].numpy(), [c.islower() for c in text])


def test_tiled_windows_skip_windows_over_the_n_fraction(dmel):
    ds = windows(dmel, sampling="tiled", max_n_fraction=0.1)
    starts = np.array([ds.locate(i)[1] for i in range(len(ds))])
    all_tiles = np.arange(0, 200_000, 1000)
    n_in_tile = np.clip(np.minimum(all_tiles + 1000, N_RUN[1]) - np.maximum(all_tiles, N_RUN[0]), 0, None)
    np.testing.assert_array_equal(starts, all_tiles[n_in_tile <= 100])
    assert len(starts) < 200


def test_random_windows_respect_max_n_fraction(dmel):
    ds = windows(dmel, sampling="random", max_n_fraction=0.05, seed=int(np.random.default_rng(2).integers(1 << 30)))
    for key in range(200):
        item = ds[key]
        assert np.count_nonzero(item["input_ids"].numpy() == 4) <= 50


def test_windows_stay_inside_their_regions(dmel):
    region = Interval(DMEL_NAME, 5_000, 9_000)
    ds = windows(dmel, regions=[region], sampling="random", seed=int(np.random.default_rng(3).integers(1 << 30)))
    starts = [ds[k]["start"] for k in range(100)]
    assert min(starts) >= 5_000 and max(starts) <= 8_000


def test_reverse_complement_augmentation_gives_the_reverse_strand(dmel):
    ds = windows(dmel, sampling="tiled", reverse_complement_prob=1.0)
    tok = NucleotideTokenizer()
    item = ds[0]
    forward = tok.encode(dmel.sequence(item["chrom"], item["start"], item["start"] + 1000))
    assert item["reverse"]
    np.testing.assert_array_equal(item["input_ids"].numpy(), tok.reverse_complement(forward))


def test_reverse_complement_probability_is_respected(dmel):
    ds = windows(dmel, sampling="random", reverse_complement_prob=0.3, seed=int(np.random.default_rng(4).integers(99)))
    fraction = np.mean([ds[k]["reverse"] for k in range(400)])
    assert 0.2 < fraction < 0.4


def test_same_seed_same_windows_other_seed_other_windows(dmel):
    a, b, c = (windows(dmel, sampling="random", seed=s, reverse_complement_prob=0.5) for s in (1, 1, 2))
    assert [a[k]["start"] for k in range(20)] == [b[k]["start"] for k in range(20)]
    assert [a[k]["start"] for k in range(20)] != [c[k]["start"] for k in range(20)]


def test_kmer_windows_have_context_over_k_tokens(dmel):
    ds = windows(dmel, tokenizer=KmerTokenizer(4), context_length=1000)
    assert ds[0]["input_ids"].shape == (250,) and ds[0]["soft_mask"].shape == (250,)


def test_sequence_parallel_slices_concatenate_to_the_whole_window(dmel):
    whole = windows(dmel, sampling="random", reverse_complement_prob=0.5, seed=5)
    parts = [windows(dmel, sampling="random", reverse_complement_prob=0.5, seed=5, sequence_parallel_rank=j,
                     sequence_parallel_size=4) for j in range(4)]
    for key in range(5):
        joined = torch.cat([p[key]["input_ids"] for p in parts])
        assert torch.equal(joined, whole[key]["input_ids"])
        assert {p[key]["start"] for p in parts} == {whole[key]["start"]}


def test_sampler_gives_each_rank_distinct_keys_covering_the_epoch(dmel):
    ds = windows(dmel, sampling="tiled")
    per_rank = [list(WindowSampler(ds, shuffle=True, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    flat = sum(per_rank, [])
    assert len({len(k) for k in per_rank}) == 1
    assert {k % len(ds) for k in flat} == set(range(len(ds)))
    assert len(set(per_rank[0]) & set(per_rank[1])) == 0


@pytest.mark.parametrize("shuffle", [False, True])
def test_evaluation_sampler_deals_each_tile_once_over_the_ranks(dmel, shuffle: bool):
    ds = windows(dmel, sampling="tiled", regions=[Interval(DMEL_NAME, 0, 10_000)])
    assert len(ds) == 10
    samplers = [WindowSampler(ds, shuffle=shuffle, seed=5, num_replicas=3, rank=r, even=False) for r in range(3)]
    per_rank = [list(s) for s in samplers]
    assert [len(k) for k in per_rank] == [len(s) for s in samplers] == [4, 3, 3]
    assert sorted(k % len(ds) for k in sum(per_rank, [])) == list(range(10))
    capped = [list(WindowSampler(ds, 25, shuffle=shuffle, num_replicas=3, rank=r, even=False)) for r in range(3)]
    assert sorted(k % len(ds) for k in sum(capped, [])) == list(range(10))  # more samples than tiles: each once
    padded = [list(WindowSampler(ds, shuffle=shuffle, seed=5, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(k) for k in padded] == [4, 4, 4]  # training: the same number of steps on every rank


def test_datamodule_pads_training_keys_but_not_evaluation_keys(session_cache, monkeypatch):
    dm = module(session_cache, context_length=1000, batch_size=1, val_fraction=0.05, sampling="tiled")
    monkeypatch.setattr(dm, "_ranks", lambda: (1, 3, 0))  # data-parallel rank 1 of 3
    assert len(dm.dataset("val")) == 10
    assert len(dm.dataloader("val")) == 3 and len(dm.dataloader("train")) == math.ceil(len(dm.dataset("train")) / 3)
    assert len(dm.dataloader("val", every_rank=True)) == 10  # the report on rank 0 scores every window


def test_sampler_epochs_differ_and_repeat_under_seed(dmel):
    ds = windows(dmel, sampling="random")
    sampler = WindowSampler(ds, samples_per_epoch=50, seed=0)
    first = [ds.locate(k) for k in sampler]
    sampler.set_epoch(1)
    second = [ds.locate(k) for k in sampler]
    sampler.set_epoch(0)
    assert first != second and [ds.locate(k) for k in sampler] == first


def test_split_by_tail_fraction_trains_on_the_head_and_validates_on_the_tail(dmel):
    regions = split_regions(dmel, val_fraction=0.1)
    assert regions["train"] == [Interval(DMEL_NAME, 0, 180_000)]
    assert regions["val"] == [Interval(DMEL_NAME, 180_000, 200_000)] and regions["test"] == []


def test_held_out_bed_intervals_are_cut_out_of_training(dmel, tmp_path):
    bed = tmp_path / "val.bed"
    bed.write_text(f"{DMEL_NAME}\t1000\t2000\n{DMEL_NAME}\t50000\t60000\n")
    regions = split_regions(dmel, val_intervals=str(bed), test_fraction=0.25)
    assert regions["train"] == [Interval(DMEL_NAME, 0, 1000), Interval(DMEL_NAME, 2000, 50000),
                                Interval(DMEL_NAME, 60000, 150000)]
    assert regions["test"] == [Interval(DMEL_NAME, 150000, 200000)]


def test_held_out_chromosomes_are_not_trained_on(dmel):
    regions = split_regions(dmel, val_chromosomes=[DMEL_NAME])
    assert regions["train"] == [] and regions["val"] == [Interval(DMEL_NAME, 0, 200_000)]


def test_datamodule_batches_have_the_documented_keys_and_types(session_cache):
    dm = module(session_cache, val_fraction=0.2, kmer_size=2, tokenizer="kmer", samples_per_epoch=8)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape == (4, 256)
    assert batch["soft_mask"].dtype == torch.bool and batch["soft_mask"].shape == (4, 256)
    assert batch["start"].dtype == torch.long and len(batch["chrom"]) == 4
    assert int(batch["input_ids"].max()) < dm.tokenizer.vocab_size
    val = list(dm.val_dataloader())
    assert all(s >= 160_000 for b in val for s in b["start"].tolist())


def test_datamodule_with_workers_gives_the_same_batches_as_without(session_cache):
    kwargs = dict(samples_per_epoch=16, reverse_complement_prob=0.5, seed=11)
    serial = [b["input_ids"] for b in module(session_cache, **kwargs).train_dataloader()]
    parallel = [b["input_ids"] for b in module(session_cache, num_workers=2, **kwargs).train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_datamodule_deals_distinct_windows_to_ranks(session_cache, monkeypatch):
    keys = []
    for rank in range(2):
        monkeypatch.setattr("torch.distributed.is_initialized", lambda: True)
        monkeypatch.setattr("torch.distributed.get_rank", lambda r=rank: r)
        monkeypatch.setattr("torch.distributed.get_world_size", lambda: 2)
        loader = module(session_cache, sampling="tiled").train_dataloader()
        assert loader.sampler.num_replicas == 2 and loader.sampler.rank == rank
        keys.append(set(loader.sampler))
    assert keys[0].isdisjoint(keys[1])


def test_empty_split_is_a_clear_error(session_cache):
    with pytest.raises(ValueError, match="val split is empty"):
        module(session_cache).val_dataloader()


def test_random_windows_are_found_in_a_region_that_is_mostly_n(write_fasta, cache_dir):
    # 5% of the starts are usable: 100 rejection draws over the whole region failed most of the time
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), 1_500))
    genome = prepare(write_fasta(f">m\n{'N' * 30_000}{bases}\n".encode()), cache_dir)
    ds = GenomeWindows(genome, [Interval("m", 0, 31_500)], 256, NucleotideTokenizer(), sampling="random",
                       max_n_fraction=0.05, seed=0)
    starts = np.array([ds[key]["start"] for key in range(300)])
    assert starts.min() >= 30_000 - 12 and starts.max() <= 31_500 - 256
    assert len(np.unique(starts)) > 150   # spread over the usable starts, not one repeated window


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"regions": [Interval(DMEL_NAME, 0, 500)]}, "val: no region of the split holds a whole window of 1000 bases"),
    ({"regions": [Interval(DMEL_NAME, 101_000, 117_000)], "sampling": "tiled"}, "val: every window has more than"),
])
def test_a_split_without_a_usable_window_is_an_error_naming_the_fasta(dmel, kwargs: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said) as raised:
        windows(dmel, name="val", **kwargs)
    assert str(raised.value).startswith(f"{dmel.source['path']}: ")

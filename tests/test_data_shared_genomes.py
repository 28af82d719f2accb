"""Whole real chromosomes from ../shared/data (skipped where absent), real DDP ranks, and a Lightning fit."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import DMEL, SHARED_GENOMES

from genomenet.data.cache import prepare
from genomenet.data.datamodule import GenomeDataModule

CHR20 = SHARED_GENOMES / "grch37_chr20.fa.gz"
TAIR10 = SHARED_GENOMES / "tair10_chr1.fna.gz"
needs = lambda path: pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


@pytest.mark.slow
@needs(CHR20)
def test_chr20_prepares_whole_with_its_long_n_runs(cache_dir):
    genome = prepare(CHR20, cache_dir)
    assert genome.lengths == {"20": 63_025_520}
    runs = genome.chromosome("20").n_runs
    assert runs[0].tolist() == [0, 60_000] and (runs[:, 1] - runs[:, 0]).max() > 1_000_000  # telomere, centromere
    assert genome.sequence("20", 60_000, 60_010).upper() == genome.fasta()["20"][60_000:60_010].seq.upper()


@pytest.mark.slow
@needs(TAIR10)
def test_tair10_chr1_soft_mask_count_matches_the_text_and_splits_90_10(cache_dir):
    genome = prepare(TAIR10, cache_dir)
    (name,) = genome.names
    record = genome.fasta()[name]
    pieces = (record[s : min(s + 4_000_000, len(record))].seq for s in range(0, len(record), 4_000_000))
    lowercase = sum(sum(map(str.islower, piece)) for piece in pieces)
    assert genome.chromosome(name).soft_masked == lowercase > 0.15 * genome.lengths[name]  # 22.0%
    dm = GenomeDataModule(str(TAIR10), context_length=4096, val_fraction=0.1, cache_dir=str(cache_dir))
    dm.setup("fit")
    cut = int(genome.lengths[name] * 0.9)
    assert dm.regions["train"][-1].end == cut == dm.regions["val"][0].start


def _ddp_worker(rank: int, world: int, init_file: str, cache: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    dm = GenomeDataModule(str(DMEL), context_length=256, batch_size=4, samples_per_epoch=64, cache_dir=cache,
                          sequence_parallel_size=2)
    dm.prepare_data() if rank == 0 else None
    torch.distributed.barrier()
    loader = dm.train_dataloader()
    batch = torch.cat([b["input_ids"] for b in loader])
    starts = torch.cat([b["start"] for b in loader])
    torch.save({"ids": batch, "starts": starts, "sp_rank": dm._ranks()[2]}, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_read_distinct_windows_and_sequence_groups_share_them(tmp_path):
    world = 4  # 2 data-parallel x 2 sequence-parallel
    torch.multiprocessing.spawn(_ddp_worker, args=(world, str(tmp_path / "init"), str(tmp_path / "cache"),
                                                   str(tmp_path)), nprocs=world)
    got = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    assert torch.equal(got[0]["starts"], got[1]["starts"]) and torch.equal(got[2]["starts"], got[3]["starts"])
    assert set(got[0]["starts"].tolist()).isdisjoint(got[2]["starts"].tolist())
    assert got[0]["ids"].shape == (32, 128) and [g["sp_rank"] for g in got] == [0, 1, 0, 1]


@pytest.mark.slow
def test_lightning_fit_sees_new_windows_each_epoch(tmp_path):
    import lightning as L

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[list[int]] = []

        def on_train_epoch_start(self):
            self.seen.append([])

        def training_step(self, batch, _):
            self.seen[-1] += batch["start"].tolist()
            return (self.weight * batch["input_ids"].float().mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    dm = GenomeDataModule(str(DMEL), context_length=512, batch_size=4, samples_per_epoch=16, num_workers=1,
                          cache_dir=str(tmp_path / "cache"), reverse_complement_prob=0.5)
    model = Recorder()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=os.fspath(tmp_path))
    trainer.fit(model, datamodule=dm)
    assert [len(s) for s in model.seen] == [16, 16] and model.seen[0] != model.seen[1]
    assert np.all(np.array(model.seen) < 200_000)

"""`genomenet predict`: held-out windows in, one TSV row per window out."""

from types import SimpleNamespace

import torch

from genomenet.data.datamodule import GenomeDataModule
from genomenet.training.callbacks import WindowScoresWriter


def test_predict_windows_are_the_test_split_else_the_validation_split(tmp_path):
    with_test = GenomeDataModule("data/lambda_phage.fa.gz", context_length=1000, val_fraction=0.1, test_fraction=0.1,
                                 cache_dir=str(tmp_path))
    without_test = GenomeDataModule("data/lambda_phage.fa.gz", context_length=1000, val_fraction=0.1,
                                    cache_dir=str(tmp_path))
    first = next(iter(with_test.predict_dataloader()))
    assert int(first["start"][0]) == with_test.regions["test"][0].start
    first = next(iter(without_test.predict_dataloader()))
    assert int(first["start"][0]) == without_test.regions["val"][0].start


def test_window_scores_are_written_one_row_per_window(tmp_path):
    trainer = SimpleNamespace(log_dir=str(tmp_path), default_root_dir=str(tmp_path), world_size=1, global_rank=0)
    batches = [{"chrom": ["chr1", "chr1"], "start": torch.tensor([0, 100]), "end": torch.tensor([100, 200]),
                "bits_per_base": torch.tensor([1.5, 1.25])},
               {"chrom": ["chr2"], "start": torch.tensor([7]), "end": torch.tensor([107]),
                "bits_per_base": torch.tensor([2.0])}]
    WindowScoresWriter().write_on_epoch_end(trainer, None, batches, [])
    lines = (tmp_path / "predictions.tsv").read_text().splitlines()
    assert lines == ["chrom\tstart\tend\tbits_per_base", "chr1\t0\t100\t1.5000", "chr1\t100\t200\t1.2500",
                     "chr2\t7\t107\t2.0000"]
    assert not list(tmp_path.glob("*.partial"))

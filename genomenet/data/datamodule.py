"""`GenomeDataModule`: a FASTA, split into train / val / test regions, served as batches of token windows.

A batch is a dict (see `genomenet.data.windows.collate_windows`):

| key | type | meaning |
|---|---|---|
| `input_ids` | LongTensor (b, n) | token ids (tokenizers.py); n = tokens per window or per sequence-parallel slice |
| `soft_mask` | BoolTensor (b, n) | token covers a soft-masked (lowercase) base |
| `chrom` | list[str] (b) | record name |
| `start` | LongTensor (b) | 0-based start of the whole window on the forward strand |
| `reverse` | BoolTensor (b) | window was reverse-complemented (augmentation) |

Splits: training gets `train_chromosomes` (default: every record not named for val or test); val and test get their
chromosomes, their BED intervals and a tail fraction of every training chromosome (`val_fraction`: train on the
first 90% of chr1, validate on the last 10%); whatever val or test holds is cut out of training.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch.distributed as dist
from torch.utils.data import DataLoader

from genomenet.data.cache import PreparedGenome, prepare
from genomenet.data.intervals import Interval, merge, read_bed, subtract
from genomenet.data.tokenizers import KmerTokenizer, make_tokenizer
from genomenet.data.windows import GenomeWindows, WindowSampler, collate_windows
from genomenet.errors import ConfigError

Split = Literal["train", "val", "test"]


class GenomeDataModule(L.LightningDataModule):
    """Windows of a prepared genome for fit / validate / test; prepares the cache on first use."""

    def __init__(
        self,
        fasta: str,
        context_length: int = 1024,
        batch_size: int = 8,
        tokenizer: Literal["nucleotide", "kmer"] = "nucleotide",
        kmer_size: int = 1,
        kmer_stride: int | None = None,
        train_chromosomes: list[str] | None = None,
        val_chromosomes: list[str] | None = None,
        test_chromosomes: list[str] | None = None,
        val_intervals: str | None = None,
        test_intervals: str | None = None,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        sampling: Literal["random", "tiled"] = "random",
        max_n_fraction: float = 0.1,
        reverse_complement_prob: float = 0.0,
        seed: int = 0,
        num_workers: int = 0,
        samples_per_epoch: int | None = None,
        val_samples: int | None = None,
        cache_dir: str | None = None,
        sequence_parallel_size: int = 1,
    ):
        """
        Args:
            fasta: FASTA file (plain, gzip or bgzip); prepared into the cache on first use.
            context_length: bases per window (tokens = bases / k for non-overlapping k-mers).
            batch_size: windows per batch, per data-parallel rank.
            tokenizer: "nucleotide" (one token per base) or "kmer" (`kmer_size` bases per token).
            kmer_size: k for the k-mer tokenizer; 1 is the nucleotide tokenizer.
            kmer_stride: bases between k-mer starts; must be k (the default): overlapping k-mers would put part
                of each target in the model's input, and bits per base would be counted per token.
            train_chromosomes: records to train on; default every record not in val/test_chromosomes.
            val_chromosomes: whole records held out for validation.
            test_chromosomes: whole records held out for testing.
            val_intervals: BED file of intervals held out for validation (cut out of training).
            test_intervals: BED file of intervals held out for testing (cut out of training).
            val_fraction: validate on this tail fraction of every training record (0.1: the last 10%).
            test_fraction: test on this tail fraction of every training record (after the val tail).
            sampling: training windows drawn at "random" starts, or "tiled" (non-overlapping, shuffled);
                validation and test are always tiled, in genome order.
            max_n_fraction: skip windows with a larger fraction of N (unknown) bases.
            reverse_complement_prob: probability of reverse-complementing a training window (augmentation).
            seed: seeds window draws, shuffles and augmentation; same seed, same batches.
            num_workers: DataLoader worker processes (each reopens the memory maps).
            samples_per_epoch: training windows per epoch over all ranks; default one per tile of the training
                regions (tiled) or their length / context_length (random).
            val_samples: validation windows per evaluation; default every tile.
            cache_dir: prepared-genome cache; default $GENOMENET_CACHE or ~/.cache/genomenet.
            sequence_parallel_size: ranks that share one window, each taking a contiguous slice of its tokens;
                consecutive global ranks form a group (the inner dimension of a (dp, sp) device mesh).
        """
        super().__init__()
        self.save_hyperparameters()
        self.fasta, self.context_length, self.batch_size = fasta, context_length, batch_size
        self.train_chromosomes, self.val_chromosomes = train_chromosomes, val_chromosomes
        self.test_chromosomes, self.val_intervals, self.test_intervals = test_chromosomes, val_intervals, test_intervals
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.sampling, self.max_n_fraction, self.rc_prob = sampling, max_n_fraction, reverse_complement_prob
        self.seed, self.num_workers, self.cache_dir = seed, num_workers, cache_dir
        self.samples_per_epoch, self.val_samples, self.sp_size = samples_per_epoch, val_samples, sequence_parallel_size
        self.tokenizer: KmerTokenizer = _tokenizer(tokenizer, kmer_size, kmer_stride)
        self._check_numbers()
        self.genome: PreparedGenome | None = None
        self.regions: dict[str, list[Interval]] = {}

    def _check_numbers(self) -> None:
        if self.context_length < 1 or self.batch_size < 1:
            raise ConfigError("context_length and batch_size must be >= 1")
        fractions = (self.val_fraction, self.test_fraction)
        if not (min(fractions) >= 0 and sum(fractions) < 1):
            raise ConfigError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
        if not 0 <= self.rc_prob <= 1 or not 0 <= self.max_n_fraction <= 1:
            raise ConfigError("reverse_complement_prob and max_n_fraction must be in [0, 1]")
        k, stride = self.tokenizer.k, self.tokenizer.stride
        leftover = (self.context_length - k) % stride if self.context_length >= k else self.context_length
        if leftover:   # the tokenizer would silently drop the window's last bases
            fits = self.context_length - leftover if self.context_length >= k else k
            raise ConfigError(f"data.context_length={self.context_length} is not a whole number of k-mer tokens "
                              f"(kmer_size {k}, stride {stride}): the last {leftover} base(s) of every window would "
                              f"be dropped; use {fits} or {fits + stride}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers} must be >= 0 (0: load in the main process)")
        for option in ("samples_per_epoch", "val_samples"):
            if getattr(self, option) is not None and getattr(self, option) < 1:
                raise ConfigError(f"data.{option}={getattr(self, option)} must be >= 1 (leave it unset for the "
                                  "default)")

    # lifecycle ----------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the cache once per node (Lightning calls this on local rank 0 only)."""
        prepare(self.fasta, self.cache_dir, progress=True)

    def setup(self, stage: str | None = None) -> None:
        """Open the prepared genome (preparing it if `prepare_data` was skipped) and compute the split regions."""
        if self.genome is None:
            self.genome = prepare(self.fasta, self.cache_dir)
            self.regions = split_regions(self.genome, **self._split_args())

    def _split_args(self) -> dict:
        return {
            "train_chromosomes": self.train_chromosomes, "val_chromosomes": self.val_chromosomes,
            "test_chromosomes": self.test_chromosomes, "val_intervals": self.val_intervals,
            "test_intervals": self.test_intervals, "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }

    # datasets and loaders -----------------------------------------------------------------------------------
    def dataset(self, split: Split) -> GenomeWindows:
        """The windows of a split, for this rank's sequence-parallel slice."""
        self.setup()
        dp_rank, dp_size, sp_rank = self._ranks()
        train = split == "train"
        return GenomeWindows(
            self.genome, self.regions[split], self.context_length, self.tokenizer,
            sampling=self.sampling if train else "tiled", max_n_fraction=self.max_n_fraction,
            reverse_complement_prob=self.rc_prob if train else 0.0, seed=self.seed + {"train": 0, "val": 1,
            "test": 2}[split], sequence_parallel_rank=sp_rank, sequence_parallel_size=self.sp_size, name=split,
        )

    def dataloader(self, split: Split, every_rank: bool = False) -> DataLoader:
        """Batches of a split for this data-parallel rank; with `every_rank`, every window of the split (what one
        process scores: the report after a distributed fit runs on rank 0 alone)."""
        self.setup()
        if not self.regions[split]:
            raise ConfigError(f"the {split} split is empty: name {split} chromosomes, intervals or a fraction")
        dataset = self.dataset(split)
        dp_rank, dp_size, _ = (0, 1, 0) if every_rank else self._ranks()
        train = split == "train"
        samples = self.samples_per_epoch if train else self.val_samples
        if train and samples is None and self.sampling == "random":
            samples = max(1, len(dataset) // self.context_length)
        sampler = WindowSampler(dataset, samples, shuffle=train, seed=dataset.seed, num_replicas=dp_size, rank=dp_rank,
                                even=train)  # evaluation: each window once over all ranks
        loader = ResumableDataLoader if train else DataLoader
        return loader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            collate_fn=collate_windows, drop_last=train, persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        loader = self.dataloader("train")
        if self.trainer is not None:   # count what the loop finished, not what the prefetcher has fetched
            progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
            loader.trained_batches = lambda: progress.processed
        return loader

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        """Tiled windows of the held-out regions: the test split if it has any, else the validation split."""
        self.setup()
        return self.dataloader("test" if self.regions["test"] else "val")

    def _ranks(self) -> tuple[int, int, int]:
        """(data-parallel rank, data-parallel size, sequence-parallel rank) from the default process group."""
        rank, world = (0, 1)
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        if world % self.sp_size:
            raise ConfigError(f"world size {world} is not a multiple of sequence_parallel_size {self.sp_size}")
        return rank // self.sp_size, world // self.sp_size, rank % self.sp_size


class ResumableDataLoader(DataLoader):
    """The training loader, resumable mid-epoch: Lightning stores ``state_dict()`` in its checkpoints and calls
    ``load_state_dict()`` before the interrupted epoch resumes; the sampler then skips the windows of the batches
    already trained on, so the resumed run sees exactly what an uninterrupted one would."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trained_batches = lambda: 0  # set by GenomeDataModule: batches of this epoch the loop has finished

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.trained_batches())}

    def load_state_dict(self, state: dict) -> None:
        # the sampler applies it when its epoch's keys are drawn (after Lightning has set the epoch)
        if state["batches"] < len(self):
            self.sampler.resume_at = (state["epoch"], state["batches"] * self.batch_size)


def _tokenizer(name: str, kmer_size: int, stride: int | None) -> KmerTokenizer:
    if name not in ("nucleotide", "kmer"):
        raise ConfigError(f"tokenizer must be 'nucleotide' or 'kmer', got {name!r}")
    if name == "nucleotide" and kmer_size != 1:
        raise ConfigError(f"tokenizer 'nucleotide' takes kmer_size 1, got {kmer_size}; use tokenizer: kmer")
    if stride is not None and 1 <= stride < kmer_size:
        raise ConfigError(
            f"data.kmer_stride={stride} < kmer_size={kmer_size} (overlapping k-mers) is not supported for "
            "language-model training: each token would share bases with its neighbours, so the model would see part "
            "of every target in its input and bits per base would be off by the overlap; leave data.kmer_stride "
            f"unset (non-overlapping, stride {kmer_size})"
        )
    try:
        return make_tokenizer(kmer_size, stride)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def split_regions(
    genome: PreparedGenome,
    train_chromosomes: list[str] | None = None,
    val_chromosomes: list[str] | None = None,
    test_chromosomes: list[str] | None = None,
    val_intervals: str | None = None,
    test_intervals: str | None = None,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
) -> dict[str, list[Interval]]:
    """Train / val / test regions; held-out regions are cut out of training, val and test must not overlap."""
    lengths = genome.lengths
    for option, names in (("train_chromosomes", train_chromosomes), ("val_chromosomes", val_chromosomes),
                          ("test_chromosomes", test_chromosomes)):
        _check_names(genome, option, names or [])
    held = set(val_chromosomes or []) | set(test_chromosomes or [])
    train_names = train_chromosomes if train_chromosomes is not None else [n for n in lengths if n not in held]
    whole = lambda names: [Interval(n, 0, lengths[n]) for n in names or []]
    tails = {"val": [], "test": []}
    for name in train_names:
        val_start = int(lengths[name] * (1 - val_fraction - test_fraction))
        test_start = int(lengths[name] * (1 - test_fraction))
        tails["val"] += [Interval(name, val_start, test_start)] if val_fraction else []
        tails["test"] += [Interval(name, test_start, lengths[name])] if test_fraction else []
    val = merge(whole(val_chromosomes) + tails["val"] + _bed(val_intervals, lengths))
    test = merge(whole(test_chromosomes) + tails["test"] + _bed(test_intervals, lengths))
    if subtract(val, test) != val:
        raise ConfigError("validation and test regions overlap; give them disjoint chromosomes or intervals")
    return {"train": subtract(whole(train_names), val + test), "val": val, "test": test}


def _check_names(genome: PreparedGenome, option: str, names: list[str]) -> None:
    for name in names:
        if name not in genome.chromosomes:
            raise ConfigError(
                f"{option}: chromosome '{name}' is not in {genome.source['path']} (it has "
                f"{', '.join(genome.names[:10])}{' ...' if len(genome.names) > 10 else ''})"
            )


def _bed(path: str | None, lengths: dict[str, int]) -> list[Interval]:
    return read_bed(path, lengths) if path else []

"""`TextDataModule`: byte windows of a text corpus; random windows for training, contiguous ones for evaluation."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genomenet.data.windows import WindowSampler
from genomenet.errors import ConfigError, InputFileError
from genomenet.text.corpus import SPLITS, ByteRange, TextCorpus, open_corpus
from genomenet.text.tokenizer import ByteTokenizer


def data_parallel_rank() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TextWindows(Dataset):
    """Windows of `context_length` bytes of one split: drawn at random starts (key-seeded), or tiled end to end.

    Tiled windows cover the split from its first byte; the bytes after the last whole window are left out.
    """

    def __init__(self, data: ByteRange, context_length: int, sampling: str, seed: int = 0) -> None:
        self.data, self.context_length, self.seed = data, context_length, seed
        self.num_tiles = data.length // context_length
        self.tiles = np.arange(self.num_tiles) * context_length if sampling == "tiled" else None
        self._bytes: np.ndarray | None = None   # mapped on first use, in the process that reads it

    def __len__(self) -> int:
        return self.num_tiles if self.tiles is not None else self.data.length - self.context_length + 1

    def start(self, key: int) -> int:
        if self.tiles is not None:
            return int(self.tiles[key % self.num_tiles])
        return int(np.random.default_rng([self.seed, key]).integers(0, self.data.length - self.context_length + 1))

    def __getitem__(self, key: int) -> dict:
        if self._bytes is None:
            self._bytes = self.data.array()
        start = self.start(int(key))
        window = np.asarray(self._bytes[start:start + self.context_length], dtype=np.int64)
        return {"input_ids": torch.from_numpy(window), "start": start}


class TextDataModule(L.LightningDataModule):
    """Byte-level text for the LongNet backbone (`genomenet fit --config configs/text_lm.yaml --data.path FILE`)."""

    def __init__(
        self,
        path: str,
        context_length: int = 1024,
        batch_size: int = 16,
        seed: int = 0,
        num_workers: int = 0,
        samples_per_epoch: int | None = None,
        val_samples: int | None = None,
        cache_dir: str | None = None,
        kmer_size: int = 1,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            path: a file of bytes (plain, or .gz / .bz2 / .xz / one-file .zip, unpacked once into the cache), split
                90M / 5M / 5M when it is enwik8 or text8 (100,000,000 bytes), else 90% / 5% / 5%; or a WikiText
                raw directory (wiki.train.raw, wiki.valid.raw, wiki.test.raw).
            context_length: bytes per training window.
            batch_size: windows per batch.
            seed: seeds the random training windows; same seed, same batches.
            num_workers: DataLoader worker processes.
            samples_per_epoch: training windows per epoch; default the training bytes / context_length.
            val_samples: validation windows per evaluation (contiguous, from the split's start); default all.
            cache_dir: where compressed corpora are unpacked; default $GENOMENET_CACHE or ~/.cache/genomenet.
            kmer_size: bytes per token; only 1 (the model's k-mer size is linked to it).
            sequence_parallel_size: only 1 for text.
        """
        super().__init__()
        self.save_hyperparameters()
        if context_length < 2 or batch_size < 1:
            raise ConfigError(f"data.context_length={context_length} must be >= 2 and data.batch_size={batch_size} "
                              ">= 1")
        if kmer_size != 1 or sequence_parallel_size != 1:
            raise ConfigError("text data reads one byte per token on one device: data.kmer_size and "
                              "data.sequence_parallel_size must be 1")
        self.path, self.context_length, self.batch_size = path, context_length, batch_size
        self.seed, self.num_workers, self.cache_dir = seed, num_workers, cache_dir
        self.samples_per_epoch, self.val_samples = samples_per_epoch, val_samples
        self.tokenizer = ByteTokenizer()
        self.corpus: TextCorpus | None = None

    def setup(self, stage: str | None = None) -> None:
        """Open the corpus and check that every split holds at least one window."""
        if self.corpus is not None:
            return
        corpus = open_corpus(self.path, self.cache_dir)
        for split in SPLITS:
            if corpus.splits[split].length < self.context_length:
                raise InputFileError(
                    f"data.path: {corpus.source}: its {split} split has {corpus.splits[split].length:,} bytes, fewer "
                    f"than one window of data.context_length={self.context_length} ({corpus.convention}): give "
                    "a longer text or a shorter context")
        self.corpus = corpus

    def summary(self) -> str:
        self.setup()
        return self.corpus.summary()

    def split_bytes(self, split: str) -> np.ndarray:
        """All bytes of a split (memory-mapped)."""
        self.setup()
        return self.corpus.splits[split].array()

    def dataloader(self, split: str) -> DataLoader:
        self.setup()
        train = split == "train"
        dataset = TextWindows(self.corpus.splits[split], self.context_length, "random" if train else "tiled",
                              seed=self.seed + SPLITS.index(split))
        samples = self.samples_per_epoch if train else self.val_samples
        if train and samples is None:
            samples = max(1, self.corpus.splits[split].length // self.context_length)
        rank, world = data_parallel_rank()
        sampler = WindowSampler(dataset, samples, shuffle=False, seed=dataset.seed, num_replicas=world, rank=rank,
                                even=train)  # distinct windows per rank; evaluation: each window once
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          drop_last=train, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

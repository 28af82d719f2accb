"""`TextLM`: `GenomeLM` on bytes. Same backbone, objectives, optimiser and schedule; metrics in bits per byte."""

from __future__ import annotations

from torch import Tensor

from genomenet.errors import ConfigError
from genomenet.model.objectives import bits_per_base, perplexity
from genomenet.text.tokenizer import ByteTokenizer
from genomenet.training.module import GenomeLM


class TextLM(GenomeLM):
    """A LongNet (or dense / local attention baseline) language model of bytes; logs `*/bits_per_byte`."""

    alphabet = "bytes"

    @staticmethod
    def make_tokenizer(kmer_size: int) -> ByteTokenizer:
        if kmer_size != 1:
            raise ConfigError(f"a text model reads one byte per token, not model.kmer_size={kmer_size}")
        return ByteTokenizer()

    def log_metrics(self, stage: str, nll: Tensor, count: Tensor, prog_bar: bool = False) -> None:
        """Loss (nats per byte), bits per byte and perplexity of summed NLL over `count` bytes."""
        count = count.clamp_min(1)
        self.log(f"{stage}/loss", nll / count, prog_bar=False, sync_dist=stage != "train")
        self.log(f"{stage}/bits_per_byte", bits_per_base(nll, count, 1), prog_bar=prog_bar)
        self.log(f"{stage}/perplexity", perplexity(nll, count))

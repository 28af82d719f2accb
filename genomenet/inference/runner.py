"""Run a trained model over tiles of a genome: load it, pick the device and precision, batch the windows, and hand
back each tile's kept per-base outputs in genomic order.

The model is whatever `load_pretrained` reads (an exported directory or a training checkpoint). Windows that are all
N are not run; bases in N tokens are marked invalid, so commands can skip them (pooling) or leave them empty (tracks).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from genomenet.attention.module import apply_sequence_parallel
from genomenet.attention.sequence_parallel import all_gather_into
from genomenet.data.cache import PreparedGenome
from genomenet.data.tokenizers import KmerTokenizer, make_tokenizer, reverse_complement_packed
from genomenet.errors import ConfigError, InputFileError
from genomenet.inference.tiling import Tile, kept_bases
from genomenet.model.longnet import LongNet
from genomenet.model.pretrained import load_pretrained

BaseOutputs = Callable[[Tensor, Tensor], Tensor]
"""(input ids (b, n), real-token mask (b, n)) -> per-base outputs (b, n * k, c) in reading order, float32."""


def pick_device(device: str = "auto") -> torch.device:
    """'auto': this process's GPU under torchrun (LOCAL_RANK), else cuda:0 when available, else the CPU."""
    if device != "auto":
        try:
            chosen = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"--device {device!r}: not a device (use cpu, cuda, cuda:N or auto)") from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is available here")
        return chosen
    if torch.cuda.is_available():
        import os

        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype: 'auto' is bf16 on a GPU and full float32 on the CPU; '32' never autocasts."""
    if precision not in ("auto", "32", "bf16", "16"):
        raise ConfigError(f"--precision {precision!r}: choose auto, 32, bf16 or 16")
    if precision == "32" or (precision == "auto" and device.type != "cuda"):
        return None
    return torch.float16 if precision == "16" else torch.bfloat16


def weights_sha256(model: torch.nn.Module) -> str:
    """A checksum of the model's weights (names, shapes, dtypes and bytes), independent of the file they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass
class InferenceModel:
    """A trained model ready for inference: weights on `device`, eval mode, the tokenizer it was trained with."""

    model: LongNet
    tokenizer: KmerTokenizer
    device: torch.device
    dtype: torch.dtype | None
    batch_size: int = 8
    group: Any = None
    """A sequence-parallel process group: each window whose tokens split evenly over its ranks is split, each rank
    runs its chunk through `dilated_attention(..., group=)`, and the chunks' outputs are gathered on every rank."""

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "auto", batch_size: int = 8):
        if batch_size < 1:
            raise ConfigError(f"--batch-size {batch_size} must be >= 1")
        chosen = pick_device(device)
        dtype = autocast_dtype(chosen, precision)
        model = load_pretrained(path).to(chosen)
        if model.info.alphabet != "dna":
            raise ConfigError(f"--model {path}: a model of {model.info.alphabet}, not of DNA; genome commands need a "
                              "genome model")
        return cls(model, make_tokenizer(model.info.kmer_size), chosen, dtype, batch_size)

    @property
    def k(self) -> int:
        return self.tokenizer.k

    @property
    def causal(self) -> bool:
        return self.model.causal

    def default_window(self) -> int:
        """Bases per window: the training window when recorded, else the longest attention segment in bases."""
        info = self.model.info
        if info.context_length:
            return int(info.context_length)
        if self.model.cfg.attention == "dilated":
            return max(self.model.cfg.segment_lengths) * self.k
        raise ConfigError("this model does not record its training window and has dense attention: give --window")

    def start(self, group, window: int) -> None:
        """Get ready to run windows of `window` bases: split each over `group` from now on (None: one device), then
        run one warm-up window. The warm-up creates the attention's process groups on every rank at once (creating a
        process group involves every rank), and makes the first real window run like every later one: a process's
        first calls may take other code paths (thread pool start-up) and differ in the last bit, while a resumed
        run must recompute its first chunk exactly as the uninterrupted run did."""
        if group is not None:
            self._check_group(group, window)
        try:
            with torch.inference_mode(), self.autocast():
                self.hidden(torch.zeros(1, window // self.k, dtype=torch.long, device=self.device), None)
        except ValueError as err:  # a segment that cannot be split over the group
            if group is None:
                raise
            raise ConfigError(f"--sequence-parallel {dist.get_world_size(group)}: {err}") from None

    def _check_group(self, group, window: int) -> None:
        size = dist.get_world_size(group)
        if apply_sequence_parallel(self.model, None) == 0:
            raise ConfigError("--sequence-parallel needs a model with dilated attention; this one is dense")
        if (window // self.k) % size:
            raise ConfigError(f"--window {window} gives {window // self.k} tokens, not a multiple of "
                              f"--sequence-parallel {size}")
        self.group = group

    def hidden(self, ids: Tensor, padding: Tensor | None, layer: int | None = None) -> Tensor:
        """Hidden states (b, n, d) of whole windows (split over the sequence group when there is one)."""
        return self._whole(lambda x, pos: self.model.hidden_states(x, padding, pos, layer), ids, padding)

    def logits(self, ids: Tensor, padding: Tensor | None) -> Tensor:
        """Logits (b, n, vocab) of whole windows (split over the sequence group when there is one)."""
        return self._whole(lambda x, pos: self.model(x, padding, pos), ids, padding)

    def _whole(self, run: Callable[[Tensor, Tensor | None], Tensor], ids: Tensor, padding: Tensor | None) -> Tensor:
        if self.group is None or padding is not None or ids.shape[1] % dist.get_world_size(self.group):
            return run(ids, None)  # one device (short windows are padded, or do not split evenly: run them whole)
        return sequence_parallel_call(self.model, self.group, run, ids)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def sequence_parallel_call(model: LongNet, group, run, ids: Tensor) -> Tensor:
    """`run(chunk ids, global positions)` on this rank's chunk of each window, with the model's attention split over
    `group`; the ranks' outputs gathered back into whole windows (b, n, ...)."""
    size, rank = dist.get_world_size(group), dist.get_rank(group)
    b, n = ids.shape
    chunk = n // size
    positions = torch.arange(rank * chunk, (rank + 1) * chunk, device=ids.device)
    apply_sequence_parallel(model, group)
    try:
        local = run(ids[:, rank * chunk : (rank + 1) * chunk].contiguous(), positions).contiguous()  # (b, c, ...)
    finally:
        apply_sequence_parallel(model, None)
    gathered = local.new_empty((size * b, *local.shape[1:]))
    all_gather_into(gathered, local, group=group)                                   # (size * b, c, ...)
    return gathered.unflatten(0, (size, b)).movedim(0, 1).flatten(1, 2)              # (b, n, ...)


def tile_tokens(genome: PreparedGenome, tile: Tile, tokenizer: KmerTokenizer) -> np.ndarray:
    """Token ids (n,) of a tile's window, read on its strand."""
    packed = genome.window(tile.chrom, tile.start, tile.end)
    if tile.strand == "-":
        packed = reverse_complement_packed(packed)
    return tokenizer.encode_packed(np.array(packed)).astype(np.int64)


def run_tiles(
    runner: InferenceModel,
    genome: PreparedGenome,
    tiles: Iterable[Tile],
    outputs: BaseOutputs,
    channels: int,
) -> Iterator[tuple[Tile, np.ndarray, np.ndarray]]:
    """(tile, kept per-base outputs (m, channels) float32 in genomic order, kept real-base mask (m,)) per tile.

    Tiles are batched in the order given, padded on the right to the longest in the batch (the padding is masked
    for a bidirectional model; a causal one cannot see it). A window with no real token is not run: NaN outputs.
    """
    batch: list[tuple[Tile, np.ndarray]] = []
    for tile in tiles:
        batch.append((tile, tile_tokens(genome, tile, runner.tokenizer)))
        if len(batch) == runner.batch_size:
            yield from _run_batch(runner, batch, outputs, channels)
            batch = []
    if batch:
        yield from _run_batch(runner, batch, outputs, channels)


def _run_batch(runner: InferenceModel, batch: list, outputs: BaseOutputs, channels: int):
    tok, k = runner.tokenizer, runner.k
    real = [ids < tok.n_id for ids in (ids for _, ids in batch)]
    todo = [i for i, r in enumerate(real) if r.any()]
    results: dict[int, np.ndarray] = {}
    if todo:
        width = max(len(batch[i][1]) for i in todo)
        ids = torch.full((len(todo), width), tok.pad_id, dtype=torch.long)
        for row, i in enumerate(todo):
            ids[row, : len(batch[i][1])] = torch.from_numpy(batch[i][1])
        ids = ids.to(runner.device)
        with torch.inference_mode(), runner.autocast():
            out = outputs(ids, ids < tok.n_id).float().cpu().numpy()  # (b, width * k, c)
        results = {i: out[row, : len(batch[i][1]) * k] for row, i in enumerate(todo)}
    for i, (tile, ids) in enumerate(batch):
        per_base = results.get(i)
        if per_base is None:
            per_base = np.full((len(ids) * k, channels), np.nan, dtype=np.float32)
        mask = np.repeat(real[i], k)
        per_base = per_base[::-1] if tile.strand == "-" else per_base
        mask = mask[::-1] if tile.strand == "-" else mask
        yield tile, kept_bases(tile, per_base), kept_bases(tile, mask)


def hidden_outputs(runner: InferenceModel, layer: int | None = None) -> BaseOutputs:
    """Per-base hidden states: each base gets its token's vector (of `layer`; None: after the final norm)."""
    model, k, pad = runner.model, runner.k, runner.tokenizer.pad_id
    if layer is not None and not -1 <= layer <= model.cfg.n_layers:
        raise ConfigError(f"--layer {layer}: this model has layers 0..{model.cfg.n_layers} (-1: the last)")

    def outputs(ids: Tensor, real: Tensor) -> Tensor:
        padding = ids == pad
        hidden = runner.hidden(ids, padding if bool(padding.any()) else None, layer)
        return hidden.repeat_interleave(k, dim=1) if k > 1 else hidden

    return outputs


def check_model_path(path: str | Path) -> None:
    """A one-line error for a --model that is neither an exported directory nor a checkpoint file."""
    if not Path(path).exists():
        raise InputFileError(f"{path}: no such model directory or checkpoint file")

"""`GenomeLM`: the Lightning module that pretrains the backbone with a causal or masked LM objective."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import asdict, dataclass, replace
from typing import Literal

import lightning as L
import torch
from torch import Tensor
from torchmetrics import SumMetric

from genomenet.data.tokenizers import make_tokenizer
from genomenet.errors import ConfigError, InputFileError
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import (
    ObjectiveConfig,
    bits_per_base,
    causal_targets,
    mask_tokens,
    nll_sum_and_count,
    perplexity,
)
from genomenet.model.pretrained import PretrainedInfo, load_pretrained, read_checkpoint
from genomenet.training.strategy import chunk_first_tokens, global_sum


@dataclass
class OptimizerConfig:
    """AdamW with linear warm-up and cosine decay, stepped every optimizer step."""

    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.1
    """Decoupled weight decay on matrices (not on norms, biases or embeddings)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    warmup_steps: int = 100
    """Linear warm-up from 0 to lr over this many steps."""
    min_lr_ratio: float = 0.1
    """The cosine decays to lr * min_lr_ratio at the last step (decay_steps, or trainer.max_steps)."""
    decay_steps: int | None = None
    """Steps the warm-up and cosine span; default trainer.max_steps. More than max_steps ends the run part-way down
    the decay: phase 1 of a schedule that a second fit (model.init_weights) continues."""
    name: Literal["adamw", "sgd"] = "adamw"
    """adamw, or plain sgd (no momentum; what the distributed tests compare, since AdamW hides gradient scale)."""

    def __post_init__(self) -> None:   # found with the config, before training
        if self.decay_steps is not None and self.decay_steps < 1:
            raise ConfigError(f"model optimizer.decay_steps={self.decay_steps} must be >= 1")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"model optimizer: lr={self.lr} must be > 0, weight_decay={self.weight_decay} and "
                              f"warmup_steps={self.warmup_steps} >= 0, min_lr_ratio={self.min_lr_ratio} in [0, 1]")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"model optimizer.betas={tuple(self.betas)} must each be in [0, 1)")


def load_initial_weights(model: LongNet, path: str, kmer_size: int, alphabet: str = "dna") -> None:
    """Copy a trained backbone's weights into `model`; a one-line ConfigError when they cannot fit it."""
    try:
        trained = load_pretrained(path)
    except InputFileError as err:
        raise ConfigError(f"model init_weights: {err}") from None
    if trained.info.alphabet != alphabet:
        raise ConfigError(f"model init_weights: {path} is a model of {trained.info.alphabet}, this one reads "
                          f"{alphabet}")
    if trained.info.kmer_size != kmer_size:
        raise ConfigError(f"model init_weights: {path} was trained on {trained.info.kmer_size}-mer tokens, "
                          f"this model reads {kmer_size}-mers: set --data.kmer_size {trained.info.kmer_size}")
    want, have = model.state_dict(), trained.state_dict()
    for name in [*want, *sorted(have.keys() - want.keys())]:   # a one-line error, not load_state_dict's list
        needs, found = (tuple(d[name].shape) if name in d else "nothing" for d in (want, have))
        if needs != found:
            raise ConfigError(f"model init_weights: {path} does not fit this backbone ({name}: needs {needs}, "
                              f"has {found})")
    model.load_state_dict(have)


class LoadsClassPathCheckpoints:
    """For modules whose hyper-parameters `as_init_args` saves as class_path and init_args, or flat as plain data:
    Lightning's `load_from_checkpoint` passes a checkpoint's hyper-parameters to the class as they are, so it would
    drop class_path ones and silently build the default architecture (shape, attention) around the checkpoint's
    weights, and hand dictionaries where dataclasses belong. This passes the saved settings, typed, instead; keyword
    arguments given to the call still override them."""

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):  # noqa: ANN001, ANN206 - Lightning's signature
        saved = read_checkpoint(checkpoint_path, mmap=True).get("hyper_parameters", {})
        return super().load_from_checkpoint(checkpoint_path, *args, **{**checkpoint_init_args(cls, saved), **kwargs})


def checkpoint_init_args(cls: type, saved: dict) -> dict:
    """The keyword arguments that rebuild `cls` from hyper-parameters saved by `as_init_args`: dataclass settings
    (optimizer, backbone shape) as their dataclasses, and, where the backbone's shape and attention are saved, no
    `init_weights`: the checkpoint holds every weight, so it loads without the model it was started from."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if "class_path" in saved and saved["class_path"] != name:
        raise ConfigError(f"the checkpoint holds a {saved.get('class_path')}, not a {name}")
    hints = typing.get_type_hints(cls.__init__)
    kwargs = {}
    for key, value in saved.get("init_args", saved).items():
        hint = hints.get(key)
        if hint is None:
            continue   # a setting the class no longer takes
        kwargs[key] = hint(**value) if dataclasses.is_dataclass(hint) and isinstance(value, dict) else value
    if "backbone" in kwargs and "causal" in kwargs and "init_weights" in hints:
        kwargs["init_weights"] = None
    return kwargs


class GenomeLM(LoadsClassPathCheckpoints, L.LightningModule):
    """Pretrains a LongNet backbone on token windows; logs loss, bits per base, perplexity."""

    def __init__(
        self,
        backbone: LongNetConfig = LongNetConfig(),  # noqa: B008 - read-only defaults
        objective: ObjectiveConfig = ObjectiveConfig(),  # noqa: B008
        optimizer: OptimizerConfig = OptimizerConfig(),  # noqa: B008
        kmer_size: int = 1,
        sequence_parallel_size: int = 1,
        init_weights: str | None = None,
        context_length: int | None = None,
    ) -> None:
        """
        Args:
            backbone: Shape of the model (layers, width, heads, attention branches).
            objective: Causal or masked LM.
            optimizer: Learning rate schedule and AdamW settings.
            kmer_size: Bases per token; set from data.kmer_size (fixes the vocabulary and bits per base).
            sequence_parallel_size: Ranks that share one sequence (set from data.sequence_parallel_size); the CLI
                then trains with genomenet.training.strategy.SequenceParallelStrategy.
            init_weights: Start from these weights (an exported model directory or a training checkpoint), to
                fine-tune or to go on at a longer context; layers, width, heads and k-mer size must match, segment
                lengths and dilation rates may differ. `--ckpt_path` (resuming) takes precedence.
            context_length: Bases per training window; set from data.context_length and recorded in checkpoints and
                exported models, where inference (`genomenet embed`, `track`) takes it as its default window.
        """
        super().__init__()
        if sequence_parallel_size < 1:
            raise ConfigError(f"model sequence_parallel_size={sequence_parallel_size} must be >= 1")
        self.sequence_parallel_size = sequence_parallel_size
        self.sequence_group = None  # set by SequenceParallelStrategy: this rank then holds one chunk of each window
        self.tokenizer = self.make_tokenizer(kmer_size)
        backbone = resolve_vocab(backbone, self.tokenizer.vocab_size)
        self.info = PretrainedInfo(backbone, objective, kmer_size, context_length, self.alphabet)
        self.optim = optimizer
        self.model = LongNet(backbone, causal=objective.kind == "causal")
        if init_weights is not None:
            load_initial_weights(self.model, init_weights, kmer_size, self.alphabet)
        # the init arguments as plain data: checkpoints load with weights_only=True, and LightningCLI can re-parse them
        # (flat for GenomeLM, the CLI's default model; a subclass such as TextLM by its class_path, or `--ckpt_path`
        # would rebuild a GenomeLM from them)
        settings = {"backbone": asdict(backbone), "objective": asdict(objective), "optimizer": asdict(optimizer),
                    "kmer_size": kmer_size, "sequence_parallel_size": sequence_parallel_size,
                    "context_length": context_length}
        self.save_hyperparameters(settings if type(self) is GenomeLM else as_init_args(self, settings))
        self.val_nll, self.val_count = SumMetric(), SumMetric()

    alphabet = "dna"
    """What the token ids stand for (recorded in exported models): DNA k-mers here, bytes in `TextLM`."""

    @staticmethod
    def make_tokenizer(kmer_size: int):
        return make_tokenizer(kmer_size)

    @property
    def bases_per_token(self) -> int:
        return self.info.kmer_size

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.model(input_ids, key_padding_mask=self.padding(input_ids))

    def padding(self, input_ids: Tensor) -> Tensor | None:
        pad = input_ids == self.tokenizer.pad_id
        return pad if bool(pad.any()) else None

    def nll(self, input_ids: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(sum of NLL in nats, scored tokens) of one batch under the objective."""
        input_ids = input_ids.long()
        scorable = input_ids < self.tokenizer.n_id  # real k-mers: not N, padding or specials
        if self.info.objective.kind == "causal":
            inputs, targets = input_ids, self._causal_targets(input_ids)
        else:
            replacements = torch.arange(self.tokenizer.n_id, device=input_ids.device)
            inputs, targets = mask_tokens(
                input_ids,
                scorable,
                self.tokenizer.mask_id,
                replacements,
                self.info.objective.mask_probability,
                generator,
            )
        logits = self.model(inputs, key_padding_mask=self.padding(input_ids), positions=self._positions(inputs))
        return nll_sum_and_count(logits, targets)   # of this rank's chunk under sequence parallelism

    def _causal_targets(self, input_ids: Tensor) -> Tensor:
        """Next-token targets; a sequence-parallel chunk's last token predicts the next chunk's first token."""
        if self.sequence_group is None:
            return causal_targets(input_ids, input_ids < self.tokenizer.n_id)
        following = chunk_first_tokens(input_ids, self.sequence_group, self.tokenizer.pad_id)
        extended = torch.cat([input_ids, following], dim=1)
        return causal_targets(extended, extended < self.tokenizer.n_id)[:, :-1]

    def _positions(self, inputs: Tensor) -> Tensor | None:
        """Global token positions of this rank's chunk (None: 0..n-1 on one device)."""
        if self.sequence_group is None:
            return None
        n = inputs.shape[1]
        return torch.arange(n, device=inputs.device) + n * torch.distributed.get_rank(self.sequence_group)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        nll, count = self.nll(batch["input_ids"])
        if self.sequence_group is not None:
            # each rank holds a chunk: normalise by the window's token count; DDP then averages over all ranks,
            # so scale by the group size to get the mean over data-parallel replicas of each window's mean loss
            total = global_sum(count, self.sequence_group).clamp_min(1)
            self.log_metrics("train", global_sum(nll, self.sequence_group), total, prog_bar=True)
            return nll * self.sequence_parallel_size / total
        loss = nll / count.clamp_min(1)
        self.log_metrics("train", nll, count, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx)

    def _eval_step(self, batch: dict, batch_idx: int) -> None:
        generator = torch.Generator(batch["input_ids"].device).manual_seed(batch_idx)  # same masks every epoch
        nll, count = self.nll(batch["input_ids"], generator)
        self.val_nll.update(nll)
        self.val_count.update(count)

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def _log_eval(self, stage: str) -> None:
        nll, count = self.val_nll.compute(), self.val_count.compute()
        self.val_nll.reset()
        self.val_count.reset()
        if count > 0:
            self.log_metrics(stage, nll, count, prog_bar=stage == "val")

    def log_metrics(self, stage: str, nll: Tensor, count: Tensor, prog_bar: bool = False) -> None:
        """Loss (nats per token), bits per base and per-token perplexity of summed NLL over `count` tokens."""
        count = count.clamp_min(1)
        self.log(f"{stage}/loss", nll / count, prog_bar=False, sync_dist=stage != "train")
        self.log(f"{stage}/bits_per_base", bits_per_base(nll, count, self.bases_per_token), prog_bar=prog_bar)
        self.log(f"{stage}/perplexity", perplexity(nll, count))

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Bits per base of each window (causal: every token after the first; masked: 15% masked tokens)."""
        generator = torch.Generator(batch["input_ids"].device).manual_seed(batch_idx)
        out = [self.nll(ids[None], generator) for ids in batch["input_ids"]]
        bpb = torch.stack([bits_per_base(n, c.clamp_min(1), self.bases_per_token) for n, c in out])
        windows = {k: batch[k] for k in ("chrom", "start") if k in batch}
        if "start" in windows:
            windows["end"] = windows["start"] + batch["input_ids"].shape[1] * self.bases_per_token
        return windows | {"bits_per_base": bpb}

    def configure_optimizers(self) -> dict:
        decay = [p for p in self.model.parameters() if p.dim() >= 2 and p is not self.model.embed.weight]
        rest = [p for p in self.model.parameters() if not any(p is d for d in decay)]
        groups = [
            {"params": decay, "weight_decay": self.optim.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]
        if self.optim.name == "sgd":
            opt = torch.optim.SGD(groups, lr=self.optim.lr)
        else:
            opt = torch.optim.AdamW(groups, lr=self.optim.lr, betas=tuple(self.optim.betas))
        total = schedule_steps(self.optim, self.trainer.max_steps, lambda: self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(self.optim, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def as_init_args(module: L.LightningModule, args: dict) -> dict:
    """Hyper-parameters of a model that configs name by class_path: `fit --ckpt_path` hands a checkpoint's
    hyper-parameters to LightningCLI's parser as the model's configuration, which for such a model is its class
    and init_args (flat arguments would be read as those of the default model, GenomeLM, and refused)."""
    return {"class_path": f"{type(module).__module__}.{type(module).__qualname__}", "init_args": args}


def schedule_steps(cfg: OptimizerConfig, max_steps: int, estimated_steps) -> int:
    """Steps the learning-rate schedule spans: decay_steps, else max_steps, else Lightning's estimate (a callable)."""
    if cfg.decay_steps is not None:
        return cfg.decay_steps
    return int(max_steps if max_steps > 0 else estimated_steps())


class warmup_cosine:  # noqa: N801 - a picklable function object for LambdaLR
    """Learning rate multiplier: linear warm-up, then cosine from 1 to min_lr_ratio at `total` steps."""

    def __init__(self, cfg: OptimizerConfig, total: int) -> None:
        self.warmup, self.total, self.floor = cfg.warmup_steps, max(total, 1), cfg.min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_vocab(cfg: LongNetConfig, vocab_size: int) -> LongNetConfig:
    """The backbone config with the tokenizer's vocabulary size; a different explicit value is a config error."""
    if cfg.vocab_size is None:
        return replace(cfg, vocab_size=vocab_size)
    if cfg.vocab_size != vocab_size:
        raise ConfigError(
            f"model backbone.vocab_size={cfg.vocab_size} but the tokenizer (data.kmer_size) has {vocab_size} ids: "
            "leave vocab_size unset"
        )
    return cfg

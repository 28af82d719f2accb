"""LightningCLI wiring of `genomenet fit | validate | test | predict`: GenomeLM x GenomeDataModule, checkpoints,
loggers, and the held-out report after fit. Configuration errors end as one line, never a traceback."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from genomenet.data.datamodule import GenomeDataModule
from genomenet.downstream.regions import final_lines as region_final_lines
from genomenet.downstream.regions import region_report, write_report_json
from genomenet.downstream.segment_report import final_lines as segment_final_lines
from genomenet.downstream.segment_report import segment_report
from genomenet.downstream.segment_report import write_report_json as write_segment_json
from genomenet.downstream.variant_report import final_lines as variant_final_lines
from genomenet.downstream.variant_report import variant_report
from genomenet.errors import ConfigError, GenomenetError, InputFileError
from genomenet.evaluation.lm_report import ReportConfig, final_lines, run_report
from genomenet.model.pretrained import read_checkpoint
from genomenet.text.module import TextLM
from genomenet.text.report import evaluation_lengths, text_report
from genomenet.text.report import final_lines as text_final_lines
from genomenet.training.callbacks import AtomicCheckpointIO, FinalModelCheckpoint, TokensPerSecond, WindowScoresWriter
from genomenet.training.finetune import RegionClassifier
from genomenet.training.module import GenomeLM
from genomenet.training.segmenter import Segmenter
from genomenet.training.strategy import SequenceParallelStrategy
from genomenet.training.variant_finetune import VariantEffectClassifier

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": [
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": "genomenet"}},
        {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs", "name": "genomenet"},
        },
    ],
    "log_every_n_steps": 10,
}


class OneLineErrorParser(LightningArgumentParser):
    """A parser whose errors are one line on stderr (`genomenet: error: ...`) and exit code 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        cause = user_error_in(ex)
        text = str(cause) if cause is not None else " ".join(message.split())
        print(f"genomenet: error: {text}", file=sys.stderr)
        raise SystemExit(2)


def user_error_in(ex: BaseException | None) -> GenomenetError | None:
    """The GenomenetError a parse error was raised from, if any (e.g. a config's own validation)."""
    seen = set()
    while ex is not None and id(ex) not in seen:
        if isinstance(ex, GenomenetError):
            return ex
        seen.add(id(ex))
        ex = ex.__cause__ or ex.__context__
    return None


class GenomeCLI(LightningCLI):
    """`genomenet fit | validate | test | predict`; see configs/*.yaml."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(FinalModelCheckpoint, "checkpoint")
        # a re-run into the same folder replaces its last.ckpt (a version counter would write last-v1.ckpt and leave
        # `--ckpt_path .../last.ckpt` resuming the earlier run)
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.dirpath": "runs/genomenet/checkpoints",
                             "checkpoint.enable_version_counter": False})
        parser.add_lightning_class_args(TokensPerSecond, "throughput")
        parser.add_lightning_class_args(WindowScoresWriter, "predictions")
        parser.add_class_arguments(ReportConfig, "report", help="The held-out report after fit.")
        # a config without class_path configures these (pre-training); region fine-tuning names its classes
        parser.set_defaults({"model": {"class_path": "genomenet.training.module.GenomeLM"},
                             "data": {"class_path": "genomenet.data.datamodule.GenomeDataModule"}})
        for name in ("kmer_size", "sequence_parallel_size", "context_length"):
            parser.link_arguments(f"data.init_args.{name}", f"model.init_args.{name}")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        if self.config.get("subcommand"):   # before LightningCLI reads the checkpoint's hyper-parameters
            check_ckpt_path(self.config[self.config.subcommand].get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand == "predict":
            check_predictable(str(config.model.class_path))
        if "fasta" not in config.data.init_args:
            return
        fasta = Path(config.data.init_args.fasta)
        if fasta.is_dir():
            raise InputFileError(f"data.fasta: {fasta}: a folder, not a FASTA file; name the FASTA file in it")
        if not fasta.is_file():
            raise InputFileError(f"data.fasta: {fasta}: no such file")

    def instantiate_trainer(self, **kwargs: Any):
        if isinstance(self.model, (RegionClassifier, VariantEffectClassifier, Segmenter)):
            self.datamodule.setup()   # reads and splits the labels: their errors come before the trainer says anything
            print(self.datamodule.summary(), flush=True)
            if hasattr(self.model, "build_head_for"):
                self.model.build_head_for(self.datamodule)
            return self._with_atomic_checkpoints(super().instantiate_trainer(**kwargs))
        check_compatible(self.model, self.datamodule)  # before the trainer says anything
        if isinstance(self.model, TextLM) and self.subcommand in ("fit", "validate", "test"):
            check_text_report(self.report_config(), self.datamodule)
        if self.model.sequence_parallel_size > 1:
            trainer_config = self._get(self.config_init, "trainer", default={})
            check_sequence_parallel_ranks(trainer_config, self.model.sequence_parallel_size)
            check_sequence_parallel_split(self.model, self.datamodule)
            configured = trainer_config.get("strategy", "auto")
            kwargs["strategy"] = sequence_parallel_strategy(configured, self.model.sequence_parallel_size)
        return self._with_atomic_checkpoints(super().instantiate_trainer(**kwargs))

    @staticmethod
    def _with_atomic_checkpoints(trainer):
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        share_log_versions(trainer.loggers)
        return trainer

    def run_dir(self) -> Path:
        """The run's folder: the checkpoints' parent (model/, split.tsv and the report go there); created, since
        `validate` / `test` write their report there without having saved a checkpoint."""
        ckpt = self.trainer.checkpoint_callback
        folder = Path(ckpt.dirpath).parent if ckpt and ckpt.dirpath else Path(self.trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def export_dir(self, cfg: ReportConfig) -> Path:
        """Where a classifier is exported: report.export_dir, else model/ in the run's folder."""
        return Path(cfg.export_dir) if cfg.export_dir else self.run_dir() / "model"

    def before_fit(self) -> None:
        if hasattr(self.datamodule, "write_split") and self.trainer.is_global_zero:
            print(f"split: {self.datamodule.write_split(self.run_dir())}", flush=True)

    def after_fit(self) -> None:
        self.report(export=True)

    def after_validate(self) -> None:
        self.report(export=False)

    def after_test(self) -> None:
        self.report(export=False)

    def report_config(self) -> ReportConfig:
        """The `report` section of this subcommand's config, as a ReportConfig."""
        cfg = self.config_init[self.subcommand]["report"]
        return cfg if isinstance(cfg, ReportConfig) else ReportConfig(**vars(cfg))

    def report(self, export: bool) -> None:
        """The held-out report (`report` section): after fit with the export; after validate / test without."""
        cfg = self.report_config()
        if not cfg.enabled or self.trainer.interrupted or not self.trainer.is_global_zero:
            return
        if isinstance(self.model, RegionClassifier):
            self.region_report(cfg, export)
            return
        if isinstance(self.model, Segmenter):
            self.segment_report(cfg, export)
            return
        if isinstance(self.model, TextLM):
            # validate / test export nothing: their plot goes beside their report, not over the exported model's
            plots = self.export_dir(cfg) if export else self.run_dir()
            result = text_report(self.model, self.datamodule, cfg, plots, self.run_dir(), export)
            print(text_final_lines(result), flush=True)
            return
        if isinstance(self.model, VariantEffectClassifier):
            result = variant_report(self.model, self.datamodule, self.export_dir(cfg), export=export)
            print(variant_final_lines(result), flush=True)
            return
        if self.model.sequence_parallel_size > 1:
            hint = ("`genomenet validate` (distributed) or report on one device with the exported model" if export
                    else "the distributed validation metrics above are this run's figures")
            print(f"held-out report skipped: it scores whole windows on one device; with sequence parallelism {hint}",
                  flush=True)
            if export:   # the weights are whole on every rank: the export needs no scoring
                from genomenet.model.pretrained import export_model

                print(f"model: {export_model(self.model.model, self.model.info, self.export_dir(cfg))}", flush=True)
            return
        result = run_report(self.model, self.datamodule, cfg, self.run_dir() / "model", export=export)
        print(final_lines(result), flush=True)

    def region_report(self, cfg: ReportConfig, export: bool) -> None:
        """The fine-tuned classifier (its best checkpoint when one is monitored) beside the k-mer baseline and
        the linear probe on the test split."""
        self.load_best_checkpoint(cfg)
        report = region_report(self.model, self.datamodule, cfg.kmer_sizes, self.export_dir(cfg), export=export,
                               batch_size=self.datamodule.batch_size, probe_max_bases=cfg.probe_max_bases)
        write_report_json(report, self.run_dir() / "held_out_report.json")
        print(region_final_lines(report), flush=True)

    def load_best_checkpoint(self, cfg: ReportConfig) -> None:
        """Put the best checkpoint's weights by checkpoint.monitor into the model, when one is monitored and
        report.use_best is set (fine-tuning reports the selected model, not the last step). Only after fit: `validate`
        and `test` report the model they were given (`--ckpt_path`), whose restored callback state names some other
        run's best file."""
        ckpt = self.trainer.checkpoint_callback
        if self.subcommand == "fit" and cfg.use_best and ckpt is not None and ckpt.monitor and ckpt.best_model_path:
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            self.model.load_state_dict(state)
            print(f"reporting the best checkpoint by {ckpt.monitor}: {ckpt.best_model_path}", flush=True)

    def segment_report(self, cfg: ReportConfig, export: bool) -> None:
        """The segmenter (its best checkpoint when one is monitored) beside its baselines, trained after it with
        its steps, on the test split at base level."""
        self.load_best_checkpoint(cfg)
        report = segment_report(self.model, self.datamodule, self.trainer, list(cfg.segment_baselines),
                                self.export_dir(cfg), export, cfg.segment_max_bases, cfg.segment_cnn_channels)
        write_segment_json(report, self.run_dir() / "held_out_report.json")
        print(segment_final_lines(report), flush=True)


APPLY_COMMANDS = {
    "genomenet.training.finetune.RegionClassifier": "`genomenet classify --model EXPORTED --fasta --regions --out`",
    "genomenet.training.segmenter.Segmenter": "`genomenet annotate --model EXPORTED --fasta --out`",
    "genomenet.training.variant_finetune.VariantEffectClassifier": "its report after `genomenet fit` (the test "
    "split's scores); `genomenet score-variants` gives the backbone's zero-shot scores",
}


def check_predictable(model_class: str) -> None:
    """`genomenet predict` writes a language model's per-window scores; a fine-tuned model is applied by its own
    command, which a ConfigError names (instead of a traceback from the LM's prediction writer)."""
    if model_class == "genomenet.text.module.TextLM":
        raise ConfigError("genomenet predict writes a genome model's per-window scores; a TextLM is scored with "
                          "`genomenet validate` or `genomenet test --ckpt_path` (held-out bits per byte)")
    if model_class in APPLY_COMMANDS:
        name = model_class.rsplit(".", 1)[-1]
        raise ConfigError(f"genomenet predict scores language models; a {name} is applied with "
                          f"{APPLY_COMMANDS[model_class]}")


def share_log_versions(loggers: list) -> None:
    """Loggers writing under one save_dir and name with no version of their own take one version, so a run's
    metrics.csv and TensorBoard events share its folder (each alone would number itself: the CSV logger makes
    version_N, then TensorBoard sees it and takes version_N+1)."""
    groups: dict[tuple[str, str], list] = {}
    for logger in loggers:
        if isinstance(logger, (CSVLogger, TensorBoardLogger)) and logger._version is None:
            groups.setdefault((str(Path(logger.save_dir).resolve()), logger.name), []).append(logger)
    for group in groups.values():
        if len(group) > 1:
            version = group[0].version   # the first logger's next free version
            for logger in group[1:]:
                logger._version = version


def check_ckpt_path(ckpt_path: str | None) -> None:
    """Raise InputFileError (one line) for a ``--ckpt_path`` file that is missing or no checkpoint; Lightning's own
    words for these are a multi-line unpickler message or ``None: None``. Its keywords and URLs pass unchecked."""
    if not ckpt_path or ckpt_path in ("last", "best", "hpc") or ckpt_path.startswith("registry") or "://" in ckpt_path:
        return
    if not Path(ckpt_path).is_file():
        raise InputFileError(f"ckpt_path: {ckpt_path}: no such checkpoint file")
    read_checkpoint(ckpt_path, mmap=True)   # tensors mapped, not read: cheap for a large checkpoint


def check_sequence_parallel_ranks(trainer_config: dict, size: int) -> None:
    """Raise ConfigError when trainer.devices x trainer.num_nodes cannot hold whole sequence groups of ``size``."""
    devices, nodes = trainer_config.get("devices", "auto"), trainer_config.get("num_nodes", 1) or 1
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if isinstance(devices, (list, tuple)):
        devices = len(devices)
    if isinstance(devices, int) and devices > 0 and (devices * nodes) % size:
        raise ConfigError(f"data.sequence_parallel_size={size} does not divide the {devices * nodes} ranks of "
                          f"trainer.devices={devices} x trainer.num_nodes={nodes}")


def check_sequence_parallel_split(module: GenomeLM, datamodule: GenomeDataModule) -> None:
    """Raise ConfigError (before training, on every rank) for attention segments that cannot be split over the
    sequence group's chunks of a window; the attention itself would raise a ValueError at the first step."""
    from genomenet.attention.sequence_parallel import split_branches

    size, cfg = module.sequence_parallel_size, module.model.cfg
    tokens = datamodule.tokenizer.num_tokens(datamodule.context_length)
    if cfg.attention != "dilated" or tokens % size:   # refused elsewhere, in their own words
        return
    try:
        split_branches(tokens // size, size, 0, cfg.segment_lengths, cfg.dilation_rates, cfg.n_heads)
    except ValueError as err:
        raise ConfigError(f"data.sequence_parallel_size={size} with data.context_length={datamodule.context_length}: "
                          f"{err}; change model.backbone.segment_lengths") from None


def sequence_parallel_strategy(configured: Any, size: int) -> SequenceParallelStrategy:
    """The trainer strategy for data.sequence_parallel_size > 1: the configured one if it fits, else a new one."""
    if isinstance(configured, SequenceParallelStrategy):
        if configured.sequence_parallel_size != size:
            raise ConfigError(f"trainer.strategy sequence_parallel_size={configured.sequence_parallel_size} but "
                              f"data.sequence_parallel_size={size}: set one value")
        return configured
    if configured not in (None, "auto", "ddp"):
        raise ConfigError(f"data.sequence_parallel_size={size} needs trainer.strategy auto, ddp or "
                          f"genomenet.training.strategy.SequenceParallelStrategy, got {configured!r}")
    return SequenceParallelStrategy(size)


def check_compatible(module: GenomeLM, datamodule: GenomeDataModule) -> None:
    """Raise ConfigError when the data's windows are longer than the model can attend over."""
    tokens = datamodule.tokenizer.num_tokens(datamodule.context_length)
    cfg = module.model.cfg
    if cfg.attention == "dilated" and tokens > max(cfg.segment_lengths):
        raise ConfigError(
            f"data.context_length={datamodule.context_length} gives {tokens} tokens, more than the longest attention "
            f"segment model.backbone.segment_lengths={cfg.segment_lengths}: tokens could not see the whole window; "
            f"lower data.context_length to at most {max(cfg.segment_lengths) * datamodule.tokenizer.k} or add a "
            "longer segment"
        )


def check_text_report(cfg: ReportConfig, datamodule) -> None:
    """Raise the text report's ConfigError (report.length_multiples against the test split) before training, not
    after it: the default multiples need a test split of 16 windows, which a short text's 5% does not hold."""
    if cfg.enabled:
        datamodule.setup()
        evaluation_lengths(datamodule.context_length, list(cfg.length_multiples),
                           datamodule.corpus.splits["test"].length)


def run_lightning_cli(argv: list[str]) -> int:
    """`genomenet fit | validate | test | predict ...`; returns the exit code."""
    quiet_known_warnings()
    try:
        try:
            GenomeCLI(
                L.LightningModule,
                L.LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                args=argv,
                parser_class=OneLineErrorParser,
                trainer_defaults=TRAINER_DEFAULTS,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": "genomenet"},
            )
        except MisconfigurationException as err:  # Lightning's word for a trainer setting that cannot work
            raise ConfigError(" ".join(str(err).split())) from err
        except RuntimeError as err:  # an EarlyStopping callback monitoring a metric the run does not log
            if not str(err).startswith("Early stopping conditioned on metric"):
                raise
            raise ConfigError("trainer.callbacks: " + " ".join(str(err).split())) from err
        except (ValueError, TypeError) as err:  # jsonargparse wraps a class's own error when it instantiates it
            cause = user_error_in(err)
            if cause is None and "does not match the world size" in str(err):  # torchrun's process count
                raise ConfigError("trainer.devices: " + " ".join(str(err).split()) + " (processes launched, e.g. "
                                  "torchrun --nproc_per_node)") from None
            if cause is None:
                raise
            raise cause from None
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return 0


class NoAdvertising(logging.Filter):
    """Drops Lightning's "Tip" lines recommending its cloud services: not advice about this run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_known_warnings() -> None:
    """Lightning's advice that does not apply here (few CPU workers on a 2-core machine, its cloud services, and the
    like), and its "Seed set to" line, which would come before a configuration error and make it two lines."""
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoAdvertising) for f in logger.filters):
            logger.addFilter(NoAdvertising())
    for pattern in (r".*does not have many workers.*", r".*LeafSpec.*", r".*args parameter is intended.*"):
        warnings.filterwarnings("ignore", message=pattern)


__all__ = ["GenomeCLI", "check_compatible", "run_lightning_cli"]

"""Every shipped config is valid YAML over the typed classes: `--print_config` accepts it unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genomenet.cli import main
from genomenet.model.longnet import LongNetConfig

ROOT = Path(__file__).resolve().parents[1]
ALL_CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "tasks").glob("*/*.yaml"))
CONFIGS = [c for c in ALL_CONFIGS if "class_path" not in yaml.safe_load(c.read_text())["model"]]
"""Pre-training configs (GenomeLM x GenomeDataModule, the default classes); the others name their classes."""


def init_args(section: dict) -> dict:
    return section.get("init_args", section)


def holds(printed, given) -> bool:
    """Every value the config gives is in the printed config (which adds the defaults)."""
    if isinstance(given, dict):
        return isinstance(printed, dict) and all(k in printed and holds(printed[k], v) for k, v in given.items())
    return printed == given or (isinstance(given, list) and list(printed) == given)


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=[f"{c.parent.name}/{c.stem}" for c in ALL_CONFIGS])
def test_shipped_config_parses_and_prints(config: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["fit", "--config", str(config), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    given = yaml.safe_load(config.read_text())
    assert holds(init_args(printed["model"]), init_args(given["model"]))
    assert init_args(printed["data"])["context_length"] == init_args(given["data"])["context_length"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_windows_fit_in_the_longest_segment(config: Path) -> None:
    given = yaml.safe_load(config.read_text())
    backbone = LongNetConfig(**given["model"]["backbone"])
    tokens = given["data"]["context_length"] // given["data"].get("kmer_size", 1)
    assert tokens <= max(backbone.segment_lengths)


def test_base_config_is_the_longnet_paper_shape() -> None:
    base = yaml.safe_load((ROOT / "configs" / "base.yaml").read_text())["model"]["backbone"]
    assert (base["n_layers"], base["d_model"], base["n_heads"]) == (12, 768, 12)
    assert base["segment_lengths"] == [2048, 4096, 8192, 16384, 32768]
    assert base["dilation_rates"] == [1, 2, 4, 6, 12]

"""Every shipped config is valid YAML over the typed classes: `--print_config` accepts it unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genomenet.cli import main
from genomenet.model.longnet import LongNetConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_parses_and_prints(config: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["fit", "--config", str(config), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    given = yaml.safe_load(config.read_text())
    assert printed["model"]["backbone"] | given["model"]["backbone"] == printed["model"]["backbone"]
    assert printed["data"]["context_length"] == given["data"]["context_length"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_windows_fit_in_the_longest_segment(config: Path) -> None:
    given = yaml.safe_load(config.read_text())
    backbone = LongNetConfig(**given["model"]["backbone"])
    tokens = given["data"]["context_length"] // given["data"].get("kmer_size", 1)
    assert tokens <= max(backbone.segment_lengths)


def test_base_config_is_the_longnet_paper_shape() -> None:
    base = yaml.safe_load((CONFIGS[0].parent / "base.yaml").read_text())["model"]["backbone"]
    assert (base["n_layers"], base["d_model"], base["n_heads"]) == (12, 768, 12)
    assert base["segment_lengths"] == [2048, 4096, 8192, 16384, 32768]
    assert base["dilation_rates"] == [1, 2, 4, 6, 12]

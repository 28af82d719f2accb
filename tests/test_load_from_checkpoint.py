"""Lightning's `load_from_checkpoint` rebuilds a fine-tuned genomenet module as it was trained (its backbone's shape
and attention, its head and weights), even after the backbone it started from is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning
import pytest
import torch
from inference_models import tiny_model

from genomenet.errors import ConfigError
from genomenet.model.longnet import LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.training.finetune import RegionClassifier
from genomenet.training.module import GenomeLM
from genomenet.training.segmenter import Segmenter
from genomenet.training.variant_finetune import VariantEffectClassifier

LABELS = {"kind": "multiclass", "classes": ["a", "b", "c"]}
WINDOW = {"length": 128, "mode": "centered", "flank": 0}


def save(module: lightning.LightningModule, path: Path) -> Path:
    """What a Trainer writes for a module: weights, hyper-parameters and the module's own entries."""
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return path


def perturb(module: torch.nn.Module) -> None:
    """Weights no constructor would give: a loaded module that matches must have read them from the file."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("strands", ["one", "both"])
def test_a_region_classifier_checkpoint_loads_as_the_trained_model(tmp_path: Path, strands: str) -> None:
    backbone = tiny_model(tmp_path / "backbone", seed=0)
    trained = RegionClassifier(init_weights=str(backbone), strands=strands, pooling="attention", head_dropout=0.0)
    trained.build_head(LABELS, WINDOW)
    perturb(trained)
    path = save(trained, tmp_path / "classifier.ckpt")
    shutil.rmtree(backbone)   # the checkpoint alone must do

    loaded = RegionClassifier.load_from_checkpoint(path, map_location="cpu")
    assert loaded.backbone.cfg == trained.backbone.cfg != LongNetConfig()
    assert loaded.backbone.causal and loaded.strands == strands and loaded.pooling == "attention"
    ids = torch.randint(0, 4, (3, 64))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(ids), trained.eval()(ids))


def test_a_segmenter_checkpoint_loads_as_the_trained_model(tmp_path: Path) -> None:
    backbone = tiny_model(tmp_path / "backbone", seed=1)
    trained = Segmenter(init_weights=str(backbone), head="unet", head_hidden=8, head_levels=1, head_pool=2,
                        head_dropout=0.0)
    trained.build_head(["exon", "intron"])
    perturb(trained)
    path = save(trained, tmp_path / "segmenter.ckpt")
    shutil.rmtree(backbone)

    loaded = Segmenter.load_from_checkpoint(path, map_location="cpu")
    assert loaded.backbone.cfg == trained.backbone.cfg and loaded.backbone.causal
    assert loaded.strands == "both" and loaded.classes == ["exon", "intron"]
    ids = torch.randint(0, 4, (2, 64))
    with torch.no_grad():
        assert torch.equal(loaded.eval().net(ids), trained.eval().net(ids))


def test_a_variant_classifier_checkpoint_loads_its_settings_and_weights(tmp_path: Path) -> None:
    backbone = tiny_model(tmp_path / "backbone", seed=2)
    trained = VariantEffectClassifier(init_weights=str(backbone), finetune="full", hidden=16)
    perturb(trained)
    path = save(trained, tmp_path / "variants.ckpt")

    loaded = VariantEffectClassifier.load_from_checkpoint(path, map_location="cpu")
    assert loaded.finetune == "full" and loaded.head[0].out_features == 16
    for (name, value), (_, expected) in zip(loaded.state_dict().items(), trained.state_dict().items(), strict=True):
        assert torch.equal(value, expected), name


def test_a_checkpoint_of_another_module_is_one_line(tmp_path: Path) -> None:
    trained = RegionClassifier(init_weights=str(tiny_model(tmp_path / "backbone", seed=0)))
    trained.build_head(LABELS, WINDOW)
    path = save(trained, tmp_path / "classifier.ckpt")
    with pytest.raises(ConfigError, match="holds a genomenet.training.finetune.RegionClassifier, not a "
                                          "genomenet.training.segmenter.Segmenter"):
        Segmenter.load_from_checkpoint(path)


def test_a_keyword_argument_still_overrides_the_saved_setting(tmp_path: Path) -> None:
    trained = RegionClassifier(init_weights=str(tiny_model(tmp_path / "backbone", seed=0)), head_dropout=0.0)
    trained.build_head(LABELS, WINDOW)
    loaded = RegionClassifier.load_from_checkpoint(save(trained, tmp_path / "c.ckpt"), head_dropout=0.3)
    assert loaded.net.drop.p == 0.3


def test_a_language_model_checkpoint_loads_as_the_trained_model(tmp_path: Path) -> None:
    shape = LongNetConfig(n_layers=1, d_model=32, n_heads=2, segment_lengths=[16, 32], dilation_rates=[1, 2])
    trained = GenomeLM(backbone=shape, objective=ObjectiveConfig(kind="masked"), kmer_size=2)
    perturb(trained)
    loaded = GenomeLM.load_from_checkpoint(save(trained, tmp_path / "lm.ckpt"), map_location="cpu")
    assert loaded.model.cfg == trained.model.cfg and not loaded.model.causal and loaded.info.kmer_size == 2
    ids = torch.randint(0, 16, (2, 32))
    with torch.no_grad():
        assert torch.equal(loaded.eval().model(ids), trained.eval().model(ids))

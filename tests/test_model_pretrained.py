"""Export and load: safetensors + JSON round trip, checkpoints read without unpickling, load without Lightning."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genomenet.errors import InputFileError
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.model.pretrained import PretrainedInfo, export_checkpoint, export_model, load_pretrained

CFG = LongNetConfig(vocab_size=10, n_layers=2, d_model=32, n_heads=4, segment_lengths=[16, 32], dilation_rates=[1, 2])


def lightning_like_checkpoint(model: LongNet, info: PretrainedInfo, path: Path) -> Path:
    """The parts of a Lightning checkpoint that loading relies on (GenomeLM writes exactly these)."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": info.to_dict(), "global_step": 3}, path)
    return path


def test_exported_model_gives_identical_logits(tmp_path: Path) -> None:
    model = LongNet(CFG).eval()
    info = PretrainedInfo(CFG, ObjectiveConfig("causal"), kmer_size=1)
    export_model(model, info, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_pretrained(tmp_path / "m")
    ids = torch.randint(0, 4, (2, 40))
    torch.testing.assert_close(loaded(ids), model(ids), rtol=0, atol=0)
    assert loaded.info.backbone == CFG and loaded.lm_head.weight is loaded.embed.weight


def test_checkpoint_loads_and_exports_to_the_same_model(tmp_path: Path) -> None:
    model = LongNet(CFG, causal=False).eval()
    info = PretrainedInfo(CFG, ObjectiveConfig("masked"), kmer_size=1)
    ckpt = lightning_like_checkpoint(model, info, tmp_path / "last.ckpt")
    export_checkpoint(ckpt, tmp_path / "m")
    ids = torch.randint(0, 4, (1, 33))
    for path in (ckpt, tmp_path / "m"):
        loaded = load_pretrained(path)
        assert not loaded.causal
        torch.testing.assert_close(loaded(ids), model(ids), rtol=0, atol=0)


class Boom:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_a_checkpoint_that_needs_unpickling_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "hyper_parameters": Boom()}, f)
    with pytest.raises(InputFileError, match="evil.ckpt"):
        load_pretrained(path)


def test_missing_or_foreign_model_paths_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such"):
        load_pretrained(tmp_path / "nothing")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputFileError, match="model.safetensors"):
        load_pretrained(tmp_path / "d")


def test_load_pretrained_is_a_lazy_export_that_does_not_import_lightning(tmp_path: Path) -> None:
    export_model(LongNet(CFG), PretrainedInfo(CFG), tmp_path / "m")
    code = (
        "import sys, genomenet\n"
        "assert 'torch' not in sys.modules\n"
        f"m = genomenet.load_pretrained({str(tmp_path / 'm')!r})\n"
        "assert 'lightning' not in sys.modules, 'loading pulled in lightning'\n"
        "print(type(m).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "LongNet"

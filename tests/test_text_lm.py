"""Byte-level text through the same backbone and CLI: corpus splits, windows, the local-attention baseline, the
text report, and one-line errors."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genomenet.cli import main
from genomenet.model.local import local_attention
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.pretrained import load_pretrained
from genomenet.model.strided import strided_attention
from genomenet.text.corpus import open_corpus
from genomenet.text.datamodule import TextWindows
from genomenet.text.module import TextLM
from genomenet.text.report import bits_per_byte, compressor_bits, extended_backbone

REPO = Path(__file__).resolve().parents[1]
HAMLET = REPO / "data" / "text" / "hamlet_gut.txt.gz"  # real text, 173,942 bytes unpacked
TEXT_LM = str(REPO / "configs" / "text_lm.yaml")


def hamlet() -> bytes:
    return gzip.open(HAMLET).read()


def test_a_file_splits_90_5_5_by_bytes_and_a_compressed_one_unpacks_to_the_same_bytes(tmp_path: Path) -> None:
    text = hamlet()
    corpus = open_corpus(HAMLET, tmp_path / "cache")
    n = len(text)
    assert [corpus.splits[s].length for s in ("train", "val", "test")] == [
        n * 90 // 100, n * 95 // 100 - n * 90 // 100, n - n * 95 // 100]
    joined = b"".join(bytes(corpus.splits[s].array()) for s in ("train", "val", "test"))
    assert joined == text
    packed = tmp_path / "hamlet.txt.bz2"
    packed.write_bytes(bz2.compress(text))
    assert bytes(open_corpus(packed, tmp_path / "cache").splits["test"].array()) == text[n * 95 // 100:]
    assert "90%" in corpus.summary()


def test_enwik8_sized_files_use_the_90M_5M_5M_convention(tmp_path: Path) -> None:
    big = tmp_path / "enwik8"
    with open(big, "wb") as f:
        f.truncate(100_000_000)   # sparse: costs no disk
    corpus = open_corpus(big)
    assert [(r.offset, r.length) for r in corpus.splits.values()] == [
        (0, 90_000_000), (90_000_000, 5_000_000), (95_000_000, 5_000_000)]
    assert "enwik8" in corpus.convention


def test_a_wikitext_directory_uses_its_own_split_files(tmp_path: Path) -> None:
    for name, text in (("wiki.train.raw", b"train " * 100), ("wiki.valid.raw", b"valid " * 50),
                       ("wiki.test.raw", b"test " * 40)):
        (tmp_path / name).write_bytes(text)
    corpus = open_corpus(tmp_path)
    assert bytes(corpus.splits["val"].array()) == b"valid " * 50
    assert corpus.splits["test"].length == 200


def test_evaluation_windows_tile_the_split_and_training_windows_are_seeded(tmp_path: Path) -> None:
    corpus = open_corpus(HAMLET, tmp_path)
    test = corpus.splits["test"]
    tiles = TextWindows(test, 512, "tiled")
    expected = np.frombuffer(hamlet(), dtype=np.uint8)[test.offset:test.offset + 2 * 512]
    got = torch.cat([tiles[0]["input_ids"], tiles[1]["input_ids"]]).numpy()
    assert np.array_equal(got, expected) and len(tiles) == test.length // 512
    draws = [TextWindows(corpus.splits["train"], 512, "random", seed=s)[7]["start"] for s in (0, 0, 1)]
    assert draws[0] == draws[1] != draws[2]


def assert_equals_masked_float64_reference(attend, allowed: torch.Tensor, seed: int) -> None:
    """``attend(q, k, v, padding)`` equals softmax attention over the ``allowed`` (query, key) pairs, outputs and
    gradients, on fresh float64 inputs with the last three keys of the second row padded."""
    n = allowed.shape[0]
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, n, 3, 8, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(3))
    padding = torch.zeros(2, n, dtype=torch.bool)
    padding[1, n - 3:] = True
    grad = torch.randn(2, n, 3, 8, dtype=torch.float64, generator=gen)
    out = attend(q, k, v, padding)
    allowed = allowed[None, None] & ~padding[:, None, None, :]
    allowed = allowed | torch.eye(n, dtype=torch.bool)   # the reference's convention for an all-padding query
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(8)
    ref = torch.einsum("bhij,bjhd->bihd", scores.masked_fill(~allowed, -math.inf).softmax(-1), v)
    real = ~padding[:, :, None, None]
    torch.testing.assert_close(out * real, ref * real, rtol=0, atol=1e-12)
    grads = torch.autograd.grad((out * real * grad).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * real * grad).sum(), (q, k, v))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("n", "window"), [(45, 8), (64, 16), (5, 16)])
def test_local_attention_equals_a_dense_float64_reference_outputs_and_gradients(causal: bool, n: int,
                                                                                 window: int) -> None:
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = ((j <= i) & (i - j < window)) if causal else ((j - i).abs() <= window // 2)
    assert_equals_masked_float64_reference(lambda q, k, v, pad: local_attention(q, k, v, window, causal, pad),
                                           allowed, seed=n * window + causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("n", "stride"), [(45, 8), (64, 16), (5, 16), (37, 1), (100, 10)])
def test_strided_attention_equals_a_dense_float64_reference_outputs_and_gradients(causal: bool, n: int,
                                                                                   stride: int) -> None:
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    on_the_stride = (i - j) % stride == 0   # Sparse Transformer: the nearest keys and every stride-th one
    near = (j <= i) & (i - j < stride) if causal else (j - i).abs() <= stride // 2
    allowed = (near | on_the_stride) & (j <= i) if causal else near | on_the_stride
    assert_equals_masked_float64_reference(lambda q, k, v, pad: strided_attention(q, k, v, stride, causal, pad),
                                           allowed, seed=n * stride + causal)


def test_strided_attention_with_stride_one_is_dense_causal_attention() -> None:
    q, k, v = (torch.randn(1, 30, 2, 4, dtype=torch.float64) for _ in range(3))
    dense = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), is_causal=True)
    torch.testing.assert_close(strided_attention(q, k, v, 1, True), dense.transpose(1, 2), rtol=0, atol=1e-12)


def test_compressor_figures_are_the_compressed_sizes_in_bits_per_byte() -> None:
    text = hamlet()[:50_000]
    bits = compressor_bits(text)
    assert bits["xz -9e"] == pytest.approx(8 * len(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME)) / len(text))
    assert all(1.5 < b < 4.0 for b in bits.values()), bits   # English text: far below 8 bits a byte


def test_extending_the_branches_changes_nothing_within_the_trained_segments() -> None:
    torch.manual_seed(0)
    cfg = LongNetConfig(vocab_size=262, n_layers=1, d_model=32, n_heads=2, segment_lengths=[16, 32],
                        dilation_rates=[1, 2])
    model = LongNet(cfg).eval()
    data = np.frombuffer(hamlet()[:4096], dtype=np.uint8)
    wide = LongNet(extended_backbone(cfg, 128)).eval()
    wide.load_state_dict(model.state_dict())
    assert extended_backbone(cfg, 128).segment_lengths == [16, 32, 64, 128]
    assert extended_backbone(cfg, 32) is None
    assert bits_per_byte(model, data, 32, torch.device("cpu")) == pytest.approx(
        bits_per_byte(wide, data, 32, torch.device("cpu")), abs=1e-6)
    assert bits_per_byte(model, data, 128, torch.device("cpu")) != pytest.approx(
        bits_per_byte(wide, data, 128, torch.device("cpu")), abs=1e-6)


def tiny_text_args(tmp_path: Path, attention: str = "dilated", steps: int = 4) -> list[str]:
    return ["fit", "--config", TEXT_LM, "--data.path", str(HAMLET), "--data.cache_dir", str(tmp_path / "cache"),
            "--data.context_length", "64", "--data.batch_size", "4",
            "--model.backbone.n_layers", "1", "--model.backbone.d_model", "32", "--model.backbone.n_heads", "2",
            "--model.backbone.segment_lengths", "[16,32,64]", "--model.backbone.dilation_rates", "[1,2,4]",
            "--model.backbone.attention", attention, "--model.optimizer.warmup_steps", "1",
            "--trainer.accelerator", "cpu", "--trainer.max_steps", str(steps), "--trainer.val_check_interval", "2",
            "--trainer.limit_val_batches", "2", "--trainer.logger", "false",
            "--checkpoint.dirpath", str(tmp_path / "run" / "checkpoints"), "--checkpoint.every_n_train_steps", "2",
            "--report.export_dir", str(tmp_path / "model"), "--report.max_windows", "64"]


@pytest.mark.parametrize("attention", ["dilated", "dense", "local", "strided"])
def test_fit_on_text_ends_with_bits_per_byte_beside_xz_and_the_exported_model(
        tmp_path: Path, capsys: pytest.CaptureFixture, attention: str) -> None:
    assert main(tiny_text_args(tmp_path, attention)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2].startswith("held-out bits per byte: ") and "(xz: " in out[-2]
    assert out[-1] == f"model: {tmp_path / 'model'}"
    report = json.loads((tmp_path / "run" / "held_out_report.json").read_text())
    lengths = sorted(int(n) for n in report["bits_by_length"])
    assert lengths == [64, 256, 1024]
    assert float(out[-2].split()[4]) == pytest.approx(report["bits_by_length"]["64"], abs=5e-4)
    assert (tmp_path / "model" / "bits_per_byte_by_length.png").is_file()
    model = load_pretrained(tmp_path / "model")
    assert model.info.alphabet == "bytes" and model.cfg.attention == attention and model.cfg.vocab_size == 262


def test_the_text_model_checkpoint_is_recognised_as_bytes(tmp_path: Path) -> None:
    assert main(tiny_text_args(tmp_path, steps=2) + ["--report.enabled", "false"]) == 0
    assert load_pretrained(tmp_path / "run" / "checkpoints" / "last.ckpt").info.alphabet == "bytes"


def test_a_text_model_resumes_from_its_checkpoint_file_and_loads_with_lightning(tmp_path: Path) -> None:
    """`--ckpt_path FILE` re-parses the checkpoint's settings as a TextLM (not the default GenomeLM, whose DNA
    tokenizer would refuse the byte vocabulary), and `TextLM.load_from_checkpoint` rebuilds the trained model."""
    args = tiny_text_args(tmp_path, steps=2) + ["--report.enabled", "false"]
    assert main(args) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main(tiny_text_args(tmp_path, steps=4) + ["--report.enabled", "false", "--ckpt_path", str(last)]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 4
    loaded = TextLM.load_from_checkpoint(last, map_location="cpu").eval()
    assert loaded.model.cfg.segment_lengths == [16, 32, 64] and loaded.model.cfg.d_model == 32
    weights = torch.load(last, weights_only=True)["state_dict"]
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_validate_writes_its_plot_beside_its_report_not_into_the_export_folder(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture) -> None:
    args = tiny_text_args(tmp_path, steps=2)
    assert main(args + ["--report.enabled", "false"]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    validate = ["validate", *args[1:], "--checkpoint.dirpath", str(tmp_path / "again" / "checkpoints"),
                "--ckpt_path", str(last)]
    assert main(validate) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("held-out bits per byte: ")
    assert (tmp_path / "again" / "held_out_report.json").is_file()
    assert (tmp_path / "again" / "bits_per_byte_by_length.png").is_file()
    assert not (tmp_path / "model").exists(), "validate wrote into report.export_dir, where fit exports its model"


def one_line(capfd: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(argv)
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("genomenet: error: ")
    return err[0]


def test_bad_text_input_is_one_line(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    short = tmp_path / "short.txt"
    short.write_bytes(b"to be or not to be " * 40)   # 760 bytes: a 5% split of 38 bytes cannot hold 64
    (tmp_path / "wikitext").mkdir()
    (tmp_path / "wikitext" / "wiki.train.raw").write_bytes(b"x" * 1000)
    base = tiny_text_args(tmp_path)
    at = base.index("--data.path") + 1
    cases = {str(empty): "empty", str(short): "fewer than one window", str(tmp_path / "wikitext"): "wiki.valid.raw",
             str(tmp_path / "nothing.txt"): "no such file"}
    for path, said in cases.items():
        assert said in one_line(capfd, [*base[:at], path, *base[at + 1:]])
    too_long = one_line(capfd, base + ["--report.length_multiples", "[1,1000]"])
    assert "length_multiples" in too_long
    assert not (tmp_path / "run").exists(), "trained (and checkpointed) before refusing the report's lengths"
    assert "kmer_size" in one_line(capfd, base + ["--data.kmer_size", "2"])


def test_genome_commands_refuse_a_text_model(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    from conftest import LAMBDA

    assert main(tiny_text_args(tmp_path, steps=2)) == 0
    capfd.readouterr()
    line = one_line(capfd, ["embed", "--model", str(tmp_path / "model"), "--fasta", str(LAMBDA),
                            "--out", str(tmp_path / "e.h5")])
    assert "bytes" in line and not (tmp_path / "e.h5").exists()

"""Per-base segmentation (`genomenet fit --config configs/segment_genes.yaml`): windows and their labels line up on
both strands, no window leaves its split, the segmenter sees both sides of a base, a planted gene-like signal in real
sequence is learnt and reported in the contract's lines, and bad annotations fail in one line."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from conftest import CHR20
from sklearn.metrics import f1_score, matthews_corrcoef
from torch import Tensor

from genomenet.cli import main
from genomenet.data.annotation import read_annotation
from genomenet.data.intervals import Interval
from genomenet.data.segment_datamodule import SegmentDataModule
from genomenet.data.splits import SplitConfig, blocks_by_chromosome, split_of
from genomenet.data.tokenizers import N_CODE, make_tokenizer
from genomenet.errors import ConfigError
from genomenet.evaluation.segmentation import f1_per_class, mcc_per_class, mcc_thresholds
from genomenet.model.conv_segmenter import ConvSegmenter, dilation_schedule
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.model.pretrained import PretrainedInfo, export_model
from genomenet.model.segmenter import SegmenterNet, load_segmenter
from genomenet.training.module import OptimizerConfig, warmup_cosine
from genomenet.training.segmenter import Segmenter, after_head_warmup, masked_bce, pos_weights, token_base_codes

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "segment_genes.yaml")
CONTIG = "20:59001-159000"
EXON = "GATTACA" * 6  # the planted exon: a 42-base repeat, not its own reverse complement

# Genes on the chr20 slice (1-based, inclusive): a spliced '+' gene, a spliced '-' gene, a single-exon gene.
GFF3 = f"""##gff-version 3
{CONTIG}\tt\tgene\t2001\t9000\t.\t+\t.\tID=g1
{CONTIG}\tt\tmRNA\t2001\t9000\t.\t+\t.\tID=t1;Parent=g1
{CONTIG}\tt\texon\t2001\t2600\t.\t+\t.\tParent=t1
{CONTIG}\tt\texon\t4001\t4500\t.\t+\t.\tParent=t1
{CONTIG}\tt\texon\t8001\t9000\t.\t+\t.\tParent=t1
{CONTIG}\tt\tCDS\t2301\t2600\t.\t+\t0\tParent=t1
{CONTIG}\tt\tCDS\t4001\t4500\t.\t+\t0\tParent=t1
{CONTIG}\tt\tCDS\t8001\t8400\t.\t+\t2\tParent=t1
{CONTIG}\tt\tgene\t30001\t52000\t.\t-\t.\tID=g2
{CONTIG}\tt\tmRNA\t30001\t52000\t.\t-\t.\tID=t2;Parent=g2
{CONTIG}\tt\texon\t30001\t31000\t.\t-\t.\tParent=t2
{CONTIG}\tt\texon\t41001\t41300\t.\t-\t.\tParent=t2
{CONTIG}\tt\texon\t51001\t52000\t.\t-\t.\tParent=t2
{CONTIG}\tt\tgene\t70001\t71500\t.\t+\t.\tID=g3
{CONTIG}\tt\tmRNA\t70001\t71500\t.\t+\t.\tID=t3;Parent=g3
{CONTIG}\tt\texon\t70001\t71500\t.\t+\t.\tParent=t3
"""


@pytest.fixture(scope="module")
def chr20_gff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gff") / "genes.gff3"
    path.write_text(GFF3)
    return path


def data_module(annotation: Path, cache: Path, **kwargs) -> SegmentDataModule:
    fasta = kwargs.pop("fasta", CHR20)
    args = {"context_length": 512, "split": SplitConfig(block_size=10_000), "val_windows": None,
            "test_windows": None, "cache_dir": str(cache), "batch_size": 4} | kwargs
    dm = SegmentDataModule(str(fasta), str(annotation), **args)
    dm.setup()
    return dm


# windows and labels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2])
def test_batch_labels_and_tokens_are_those_of_the_window_on_its_strand(chr20_gff: Path, session_cache: Path,
                                                                       k: int) -> None:
    dm = data_module(chr20_gff, session_cache, kmer_size=k, reverse_complement_prob=0.5)
    labels, genome, tok = read_annotation(chr20_gff, dm.genome.lengths), dm.genome, make_tokenizer(k)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (4, 512 // k) and batch["input_ids"].dtype == torch.long
    assert batch["labels"].shape == (4, 512, len(labels.classes)) and batch["labels"].dtype == torch.float32
    items = [dm.dataset("train")[key] for key in range(40)]
    assert {item["reverse"] for item in items} == {True, False}
    for item in items:
        chrom, start, reverse = item["chrom"], item["start"], item["reverse"]
        expected = labels.labels(chrom, start, start + 512, reverse=reverse)
        np.testing.assert_array_equal(item["labels"].numpy(), expected)
        forward = tok.encode_packed(genome.window(chrom, start, start + 512)).astype(np.int64)
        ids = tok.reverse_complement(forward) if reverse else forward
        np.testing.assert_array_equal(item["input_ids"].numpy(), ids)
        not_n = genome.bases(chrom, start, start + 512) != N_CODE
        np.testing.assert_array_equal(item["known"].numpy(), not_n[::-1] if reverse else not_n)


def test_reversed_labels_put_the_donor_and_acceptor_where_the_reverse_strand_reads_them(
        chr20_gff: Path, session_cache: Path) -> None:
    """g1's first intron is 2600..4000 (0-based [2600, 4000)): its donor GT is bases 2600-2601 on '+'. A window read
    on the reverse strand holds them at the mirrored offsets."""
    labels = read_annotation(chr20_gff, {CONTIG: 100_000})
    donor = labels.classes.index("splice_donor")
    forward = labels.labels(CONTIG, 2500, 3012)[:, donor]
    reverse = labels.labels(CONTIG, 2500, 3012, reverse=True)[:, donor]
    assert np.flatnonzero(forward).tolist() == [100, 101]
    assert np.flatnonzero(reverse).tolist() == [511 - 101, 511 - 100]


def test_no_window_leaves_its_split_and_held_out_tiles_score_every_base_once(chr20_gff: Path,
                                                                              session_cache: Path) -> None:
    dm = data_module(chr20_gff, session_cache, context_length=768, split=SplitConfig(block_size=7_000, seed=3))
    by_chrom = blocks_by_chromosome(dm.blocks)
    train = dm.dataset("train")
    for key in range(300):
        chrom, start, _ = train.locate(key)
        assert split_of(Interval(chrom, start, start + 768), by_chrom) == "train"
    for split in ("val", "test"):
        scored = np.zeros(100_000, dtype=int)
        for item in dm.dataset(split):
            assert split_of(Interval(item["chrom"], item["start"], item["start"] + 768), by_chrom) == split
            scored[item["start"]:item["start"] + 768] += item["known"].numpy()
        assert scored.max() == 1
        inside = np.zeros(100_000, dtype=bool)
        for run in dm.runs[split]:
            if run.length >= 768:
                inside[run.start:run.end] = True
        not_n = dm.genome.bases(CONTIG, 0, 100_000) != N_CODE
        np.testing.assert_array_equal(scored.astype(bool), inside & not_n)


def test_a_contig_shorter_than_a_window_is_padded_and_unknown_past_its_end(tmp_path: Path) -> None:
    seq = "".join(line.strip() for line in CHR20.read_text().splitlines()[1:])[2000:10_000]
    fasta = tmp_path / "three.fa"
    fasta.write_text(f">a\n{seq[:5000]}\n>b\n{seq[5000:7000]}\n>c\n{seq[7000:7300]}\n")
    gff = tmp_path / "g.gff3"
    gff.write_text("".join(f"{c}\tt\texon\t11\t{n}\t.\t+\t.\tParent=t{c}\n" for c, n in (("a", 900), ("b", 500),
                                                                                       ("c", 200))))
    dm = data_module(gff, tmp_path / "cache", fasta=fasta, max_n_fraction=0.5,
                     split=SplitConfig(by="chromosome", val_chromosomes=["b"], test_chromosomes=["c"]))
    (item,) = list(dm.dataset("test"))
    assert (item["chrom"], item["start"]) == ("c", 0)
    assert item["known"].numpy().tolist() == [True] * 300 + [False] * 212
    assert (item["input_ids"][300:] == dm.tokenizer.pad_id).all() and (item["input_ids"][:300] < 4).all()
    assert item["labels"][10:200, read_annotation(gff, dm.genome.lengths).classes.index("exon")].all()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"annotation": None}, "data.annotation"),
     ({"tracks": {"exon": "x.bed"}}, "not both"),
     ({"context_length": 1001, "kmer_size": 2}, "context_length"),
     ({"split": SplitConfig(block_size=10_000, val_fraction=0.0)}, "no validation window"),
     ({"sequence_parallel_size": 2}, "sequence_parallel_size")],
)
def test_data_settings_that_cannot_work_are_one_line_config_errors(chr20_gff: Path, session_cache: Path,
                                                                   kwargs: dict, named: str) -> None:
    args = {"annotation": str(chr20_gff), "context_length": 512, "cache_dir": str(session_cache)} | kwargs
    with pytest.raises(ConfigError, match=named) as err:
        SegmentDataModule(str(CHR20), **args).setup()
    assert "\n" not in str(err.value)


# the model sees both sides -----------------------------------------------------------------------------------


def reach(net: SegmenterNet, n: int, middle: int) -> np.ndarray:
    """(n,) size of the gradient of the middle base's logits w.r.t. the embedding of each position, both passes
    (the reverse pass's positions mapped back to the window's)."""
    embedded = []
    hook = net.backbone.embed.register_forward_hook(lambda m, i, out: embedded.append(out) or out.retain_grad())
    ids = torch.randint(0, 4, (1, n))
    net(ids)[0, middle].sum().backward()
    hook.remove()
    size = embedded[0].grad[0].norm(dim=-1)
    if len(embedded) == 2:
        size = size + embedded[1].grad[0].norm(dim=-1).flip(0)
    return size.detach().numpy()


def tiny_net(causal: bool, strands: str, head: str = "linear", k: int = 1, levels: int = 5) -> SegmenterNet:
    tok = make_tokenizer(k)
    cfg = LongNetConfig(vocab_size=tok.vocab_size, n_layers=2, d_model=32, n_heads=2, segment_lengths=[16, 64],
                        dilation_rates=[1, 2])
    rc = torch.as_tensor(tok.reverse_complement_ids) if strands == "both" else None
    return SegmenterNet(LongNet(cfg, causal=causal), 3, k, head, strands, rc, tok.pad_id, 16, 5,
                        head_levels=levels).eval()


def seen(size: np.ndarray) -> float:
    """Share of positions the base's logits depend on. (Causal dilated attention leaves a few positions unseen in
    two layers: with segments 16 and 64 at rates 1 and 2, base 32 reaches neither 15 nor 31.)"""
    return float((size > 0).mean())


def test_both_strands_give_a_causal_backbone_context_on_both_sides_of_a_base() -> None:
    size = reach(tiny_net(causal=True, strands="both"), 64, 32)
    assert seen(size[:32]) > 0.9 and seen(size[33:]) == 1.0 and size[0] > 0 and size[63] > 0


def test_a_causal_backbone_on_one_strand_sees_only_the_left_beyond_the_head() -> None:
    size = reach(tiny_net(causal=True, strands="forward"), 64, 32)
    assert seen(size[:33]) > 0.9 and size[33:].max() == 0
    size = reach(tiny_net(causal=True, strands="forward", head="conv"), 64, 32)   # two kernel-5 convolutions
    assert size[33:37].min() > 0 and size[37:].max() == 0


def test_a_unet_head_reads_far_beyond_the_conv_head_and_no_further_than_its_reach() -> None:
    net = tiny_net(causal=True, strands="forward", head="unet", levels=2)   # kernel 5, pool 4
    assert net.head.unet.reach == (4 + 3) * 1 + (4 + 3) * 4 + 2 * 16 == 67
    size = reach(net, 300, 100)   # the right side reaches the base through the head alone
    assert size[140:168].max() > 0 and size[168:].max() == 0
    assert net(torch.randint(0, 4, (2, 77))).shape == (2, 77, 3)   # not a multiple of 16: padded, cropped back


def fit_dinucleotide_head(base_channels: int, steps: int = 150) -> float:
    """Held-out MCC of a head, on a frozen random 4-mer backbone, trained to call both bases of every GT in chr20
    sequence: a 2-base site that a 4-mer token holds anywhere, or splits with its neighbour."""
    torch.manual_seed(0)
    tok = make_tokenizer(4)
    cfg = LongNetConfig(vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, segment_lengths=[16, 64],
                        dilation_rates=[1, 2])
    net = SegmenterNet(LongNet(cfg, causal=False), 1, 4, "linear", "forward", None, tok.pad_id,
                       head_base_channels=base_channels, head_base_kernel=5, token_bases=tok.base_codes)
    net.backbone.requires_grad_(False)
    seq = "".join(line.strip() for line in CHR20.read_text().splitlines()[1:])[2000:]
    site = np.zeros(len(seq), dtype=np.float32)
    starts = np.array([m.start() for m in re.finditer("(?=GT)", seq)])
    site[starts], site[starts + 1] = 1.0, 1.0
    ids = torch.from_numpy(tok.encode(seq).astype(np.int64))
    labels = torch.from_numpy(site[: len(ids) * 4])

    def windows(first: int, count: int) -> tuple[Tensor, Tensor]:   # count windows of 64 tokens from token `first`
        rows = torch.arange(first, first + 64 * count).view(count, 64)
        return ids[rows], labels[(rows * 4)[..., None] + torch.arange(4)].view(count, 256, 1)

    train_ids, train_labels = windows(0, 256)             # the first 65,536 bases train, the rest is held out
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    for step in range(steps):
        batch = torch.arange(16) + (16 * step) % 256
        loss = F.binary_cross_entropy_with_logits(net(train_ids[batch]), train_labels[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_ids, test_labels = windows(256 * 64, 100)
    with torch.no_grad():
        calls = net(test_ids) > 0
    return float(matthews_corrcoef(test_labels.flatten().numpy(), calls.flatten().numpy()))


def test_a_base_resolution_head_places_a_two_base_site_inside_kmer_tokens() -> None:
    by_token, by_base = fit_dinucleotide_head(0), fit_dinucleotide_head(8)
    assert by_base > 0.95 and by_base > by_token + 0.1, (by_token, by_base)


@pytest.mark.parametrize("head_args", [{"head_kernel": 8}, {"head": "unet", "head_levels": 0},
                                       {"head": "unet", "head_pool": 1}])
def test_a_head_that_cannot_be_built_is_a_one_line_config_error(head_args: dict) -> None:
    with pytest.raises(ConfigError, match="head_kernel=") as err:
        Segmenter(**head_args)
    assert "\n" not in str(err.value)


def test_a_bidirectional_backbone_sees_both_sides_in_one_pass() -> None:
    size = reach(tiny_net(causal=False, strands="forward"), 64, 32)
    assert seen(size[:32]) == 1.0 and seen(size[33:]) == 1.0


def test_a_kmer_backbone_gives_k_logits_per_token_in_base_order() -> None:
    net = tiny_net(causal=True, strands="both", head="conv", k=2)
    assert net(torch.randint(0, 16, (3, 40))).shape == (3, 80, 3)


def test_conv_baseline_reads_about_its_receptive_field_and_no_further() -> None:
    assert dilation_schedule(256) == [1, 2, 4, 8, 16, 32, 61]
    net = ConvSegmenter(2, token_base_codes(make_tokenizer(1)), receptive_field=64, channels=8).eval()
    assert 64 <= net.receptive_field <= 66
    half = net.receptive_field // 2
    ids = torch.randint(0, 4, (1, 301))
    for distance, moves in ((half, True), (half + 1, False), (-half, True), (-half - 1, False)):
        other = ids.clone()
        other[0, 150 + distance] = (other[0, 150 + distance] + 1) % 4
        assert (net(ids)[0, 150] != net(other)[0, 150]).any().item() is moves, distance


# loss and metrics --------------------------------------------------------------------------------------------


def test_the_loss_counts_known_bases_only_and_weighs_rare_classes() -> None:
    logits, labels = torch.randn(2, 10, 3), torch.randint(0, 2, (2, 10, 3)).float()
    known = torch.zeros(2, 10, dtype=torch.bool)
    known[0, :4] = True
    changed = logits.clone()
    changed[~known] = 100.0
    assert torch.allclose(masked_bce(logits, labels, known), masked_bce(changed, labels, known))
    weights = pos_weights(np.array([0.5, 0.02, 0.0001, 0.0]), cap=50)
    assert weights.tolist() == pytest.approx([1.0, 49.0, 50.0, 50.0])


def test_the_backbone_learns_only_after_the_head_warmup() -> None:
    lr = after_head_warmup(OptimizerConfig(warmup_steps=10), total=100, frozen=30)
    assert [lr(s) for s in (0, 29)] == [0.0, 0.0] and 0 < lr(30) < lr(35) < lr(39)
    assert after_head_warmup(OptimizerConfig(warmup_steps=10), 100, 0)(5) == warmup_cosine(OptimizerConfig(
        warmup_steps=10), 100)(5)


def test_kmer_tokens_map_back_to_their_bases() -> None:
    tok = make_tokenizer(3)
    codes = token_base_codes(tok)[torch.as_tensor(tok.encode("ACGTTGCANAA").astype(np.int64))].flatten()
    assert "".join("ACGTN"[c] for c in codes) == "ACGTTGNNN"


def test_base_level_mcc_and_f1_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    targets = rng.random((500, 4)) < [0.5, 0.05, 0.0, 1.0]
    predicted = rng.random((500, 4)) < [0.4, 0.1, 0.1, 0.9]
    for c in range(4):
        assert mcc_per_class(targets, predicted)[c] == pytest.approx(matthews_corrcoef(targets[:, c],
                                                                                       predicted[:, c]))
        assert f1_per_class(targets, predicted)[c] == pytest.approx(f1_score(targets[:, c], predicted[:, c],
                                                                             zero_division=0))


def test_validation_thresholds_reach_the_best_mcc_that_any_cut_of_the_probabilities_gives() -> None:
    rng = np.random.default_rng(0)
    targets = rng.random((400, 4)) < [0.3, 0.05, 0.0, 0.6]
    probs = np.round(np.clip(0.35 * targets + 0.8 * rng.random((400, 4)), 0, 1), 2).astype(np.float32)  # ties
    thresholds = mcc_thresholds(targets, probs)
    for c in (0, 1, 3):
        best = max(matthews_corrcoef(targets[:, c], probs[:, c] >= t) for t in np.unique(probs[:, c]))
        assert matthews_corrcoef(targets[:, c], probs[:, c] >= thresholds[c]) == pytest.approx(best)
        assert 0 < thresholds[c] <= 1
    assert thresholds[2] == 0.5                                           # no positive base: the default


# end to end --------------------------------------------------------------------------------------------------


def planted_genome(folder: Path, seed: int = 0) -> tuple[Path, Path, int]:
    """The chr20 slice with EXON written at random places 150 to 450 bases apart; each copy is a one-exon gene in
    the GFF3 (so `exon` and `gene` are exactly the planted stretches, about 14% of the bases)."""
    rng = random.Random(seed)
    seq = list("".join(line.strip() for line in CHR20.read_text().splitlines()[1:]))
    lines, place = [], 1500
    while place < len(seq) - 200:
        seq[place:place + len(EXON)] = EXON
        start, end = place + 1, place + len(EXON)
        lines += [f"{CONTIG}\tt\tgene\t{start}\t{end}\t.\t+\t.\tID=g{place}\n",
                  f"{CONTIG}\tt\tmRNA\t{start}\t{end}\t.\t+\t.\tID=t{place};Parent=g{place}\n",
                  f"{CONTIG}\tt\texon\t{start}\t{end}\t.\t+\t.\tParent=t{place}\n"]
        place += rng.randint(150, 450)
    fasta, gff = folder / "planted.fa", folder / "planted.gff3"
    fasta.write_text(f">{CONTIG}\n" + "".join("".join(seq[i:i + 60]) + "\n" for i in range(0, len(seq), 60)))
    gff.write_text("##gff-version 3\n" + "".join(lines))
    return fasta, gff, len(lines) // 3


def untrained_backbone(out: Path) -> Path:
    """A 2-layer causal LongNet with its initial weights, exported as a pre-trained model would be (a stand-in:
    this test is about the segmentation pipeline, not about what pre-training adds)."""
    torch.manual_seed(0)
    cfg = LongNetConfig(vocab_size=make_tokenizer(1).vocab_size, n_layers=2, d_model=32, n_heads=2,
                        segment_lengths=[64, 256], dilation_rates=[1, 4])
    return export_model(LongNet(cfg, causal=True), PretrainedInfo(cfg, ObjectiveConfig("causal"), 1, 256), out)


def fit_argv(folder: Path, fasta: Path, gff: Path, init: Path | None, steps: int) -> list[str]:
    return ["fit", "--config", CONFIG, "--data.fasta", str(fasta), "--data.annotation", str(gff),
            "--data.context_length", "128", "--data.split.block_size", "10000", "--data.batch_size", "8",
            "--data.val_windows", "16", "--data.test_windows", "40", "--data.cache_dir", str(folder / "cache"),
            *(["--model.init_weights", str(init)] if init else []),
            "--model.head_hidden", "32", "--model.backbone_lr_scale", "0.1", "--model.head_warmup_steps", "30",
            "--model.optimizer.lr", "0.01",
            "--model.optimizer.warmup_steps", "10", "--trainer.max_steps", str(steps),
            "--trainer.val_check_interval", str(steps // 2), "--trainer.accelerator", "cpu",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--checkpoint.dirpath", str(folder / "run" / "checkpoints"),
            "--report.export_dir", str(folder / "run" / "model")]


@pytest.mark.slow
def test_fit_learns_a_planted_exon_signal_and_ends_with_the_contract_lines(tmp_path: Path, capsys) -> None:
    fasta, gff, sites = planted_genome(tmp_path)
    backbone = untrained_backbone(tmp_path / "backbone")
    assert main(fit_argv(tmp_path, fasta, gff, backbone, steps=150)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    line = re.fullmatch(r"held-out MCC: (-?\d\.\d{3}) \(baseline: (-?\d\.\d{3})\)", out[-2])
    assert line, out[-2]
    assert out[-1] == f"model: {tmp_path / 'run' / 'model'}"
    report = json.loads((tmp_path / "run" / "held_out_report.json").read_text())
    exon = report["models"]["fine-tuned LongNet"]["per_class"]["exon"]
    assert exon["mcc"] > 0.8 and exon["auprc"] > 0.8, exon   # chance: MCC 0, AUPRC = the exon share (~0.14)
    assert set(report["mean_over"]) == {"gene", "exon", "intergenic"}
    assert len(report["models"]) == 3 and float(line.group(1)) == pytest.approx(
        report["models"]["fine-tuned LongNet"]["mean"]["mcc"], abs=1e-3)
    for row in report["models"].values():
        assert set(row["validation_thresholds"]) == set(report["classes"])
        assert all(0 < t <= 1 for t in row["validation_thresholds"].values())
        assert -1 <= row["mean_at_validation_thresholds"]["mcc"] <= 1
    assert (tmp_path / "run" / "split.tsv").is_file() and (tmp_path / "run" / "test.bed").is_file()
    net = load_segmenter(tmp_path / "run" / "model", make_tokenizer)
    assert net.info.classes[:2] == ["gene", "exon"] and net.info.context_length == 128 and sites > 100
    assert net.info.thresholds == report["models"]["fine-tuned LongNet"]["validation_thresholds"]
    assert any(line.startswith("| mean MCC / F1 at per-class thresholds picked on validation |") for line in out)
    best = next(line for line in out if line.startswith("reporting the best checkpoint by val/mcc: "))
    from_checkpoint = load_segmenter(best.split(": ", 1)[1], make_tokenizer)
    ids = torch.randint(0, 4, (2, 128))
    with torch.no_grad():
        assert net(ids).shape == (2, 128, len(net.info.classes))
        torch.testing.assert_close(net(ids), from_checkpoint(ids))   # the export is the reported checkpoint


def test_a_stopped_fit_resumes_from_its_checkpoint_with_ckpt_path(tmp_path: Path) -> None:
    """`fit --ckpt_path` reads the model's settings back from the checkpoint (LightningCLI parses its
    hyperparameters as the model's arguments), a U-Net head included, and trains on to max_steps."""
    fasta, gff, _ = planted_genome(tmp_path)
    backbone = untrained_backbone(tmp_path / "backbone")
    quick = ["--report.segment_baselines", "[]", "--model.head", "unet", "--model.head_levels", "2",
             "--model.head_warmup_steps", "0"]
    assert main(fit_argv(tmp_path, fasta, gff, backbone, steps=2) + quick) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2
    assert main(fit_argv(tmp_path, fasta, gff, backbone, steps=4) + quick + ["--ckpt_path", str(last)]) == 0
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == 4 and resumed["hyper_parameters"]["init_args"]["head_levels"] == 2


def test_a_fit_resumed_with_longer_windows_trains_on_from_the_checkpoint_and_its_schedule(tmp_path: Path) -> None:
    """Short windows first, then long ones (tasks/segment_genes/curriculum.sh): phase 1 stops part-way down a
    schedule of `decay_steps`, phase 2 resumes its checkpoint with a longer data.context_length and ends that same
    schedule; the exported model records the longer window."""
    fasta, gff, _ = planted_genome(tmp_path)
    backbone = untrained_backbone(tmp_path / "backbone")
    quick = ["--report.segment_baselines", "[]", "--model.head_warmup_steps", "0",
             "--model.optimizer.decay_steps", "8", "--model.optimizer.warmup_steps", "2"]
    assert main(fit_argv(tmp_path, fasta, gff, backbone, steps=4) + quick + ["--report.enabled", "false"]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    schedule = warmup_cosine(OptimizerConfig(lr=0.01, warmup_steps=2, min_lr_ratio=0.1), 8)
    phase1 = torch.load(last, weights_only=False)
    assert phase1["global_step"] == 4
    assert phase1["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.01 * schedule(4))
    longer = ["--data.context_length", "256", "--data.batch_size", "4", "--ckpt_path", str(last)]
    assert main(fit_argv(tmp_path, fasta, gff, backbone, steps=8) + quick + longer) == 0
    phase2 = torch.load(last, weights_only=False)
    assert phase2["global_step"] == 8
    assert phase2["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.01 * schedule(8))   # the floor, 0.001
    assert load_segmenter(tmp_path / "run" / "model", make_tokenizer).info.context_length == 256


def test_testing_a_checkpoint_on_an_annotation_with_other_classes_is_one_line(tmp_path: Path,
                                                                               capfd: pytest.CaptureFixture) -> None:
    """A segmenter scored on another annotation (another species) whose feature types give other classes: one
    line naming them, not load_state_dict's size mismatch as a traceback; data.extra_types restores the columns."""
    fasta, gff, _ = planted_genome(tmp_path)
    quick = ["--report.segment_baselines", "[]", "--model.head_warmup_steps", "0"]
    assert main(fit_argv(tmp_path, fasta, gff, None, steps=2) + quick) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with_trna = tmp_path / "with_trna.gff3"
    with_trna.write_text(gff.read_text() + f"{CONTIG}\tt\ttRNA\t100\t170\t.\t+\t.\tID=trna1\n")
    capfd.readouterr()
    argv = fit_argv(tmp_path / "again", fasta, with_trna, None, steps=2) + quick + ["--ckpt_path", str(last)]
    code = main(["test", *argv[1:]])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "only in the annotation: tRNA" in err[0], err


# bad input through the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [(f"{CONTIG}\tt\trepeat_region\t10\t500\t.\t+\t.\tID=r1\n", "no gene or exon features"),
     ("chrZ\tt\tgene\t10\t500\t.\t+\t.\tID=g1\n", "matches no FASTA contig"),
     (f"{CONTIG}\tt\tgene\t10\t500\t.\t+\n", "expected 9 tab-separated columns")],
)
def test_a_bad_annotation_is_one_line_and_exit_code_2(tmp_path: Path, capfd: pytest.CaptureFixture, body: str,
                                                      named: str) -> None:
    gff = tmp_path / "bad.gff3"
    gff.write_text("##gff-version 3\n" + body)
    code = main(["fit", "--config", CONFIG, "--data.fasta", str(CHR20), "--data.annotation", str(gff),
                 "--data.cache_dir", str(tmp_path / "cache"), "--checkpoint.dirpath", str(tmp_path / "ckpt")])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("genomenet: error: ") and named in err[0], err
    assert str(gff) in err[0]
    assert not (tmp_path / "ckpt").exists()


def test_fit_without_an_annotation_says_what_to_give(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    code = main(["fit", "--config", CONFIG, "--data.fasta", str(CHR20), "--checkpoint.dirpath", str(tmp_path)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.annotation" in err[0], err


def test_a_warm_start_may_lengthen_the_attention_branches_but_not_change_the_shape(tmp_path: Path) -> None:
    from inference_models import tiny_model

    from genomenet.model.pretrained import load_pretrained
    from genomenet.training.segmenter import with_geometry

    trained = load_pretrained(tiny_model(tmp_path / "lm", seed=0)).cfg
    longer = with_geometry(trained, LongNetConfig(segment_lengths=[64, 256, 4096], dilation_rates=[1, 4, 64]), "lm")
    assert (longer.segment_lengths, longer.dilation_rates) == ([64, 256, 4096], [1, 4, 64])
    assert (longer.n_layers, longer.d_model, longer.vocab_size) == (trained.n_layers, trained.d_model,
                                                                      trained.vocab_size)
    assert with_geometry(trained, LongNetConfig(), "lm") == trained
    with pytest.raises(ConfigError, match="d_model"):
        with_geometry(trained, LongNetConfig(d_model=64), "lm")

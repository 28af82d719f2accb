"""The held-out report of the supervised variant-effect head: AUROC and AUPRC on the test split beside a
logistic regression on the same (frozen, pre-trained) features, one on the Markov LLR, and the backbone's own
zero-shot score; the head exported to safetensors + JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_model
from sklearn.metrics import average_precision_score, roc_auc_score

from genomenet.baselines.kmer import logistic_regression
from genomenet.downstream.variant_effects import pair_llr

HEAD_ROW = "supervised head"
FORMAT = "genomenet-variant-head/1"


@torch.no_grad()
def split_outputs(module, datamodule, split: str, zero_shot: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """(features, head probabilities, targets, Markov LLR, zero-shot LLR or None per example) of one split; without
    `zero_shot` the LLR list is empty (it costs a second pass of the backbone over every window)."""
    module.eval()
    feats, probs, targets, markov, llr = [], [], [], [], []
    for batch in datamodule.dataloader(split):
        f = module.features(batch, split)
        feats.append(f.float().cpu().numpy())
        probs.append(torch.sigmoid(module.head(f)[:, 0]).float().cpu().numpy())
        targets.append(batch["target"].numpy())
        markov.append(batch["markov"].numpy())
        llr += zero_shot_llr(module, batch) if zero_shot else []
    return (np.concatenate(feats), np.concatenate(probs), np.concatenate(targets), np.concatenate(markov), llr)


def zero_shot_llr(module, batch: dict) -> list:
    """The causal backbone's own LLR of each (ref, alt) pair (None for a masked backbone)."""
    if not module.backbone.causal:
        return [None] * len(batch["target"])
    out = []
    for ref, alt in zip(batch["ref"], batch["alt"], strict=True):
        n = max(len(ref), len(alt))
        ids = torch.full((2, n), module.pad_id, dtype=torch.long)
        ids[0, :len(ref)], ids[1, :len(alt)] = ref, alt
        real = ids != module.pad_id
        logits = module.backbone(ids, key_padding_mask=None if bool(real.all()) else ~real).float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
        out.append(pair_llr(logp * (ids[:, 1:] < module.n_id), ids))
    return out


def metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {"auroc": float(roc_auc_score(y, score)), "auprc": float(average_precision_score(y, score))}


def variant_report(module, datamodule, out_dir: Path, export: bool = True) -> dict:
    """Print the table; returns {row: {auroc, auprc}} and, when exported, the model directory under `model_dir`."""
    datamodule.setup()
    module = module.cpu().float()
    x_train, _, y_train, m_train, _ = split_outputs(module, datamodule, "train", zero_shot=False)
    x_test, p_test, y_test, m_test, llr_test = split_outputs(module, datamodule, "test")
    rows = {HEAD_ROW: metrics(y_test, p_test)}
    features = logistic_regression("binary").fit(x_train, y_train.astype(int))
    rows["logistic regression on the same frozen features"] = metrics(y_test, features.predict_proba(x_test)[:, 1])
    markov = logistic_regression("binary").fit(m_train[:, None], y_train.astype(int))
    rows["Markov LLR (logistic regression)"] = metrics(y_test, markov.predict_proba(m_test[:, None])[:, 1])
    if all(v is not None for v in llr_test):
        rows["zero-shot: -LLR of the backbone"] = metrics(y_test, -np.asarray(llr_test))
    lines = [f"held-out test variants: {len(y_test)} ({int(y_test.sum())} positive)", "| model | AUROC | AUPRC |",
             "|---|---:|---:|"]
    lines += [f"| {name} | {m['auroc']:.3f} | {m['auprc']:.3f} |" for name, m in rows.items()]
    head = rows[HEAD_ROW]["auroc"]
    beaten = [name for name, m in rows.items() if name != HEAD_ROW and not head > m["auroc"]]
    lines.append(f"the supervised head LOSES to {', '.join(beaten)} on AUROC" if beaten
                 else "the supervised head beats every baseline on AUROC")
    print("\n".join(lines), flush=True)
    result = {"test": rows}
    if export:
        result["model_dir"] = export_head(module, out_dir)
    return result


def export_head(module, out_dir: Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(module, str(out / ".model.safetensors.tmp"))
    os.replace(out / ".model.safetensors.tmp", out / "model.safetensors")
    config = {"format": FORMAT, **module.hparams, "backbone": module.backbone.cfg.__dict__,
              "causal": module.backbone.causal}
    (out / ".config.json.tmp").write_text(json.dumps(config, indent=2, default=list) + "\n")
    os.replace(out / ".config.json.tmp", out / "config.json")
    return out


def final_lines(result: dict) -> str:
    rows = result["test"]
    lines = [f"held-out AUROC: {rows[HEAD_ROW]['auroc']:.3f} (Markov baseline: "
             f"{rows['Markov LLR (logistic regression)']['auroc']:.3f})"]
    if "model_dir" in result:
        lines.append(f"model: {result['model_dir']}")
    return "\n".join(lines)

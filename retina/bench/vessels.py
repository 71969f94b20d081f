"""Vessel segmentation with synthetic pre-training (SkrGAN, Zhang et al. 2019, Table 2).

A U-Net is trained on the real training split from scratch, and another one is first pre-trained on the
synthetic images with their vessel masks and then fine-tuned on the same real split; both are tested on the
real test split. Metrics: sensitivity TP/(TP+FN), accuracy, ROC AUC, inside the field of view when the
test set has a ``fov`` mask (the DRIVE convention), else over all pixels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from retina.bench.segment import (
    ModelSpec,
    TrainConfig,
    build_model,
    evaluate_segmenter,
    split_real,
    subset_by_name,
    train_segmenter,
)
from retina.common.dataset import FundusDataset
from retina.common.imageio import write_text_atomic
from retina.common.progress import summary
from retina.common.seeding import seed_everything

SKRGAN_TABLE_2 = {"with": {"sen": 0.8464, "acc": 0.9513, "auc": 0.9762},
                  "without": {"sen": 0.7781, "acc": 0.9477, "auc": 0.9705}}


@dataclass
class VesselConfig:
    resolution: int = 256
    width: int = 64
    pretrain_epochs: int = 20
    finetune_epochs: int = 20
    batch_size: int = 4
    learning_rate: float = 1e-3
    loss: str = "dice"
    seed: int = 0


def run_vessel_benchmark(real: Path, synthetic: Path, config: VesselConfig, out: Path, device: torch.device,
                         show: bool = True) -> dict:
    seed_everything(config.seed)
    spec = ModelSpec(model="unet", channels=("vessels",), resolution=config.resolution, width=config.width)
    probe = FundusDataset(real, config.resolution, channels=("vessels",))
    use_fov = "fov" in probe.index.channels
    channels = ("vessels", "fov") if use_fov else ("vessels",)
    real_data = FundusDataset(real, config.resolution, channels=channels)
    split = split_real(real_data.index, config.seed)
    real_train = subset_by_name(FundusDataset(real, config.resolution, channels=("vessels",)), split["train"])
    real_test = subset_by_name(real_data, split["test"])
    synthetic_data = FundusDataset(synthetic, config.resolution, channels=("vessels",))

    def train(data, epochs: int, model, label: str) -> list[float]:
        return train_segmenter(model, data, TrainConfig(epochs=epochs, batch_size=config.batch_size,
                                                        learning_rate=config.learning_rate, loss=config.loss,
                                                        seed=config.seed), device, label, show)

    fov_index = 1 if use_fov else None
    seed_everything(config.seed)
    scratch = build_model(spec)
    train(real_train, config.finetune_epochs, scratch, "vessels: real only")
    without = evaluate_segmenter(scratch, real_test, ("vessels",), device, config.batch_size, fov_index)["vessels"]
    seed_everything(config.seed)
    pretrained = build_model(spec)
    train(synthetic_data, config.pretrain_epochs, pretrained, "vessels: pre-train synthetic")
    train(real_train, config.finetune_epochs, pretrained, "vessels: fine-tune real")
    with_ = evaluate_segmenter(pretrained, real_test, ("vessels",), device, config.batch_size, fov_index)["vessels"]

    def pick(m: dict) -> dict:
        return {"sen": m["sensitivity"], "acc": m["accuracy"], "auc": m["auc_roc"], "f1": m["f1"]}

    results = {"with": pick(with_), "without": pick(without)}
    document = {"benchmark": "vessels", "protocol": "SkrGAN (Zhang et al. 2019) Table 2",
                "model_description": f"U-Net width {config.width} (random init)", "config": asdict(config),
                "device": str(device), "real": str(real), "synthetic": str(synthetic), "split": split,
                "evaluated_inside_fov": use_fov, "results": results, "paper": SKRGAN_TABLE_2}
    lines = ["| pre-train | SEN | ACC | AUC |", "|---|---|---|---|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['sen']:.4f} | {m['acc']:.4f} | {m['auc']:.4f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", json.dumps(document, indent=2) + "\n")
    write_text_atomic(out / "table.md", f"U-Net width {config.width}, {config.resolution} px\n\n{table}\n")
    if show:
        print(table)
    summary(f"bench vessels: AUC {results['with']['auc']:.4f} with / {results['without']['auc']:.4f} without "
            f"synthetic pre-training -> {out}", show)
    return document

"""Vessel segmentation with synthetic pre-training (SkrGAN, Zhang et al. 2019, Table 2).

A U-Net is trained on the real training split from scratch, and another one is first pre-trained on the
synthetic images with their vessel masks and then fine-tuned on the same real split; both are tested on the
real test split. Metrics: sensitivity TP/(TP+FN), accuracy, ROC AUC, inside the field of view when the
test set has a ``fov`` mask (the DRIVE convention), else over all pixels. Test images, leak refusal, the external
``--test`` set and ``--seeds``: retina.bench.protocol.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Subset

from retina.bench import protocol
from retina.bench.protocol import LEAKY, pm
from retina.bench.segment import (
    ModelSpec,
    TrainConfig,
    build_model,
    evaluate_segmenter,
    scoring_set,
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


def _scoring_set(index, names: list[str], resolution: int) -> tuple[Subset, int | None]:
    return scoring_set(index, names, resolution, ("vessels",))


def run_vessel_benchmark(real: Path, synthetic: Path, config: VesselConfig, out: Path, device: torch.device,
                         show: bool = True, seeds: list[int] | None = None, external: Path | None = None,
                         allow_leak: bool = False) -> dict:
    seeds = seeds or [config.seed]
    spec = ModelSpec(model="unet", channels=("vessels",), resolution=config.resolution, width=config.width)
    real_index = FundusDataset(real, config.resolution, channels=("vessels",)).index
    split = protocol.split_real(real_index, seeds[0], log=show)
    real_train = subset_by_name(FundusDataset(real_index, config.resolution, channels=("vessels",)), split["train"])
    real_test, fov_index = _scoring_set(real_index, split["test"], config.resolution)
    tests = [(real_index, split["test"])]
    external_set = None
    if external is not None:
        external_index, external_names, external_how = protocol.external_test(external)
        external_index.require_channels(["vessels"], f"scoring --test {external} on the same channels")
        external_set = _scoring_set(external_index, external_names, config.resolution)
        tests.append((external_index, external_names))
        split["external"] = {"path": str(external), "method": external_how, "test": external_names}
    leak = protocol.check_leaks(synthetic, tests, allow_leak)
    synthetic_data = FundusDataset(synthetic, config.resolution, channels=("vessels",))

    def pick(m: dict) -> dict:
        m = m["vessels"]
        return {"sen": m["sensitivity"], "acc": m["accuracy"], "auc": m["auc_roc"], "f1": m["f1"]}

    def score(model) -> dict:
        result = {"real": pick(evaluate_segmenter(model, real_test, ("vessels",), device, config.batch_size,
                                                  fov_index))}
        if external_set is not None:
            result["external"] = pick(evaluate_segmenter(model, external_set[0], ("vessels",), device,
                                                         config.batch_size, external_set[1]))
        return result

    runs = []
    for seed in seeds:
        tag = f" seed {seed}" if len(seeds) > 1 else ""

        def train(data, epochs: int, model, label: str, seed=seed, tag=tag) -> list[float]:
            return train_segmenter(model, data, TrainConfig(epochs=epochs, batch_size=config.batch_size,
                                                            learning_rate=config.learning_rate, loss=config.loss,
                                                            seed=seed), device, label + tag, show)

        seed_everything(seed)
        scratch = build_model(spec)
        train(real_train, config.finetune_epochs, scratch, "vessels: real only")
        without = score(scratch)
        seed_everything(seed)
        pretrained = build_model(spec)
        train(synthetic_data, config.pretrain_epochs, pretrained, "vessels: pre-train synthetic")
        train(real_train, config.finetune_epochs, pretrained, "vessels: fine-tune real")
        runs.append({"seed": seed, "with": score(pretrained), "without": without})
    mean, sd = protocol.aggregate([{k: r[k] for k in ("with", "without")} for r in runs])
    parts = ["real"] + (["external"] if external_set is not None else [])
    results = {name: mean[name]["real"] for name in ("with", "without")}
    gains = {f"AUC gain from synthetic pre-training, {part}": protocol.paired_gain(
        [r["with"][part] for r in runs], [r["without"][part] for r in runs], lambda m: m["auc"]) for part in parts}
    document = {"benchmark": "vessels", "protocol": "SkrGAN (Zhang et al. 2019) Table 2",
                "model_description": f"U-Net width {config.width} (random init)", "config": asdict(config),
                "seeds": seeds, "device": str(device), "real": str(real), "synthetic": str(synthetic),
                "external": None if external is None else str(external), "leaky": leak["leaky"], "leak": leak,
                "split": split, "evaluated_inside_fov": fov_index is not None, "results": results,
                "by_test_set": mean, "sd": sd if len(runs) > 1 else {}, "gains": gains, "runs": runs,
                "paper": SKRGAN_TABLE_2}
    lines = ["| pre-train | test set | SEN | ACC | AUC |", "|---|---|---|---|---|"]
    for name in ("with", "without"):
        for part in parts:
            m, s = mean[name][part], (sd[name][part] if len(runs) > 1 else {})
            lines.append(f"| {name} | {part} | {pm(m['sen'], s.get('sen'))} | {pm(m['acc'], s.get('acc'))} | "
                         f"{pm(m['auc'], s.get('auc'))} |")
    table = "\n".join(lines) + "\n\n" + "\n".join(
        f"- {name}: {pm(g['mean'], g['sd'], signed=True)}" for name, g in gains.items())
    banner = protocol.leak_banner(leak)
    seeds_note = f", mean ± sd over seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else f", seed {seeds[0]}"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", json.dumps(document, indent=2) + "\n")
    write_text_atomic(out / "table.md", f"{banner}U-Net width {config.width}, {config.resolution} px{seeds_note}"
                      f"\n\n{table}\n")
    if show:
        print(banner + table)
    summary(f"bench vessels{' (' + LEAKY + ')' if leak['leaky'] else ''}: AUC {pm(results['with']['auc'])} with / "
            f"{pm(results['without']['auc'])} without synthetic pre-training ({len(seeds)} seed(s)) -> {out}", show)
    return document

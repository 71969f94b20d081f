"""DR grading benchmark with synthetic data (DR-GAN, Zhou et al. 2020, Tables III-V).

Settings (Sec. IV-D): Tr-Real / Te-Fake (a grader trained on real images, tested on the synthetic set),
Tr-Real / Te-Real (the baseline) and Tr-Real & Fake / Te-Real (synthetic images added to training).
Metrics: accuracy, quadratic weighted kappa, per-class true positive rate. Test images, leak refusal, the
external ``--test`` set and ``--seeds``: retina.bench.protocol.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from retina.bench import protocol
from retina.bench.metrics import grading_metrics
from retina.bench.protocol import LEAKY, pm
from retina.bench.segment import subset_by_name, train_epoch
from retina.common.dataset import FundusDataset
from retina.common.errors import RetinaError
from retina.common.imageio import atomic_path, write_text_atomic
from retina.common.imagenet import imagenet_normalise
from retina.common.progress import progress_bar, summary
from retina.common.schema import NUM_GRADES
from retina.common.seeding import seed_everything

MODELS = ("resnet50", "inception_v3")
DRGAN_TABLE_3 = {  # ResNet-50 row of DR-GAN Table III (accuracy %, kappa %)
    "tr_real_te_fake": (89.45, 88.11), "tr_real_te_real": (86.24, 83.82), "tr_real_fake_te_real": (88.06, 85.90)}
DRGAN_TABLE_5_TPR = {  # DR-GAN Table V, ResNet-50: grade -> (Tr-Real, Tr-Real & Fake) TPR on real test
    0: (0.9376, 0.9514), 1: (0.4723, 0.4901), 2: (0.7624, 0.7771), 3: (0.8411, 0.8655), 4: (0.8439, 0.8622)}


@dataclass
class GradeConfig:
    model: str = "resnet50"
    width: str = "full"  # "tiny": a one-block-per-stage ResNet so that tests run in seconds on CPU
    resolution: int = 256
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-4  # Adam
    seed: int = 0


class _ImageNetInput(nn.Module):
    """Our images are in [-1, 1]; torchvision ResNets expect ImageNet-normalised input."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(imagenet_normalise(image))


def check_config(config: GradeConfig) -> None:
    """Option errors first, before any data is read."""
    if config.model not in MODELS:
        raise RetinaError(f"--model {config.model}: unknown; use {' or '.join(MODELS)}")
    if config.width not in ("full", "tiny"):
        raise RetinaError(f"--width {config.width}: use full or tiny")


def build_grader(config: GradeConfig, weights_dir: str | None = None) -> tuple[nn.Module, str]:
    """A torchvision classifier with a 5-way head and a description of its initialisation."""
    from torchvision import models

    check_config(config)
    if config.width == "tiny":
        network = models.resnet.ResNet(models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=NUM_GRADES)
        return _ImageNetInput(network), "tiny ResNet (1 block per stage, random init; test size only)"
    if config.model == "resnet50":
        network = models.resnet50(weights=None)
    else:
        if config.resolution < 75:
            raise RetinaError(f"--res {config.resolution}: Inception-v3 needs at least 75 px")
        network = models.inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    source = "random init"
    try:
        from retina.eval.weights import find_weights

        path = find_weights(config.model, weights_dir)
    except (ImportError, RetinaError):
        path = None
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict({k: v for k, v in state.items() if not k.startswith("AuxLogits")}, strict=False)
        source = f"ImageNet weights {Path(path).name}"
    network.fc = nn.Linear(network.fc.in_features, NUM_GRADES)
    # Inception-v3 takes [-1, 1] directly (transform_input=False is that convention).
    module = _ImageNetInput(network) if config.model == "resnet50" else network
    return module, f"{config.model} ({source})"


def train_grader(model: nn.Module, data: Dataset, config: GradeConfig, device: torch.device, label: str,
                 show: bool = True) -> list[float]:
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, generator=generator,
                        drop_last=len(data) > config.batch_size and len(data) % config.batch_size == 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    model.to(device).train()
    losses = []
    with progress_bar(config.epochs * len(loader), label, enabled=show) as bar:
        for epoch in range(config.epochs):
            losses.append(train_epoch(
                loader, optimiser, bar, epoch,
                lambda batch: nn.functional.cross_entropy(model(batch["image"].to(device)), batch["grade"].to(device))))
    return losses


@torch.no_grad()
def evaluate_grader(model: nn.Module, data: Dataset, device: torch.device, batch_size: int = 16) -> dict:
    model.to(device).eval()
    true, predicted = [], []
    for batch in DataLoader(data, batch_size=batch_size):
        predicted.append(model(batch["image"].to(device)).argmax(dim=1).cpu().numpy())
        true.append(batch["grade"].numpy())
    return grading_metrics(np.concatenate(true), np.concatenate(predicted), NUM_GRADES)


def grade_table(results: dict, sd: dict | None = None) -> str:
    sd = sd or {}
    lines = ["| setting | accuracy | kappa | " + " | ".join(f"TPR {g}" for g in range(NUM_GRADES)) + " |",
             "|---" * (3 + NUM_GRADES) + "|"]
    for name, m in results.items():
        s = sd.get(name, {})
        tpr = " | ".join(pm(m["tpr"][str(g)], s.get("tpr", {}).get(str(g))) for g in range(NUM_GRADES))
        lines.append(f"| {name} | {pm(m['accuracy'], s.get('accuracy'))} | {pm(m['kappa'], s.get('kappa'))} | {tpr} |")
    return "\n".join(lines)


def gain_lines(gains: dict) -> str:
    return "\n".join(f"- {name}: {pm(g['mean'], g['sd'], signed=True)}" for name, g in gains.items())


def plot_tpr(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    names = list(results)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [np.nan_to_num(results[name]["tpr"][str(g)]) for g in range(NUM_GRADES)]
        axis.bar(np.arange(NUM_GRADES) + i * width, values, width, label=name)
    axis.set_xticks(np.arange(NUM_GRADES) + width * (len(names) - 1) / 2, [str(g) for g in range(NUM_GRADES)])
    axis.set_xlabel("DR grade")
    axis.set_ylabel("true positive rate")
    axis.set_ylim(0, 1)
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


REAL, FAKE, MIXED = "Tr-Real / Te-Real", "Tr-Real / Te-Fake", "Tr-Real & Fake / Te-Real"
REAL_EXTERNAL, MIXED_EXTERNAL = "Tr-Real / Te-External", "Tr-Real & Fake / Te-External"


def run_grade_benchmark(real: Path, synthetic: Path, config: GradeConfig, out: Path, device: torch.device,
                        weights_dir: str | None = None, show: bool = True, seeds: list[int] | None = None,
                        external: Path | None = None, allow_leak: bool = False) -> dict:
    check_config(config)
    seeds = seeds or [config.seed]
    real_data = FundusDataset(real, config.resolution, with_masks=False)
    real_data.index.require_grades("the grading benchmark")
    split = protocol.split_real(real_data.index, seeds[0], log=show)
    real_train, real_test = subset_by_name(real_data, split["train"]), subset_by_name(real_data, split["test"])
    tests = [(real_data.index, split["test"])]
    external_data = None
    if external is not None:
        external_index, external_names, external_how = protocol.external_test(external)
        external_index.require_grades(f"scoring --test {external}")
        external_data = subset_by_name(FundusDataset(external_index, config.resolution, with_masks=False),
                                       external_names)
        tests.append((external_index, external_names))
        split["external"] = {"path": str(external), "method": external_how, "test": external_names}
    leak = protocol.check_leaks(synthetic, tests, allow_leak)
    synthetic_data = FundusDataset(synthetic, config.resolution, with_masks=False)
    synthetic_data.index.require_grades("the grading benchmark")

    runs, description = [], ""
    for seed in seeds:
        seeded = GradeConfig(**{**asdict(config), "seed": seed})
        tag = f" seed {seed}" if len(seeds) > 1 else ""
        seed_everything(seed)
        model, description = build_grader(seeded, weights_dir)
        losses_real = train_grader(model, real_train, seeded, device, "grader: real" + tag, show)
        results = {FAKE: evaluate_grader(model, synthetic_data, device),
                   REAL: evaluate_grader(model, real_test, device)}
        if external_data is not None:
            results[REAL_EXTERNAL] = evaluate_grader(model, external_data, device)
        seed_everything(seed)
        model, _ = build_grader(seeded, weights_dir)
        losses_mixed = train_grader(model, ConcatDataset([real_train, synthetic_data]), seeded, device,
                                    "grader: real + fake" + tag, show)
        results[MIXED] = evaluate_grader(model, real_test, device)
        if external_data is not None:
            results[MIXED_EXTERNAL] = evaluate_grader(model, external_data, device)
        runs.append({"seed": seed, "results": results,
                     "train_loss": {"real": losses_real, "real_and_fake": losses_mixed}})
    mean, sd = protocol.aggregate([r["results"] for r in runs])
    gains = {f"{what} gain from synthetic, Te-Real": protocol.paired_gain(
        [r["results"][MIXED] for r in runs], [r["results"][REAL] for r in runs], lambda m, w=what: m[w])
        for what in ("accuracy", "kappa")}
    if external_data is not None:
        gains.update({f"{what} gain from synthetic, Te-External": protocol.paired_gain(
            [r["results"][MIXED_EXTERNAL] for r in runs], [r["results"][REAL_EXTERNAL] for r in runs],
            lambda m, w=what: m[w]) for what in ("accuracy", "kappa")})
    document = {
        "benchmark": "grade", "protocol": "DR-GAN (Zhou et al. 2020) Tables III and V",
        "model_description": description, "config": asdict(config), "seeds": seeds, "device": str(device),
        "real": str(real), "synthetic": str(synthetic), "external": None if external is None else str(external),
        "leaky": leak["leaky"], "leak": leak, "split": split,
        "train_loss": runs[0]["train_loss"], "results": mean, "sd": sd if len(runs) > 1 else {}, "gains": gains,
        "runs": runs, "paper_resnet50": {"table3": DRGAN_TABLE_3, "table5_tpr": DRGAN_TABLE_5_TPR},
    }
    out.mkdir(parents=True, exist_ok=True)
    banner = protocol.leak_banner(leak)
    table = grade_table(mean, sd if len(runs) > 1 else None) + "\n\n" + gain_lines(gains)
    seeds_note = f", mean ± sd over seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else f", seed {seeds[0]}"
    write_text_atomic(out / "results.json", json.dumps(document, indent=2) + "\n")
    write_text_atomic(out / "table.md", f"{banner}{description}, {config.resolution} px, {config.epochs} epochs"
                      f"{seeds_note}\n\n{table}\n")
    plot_tpr(mean, out / "tpr.png", (LEAKY + " " if leak["leaky"] else "") + description)
    if show:
        print(banner + table)
    mixed, mixed_sd = mean[MIXED], (sd[MIXED] if len(runs) > 1 else {})
    summary(f"bench grade{' (' + LEAKY + ')' if leak['leaky'] else ''}: Tr-Real&Fake/Te-Real accuracy "
            f"{pm(mixed['accuracy'], mixed_sd.get('accuracy'))} kappa {pm(mixed['kappa'], mixed_sd.get('kappa'))} "
            f"({description}, {len(seeds)} seed(s)) -> {out}", show)
    return document

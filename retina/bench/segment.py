"""Lesion segmentation benchmark with synthetic data (Son et al. 2021, Table 1(c)).

Protocol (retina.bench.protocol): the real set's ``split=test`` rows are the test set (else a seeded 20 % hold-out),
one model is trained per ratio of synthetic to real training images on the ``split=train`` rows, and every model
is evaluated on the real test images only (and on an external ``--test`` set); a synthetic set whose generators
saw a test image is refused unless ``--allow-leak``; ``--seeds`` repeats every model. The ratio is
synthetic / (real + synthetic), as in Son et al.: their counts 0/246/738/2214 synthetic images with 738 real
training images give exactly 0/25/50/75 %.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from retina.bench.input_transform import INPUTS, GreenCLAHE, WithInput
from retina.bench.losses import SegmentationLoss
from retina.bench.metrics import SegmentationMeter
from retina.bench.protocol import (
    LEAKY,
    aggregate,
    check_leaks,
    external_test,
    leak_banner,
    paired_gain,
    pm,
    split_real,
)
from retina.common.checkpoint import Checkpoint, load_module, module_tensors, save_checkpoint
from retina.common.dataset import FundusDataset
from retina.common.errors import RetinaError
from retina.common.fingerprint import fingerprint, write_fingerprint
from retina.common.progress import progress_bar, summary
from retina.common.schema import CHANNEL_NAMES
from retina.common.seeding import seed_everything

SON_TABLE_1C = {  # Son et al. Table 1(c): synthetic percentage -> (count, precision, recall, F1)
    0.0: (0, 0.5777, 0.4692, 0.4694),
    0.25: (246, 0.5860, 0.4938, 0.4965),
    0.5: (738, 0.5925, 0.4727, 0.4824),
    0.75: (2214, 0.6569, 0.3990, 0.4522),
}


@dataclass
class TrainConfig:
    epochs: int = 40  # Son et al. Sec. 3: 40 epochs, where performance plateaued
    batch_size: int = 4
    learning_rate: float = 1e-3  # Adam; Lesion-Net's SGD lr is also 1e-3 (Sec. IV-A)
    loss: str = "dice"  # "dual" for Lesion-Net (Eq. 2 with its schedule), "dice" or "bce"
    seed: int = 0
    amp: bool = False  # bf16 autocast of the forward pass (CPU and CUDA); the loss is taken in fp32


@dataclass
class ModelSpec:
    model: str = "unet"  # unet | lesionnet | lesionnet-fcn
    channels: tuple[str, ...] = ("ex", "he")
    resolution: int = 256
    width: int = 64  # U-Net only
    cut: int = 16  # Lesion-Net only
    in_channels: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


def parse_channels(spec: str) -> tuple[str, ...]:
    channels = tuple(c.strip().lower() for c in spec.split(",") if c.strip())
    unknown = [c for c in channels if c not in CHANNEL_NAMES]
    if unknown or not channels:
        raise RetinaError(f"--channels '{spec}': unknown channel(s) {', '.join(unknown) or '(none)'}; "
                          f"choose from {','.join(CHANNEL_NAMES)}")
    return channels


def parse_ratios(spec: str) -> list[float]:
    try:
        ratios = [float(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise RetinaError(f"--ratios '{spec}': give fractions like 0,0.25,0.5,0.75") from None
    if not ratios or any(not 0 <= r < 1 for r in ratios):
        raise RetinaError(f"--ratios '{spec}': each ratio synthetic/(real+synthetic) must be in [0, 1)")
    return ratios


def synthetic_count(ratio: float, real_count: int) -> int:
    return int(round(ratio / (1 - ratio) * real_count))


# --model name -> (class in retina.bench.lesionnet, name in tables); "lesionnet" is the paper's copy-and-merge.
LESIONNET_MODELS = {"lesionnet": ("LesionNet", "Lesion-Net"), "lesionnet-fcn": ("LesionNetFCN", "FCN")}
MODELS = ("unet", *LESIONNET_MODELS)


def build_model(spec: ModelSpec, weights_dir: str | Path | None = None, backbone: bool = True) -> torch.nn.Module:
    """``backbone=False`` skips looking up ImageNet weights (loading a trained checkpoint replaces them)."""
    source = spec.extra.get("input", "rgb")
    if source not in INPUTS:
        raise RetinaError(f"--input {source}: unknown; use {' or '.join(INPUTS)}")
    if spec.model == "unet":
        from retina.bench.unet import UNet, UNetConfig

        channels = GreenCLAHE.channels if source == "green-clahe" else spec.in_channels
        model = UNet(UNetConfig(in_channels=channels, out_channels=len(spec.channels), width=spec.width))
        model.description = f"U-Net width {spec.width} (random init)"
        if spec.resolution % model.multiple:
            raise RetinaError(f"--res {spec.resolution}: the U-Net needs a multiple of {model.multiple}")
        return WithInput(GreenCLAHE(), model, source) if source == "green-clahe" else model
    if source != "rgb":
        raise RetinaError(f"--input {source}: only the U-Net reads other inputs than rgb (Lesion-Net's Inception "
                          "backbone was trained on RGB)")
    if spec.model in LESIONNET_MODELS:
        from retina.bench import lesionnet

        if spec.resolution < lesionnet.MIN_INPUT:
            raise RetinaError(f"--res {spec.resolution}: Lesion-Net (Inception-v3) needs at least "
                              f"{lesionnet.MIN_INPUT} px")
        state, source = lesionnet.load_inception_weights(weights_dir) if backbone else (None, "")
        network, name = LESIONNET_MODELS[spec.model]
        model = getattr(lesionnet, network)(
            lesionnet.LesionNetConfig(out_channels=len(spec.channels), cut=spec.cut), state, source)
        model.description = f"{name}-{spec.cut}s ({model.backbone_source})"
        return model
    raise RetinaError(f"--model {spec.model}: unknown; use {' or '.join(MODELS)}")


def subset_by_name(dataset: FundusDataset, names: list[str]) -> Subset:
    position = {s.name: i for i, s in enumerate(dataset.samples)}
    return Subset(dataset, [position[n] for n in names])


def train_segmenter(model: torch.nn.Module, data: Dataset, config: TrainConfig, device: torch.device,
                    description: str = "train", show: bool = True) -> list[float]:
    """Train with Adam; the learning rate drops 10x halfway, where the dual loss (if chosen) takes over."""
    if len(data) == 0:
        raise RetinaError("no training images")
    generator = torch.Generator().manual_seed(config.seed)
    # drop_last avoids a BatchNorm batch of one; tiny sets keep every image.
    loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, generator=generator,
                        drop_last=len(data) > config.batch_size and len(data) % config.batch_size == 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = SegmentationLoss(kind=config.loss)
    model.to(device).train()
    losses = []
    with progress_bar(config.epochs * len(loader), description, enabled=show) as bar:
        for epoch in range(config.epochs):
            loss_fn.start_epoch(epoch, config.epochs)
            if epoch == max(1, round(loss_fn.switch_fraction * config.epochs)):
                for group in optimiser.param_groups:
                    group["lr"] = config.learning_rate / 10
            losses.append(train_epoch(
                loader, optimiser, bar, epoch,
                lambda batch: loss_fn(_forward(model, batch["image"].to(device), config.amp),
                                      batch["masks"].to(device))))
    return losses


def _forward(model: torch.nn.Module, images: torch.Tensor, amp: bool) -> torch.Tensor:
    """Logits in fp32; under ``amp`` the network itself runs in bf16 autocast."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(images)
    return logits.float()


def train_epoch(loader: DataLoader, optimiser: torch.optim.Optimizer, bar, epoch: int, batch_loss) -> float:
    """One pass over ``loader``: ``batch_loss(batch)`` -> backward -> step, the bar advanced per batch;
    returns the mean loss of the epoch."""
    total = 0.0
    for batch in loader:
        loss = batch_loss(batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.item()
        bar.advance(1, epoch=epoch + 1, loss=loss.item())
    return total / len(loader)


@torch.no_grad()
def evaluate_segmenter(model: torch.nn.Module, data: Dataset, channels: tuple[str, ...], device: torch.device,
                       batch_size: int = 4, fov_index: int | None = None) -> dict:
    """Metrics on ``data``; when ``fov_index`` is given, that mask channel (the field of view) limits the
    pixel metrics to the inside of the eye (the DRIVE convention) and is not itself scored."""
    model.to(device).eval()
    meter = SegmentationMeter(channels)
    for batch in DataLoader(data, batch_size=batch_size):
        probabilities = torch.sigmoid(model(batch["image"].to(device))).cpu().numpy()
        masks = batch["masks"].numpy()
        valid = None
        if fov_index is not None:
            valid = masks[:, fov_index] > 0.5
            masks = np.delete(masks, fov_index, axis=1)
        meter.update(probabilities, masks, valid)
    return meter.summary()


def save_segmenter(path: Path, model: torch.nn.Module, spec: ModelSpec, extra: dict) -> Path:
    config = {"kind": "segmenter", "arch": spec.model, **asdict(spec), "channels": list(spec.channels), **extra}
    return save_checkpoint(path, module_tensors("model", model), config)


def scoring_set(index, names: list[str], resolution: int,
                channels: tuple[str, ...]) -> tuple[Subset, int | None]:
    """The test rows, with the field of view as one more channel when the set has one and it is not itself
    segmented: pixel metrics are then taken inside the eye (the DRIVE convention). Returns the set and the
    index of that channel (None: every pixel counts)."""
    use_fov = "fov" in index.channels and "fov" not in channels
    wanted = (*channels, "fov") if use_fov else tuple(channels)
    data = subset_by_name(FundusDataset(index, resolution, channels=wanted), names)
    return data, (len(channels) if use_fov else None)


def load_segmenter(path: str | Path) -> tuple[torch.nn.Module, ModelSpec, Checkpoint]:
    """A segmenter written by ``retina bench segment --save-model`` (a run folder, or its .safetensors)."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("segmenter*.safetensors"))
        if not candidates:
            raise RetinaError(f"{path}: no segmenter*.safetensors; run `retina bench segment ... --save-model`")
        path = candidates[-1]
    checkpoint = Checkpoint(path).expect("segmenter")
    c = checkpoint.config
    try:
        spec = ModelSpec(model=c["arch"], channels=tuple(c["channels"]), resolution=int(c["resolution"]),
                         width=int(c.get("width", 64)), cut=int(c.get("cut", 16)),
                         in_channels=int(c.get("in_channels", 3)), extra=dict(c.get("extra") or {}))
    except (KeyError, TypeError, ValueError) as error:
        raise RetinaError(f"{checkpoint.path}: segmenter config is incomplete or invalid ({error!r}); "
                          "re-save it with `retina bench segment --save-model`") from None
    model = build_model(spec, backbone=False)
    load_module(model, checkpoint.submodule("model"), checkpoint.path)
    return model.eval(), spec, checkpoint


def results_table(rows: list[dict], channels: tuple[str, ...]) -> str:
    """Markdown table in the shape of Son et al. Table 1(c), plus AUC-PR, image-level F1, the F1 gain over 0 %
    synthetic and the external test set's F1: mean ± sd over seeds where there are several."""
    external = any("external" in row for row in rows)
    gain = any("gain_f1" in row for row in rows)
    header = ["synthetic %", "count", "precision", "recall", "F1", "AUC-PR", "image F1",
              *(f"{c} F1" for c in channels)]
    header += ["F1 gain"] * gain + ["external F1", "external AUC-PR"] * external + ["external F1 gain"] * (
        external and gain)
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        m, sd = row["metrics"], row.get("sd", {})

        def cell(part: str, key: str, means=m, sds=sd) -> str:
            return pm(means[part][key], sds.get(part, {}).get(key) if sds else None)

        cells = [f"{row['ratio'] * 100:.0f}%", str(row["synthetic_count"]), cell("mean", "precision"),
                 cell("mean", "recall"), cell("mean", "f1"), cell("mean", "auc_pr"), cell("mean", "image_f1"),
                 *(cell(c, "f1") for c in channels)]
        if gain:
            cells.append(pm(row["gain_f1"]["mean"], row["gain_f1"]["sd"], signed=True) if "gain_f1" in row else "")
        if external:
            e, esd = row["external"], row.get("external_sd", {})
            cells += [cell("mean", "f1", e, esd), cell("mean", "auc_pr", e, esd)]
            if gain:
                g = row.get("external_gain_f1")
                cells.append(pm(g["mean"], g["sd"], signed=True) if g else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retina.common.imageio import atomic_path

    ratios = [row["ratio"] * 100 for row in rows]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for key, label in (("f1", "F1"), ("precision", "precision"), ("recall", "recall")):
        axis.plot(ratios, [row["metrics"]["mean"][key] for row in rows], marker="o", label=label)
    axis.set_xlabel("synthetic images, % of training set")
    axis.set_ylabel("real test set (mean over lesions)")
    axis.set_title(title, fontsize=9)
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def run_segment_benchmark(real: Path, synthetic: Path | None, ratios: list[float], spec: ModelSpec,
                          train: TrainConfig, out: Path, device: torch.device, weights_dir: str | None = None,
                          save_model: bool = False, show: bool = True, seeds: list[int] | None = None,
                          external: Path | None = None, allow_leak: bool = False) -> dict:
    if any(r > 0 for r in ratios) and synthetic is None:
        raise RetinaError("--synthetic DIR is needed for ratios above 0")
    seeds = seeds or [train.seed]
    real_data = FundusDataset(real, spec.resolution, channels=spec.channels)
    split = split_real(real_data.index, seeds[0], log=show)
    real_train = subset_by_name(real_data, split["train"])
    real_test, fov_index = scoring_set(real_data.index, split["test"], spec.resolution, spec.channels)
    tests = [(real_data.index, split["test"])]
    external_data = None
    if external is not None:
        external_index, external_names, external_how = external_test(external)
        external_index.require_channels(spec.channels, f"scoring --test {external} on the same channels")
        external_data, external_fov = scoring_set(external_index, external_names, spec.resolution, spec.channels)
        tests.append((external_index, external_names))
        split["external"] = {"path": str(external), "method": external_how, "test": external_names}
    leak = check_leaks(synthetic if any(r > 0 for r in ratios) else None, tests, allow_leak)
    synthetic_data = None
    if synthetic is not None:
        synthetic_data = FundusDataset(synthetic, spec.resolution, channels=spec.channels)
    needed = synthetic_count(max(ratios), len(real_train))
    if synthetic_data is not None and needed > len(synthetic_data):
        raise RetinaError(f"{synthetic}: ratio {max(ratios)} needs {needed} synthetic images "
                          f"({len(real_train)} real training images), the set has {len(synthetic_data)}; "
                          "generate more or lower the ratio")
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[float, list[dict]] = {ratio: [] for ratio in ratios}
    description = ""
    for seed in seeds:
        config = TrainConfig(**{**asdict(train), "seed": seed})
        synthetic_order = (np.random.default_rng(seed).permutation(len(synthetic_data)).tolist()
                           if synthetic_data is not None else [])
        for ratio in ratios:
            count = synthetic_count(ratio, len(real_train))
            parts: list[Dataset] = [real_train]
            if count:
                # Nested subsets: the 50 % model sees every synthetic image the 25 % model saw.
                parts.append(Subset(synthetic_data, synthetic_order[:count]))
            seed_everything(seed)
            model = build_model(spec, weights_dir)
            description = model.description
            label = f"{spec.model} {ratio:.0%} synthetic" + (f" seed {seed}" if len(seeds) > 1 else "")
            losses = train_segmenter(model, ConcatDataset(parts), config, device, label, show)
            run = {"seed": seed, "train_loss": losses,
                   "metrics": evaluate_segmenter(model, real_test, spec.channels, device, train.batch_size,
                                                 fov_index)}
            if external_data is not None:
                run["external"] = evaluate_segmenter(model, external_data, spec.channels, device, train.batch_size,
                                                     external_fov)
            if save_model:
                stem = f"segmenter_ratio{int(round(ratio * 100)):02d}" + (f"_seed{seed}" if seed != seeds[0] else "")
                used = [(real_data.index, [real_data.samples[i] for i in real_train.indices])]
                if count:
                    used.append((synthetic_data.index, [synthetic_data.samples[i] for i in synthetic_order[:count]]))
                reference = write_fingerprint(out, fingerprint(used), f"{stem}.fingerprint.json")
                path = save_segmenter(out / stem, model, spec,
                                      {"ratio": ratio, "real": str(real), "synthetic": str(synthetic), "seed": seed,
                                       "model_description": description, "training_set": reference})
                run["checkpoint"] = path.name
            runs[ratio].append(run)
    rows = [_ratio_row(ratio, runs, ratios, len(real_train)) for ratio in ratios]
    result = {
        "benchmark": "segment", "protocol": "Son et al. 2021 Table 1(c)",
        "ratio_definition": "synthetic / (real + synthetic) training images",
        "model": spec.model, "model_description": description,
        "spec": {**asdict(spec), "channels": list(spec.channels)},
        "train": asdict(train), "seeds": seeds, "device": str(device), "real": str(real),
        "synthetic": None if synthetic is None else str(synthetic), "external": None if external is None else
        str(external), "leaky": leak["leaky"], "leak": leak,
        "split": split, "rows": rows, "scored_inside_fov": fov_index is not None,
        "paper": {str(k): dict(zip(("count", "precision", "recall", "f1"), v, strict=True))
                  for k, v in SON_TABLE_1C.items()},
    }
    table = results_table(rows, spec.channels)
    from retina.common.imageio import write_text_atomic

    banner = leak_banner(leak)
    seeds_note = f", mean ± sd over seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else f", seed {seeds[0]}"
    external_note = f", external test {external} n={len(external_data)}" if external_data is not None else ""
    write_text_atomic(out / "results.json", json.dumps(result, indent=2, allow_nan=True) + "\n")
    write_text_atomic(out / "table.md", f"{banner}{description}, {spec.resolution} px, {train.epochs} epochs, "
                      f"real test n={len(real_test)}{external_note}{seeds_note}\n\n{table}\n")
    plot_results(rows, out / "plot.png", f"{LEAKY + ' ' if leak['leaky'] else ''}{description}, "
                 f"{','.join(spec.channels)}")
    if show:
        print(banner + table)
    best = max(rows, key=lambda r: r["metrics"]["mean"]["f1"])
    external_best = ""
    if "external" in best:
        external_sd = (best["external_sd"] or {}).get("mean", {}).get("f1")
        external_best = f", external F1 {pm(best['external']['mean']['f1'], external_sd)}"
    summary(f"bench segment{' (' + LEAKY + ')' if leak['leaky'] else ''}: {len(rows)} ratios x {len(seeds)} seed(s), "
            f"best mean F1 {pm(best['metrics']['mean']['f1'], best['sd']['mean']['f1'] if best['sd'] else None)}"
            f"{external_best} at {best['ratio']:.0%} synthetic ({description}) -> {out}", show)
    return result


def _ratio_row(ratio: float, runs: dict[float, list[dict]], ratios: list[float], real_count: int) -> dict:
    """One ratio's row: mean (and sd over seeds) of the metrics, and the F1 gain over the 0 % models."""
    mine = runs[ratio]
    metrics, sd = aggregate([r["metrics"] for r in mine])
    row = {"ratio": ratio, "synthetic_count": synthetic_count(ratio, real_count), "real_count": real_count,
           "metrics": metrics, "sd": sd if len(mine) > 1 else {}, "runs": mine,
           "train_loss": mine[0]["train_loss"]}
    if "checkpoint" in mine[0]:
        row["checkpoint"] = mine[0]["checkpoint"]
    if "external" in mine[0]:
        external, external_sd = aggregate([r["external"] for r in mine])
        row["external"], row["external_sd"] = external, external_sd if len(mine) > 1 else {}
    if 0.0 in ratios and ratio != 0.0:
        baseline = runs[0.0]
        row["gain_f1"] = paired_gain(mine, baseline, lambda r: r["metrics"]["mean"]["f1"])
        if "external" in mine[0]:
            row["external_gain_f1"] = paired_gain(mine, baseline, lambda r: r["external"]["mean"]["f1"])
    return row

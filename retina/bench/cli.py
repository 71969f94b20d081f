"""``retina bench``: downstream benchmarks that measure what synthetic data is worth.

Heavy imports (torch, torchvision) happen inside the commands so that ``retina --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)

# The held-out protocol's options, the same in every bench (retina/bench/protocol.py)
SEEDS = typer.Option(None, "--seeds", help="Repeat training per seed, e.g. 0,1,2: mean ± sd (the test split stays "
                     "that of the first seed).")
EXTERNAL_TEST = typer.Option(None, "--test", help="External canonical set scored as well (its split=test rows, else "
                             "all rows).")
ALLOW_LEAK = typer.Option(False, "--allow-leak", help="Run even if the synthetic set's generators saw a test image; "
                          "every output then says LEAKY.")


@app.command("segment")
def segment(
    real: Path = typer.Option(..., "--real", help="Real canonical set with the lesion masks (test set held out)."),
    synthetic: Path = typer.Option(None, "--synthetic", help="Synthetic canonical set (needed for ratios > 0)."),
    ratios: str = typer.Option("0,0.25,0.5,0.75", help="Synthetic / (real + synthetic) training images."),
    model: str = typer.Option("unet", help="unet | lesionnet (Wei et al.: copy-and-merge) | lesionnet-fcn "
                                                      "(FCN score maps added, the paper's FCN baseline)."),
    epochs: int = typer.Option(40, help="Epochs per model (Son et al.: 40)."),
    channels: str = typer.Option("ex,he", help="Lesion channels to segment, e.g. ex,he."),
    res: int = typer.Option(256, "--res", help="Training/test resolution in pixels (Lesion-Net: >= 75)."),
    width: int = typer.Option(64, help="U-Net first-stage channels (64 in the paper)."),
    cut: int = typer.Option(16, help="Lesion-Net expansive path cut: 32, 16, 8, 4 or 2 (-> Lesion-Net-Ns / FCN-Ns)."),
    loss: str = typer.Option("", help="dual | dice | bce (default: dual for lesionnet, dice for unet)."),
    batch_size: int = typer.Option(4, "--batch", help="Images per batch."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (divided by 10 halfway)."),
    seed: int = typer.Option(0, help="Seed of the split, the synthetic subset and the weights."),
    seeds: str = SEEDS,
    test: Path = EXTERNAL_TEST,
    allow_leak: bool = ALLOW_LEAK,
    out: Path = typer.Option(..., "--out", help="Output folder: results.json, table.md, plot.png."),
    save_model: bool = typer.Option(False, "--save-model", help="Also write each model as a segmenter checkpoint."),
    weights_dir: str = typer.Option(None, "--weights-dir", help="Folder with ImageNet weights (inception_v3)."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast while training (CPU and CUDA)."),
    input: str = typer.Option("rgb", "--input", help="What the U-Net reads: rgb, or green-clahe (the green channel "
                              "after CLAHE, the vessel convention; carries across cameras)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Son et al. Table 1(c): lesion segmentation vs the share of synthetic training images."""
    from retina.bench.protocol import parse_seeds
    from retina.bench.segment import ModelSpec, TrainConfig, parse_channels, parse_ratios, run_segment_benchmark
    from retina.common.device import resolve_device

    spec = ModelSpec(model=model, channels=parse_channels(channels), resolution=res, width=width, cut=cut,
                     extra={"input": input} if input != "rgb" else {})
    train = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=lr,
                        loss=loss or ("dual" if model.startswith("lesionnet") else "dice"), seed=seed, amp=amp)
    run_segment_benchmark(real, synthetic, parse_ratios(ratios), spec, train, out, resolve_device(device),
                          weights_dir, save_model, seeds=parse_seeds(seeds, seed), external=test, allow_leak=allow_leak)


@app.command("grade")
def grade(
    real: Path = typer.Option(..., "--real", help="Real canonical set with grades."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic canonical set with grades."),
    model: str = typer.Option("resnet50", help="resnet50 | inception_v3"),
    width: str = typer.Option("full", help="full | tiny (a small ResNet for tests)."),
    res: int = typer.Option(256, "--res", help="Input resolution (Inception-v3: >= 75)."),
    epochs: int = typer.Option(10, help="Training epochs per setting."),
    batch_size: int = typer.Option(8, "--batch", help="Images per batch."),
    lr: float = typer.Option(1e-4, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed of the split and the weights."),
    seeds: str = SEEDS,
    test: Path = EXTERNAL_TEST,
    allow_leak: bool = ALLOW_LEAK,
    out: Path = typer.Option(..., "--out", help="Output folder: results.json, table.md, tpr.png."),
    weights_dir: str = typer.Option(None, "--weights-dir", help="Folder with ImageNet weights."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """DR-GAN Tables III/V: Tr-Real/Te-Fake and Tr-Real&Fake/Te-Real accuracy, kappa, per-class TPR."""
    from retina.bench.grade import GradeConfig, run_grade_benchmark
    from retina.bench.protocol import parse_seeds
    from retina.common.device import resolve_device

    config = GradeConfig(model=model, width=width, resolution=res, epochs=epochs, batch_size=batch_size,
                         learning_rate=lr, seed=seed)
    run_grade_benchmark(real, synthetic, config, out, resolve_device(device), weights_dir,
                        seeds=parse_seeds(seeds, seed), external=test, allow_leak=allow_leak)


@app.command("vessels")
def vessels(
    real: Path = typer.Option(..., "--real", help="Real canonical set with vessel masks (e.g. DRIVE)."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic canonical set with vessel masks."),
    res: int = typer.Option(256, "--res", help="Resolution in pixels (multiple of 16)."),
    width: int = typer.Option(64, help="U-Net first-stage channels."),
    pretrain_epochs: int = typer.Option(20, help="Epochs on the synthetic set."),
    finetune_epochs: int = typer.Option(20, help="Epochs on the real training split."),
    batch_size: int = typer.Option(4, "--batch", help="Images per batch."),
    seed: int = typer.Option(0, help="Seed of the split and the weights."),
    seeds: str = SEEDS,
    test: Path = EXTERNAL_TEST,
    allow_leak: bool = ALLOW_LEAK,
    out: Path = typer.Option(..., "--out", help="Output folder: results.json, table.md."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """SkrGAN Table 2: vessel U-Net with and without synthetic pre-training (SEN, ACC, AUC)."""
    from retina.bench.protocol import parse_seeds
    from retina.bench.vessels import VesselConfig, run_vessel_benchmark
    from retina.common.device import resolve_device

    config = VesselConfig(resolution=res, width=width, pretrain_epochs=pretrain_epochs,
                          finetune_epochs=finetune_epochs, batch_size=batch_size, seed=seed)
    run_vessel_benchmark(real, synthetic, config, out, resolve_device(device), seeds=parse_seeds(seeds, seed),
                         external=test, allow_leak=allow_leak)

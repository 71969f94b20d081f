"""Throughput, memory and efficiency benchmarks for this machine (run by hand, not in the test suite).

    python benchmarks/run.py            # full run (~15-25 min on 2 CPU cores)
    python benchmarks/run.py --quick    # smaller repeats, for a smoke check

    python benchmarks/run.py --only render --rounds 3 --nvlabs-spade /path/to/SPADE   # renderers, interleaved

Each item runs in its own subprocess so that its peak RSS is its own. Throughputs are medians of 3 timed
repeats after a warm-up; with ``--rounds N`` the whole plan runs N times in turn (so that a busy spell of a
shared machine hits every item alike) and each figure is the median over rounds. Achieved GFLOP/s counts the
forward FLOPs with torch.utils.flop_counter and divides by time; the fraction is relative to the machine's
matmul peak measured in the same run. The reference is NVlabs' own SPADE code, imported from a copy outside
this repository (benchmarks/nvlabs_spade.py), at the same label channels, ngf and output size; "spade" is ours
at equal options (``--spade-norm batch``, NVlabs' batch norm), "spade-in" ours with our default instance norm.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine_peak import matmul_gflops  # noqa: E402
from retina.common.schema import CHANNEL_NAMES  # noqa: E402

WIDTH = 64  # render width for ours and the reference (the reference's ngf)
LABEL_CHANNELS = 10


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _forward_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def _precision_context(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


# -- models -----------------------------------------------------------------------------------------
def _render_model(arch: str, res: int):
    """(forward(masks) callable, module) for one renderer at WIDTH, untrained (speed does not depend on weights)."""
    if arch == "nvlabs-spade":
        from benchmarks.nvlabs_spade import nvlabs_models

        model = nvlabs_models(LABEL_CHANNELS, WIDTH, res)[0].eval()
        return (lambda masks: model(masks)), model
    if arch == "drgan":
        from retina.render.drgan import DRGANGenerator

        model = DRGANGenerator(LABEL_CHANNELS, width=WIDTH, fine=True, grading_dim=0).eval()
        return (lambda masks: model(masks)[0]), model
    if arch in ("spade", "spade-in"):
        from retina.render.spade import SPADEGenerator

        norm = "batch" if arch == "spade" else "instance"
        model = SPADEGenerator(LABEL_CHANNELS, res, WIDTH, norm=norm).eval()
        return (lambda masks: model(masks)[0]), model
    raise ValueError(arch)


def bench_render(arch: str, res: int, precision: str, repeats: int, batch: int = 4, variant: str = "") -> dict:
    """``variant``: "" (bf16 runs channels_last, fp32 does not), "cl" (fp32 channels_last) or "compile"."""
    torch.manual_seed(0)
    forward, model = _render_model(arch, res)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    if arch != "nvlabs-spade":  # what `retina render` does: spectral norm baked, bf16 weights under --amp
        from retina.render.model import prepare_for_inference

        prepare_for_inference(model, bf16=precision == "bf16")
    masks = (torch.rand(batch, LABEL_CHANNELS, res, res) > 0.9).float()
    if precision == "bf16" or variant == "cl":
        model = model.to(memory_format=torch.channels_last)
        masks = masks.contiguous(memory_format=torch.channels_last)
    if variant == "compile":
        compiled = torch.compile(model)
        forward = compiled if arch == "nvlabs-spade" else (lambda masks_: compiled(masks_)[0])

    def run():
        # NVlabs' model runs as its code does (spectral norm recomputed by a forward pre-hook, fp32 weights cast
        # by autocast at every call under bf16)
        with torch.inference_mode(), _precision_context(precision):
            forward(masks)

    start = time.perf_counter()
    run()  # the first call pays any compilation
    first = time.perf_counter() - start
    with torch.inference_mode(), _precision_context(precision):
        flops = _forward_flops(lambda: forward(masks)) if variant != "compile" else 0.0
    seconds = _timed(run, repeats)
    return {"images_per_s": batch / seconds, "first_call_s": first, "gflop_per_image": flops / batch / 1e9,
            "achieved_gflops": flops / seconds / 1e9,
            "params_m": params}


def bench_render_train(arch: str, res: int, precision: str, repeats: int, batch: int = 2) -> dict:
    """One full GAN step (G forward/backward through D, D forward/backward on real and fake), per image.
    Each generator trains with its own paper's discriminator: NVlabs' and ours-SPADE's 2-scale PatchGAN, DR-GAN's
    3-scale pooled D."""
    torch.manual_seed(0)
    forward, model = _render_model(arch, res)
    model.train()
    if arch == "nvlabs-spade":
        from benchmarks.nvlabs_spade import nvlabs_models

        reference_d = nvlabs_models(LABEL_CHANNELS, WIDTH, res)[1]
        discriminator = reference_d

        def discriminate(masks: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
            return sum(out[-1].mean() for out in reference_d(torch.cat([masks, images], 1)))
    else:
        from retina.render.config import RenderConfig
        from retina.render.discriminator import build_discriminator

        config = RenderConfig(arch="drgan" if arch == "drgan" else "spade", width=WIDTH,
                              channels=CHANNEL_NAMES[:LABEL_CHANNELS])
        ours_d = build_discriminator(config)
        discriminator = ours_d

        def discriminate(masks: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
            return sum(out.score.mean() for out in ours_d(masks, images))
    g_opt = torch.optim.Adam(model.parameters(), 1e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.5, 0.999))
    masks = (torch.rand(batch, LABEL_CHANNELS, res, res) > 0.9).float()
    real = torch.rand(batch, 3, res, res) * 2 - 1

    def step():
        # The same adversarial skeleton for every model: the speed of the networks is what is compared.
        with _precision_context(precision):
            fake = forward(masks)
            g_loss = -discriminate(masks, fake)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        with _precision_context(precision):
            d_loss = discriminate(masks, fake.detach()) - discriminate(masks, real)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

    seconds = _timed(step, repeats)
    return {"train_s_per_image": seconds / batch, "train_images_per_s": batch / seconds}


def bench_layout(model_name: str, repeats: int, variant: str = "", res: int = 256, batch: int = 16) -> dict:
    """``variant``: "" (the defaults of `retina layout sample`: channels_last on), "no-cl", "compile" or "bf16"."""
    from retina.layout.model import load_layout_model

    device = torch.device("cpu")
    if model_name == "procedural":
        sampler = load_layout_model(None, device)
    else:
        from retina.layout.model import untrained_layout_model

        sampler = untrained_layout_model(model_name, res, device, channels_last=variant != "no-cl",
                                         compile=variant == "compile")
    grades = [i % 5 for i in range(batch)]
    counter = iter(range(10**9))

    def run():
        base = next(counter) * batch
        with _precision_context("bf16" if variant == "bf16" else "fp32"):
            sampler.sample(grades, list(range(base, base + batch)), res, 1.0)

    start = time.perf_counter()
    run()  # the first call pays any compilation
    first = time.perf_counter() - start
    seconds = _timed(run, repeats)
    return {"masks_per_s": batch / seconds, "first_call_s": first}


def _nvlabs_stylegan2(cfg: str, res: int, channels: int):
    """NVlabs' stylegan2-ada-pytorch Generator at preset ``cfg`` (its train.py cfg_specs), from the checkout named
    by $STYLEGAN2_ADA_PYTORCH (outside this repository: never vendored). fp32 everywhere (num_fp16_res 0, no
    clamp): its mixed precision is CUDA-only. On CPU its custom ops (bias_act, upfirdn2d) run their reference
    implementations, the only CPU path the code has."""
    import os

    from retina.common.schema import NUM_GRADES
    from retina.layout.config import cfg_preset

    path = os.environ.get("STYLEGAN2_ADA_PYTORCH")
    if not path:
        raise SystemExit("set STYLEGAN2_ADA_PYTORCH to a checkout of NVlabs/stylegan2-ada-pytorch")
    sys.path.insert(0, path)
    from training.networks import Generator  # type: ignore[import-not-found]

    preset = cfg_preset(cfg, res)
    return Generator(z_dim=preset["z_dim"], c_dim=NUM_GRADES, w_dim=preset["w_dim"], img_resolution=res,
                     img_channels=channels, mapping_kwargs={"num_layers": preset["mapping_layers"]},
                     synthesis_kwargs={"channel_base": preset["channel_base"], "channel_max": preset["channel_max"],
                                       "num_fp16_res": 0, "conv_clamp": None}).eval()


def bench_layout_vs_nvlabs(cfg: str, res: int, precision: str, repeats: int, batch: int = 4) -> dict:
    """Our StyleGAN2 layout generator and NVlabs' at the same preset, resolution, channels, batch and precision,
    timed in alternation in one process (round by round, the order swapped each round) so that both see the same
    machine load; medians. Both run the network from latents to logits with per-layer random noise: ours from
    per-sample seeds (its sampling path, channels_last as `retina layout sample`), the reference with
    noise_mode='random' and one-hot grade labels."""
    import os

    import torch.nn.functional as F

    from retina.common.schema import NUM_CHANNELS, NUM_GRADES
    from retina.layout.model import untrained_layout_model

    torch.manual_seed(0)
    ours = untrained_layout_model("stylegan", res, torch.device("cpu"), cfg=cfg)
    reference = _nvlabs_stylegan2(cfg, res, NUM_CHANNELS)
    for module in (ours.module, reference):  # inference only; also keeps the FLOP counter's module hooks quiet
        module.requires_grad_(False)
    grades = [i % NUM_GRADES for i in range(batch)]
    labels = F.one_hot(torch.tensor(grades), NUM_GRADES).float()
    counter = iter(range(10**9))

    def run_ours():
        base = next(counter) * batch
        with torch.inference_mode(), _precision_context(precision):
            ours.logits(grades, list(range(base, base + batch)))

    def run_reference():
        with torch.inference_mode(), _precision_context(precision):
            reference(torch.randn(batch, reference.z_dim), labels, noise_mode="random")

    with torch.inference_mode():
        flops_ours = _forward_flops(lambda: ours.module(*_latents(ours, grades)))
        flops_reference = _forward_flops(lambda: reference(torch.randn(batch, reference.z_dim), labels))
    run_ours(), run_reference()  # warm-up
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    for round_ in range(repeats):
        order = (("ours", run_ours), ("reference", run_reference))
        for name, fn in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ours_s, reference_s = statistics.median(times["ours"]), statistics.median(times["reference"])
    return {"masks_per_s": batch / ours_s, "reference_masks_per_s": batch / reference_s,
            "ratio": reference_s / ours_s, "gflop_per_image": flops_ours / batch / 1e9,
            "reference_gflop_per_image": flops_reference / batch / 1e9,
            "params_m": sum(p.numel() for p in ours.module.parameters()) / 1e6,
            "reference_params_m": sum(p.numel() for p in reference.parameters()) / 1e6,
            "times_s": times, "load_1min": os.getloadavg()[0]}


def _latents(sampler, grades: list[int]) -> tuple:
    from retina.layout.model import per_sample_latents

    z, generators = per_sample_latents(list(range(len(grades))), sampler.module.z_dim, torch.device("cpu"))
    return z, torch.tensor(grades), generators


def bench_peak(dtype: str, quick: bool) -> dict:
    n = 2048 if quick else 4096
    return {"gflops": matmul_gflops(torch.bfloat16 if dtype == "bf16" else torch.float32, n)}


# -- driver ---------------------------------------------------------------------------------------
def items(quick: bool) -> list[tuple[str, list[str]]]:
    plan = [("peak fp32", ["peak", "fp32"]), ("peak bf16", ["peak", "bf16"])]
    for model in ("procedural", "stylegan", "acgan"):
        plan.append((f"layout {model} 256 b16", ["layout", model]))
    for variant in ("no-cl", "bf16", "compile"):  # the evidence for the defaults of `retina layout sample`
        plan.append((f"layout stylegan 256 b16 {variant}", ["layout", "stylegan", variant]))
    for precision in ("fp32", "bf16"):  # side by side with NVlabs' generator at its paper256 configuration
        plan.append((f"layout stylegan paper256 vs nvlabs 256 b4 {precision}",
                     ["layout-nvlabs", "paper256", "256", precision]))
    for res in (256, 512):
        for arch in ("nvlabs-spade", "spade", "spade-in", "drgan"):
            for precision in ("fp32", "bf16"):
                if quick and res == 512:
                    continue
                plan.append((f"render {arch} {res} b4 {precision}", ["render", arch, str(res), precision]))
    for variant in ("cl", "compile"):  # the evidence for the defaults of `retina render` / `retina generate`
        plan.append((f"render drgan 256 b4 fp32 {variant}", ["render", "drgan", "256", "fp32", variant]))
    for res in (256, 512):  # fp32 with channels_last on both sides: the same memory format as the bf16 rows
        for arch in ("nvlabs-spade", "spade"):
            if quick and res == 512:
                continue
            plan.append((f"render {arch} {res} b4 fp32 cl", ["render", arch, str(res), "fp32", "cl"]))
    for arch in ("nvlabs-spade", "spade"):  # torch.compile on both, bf16 + channels_last
        plan.append((f"render {arch} 256 b4 bf16 compile", ["render", arch, "256", "bf16", "compile"]))
    for arch in ("nvlabs-spade", "spade", "drgan"):
        for precision in ("fp32", "bf16"):
            plan.append((f"train {arch} 256 b2 {precision}", ["train", arch, "256", precision]))
    return plan


def run_item(args: list[str], repeats: int, quick: bool) -> dict:
    kind = args[0]
    if kind == "peak":
        result = bench_peak(args[1], quick)
    elif kind == "layout":
        result = bench_layout(args[1], repeats, *args[2:])
    elif kind == "layout-nvlabs":
        result = bench_layout_vs_nvlabs(args[1], int(args[2]), args[3], repeats)
    elif kind == "render":
        result = bench_render(args[1], int(args[2]), args[3], repeats, variant=args[4] if len(args) > 4 else "")
    elif kind == "train":
        result = bench_render_train(args[1], int(args[2]), args[3], max(1, repeats - 1))
    else:
        raise ValueError(kind)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def machine() -> str:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated texts: run only items whose label contains one "
                                                   "(a text ending in $: whose label is exactly it)")
    parser.add_argument("--item", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / f"results-{_dt.date.today()}.json"))
    parser.add_argument("--rounds", type=int, default=1, help="run the plan this many times in turn; medians")
    parser.add_argument("--nvlabs-spade", default="", help="NVlabs/SPADE copy outside the repo (nvlabs_spade.py)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in every item, the peaks included (0: torch's default)")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.nvlabs_spade:
        os.environ["RETINA_NVLABS_SPADE"] = options.nvlabs_spade
    repeats = 2 if options.quick else 3
    if options.item:
        print(json.dumps(run_item(options.item, repeats, options.quick)))
        return
    results = {"date": str(_dt.date.today()), "machine": machine(), "width": WIDTH, "rounds": options.rounds,
               "items": {}}
    def wanted(label: str) -> bool:
        texts = options.only.split(",")
        return not options.only or any(label == t[:-1] if t.endswith("$") else t in label for t in texts)

    plan = [(label, args) for label, args in items(options.quick) if wanted(label)]
    rounds: dict[str, list[dict]] = {label: [] for label, _ in plan}
    for round_ in range(options.rounds):
        for label, args in plan:
            # NVlabs' blocks assert that their activations keep the block's dtype (fp32, or fp16 on CUDA), which bf16
            # autocast breaks: its bf16 rows run with assertions stripped (python -O); nothing else changes
            stripped = ["-O"] if args[0] == "layout-nvlabs" and args[-1] == "bf16" else []
            command = [sys.executable, *stripped, __file__, "--item", *args] + (["--quick"] if options.quick else [])
            command += ["--threads", str(options.threads)] if options.threads else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{label:40s} failed: {tail}", flush=True)
                rounds[label].append({"error": tail})
                continue
            rounds[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"[{round_ + 1}/{options.rounds}] {label:40s} {json.dumps(rounds[label][-1])} "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    for label, values in rounds.items():
        good = [v for v in values if "error" not in v]
        results["items"][label] = ({key: statistics.median(v[key] for v in good) for key in good[0]} if good
                                   else values[-1])
    Path(options.out).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))


def _precision(label: str) -> str:
    """The dtype token of a render/train label (``render drgan 256 b4 bf16``, ``... fp32 cl``)."""
    return next((part for part in label.split() if part in ("fp32", "bf16")), "fp32")


def _rate(value: dict) -> float | None:
    return value.get("images_per_s") or value.get("train_images_per_s")


def markdown_table(results: dict) -> str:
    """Every ratio compares equal dtype: "vs reference" divides by the reference SPADE at the same resolution AND
    dtype (a bf16 row by the reference's bf16 row), "bf16 gain" divides a bf16 row by the same model's fp32 row."""
    items_ = results["items"]
    peak = {p: items_.get(f"peak {p}", {}).get("gflops") for p in ("fp32", "bf16")}
    lines = [f"Date {results['date']}; machine: {results['machine']}; render width {results['width']}.", "",
             f"Matmul peak: fp32 {peak['fp32'] or float('nan'):.0f} GFLOP/s, bf16 {peak['bf16'] or float('nan'):.0f}"
             " GFLOP/s.", "",
             "| item | throughput | vs reference (same res, same dtype) | bf16 gain (same model) | GFLOP/img "
             "| achieved GFLOP/s | % of peak | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for label, value in items_.items():
        if label.startswith("peak"):
            continue
        if "error" in value:
            lines.append(f"| {label} | failed: {value['error'][:60]} | | | | | | |")
            continue
        parts = label.split()
        precision = _precision(label)
        throughput, ratio, gain = "", "", ""
        if "reference_masks_per_s" in value:  # a side-by-side row: ours, then NVlabs' in the ratio column
            throughput = f"{value['masks_per_s']:.2f} masks/s (NVlabs {value['reference_masks_per_s']:.2f})"
            ratio = f"{value['ratio']:.2f}x NVlabs"
        elif "masks_per_s" in value:
            throughput = f"{value['masks_per_s']:.1f} masks/s"
        elif _rate(value):
            kind, arch, res, batch = parts[:4]
            throughput = (f"{value['images_per_s']:.2f} img/s" if kind == "render"
                          else f"{value['train_s_per_image']:.2f} s/img")
            reference = _rate(items_.get(f"{kind} nvlabs-spade {res} {batch} {precision}", {}))
            if reference:
                ratio = f"{_rate(value) / reference:.2f}x"
            fp32 = _rate(items_.get(f"{kind} {arch} {res} {batch} fp32", {}))
            if precision == "bf16" and fp32:
                gain = f"{_rate(value) / fp32:.2f}x"
        if label.endswith("compile"):
            throughput += f" (first call {value['first_call_s']:.0f} s)"
        gflop = value.get("gflop_per_image")
        achieved = value.get("achieved_gflops")
        fraction = f"{100 * achieved / peak[precision]:.0f}%" if achieved and peak.get(precision) else ""
        if "reference_gflop_per_image" in value:
            lines.append(f"| {label} | {throughput} | {ratio} | {gain} | {gflop:.1f} (NVlabs "
                         f"{value['reference_gflop_per_image']:.1f}) | params {value['params_m']:.2f} M (NVlabs "
                         f"{value['reference_params_m']:.2f} M) | load {value['load_1min']:.1f} | "
                         f"{value['peak_rss_mb']:.0f} |")
            continue
        lines.append(f"| {label} | {throughput} | {ratio} | {gain} | {gflop:.1f} | {achieved:.0f} | {fraction} | "
                     f"{value['peak_rss_mb']:.0f} |" if gflop else
                     f"| {label} | {throughput} | {ratio} | {gain} | | | | {value['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

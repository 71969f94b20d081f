"""``retina data``: make, inspect and preview data sets. A thin typer layer: the work lives in the modules it calls."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("phantom")
def phantom(
    out: Path = typer.Option(..., "--out", help="Output folder (canonical format); must not exist."),
    n: int = typer.Option(100, "--n", help="Number of images."),
    size: int = typer.Option(256, "--res", help="Image side in pixels."),
    grades: str = typer.Option("0-4", "--grades", help="Grades to cycle through: '4', '0,2,4', '0-4' or 'uniform'."),
    seed: int = typer.Option(0, "--seed", help="Base seed; each image gets its own seed derived from it."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Write a procedural phantom data set (synthetic, not real data): images, all mask channels, grades."""
    import time

    from retina.common.errors import parse_grades
    from retina.common.progress import summary
    from retina.phantom.dataset import write_phantom

    start = time.perf_counter()
    grade_list = parse_grades(grades, option="--grades")
    path = write_phantom(out, n=n, size=size, grades=grade_list, seed=seed, overwrite=overwrite, progress=True)
    elapsed = time.perf_counter() - start
    summary(f"phantom: {n} images of {size}px (grades {grades}, seed {seed}) in {elapsed:.1f}s "
            f"({elapsed / n:.3f}s/image) -> {path}")


@app.command("inspect")
def inspect(
    root: Path = typer.Argument(..., help="A canonical data set folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Counts per grade and split, mask statistics per grade, and missing or mismatched files."""
    from retina.data.inspect import inspect_dataset, print_report

    report = inspect_dataset(root)
    if as_json:
        import json

        print(json.dumps(report, indent=2))
    else:
        print_report(report)


@app.command("preview")
def preview(
    root: Path = typer.Argument(..., help="A canonical data set folder."),
    out: Path = typer.Option(..., "--out", help="PNG file to write the grid to."),
    per_grade: int = typer.Option(4, "--per-grade", help="Images per grade (one row per grade)."),
    alpha: float = typer.Option(0.5, "--alpha", help="Opacity of the mask overlay (0 = photo only)."),
) -> None:
    """A grid of images with coloured mask overlays, one row per grade (masks-only sets are drawn on black)."""
    from retina.common.progress import summary
    from retina.data.preview import write_preview

    path, shown, skipped = write_preview(root, out, per_grade=per_grade, alpha=alpha)
    note = ""
    if skipped:
        note = f"; skipped {len(skipped)} unreadable ({', '.join(skipped[:3])}): see `retina data inspect`"
    summary(f"preview: {shown} images -> {path}{note}")


@app.command("import")
def import_(
    src: Path = typer.Argument(..., help="The unpacked data set, in its published layout."),
    format: str = typer.Option(..., "--format", "-f",
                               help="idrid, idrid-grading, fgadr, ddr, drive, eyepacs, aptos or idrid-seg512."),
    out: Path = typer.Option(..., "--out", help="Output folder (canonical format); must not exist."),
    size: int = typer.Option(512, "--res", help="Output side in pixels (FOV crop, padded square)."),
    estimate_grade: bool = typer.Option(False, "--estimate-grade",
                                        help="Sets without grades: a lesion-count heuristic grade (not clinical)."),
    limit: int | None = typer.Option(None, "--limit", help="Import only the first N images (quick looks)."),
    aspect: str = typer.Option("auto", "--aspect", help="W:H the photographs had before someone squashed them "
                               "(e.g. 4288:2848 for IDRiD), restored before the FOV crop; 'auto': the format's "
                               "known value (none of the built-in formats is squashed), 'none': keep the shape."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Import a public data set: FOV crop, pad to square, resize (masks max-pooled), report lost lesions."""
    from retina.common.progress import summary
    from retina.data.importers import get_importer
    from retina.data.importers.base import parse_aspect
    from retina.data.importers.pipeline import import_dataset

    importer = get_importer(format)
    report = import_dataset(importer, src, out, size, overwrite=overwrite, estimate=estimate_grade, limit=limit,
                            aspect=parse_aspect(aspect))
    summary(report.summary_line())


@app.command("export")
def export(
    root: Path = typer.Argument(..., help="Canonical data set with photographs."),
    format: str = typer.Option(..., "--format", "-f", help="nnunet (nnU-Net v2 raw set, region-based labels), "
                               "monai (Decathlon-style datalist, multi-channel labels) or labelmap (integer "
                               "class PNGs for SPADE/pix2pixHD)."),
    out: Path = typer.Option(..., "--out", help="Output folder (nnunet: a DatasetNNN_NAME folder is made inside "
                                                "unless OUT is named so)."),
    channels: str | None = typer.Option(None, "--channels", help="Label channels, e.g. ma,he,ex,se (default: "
                                        "every mask channel but fov; labelmap: all, in its fixed order)."),
    name: str = typer.Option("retina", "--name", help="Data set name (nnU-Net folder DatasetNNN_NAME)."),
    dataset_id: int = typer.Option(500, "--dataset-id", help="nnU-Net data set number NNN (1-999)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Export a canonical set for nnU-Net v2, MONAI or SPADE-style label maps (split=test rows kept apart)."""
    from retina.common.errors import RetinaError
    from retina.common.progress import summary
    from retina.data.export import export_dataset

    if not 1 <= dataset_id <= 999:
        raise RetinaError(f"--dataset-id {dataset_id}: nnU-Net numbers data sets 1-999")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise RetinaError(f"--name {name!r}: use letters, digits, '-' or '_' (it becomes a folder name)")
    chosen = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    report = export_dataset(root, out, format, channels=chosen, name=name, dataset_id=dataset_id,
                            overwrite=overwrite)
    splits = ", ".join(f"{n} {s}" for s, n in report["splits"].items() if n)
    summary(f"exported {report['count']} samples ({splits}) as {format} with labels {', '.join(report['channels'])} "
            f"-> {report['out']}")


@app.command("merge")
def merge(
    parts: list[Path] = typer.Argument(..., help="Canonical data set folders (e.g. generation shards)."),
    out: Path = typer.Option(..., "--out", help="Output folder; must not exist."),
    duplicates: str = typer.Option("error", "--duplicates", help="A name in two parts: 'error', or 'first' to keep "
                                   "the first part's copy (e.g. full-resolution imports before re-encoded ones)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Join canonical sets, checking channels, resolution and that no name or seed repeats."""
    from retina.common.errors import RetinaError
    from retina.common.progress import summary
    from retina.data.merge import merge_datasets

    if duplicates not in ("error", "first"):
        raise RetinaError(f"--duplicates {duplicates!r}: expected 'error' or 'first'")
    report = merge_datasets(parts, out, overwrite=overwrite, keep_first=duplicates == "first")
    summary(report.summary_line())


@app.command("resize")
def resize(
    root: Path = typer.Argument(..., help="Canonical data set to shrink."),
    size: int = typer.Option(..., "--res", help="Output side in pixels (at most the set's own)."),
    out: Path = typer.Option(..., "--out", help="Output folder; must not exist."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """A smaller copy of a set: masks max-pooled, grades, split and labels kept (one split at every size)."""
    from retina.data.resize import resize_dataset

    resize_dataset(root, size, out, overwrite)


@app.command("annotate")
def annotate(
    segmenter: Path = typer.Option(..., "--segmenter", help="Segmenter checkpoint or run folder "
                                   "(from `retina bench segment --save-model`)."),
    images: Path = typer.Option(..., "--images", help="A canonical set (grades kept) or a folder of images."),
    out: Path = typer.Option(..., "--out", help="Output canonical set; masks marked as weak labels."),
    batch_size: int = typer.Option(8, "--batch", help="Images per step."),
    add: bool = typer.Option(False, "--add", help="Keep the set's own masks and add the segmenter's channels it "
                             "lacks (e.g. vessels for IDRiD), marked weak."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Pseudo-label a grades-only set with a trained segmenter; an interrupted run resumes where it stopped."""
    from retina.common.device import resolve_device
    from retina.data.annotate import annotate as run_annotate

    run_annotate(segmenter, images, out, resolve_device(device), batch_size, overwrite, add=add)


@app.command("split")
def split(
    root: Path = typer.Argument(..., help="Canonical data set to split."),
    fractions: str = typer.Option(None, "--fractions", help="One set with a split column: train,val,test shares, "
                                  "e.g. 0.7,0.1,0.2 (stratified by grade, seeded); with --out or --in-place."),
    out: Path = typer.Option(None, "--out", help="With --fractions: the split copy of ROOT."),
    in_place: bool = typer.Option(False, "--in-place", help="With --fractions: rewrite ROOT's split column."),
    train: Path = typer.Option(None, "--train", help="Two folders: output folder for the training part."),
    heldout: Path = typer.Option(None, "--heldout", help="Two folders: output folder for the held-out part "
                                 "(split=test)."),
    fraction: float = typer.Option(0.2, help="Two folders: held-out share (Son et al. hold out 20 %)."),
    every: int = typer.Option(0, help="Two folders: instead of a seeded draw, hold out every k-th name in sorted "
                              "order."),
    seed: int = typer.Option(0, help="Seed of the draw."),
) -> None:
    """Split a data set: one set with a train/val/test column (--fractions), or train and held-out folders."""
    from retina.common.canonical import CanonicalDataset
    from retina.common.errors import RetinaError
    from retina.common.progress import summary
    from retina.data.split import heldout_every, heldout_random, parse_fractions, write_split, write_split_column

    if fractions is not None or out is not None or in_place:
        if train is not None or heldout is not None:
            raise RetinaError("--train/--heldout (two folders) and --fractions/--out/--in-place (one set) exclude "
                              "each other; choose one mode")
        if fractions is None or (out is None) == (not in_place):
            raise RetinaError("one set with a split column needs --fractions train,val,test and exactly one of "
                              "--out DIR or --in-place")
        shares = parse_fractions(fractions)
        data = CanonicalDataset(root)
        counts = write_split_column(data, shares, seed, out)
        target = root if in_place else out
        summary(f"split {root}: {counts['train']} train, {counts['val']} val, {counts['test']} test (stratified by "
                f"grade, seed {seed}) -> {target}")
        return
    if train is None or heldout is None:
        raise RetinaError("give --train DIR and --heldout DIR (two folders), or --fractions 0.7,0.1,0.2 with --out "
                          "DIR or --in-place (one set with a split column)")
    data = CanonicalDataset(root)
    if every > 0:
        names, rule = heldout_every(data.names, every), f"every {every}th name in sorted order"
    else:
        names, rule = heldout_random(data.names, fraction, seed), f"seeded draw of {fraction:.0%} (seed {seed})"
    n_train, n_heldout = write_split(data, names, train, heldout, rule)
    summary(f"split {root}: {n_train} train -> {train}, {n_heldout} held out -> {heldout} ({rule})")

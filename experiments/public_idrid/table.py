"""The recipe's results as Markdown tables (the README's), read from the runs folder.

    python experiments/public_idrid/table.py --runs RUNS [--out table.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from run import DONE, runs_folder


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def _pm(mean: float, sd: float | None, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def vessel_table(runs: Path) -> str:
    result = _json(runs / "vessel_seg" / "results.json")
    if result is None:
        return "(vessel segmenter not run yet)"
    metrics = result["rows"][0]["metrics"]["vessels"]
    where = "inside the field of view" if result.get("scored_inside_fov") else "over all pixels"
    return ("| DRIVE test (20 images, 512 px, " + where + ") | F1 | ROC AUC | sensitivity | accuracy |\n"
            "|---|---|---|---|---|\n"
            f"| {result['model_description']}, {result['train']['epochs']} epochs | {metrics['f1']:.3f} | "
            f"{metrics['auc_roc']:.3f} | {metrics['sensitivity']:.3f} | {metrics['accuracy']:.3f} |\n"
            "| U-Net on DRIVE, published range | 0.80–0.82 | 0.97–0.98 | | |")


def fidelity_table(runs: Path) -> str:
    paired = (_json(runs / "preview" / "paired.json") or {}).get("paired", {})
    rows = [("render of the test masks", "learned (DR-GAN)", "render_test_learned", "learned"),
            ("render of the test masks", "procedural", "render_test_procedural", "procedural"),
            ("chain from noise (no real mask)", "learned layout + learned render", "chain_learned", None),
            ("chain from noise (no real mask)", "phantom layout + procedural render", "chain_procedural", None)]
    lines = ["| what | model | n | FD-EffNetLite0 ↓ | SWD ×10³ ↓ | MS-SSIM within set (real: {real}) | "
             "paired MS-SSIM ↑ |", "|---|---|---|---|---|---|---|"]
    real = None
    for what, model, folder, pair in rows:
        report = _json(runs / "fidelity" / f"{folder}.json")
        if report is None:
            lines.append(f"| {what} | {model} | – | – | – | – | – |")
            continue
        m = report["metrics"]["all"]
        real = m.get("MS-SSIM-real", real)
        paired_cell = _pm(paired[pair]["mean"], paired[pair]["sd"]) if pair and pair in paired else ""
        lines.append(f"| {what} | {model} | {report['n_fake']} vs {report['n_real']} | {m['FD-EffNetLite0']:.1f} | "
                     f"{m['SWD']:.1f} | {m['MS-SSIM-fake']:.3f} | {paired_cell} |")
    lines[0] = lines[0].format(real="–" if real is None else f"{real:.3f}")
    return "\n".join(lines)


def layout_table(runs: Path) -> str:
    lines = ["| layout model | n | layout score ↓ | vessel connectivity (real {real}) | optic-disc violations |",
             "|---|---|---|---|---|"]
    real = "–"
    for name, label in (("layouts_learned", "learned StyleGAN2 (small)"), ("layouts_procedural", "procedural prior")):
        report = _json(runs / "layout_eval" / f"{name}.json")
        if report is None:
            lines.append(f"| {label} | – | – | – | – |")
            continue
        vessels = report.get("vessel_connectivity", {})
        real = f"{vessels.get('real', float('nan')):.3f}"
        disc = report.get("optic_disc", {}).get("fake", {}).get("any_rate", float("nan"))
        lines.append(f"| {label} | {report['n_fake']} vs {report['n_real']} | {report['score']:.3f} | "
                     f"{vessels.get('fake', float('nan')):.3f} | {disc:.2f} |")
    lines[0] = lines[0].format(real=real)
    return "\n".join(lines)


def bench_table(runs: Path) -> str:
    lines = ["| synthetic data | ratio | real + synthetic | EX F1 | HE F1 | mean F1 |", "|---|---|---|---|---|---|"]
    for name, label in (("procedural", "phantom chain (procedural)"), ("learned", "learned chain")):
        result = _json(runs / f"bench_{name}" / "results.json")
        if result is None:
            lines.append(f"| {label} | – | – | – | – | – |")
            continue
        for row in result["rows"]:
            if not row["ratio"] and name != "procedural":
                continue  # real only: the same seeds give the same models in both benches; shown once
            sd = row.get("sd") or {}
            cells = [_pm(row["metrics"][c]["f1"], (sd.get(c) or {}).get("f1")) for c in ("ex", "he", "mean")]
            lines.append(f"| {label if row['ratio'] else 'none (real only)'} | {row['ratio']:.2f} | "
                         f"{row['real_count']} + {row['synthetic_count']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def trained_seconds(run: Path) -> float | None:
    """A trainer's own time over all its sessions: the ``time`` of log.jsonl restarts at each --resume."""
    log = run / "log.jsonl"
    if not log.is_file():
        return None
    sessions, last = [], None
    for line in log.read_text("utf-8").splitlines():
        seconds = json.loads(line).get("time")
        if seconds is None:
            continue
        if last is not None and seconds < last:
            sessions.append(last)
        last = seconds
    return sum(sessions) + (last or 0.0)


def time_table(runs: Path) -> str:
    lines = ["| stage | wall time | CPU threads |", "|---|---|---|"]
    total = 0.0
    for done in sorted(runs.glob(f"*/{DONE}"), key=lambda p: p.stat().st_mtime):
        record = json.loads(done.read_text("utf-8"))
        record["seconds"] = trained_seconds(done.parent) or record["seconds"]  # resumed runs: every session
        total += record["seconds"] * record.get("threads", 1)
        lines.append(f"| {record['stage']} | {record['seconds'] / 60:.1f} min | {record.get('threads', '?')} |")
    lines.append(f"| all stages | {total / 3600:.2f} core-hours | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = runs_folder(args.runs)
    text = (f"### Vessel segmenter (pseudo-labels for IDRiD)\n\n{vessel_table(runs)}\n\n"
            f"### Fidelity against the 11 test photographs (256 px)\n\n{fidelity_table(runs)}\n\n"
            f"### Layouts against the 11 test mask sets (`retina eval layout`)\n\n{layout_table(runs)}\n\n"
            f"### Lesion segmentation (Son et al. Table 1(c) at this scale)\n\n{bench_table(runs)}\n\n"
            f"### CPU time\n\n{time_table(runs)}\n")
    if args.out:
        args.out.write_text(text, "utf-8")
    print(text)


if __name__ == "__main__":
    main()

"""Markdown table from `retina eval layout --out JSON` reports: one row per model.

    python experiments/layout_idrid/table.py NAME=REPORT.json [NAME=REPORT.json ...]
"""

from __future__ import annotations

import json
import sys


def row(name: str, report: dict) -> str:
    channels = report["grades"]["all"]["channels"]
    cells = [name, f"{report['n_fake']}", f"{report['score']:.3f}"]
    for channel in ("od", "ma", "he", "ex", "se"):
        stats = channels.get(channel)
        cells.append("-" if stats is None else f"{stats['count']['distance']:.2f} / {stats['area']['distance']:.2f}")
    disc = report["optic_disc"]["fake"]
    cells.append(f"{disc['any_rate']:.3f}")
    connectivity = report.get("vessel_connectivity")
    cells.append("n/a (no vessel masks)" if connectivity is None else f"{connectivity['fake']:.3f}")
    control = report.get("grade_control") or {}
    cells.append(f"{control['grade_agreement_fake']:.3f}" if "grade_agreement_fake" in control else "-")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str]) -> None:
    header = ["model", "n", "layout score", "od", "ma", "he", "ex", "se", "OD violations", "connectivity",
              "grade agreement"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for item in argv:
        name, path = item.split("=", 1)
        with open(path, encoding="utf-8") as handle:
            print(row(name, json.load(handle)))


if __name__ == "__main__":
    main(sys.argv[1:])

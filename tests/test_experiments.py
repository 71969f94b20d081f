"""Smoke test: the Son et al. Table 1(c) experiment runs end to end at --tiny scale on the phantom."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_son2021_tiny_runs_end_to_end(tmp_path):
    _load("son2021_table1c").main(["--tiny", "--out", str(tmp_path), "--device", "cpu"])
    result = json.loads((tmp_path / "segment" / "results.json").read_text())
    assert [row["ratio"] for row in result["rows"]] == [0.0, 0.25]
    assert result["paper"]["0.25"]["f1"] == 0.4965
    assert (tmp_path / "segment" / "plot.png").is_file()


def test_every_experiment_has_config_readme_and_runner():
    for name in ("son2021_table1c", "drgan_table2", "drgan_table4", "skrgan_table2"):
        folder = EXPERIMENTS / name
        config = json.loads((folder / "config.json").read_text())
        assert {"tiny", "full", "paper_numbers"} <= set(config), name
        assert (folder / "README.md").is_file() and (folder / "run.py").is_file(), name

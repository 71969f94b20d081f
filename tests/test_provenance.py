"""Provenance in every output folder and a 'synthetic' mark in every synthetic photograph."""

from __future__ import annotations

import json

import torch
from PIL import Image

import retina
from retina.cli import main
from retina.common.provenance import environment


def test_environment_names_versions_and_command():
    info = environment("cpu")
    assert info["retina"] == retina.__version__ and info["torch"] == torch.__version__
    assert info["device"] == "cpu" and "command_line" in info and "python" in info
    assert info["git_commit"] is None or len(info["git_commit"].split("+")[0]) == 40


def test_generated_and_rendered_images_are_marked_and_traced(tmp_path):
    main(["generate", "--n", "2", "--grades", "3", "--res", "32", "--device", "cpu", "--out", str(tmp_path / "g")])
    png = Image.open(tmp_path / "g" / "images" / "gen_000000.png")
    assert png.info["Synthetic"] == "true" and png.info["Grade"] == "3"
    assert png.info["Software"] == f"retina {retina.__version__}" and png.info["Model"] == "procedural+procedural"
    info = json.loads((tmp_path / "g" / "retina.json").read_text())
    assert info["environment"]["torch"] == torch.__version__ and "generate" in info["environment"]["command_line"]

    main(["layout", "sample", "--grade", "2", "--n", "2", "--res", "32", "--out", str(tmp_path / "l")])
    layouts = json.loads((tmp_path / "l" / "retina.json").read_text())["provenance"]
    assert layouts["vessels"] == "procedural"  # the prior's own vessels, named for the model (never "gan")
    main(["render", "--masks", str(tmp_path / "l"), "--out", str(tmp_path / "r")])
    rendered = json.loads((tmp_path / "r" / "retina.json").read_text())["provenance"]
    assert rendered["masks_provenance"]["model"] == "procedural"  # the layout's provenance carried through
    assert Image.open(tmp_path / "r" / "images" / "layout_000000.png").info["Synthetic"] == "true"

    main(["data", "phantom", "--n", "1", "--res", "32", "--out", str(tmp_path / "p")])
    assert Image.open(next((tmp_path / "p" / "images").iterdir())).info["Model"] == "phantom"

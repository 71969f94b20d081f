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


def test_public_recipe_stages_form_a_dag_and_list(tmp_path, capsys, monkeypatch):
    """experiments/public_idrid/run.py: every stage's inputs are stages before it, outputs are distinct, and
    `--list` shows each stage as to do in an empty runs folder (without reading the data)."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent / "experiments" / "public_idrid"
    spec = importlib.util.spec_from_file_location("public_recipe", here / "run.py")
    recipe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "public_recipe", recipe)  # dataclasses look their module up there
    spec.loader.exec_module(recipe)
    config = json.loads((here / "config.json").read_text())
    stages = recipe.stages(tmp_path / "data", config, tmp_path / "runs")
    seen = set()
    for stage in stages:
        assert set(stage.after) <= seen, (stage.name, stage.after)
        seen.add(stage.name)
    assert len({s.output for s in stages}) == len(stages)
    recipe.main(["--data", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"), "--list"])
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(stages) and all(" todo " in line for line in listed)


def test_public_recipe_commands_parse_with_todays_cli(tmp_path, monkeypatch):
    """Every `retina` command of the recipe is accepted by the CLI as it is now (options, types, ranges): a renamed
    or removed option breaks this test instead of a 2-hour run."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    import typer

    from retina.cli import app
    from retina.common.options import install_number_checks
    from retina.common.vocabulary import install_aliases

    here = Path(__file__).resolve().parent.parent / "experiments" / "public_idrid"
    spec = importlib.util.spec_from_file_location("public_recipe", here / "run.py")
    recipe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "public_recipe", recipe)
    spec.loader.exec_module(recipe)
    root = install_aliases(install_number_checks(typer.main.get_command(app)))
    commands = [c for s in recipe.stages(tmp_path, json.loads((here / "config.json").read_text()), tmp_path)
                for c in (*s.commands, *([s.resume] if s.resume else [])) if c[0] != "python"]
    assert len(commands) > 15
    for command in commands:
        argv = [str(a) for a in command]
        group, rest = root, argv
        while hasattr(group, "commands") and rest and rest[0] in group.commands:
            group, rest = group.commands[rest[0]], rest[1:]
        group.make_context(" ".join(argv[: len(argv) - len(rest)]), list(rest), resilient_parsing=False)

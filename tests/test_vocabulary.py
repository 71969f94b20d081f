"""One flag vocabulary (retina/common/vocabulary.py): canonical names everywhere, earlier spellings accepted but
hidden, and a command's own option of an earlier name (another meaning) left alone."""

from __future__ import annotations

import typer

from retina.cli import app, main
from retina.common.canonical import CanonicalDataset
from retina.common.vocabulary import ALIASES, install_aliases

EARLIER = {alias for aliases in ALIASES.values() for alias in aliases}
# options whose name is an earlier spelling elsewhere but means something else here
OWN_MEANING = {("render", "--grade"), ("layout edit", "--grade"), ("layout sample", "--checkpoint")}


def _options(command, path=""):
    for name, sub in getattr(command, "commands", {}).items():
        yield from _options(sub, f"{path} {name}".strip())
    for param in command.params:
        for opt in getattr(param, "opts", ()):
            yield path, opt, param


def test_no_command_shows_an_earlier_spelling():
    drift = sorted({(path, opt) for path, opt, _ in _options(typer.main.get_command(app))
                    if opt in EARLIER and (path, opt) not in OWN_MEANING})
    assert drift == []


def test_earlier_spellings_still_work_and_stay_out_of_help(tmp_path, capsys):
    main(["data", "phantom", "--n", "2", "--size", "32", "--out", str(tmp_path / "ph")])
    assert CanonicalDataset(tmp_path / "ph").resolution == 32
    main(["layout", "sample", "--grade", "4", "--n", "1", "--res", "32", "--out", str(tmp_path / "ls")])
    assert [s.grade for s in CanonicalDataset(tmp_path / "ls").samples] == [4]
    capsys.readouterr()
    try:
        main(["data", "phantom", "--help"])
    except SystemExit:
        pass
    shown = capsys.readouterr().out
    assert "--res" in shown and "--size" not in shown


def test_an_option_of_its_own_keeps_its_meaning():
    command = install_aliases(typer.main.get_command(app))
    render = command.commands["render"]
    grade = next(p for p in render.params if "--grade" in p.opts)
    assert not getattr(grade, "hidden_aliases", ())  # --grade is render's own (rows without a grade), no alias
    renderer = next(p for p in render.params if "--renderer" in p.opts)
    assert "--checkpoint" in renderer.hidden_aliases

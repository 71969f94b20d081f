"""`--config FILE` on any command: values from YAML/JSON, typed flags win, a run's config.json is accepted back."""

from __future__ import annotations

import json

import pytest

from retina.cli import main
from retina.common.canonical import CanonicalDataset


def error_of(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_yaml_values_and_overriding_flags(tmp_path, capsys):
    config = tmp_path / "sample.yaml"
    config.write_text("grade: 4\nn: 3\nres: 32\nsingle-od: false\nseed: 5\n")
    main(["layout", "sample", "--config", str(config), "--n", "2", "--out", str(tmp_path / "a")])
    data = CanonicalDataset(tmp_path / "a")
    assert len(data) == 2 and {s.grade for s in data.samples} == {4}  # --n typed: it wins over the file's 3
    assert data.resolution == 32 and {s.extra["post_processed"] for s in data.samples} == {"0"}  # --raw
    main(["layout", "sample", "--grade", "4", "--n", "2", "--res", "32", "--seed", "5", "--raw",
          "--out", str(tmp_path / "b")])
    typed = CanonicalDataset(tmp_path / "b")
    assert [s.extra["seed"] for s in typed.samples] == [s.extra["seed"] for s in data.samples]


def test_a_runs_config_json_is_accepted_back(tmp_path, capsys):
    main(["data", "phantom", "--n", "8", "--res", "32", "--out", str(tmp_path / "ph")])
    main(["layout", "train", "--data", str(tmp_path / "ph"), "--res", "16", "--batch", "4", "--kimg", "0.008",
          "--snapshot-kimg", "0.008", "--channel-base", "1024", "--quiet", "--device", "cpu",
          "--out", str(tmp_path / "r1")])
    written = tmp_path / "r1" / "config.json"
    capsys.readouterr()
    main(["layout", "train", "--config", str(written), "--out", str(tmp_path / "r2")])
    assert "no option for" in capsys.readouterr().err  # config.json holds more than the command's options
    first, second = (json.loads((tmp_path / r / "config.json").read_text())["config"] for r in ("r1", "r2"))
    assert second["generator"] == first["generator"] and second["generator"]["channel_base"] == 1024
    run1, run2 = first["training"], second["training"]
    assert run2["batch"] == run1["batch"] == 4 and run2["kimg"] == run1["kimg"] and run2["data"] == run1["data"]
    assert run2["out"] == str(tmp_path / "r2")  # typed --out wins over the file's


@pytest.mark.parametrize("content, suffix, message", [
    ("[1, 2]", ".json", "expected a mapping"),
    ("{broken", ".json", "not valid json"),
    ("a: [unclosed", ".yaml", "not valid YAML"),
    ("n: .nan", ".yaml", "finite number"),
    ("single-od: maybe", ".yaml", "is a switch"),
])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, suffix, message):
    config = tmp_path / f"c{suffix}"
    config.write_text(content)
    assert message in error_of(["layout", "sample", "--config", str(config), "--out", str(tmp_path / "o")], capsys)
    assert not (tmp_path / "o").exists()


def test_missing_config_and_misplaced_option(tmp_path, capsys):
    assert "file not found" in error_of(["layout", "sample", "--config", str(tmp_path / "no.yaml")], capsys)
    assert "goes with a command" in error_of(["--config", str(tmp_path / "no.yaml")], capsys)
    assert "needs a file" in error_of(["layout", "sample", "--config"], capsys)

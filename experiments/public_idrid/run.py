"""The public model's recipe: IDRiD (+ DRIVE vessels) -> learned layout and renderer -> fidelity -> bench.

    python experiments/public_idrid/run.py --data ../shared/data              # every stage, resumable
    python experiments/public_idrid/run.py --data ../shared/data --list       # stages and whether each is done
    python experiments/public_idrid/run.py --data ../shared/data --until render_fine

Every stage is a `retina` command (the project's own CLI, in a fresh process) writing one folder under the runs
folder (``--runs``, else ``$RETINA_RUNS/public_idrid``, else ``~/.cache/retina/runs/public_idrid``), never inside
the repository. A stage whose folder is complete is skipped; a training stage that was interrupted resumes from its
run folder (``--resume``). The layout StyleGAN and the renderer's two stages train side by side, one CPU thread
each (``--lanes 2``): on a 2-core machine that is the same work as one after the other, in half the wall time.

Split: 54 IDRiD segmentation photographs, 38 train / 5 val / 11 test (seeded, stratified by grade), recorded in the
set's labels.csv at 512 px and kept by `retina data resize` at 256 px. No trainer reads split=test; the fidelity
and bench stages score on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DONE = ".recipe-done.json"  # written into a stage's folder once its commands all succeeded


@dataclass
class Stage:
    name: str
    output: str  # folder under the runs folder; the stage is done when it holds DONE
    commands: list[list[str]]
    after: tuple[str, ...] = ()
    resume: list[str] = field(default_factory=list)  # a training command's --resume form, used when output exists
    lane: str = "main"


def runs_folder(given: Path | None) -> Path:
    if given is not None:
        return given
    base = os.environ.get("RETINA_RUNS")
    if base:
        return Path(base) / "public_idrid"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "retina" / "runs" / "public_idrid"


def stages(data: Path, c: dict, runs: Path) -> list[Stage]:
    """The recipe, in order; ``c`` is config.json's budget (steps, kimg, epochs, seeds)."""
    official = data / "IDRiD_official20"
    seg512 = data / "IDRiD_seg512"
    drive = data / "DRIVE"
    r = c["render"]
    lay = c["layout"]
    bench = c["bench"]
    vessel = c["vessels"]
    render_common = ["--data", "idrid_256", "--arch", "drgan", "--res", "256", "--batch", r["batch"],
                     "--width", r["width"], "--grader", "effnet-lite0", "--perceptual", "effnet-lite0",
                     "--amp", "--channels-last", "--every", r["every"], "--val-images", "5", "--device", "cpu",
                     "--seed", "0"]
    # the grades of the training split (grade_rule gives IDRiD-seg grades 2 and 3 only, about 2:1)
    chain = ["--res", "256", "--grades", c["chain_grades"], "--device", "cpu", "--seed", "1000"]
    return [
        Stage("import_official20", "off20_512", [["data", "import", "--format", "idrid", official, "--out",
                                                   "off20_512", "--res", "512", "--estimate-grade"]]),
        Stage("import_seg512", "seg_512", [["data", "import", "--format", "idrid-seg512", seg512, "--out", "seg_512",
                                            "--res", "512", "--estimate-grade"]]),
        # IDRiD_01..20 from the full-resolution originals, 21..54 from the 512 copies; then one fixed split
        Stage("merge_split", "idrid_512_lesions", [
            ["data", "merge", "off20_512", "seg_512", "--duplicates", "first", "--out", "idrid_512_lesions"],
            ["data", "split", "idrid_512_lesions", "--fractions", c["split"], "--seed", "0", "--in-place"],
        ], after=("import_official20", "import_seg512")),
        Stage("import_drive", "drive_512", [["data", "import", "--format", "drive", drive, "--out", "drive_512",
                                             "--res", "512"]]),
        # a vessel U-Net on DRIVE's 20 training images, scored on its 20 test images (inside the field of view)
        Stage("vessel_segmenter", "vessel_seg", [
            ["bench", "segment", "--real", "drive_512", "--channels", "vessels", "--ratios", "0", "--epochs",
             vessel["epochs"], "--res", "512", "--width", vessel["width"], "--amp", "--input", "green-clahe",
             "--save-model", "--out", "vessel_seg", "--device", "cpu"]], after=("import_drive",)),
        Stage("pseudo_vessels", "idrid_512", [
            ["data", "annotate", "--add", "--segmenter", "vessel_seg", "--images", "idrid_512_lesions",
             "--out", "idrid_512", "--device", "cpu"]], after=("merge_split", "vessel_segmenter")),
        Stage("resize_256", "idrid_256", [["data", "resize", "idrid_512", "--res", "256", "--out", "idrid_256"]],
              after=("pseudo_vessels",)),
        # the procedural baselines: held-out masks rendered by hand-written code, and the phantom chain
        Stage("render_test_procedural", "render_test_procedural", [
            ["render", "--masks", "idrid_256", "--split", "test", "--renderer", "procedural",
             "--out", "render_test_procedural"]],
              after=("resize_256",)),
        Stage("chain_procedural", "chain_procedural", [
            ["generate", "--n", bench["synthetic"], *chain, "--layout", "procedural", "--renderer",
             "procedural", "--out", "chain_procedural"]]),
        Stage("layout", "layout", [
            ["layout", "train", "--data", "idrid_256", "--res", "256", "--cfg", lay["cfg"], "--batch", lay["batch"],
             "--kimg", lay["kimg"], "--snapshot-kimg", lay["snapshot_kimg"], "--amp", "--device", "cpu", "--out",
             "layout"]],
              resume=["layout", "train", "--resume", "layout", "--kimg", lay["kimg"], "--amp", "--device", "cpu"],
              after=("resize_256",), lane="layout"),
        Stage("render_coarse", "render_coarse", [
            ["render", "train", *render_common, "--stage", "coarse", "--steps", r["coarse_steps"],
             "--out", "render_coarse"]],
              resume=["render", "train", "--resume", "render_coarse", "--steps", r["coarse_steps"]],
              after=("resize_256",), lane="render"),
        Stage("render_fine", "render_fine", [
            ["render", "train", *render_common, "--stage", "fine", "--init",
             "render_coarse", "--steps", r["fine_steps"], "--out", "render_fine"]],
              resume=["render", "train", "--resume", "render_fine", "--steps", r["fine_steps"]],
              after=("render_coarse",), lane="render"),
        # renders of the held-out masks, learned and procedural (the same masks, the same grades)
        Stage("render_test", "render_test_learned", [
            ["render", "--masks", "idrid_256", "--split", "test", "--renderer", "render_fine/best.safetensors",
             "--device", "cpu", "--out", "render_test_learned"]], after=("render_fine",), lane="render"),
        # chains from noise: learned layout -> learned renderer, phantom layout -> procedural renderer
        Stage("chain_learned", "chain_learned", [
            ["generate", "--n", bench["synthetic"], *chain, "--layout", "layout/best.safetensors",
             "--renderer", "render_fine/best.safetensors", "--out", "chain_learned"]],
              after=("layout", "render_fine"), lane="render"),
        Stage("fidelity", "fidelity", [
            ["eval", "fidelity", "--real", "idrid_256", "--real-split", "test", "--fake", fake, "--metrics",
             "fd-effnet,swd,msssim", "--res", "256", "--device", "cpu", "--out", f"fidelity/{fake}.json"]
            for fake in ("render_test_learned", "render_test_procedural", "chain_learned", "chain_procedural")],
              after=("render_test", "render_test_procedural", "chain_learned", "chain_procedural")),
        *[Stage(f"bench_{name}", f"bench_{name}", [
            ["bench", "segment", "--real", "idrid_256", "--synthetic", f"chain_{name}", "--channels", "ex,he",
             "--ratios", bench["ratios"], "--seeds", bench["seeds"], "--epochs", bench["epochs"], "--res",
             bench["res"], "--width", bench["width"], "--amp", "--device", "cpu", "--out", f"bench_{name}"]],
                after=(f"chain_{name}", "resize_256"), lane=lane) for name, lane in (("procedural", "layout"),
                                                                                       ("learned", "render"))],
        # the layout model against the test masks, beside the procedural prior (retina eval layout)
        Stage("layout_samples", "layouts_learned", [
            ["layout", "sample", "--checkpoint", "layout/best.safetensors", "--grades", c["chain_grades"], "--n",
             bench["synthetic"], "--res", "256", "--seed", "1000", "--device", "cpu", "--out", "layouts_learned"]],
              after=("layout",)),
        Stage("layout_samples_procedural", "layouts_procedural", [
            ["layout", "sample", "--grades", c["chain_grades"], "--n", bench["synthetic"], "--res", "256", "--seed",
             "1000", "--out", "layouts_procedural"]]),
        Stage("layout_eval", "layout_eval", [
            ["eval", "layout", "--real", "idrid_256", "--split", "test", "--fake", fake, "--res", "256", "--out",
             f"layout_eval/{fake}.json"] for fake in ("layouts_learned", "layouts_procedural")],
              after=("layout_samples", "layout_samples_procedural")),
        # inference copies (generator EMA weights, fp16) of the selected checkpoints: what retina/models ships
        Stage("export", "export", [
            ["runs", "export", "layout/best.safetensors", "--out", "export/layout.safetensors"],
            ["runs", "export", "render_fine/best.safetensors", "--out", "export/render.safetensors"]],
              after=("layout", "render_fine")),
        Stage("preview", "preview", [
            ["python", HERE / "preview.py", "--runs", runs, "--out", "preview/preview.png"]],
              after=("render_test", "render_test_procedural", "chain_learned")),
    ]


def _argv(command: list, threads: int) -> tuple[list[str], dict[str, str]]:
    args = [str(a) for a in command]
    if args[0] == "python":
        args = [sys.executable, *args[1:]]
    else:
        args = [sys.executable, "-m", "retina.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return args, env


def run_stage(stage: Stage, runs: Path, threads: int, log: Path) -> float:
    """Run (or resume) one stage in ``runs``, its output into ``logs/STAGE.log`` (the command lines into ``log``
    too); returns its wall time in seconds."""
    target = runs / stage.output
    commands = stage.commands
    if target.exists() and stage.resume:
        commands = [stage.resume]
    start = time.time()
    for command in commands:
        args, env = _argv(command, threads)
        line = "$ " + shlex.join(args[2:] if args[1] == "-m" else args)
        print(f"[{stage.name}] {line}", flush=True)
        stage_log = runs / "logs" / f"{stage.name}.log"
        stage_log.parent.mkdir(exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"[{stage.name}] {line}\n")
        with open(stage_log, "a", encoding="utf-8") as handle:
            handle.write(f"\n{line}\n")
            handle.flush()
            result = subprocess.run(args, cwd=runs, env=env, stdout=handle, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise SystemExit(f"error: stage {stage.name} failed (exit {result.returncode}); see {stage_log}; run "
                             "again to resume")
    seconds = time.time() - start
    target.mkdir(parents=True, exist_ok=True)
    (target / DONE).write_text(json.dumps({"stage": stage.name, "seconds": round(seconds, 1), "threads": threads,
                                           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    return seconds


def is_done(stage: Stage, runs: Path) -> bool:
    return (runs / stage.output / DONE).is_file()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="The folder with DRIVE/, IDRiD_official20/, "
                        "IDRiD_seg512/ (../shared/data).")
    parser.add_argument("--runs", type=Path, help="Runs folder (default $RETINA_RUNS/public_idrid or "
                        "~/.cache/retina/runs/public_idrid).")
    parser.add_argument("--config", type=Path, default=HERE / "config.json", help="Budget (steps, kimg, epochs).")
    parser.add_argument("--until", help="Stop after this stage (and what it needs).")
    parser.add_argument("--only", help="Comma list of stages to run (their inputs must be done).")
    parser.add_argument("--lanes", type=int, default=2, help="Training lanes side by side (layout | renderer).")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in all.")
    parser.add_argument("--list", action="store_true", help="List the stages and whether each is done.")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text("utf-8"))
    runs = runs_folder(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    recipe = stages(args.data.resolve(), config, runs)
    by_name = {s.name: s for s in recipe}
    if args.list:
        for stage in recipe:
            done = runs / stage.output / DONE
            state = json.loads(done.read_text())["seconds"] if done.is_file() else "-"
            print(f"{stage.name:24s} {'done' if done.is_file() else 'todo':5s} {state!s:>8}s  {runs / stage.output}")
        return
    wanted = set(by_name)
    if args.until or args.only:
        wanted = set()
        names = args.only.split(",") if args.only else [args.until]
        for name in names:
            if name not in by_name:
                parser.error(f"--until/--only {name}: no such stage; choose from {', '.join(by_name)}")
        stack = list(names)
        while stack:
            name = stack.pop()
            wanted.add(name)
            if not args.only:
                stack.extend(by_name[name].after)
    log = runs / "recipe.log"
    todo = [s for s in recipe if s.name in wanted and not is_done(s, runs)]
    lock = threading.Lock()
    failures: list[BaseException] = []

    def ready(stage: Stage) -> bool:
        return all(is_done(by_name[a], runs) for a in stage.after)

    # Stages start in recipe order once their inputs are done; training lanes other than "main" run side by side.
    running: dict[str, threading.Thread] = {}
    while todo or running:
        for name, thread in list(running.items()):
            if not thread.is_alive():
                running.pop(name)
        if failures:
            if not running:
                raise failures[0]
            time.sleep(1)
            continue
        started = False
        lanes_busy = {by_name[n].lane for n in running}
        for stage in list(todo):
            if stage.lane in lanes_busy or not ready(stage):
                continue
            if stage.lane == "main" and running:
                continue  # the light stages run alone, at full speed
            if stage.lane != "main" and "main" in lanes_busy:
                continue
            # a fixed share per lane: a lane that starts later never oversubscribes the cores (OpenMP threads
            # that outnumber cores wait on each other: measured 6x slower)
            threads = args.threads if stage.lane == "main" else max(1, args.threads // args.lanes)

            def work(stage: Stage = stage, threads: int = threads) -> None:
                try:
                    seconds = run_stage(stage, runs, threads, log)
                    with lock:
                        print(f"[{stage.name}] done in {seconds / 60:.1f} min ({threads} threads)", flush=True)
                except BaseException as error:  # noqa: BLE001 - reported by the main loop
                    failures.append(error)

            todo.remove(stage)
            thread = threading.Thread(target=work, daemon=True)
            running[stage.name] = thread
            lanes_busy.add(stage.lane)
            thread.start()
            started = True
            if stage.lane == "main":
                break
        if not started:
            if not running and todo:
                blocked = ", ".join(s.name for s in todo)
                raise SystemExit(f"error: stages {blocked} wait for stages outside --only; run those first")
            time.sleep(2)
    print(f"recipe: all stages done in {runs}; table: python {HERE / 'table.py'} --runs {runs}", flush=True)


if __name__ == "__main__":
    main()

"""Mutation score per package with mutmut (run by hand, not in the test suite).

    python benchmarks/mutation.py --ref main --label before --sample 40
    python benchmarks/mutation.py --ref HEAD --label after --sample 40 --packages render,layout

For each package the script exports the tree of `--ref` (git archive) to its own scratch folder outside the
repository, so mutmut's file rewriting never touches a worktree, configures mutmut there to mutate only that
package and to run only the package's fast test files (`-x`, one worker, one torch thread), and runs it on a seeded
random sample of the package's mutants (the same seed and the same code give the same sample, so a "before" and an
"after" run on code that did not change are paired). The score is killed / (killed + survived), with timeouts
counted as killed and "no tests" as survived; the 95 % interval is Wilson's. Survivors are written with their diffs
to `survivors-<package>.txt` for judging which ones are equivalent mutants.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# package -> (source folder, fast test files that exercise it)
PACKAGES: dict[str, tuple[str, list[str]]] = {
    "render": (
        "retina/render",
        ["tests/test_render_models.py", "tests/test_render_mechanisms.py", "tests/test_render_train.py",
         "tests/test_render_sca.py", "tests/test_render_spade.py", "tests/test_skrgan.py", "tests/test_render_cli.py",
         "tests/test_resume_exact.py"],
    ),
    "layout": (
        "retina/layout",
        ["tests/test_layout_models.py", "tests/test_layout_mechanisms.py", "tests/test_layout_extras.py",
         "tests/test_layout_stylegan2.py", "tests/test_layout_cli.py", "tests/test_resume_exact.py"],
    ),
    "eval": ("retina/eval", ["tests/test_eval_fidelity.py", "tests/test_metric_references.py"]),
    "importers": ("retina/data/importers", ["tests/test_importers.py", "tests/test_importer_layouts.py"]),
}
# (until 2026-12-04 the lists held only the first three render/layout files and test_eval_fidelity.py: the
# mechanism, SPADE/SCA, trainer-CLI and resume tests written for issues 13 and 17 were not run on the mutants)

KILLED = {"killed", "timeout", "segfault"}
COUNTED = KILLED | {"survived", "no tests"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (better than the normal one at small n or p near 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def export_tree(ref: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def configure(dest: Path, package: str) -> None:
    src, tests = PACKAGES[package]
    tests = [t for t in tests if (dest / t).exists()]  # a test file added later is absent from an older ref
    cfg = (
        "\n[tool.mutmut]\n"
        'source_paths = ["retina"]\n'
        f'only_mutate = ["{src}/*"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]\n'
        # torch is not fork-safe after it has run threads: fork workers from a clean server process.
        'process_isolation = "forkserver"\n'
        # a worker's CPU-time limit is (covering tests' measured time + constant) * multiplier * 2; collecting
        # the tests again in each worker (imports of torch included) costs ~10 CPU s that the measured test time
        # leaves out, so a small constant reports killable mutants as timeouts (seen: 12 of 40)
        "timeout_multiplier = 5.0\n"
        "timeout_constant = 30.0\n"
        "use_git_change_detection = false\n"
    )
    project = (dest / "pyproject.toml").read_text().split("\n[tool.mutmut]\n")[0]  # re-configurable
    (dest / "pyproject.toml").write_text(project + cfg)


def env_for(dest: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Subprocesses the tests start (the CLI) must import the mutated copy too, not the editable install.
    env["PYTHONPATH"] = str(dest / "mutants")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def generate(dest: Path) -> list[str]:
    """Create the mutants (no tests run) and return every mutant's name."""
    code = (
        "from mutmut.__main__ import copy_src_dir, copy_also_copy_files, setup_source_paths, create_mutants\n"
        "import os\n"
        "os.makedirs('mutants', exist_ok=True)\n"
        "copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants(1)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=dest, env=env_for(dest), check=True, capture_output=True)
    return sorted(read_results(dest))


def read_results(dest: Path) -> dict[str, str]:
    sys.path.insert(0, str(dest))
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415 (mutmut is only needed for this script)

    out: dict[str, str] = {}
    for meta in (dest / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = status_by_exit_code[code]
    return out


def run_package(package: str, ref: str, label: str, sample: int, seed: int, root: Path,
                retime: bool = False, report_only: bool = False) -> dict:
    dest = root / label / package
    if report_only:  # the statuses so far of an existing (possibly unfinished) run
        names = sorted(read_results(dest))
    else:
        if not (dest / "mutants").exists():
            export_tree(ref, dest)
        configure(dest, package)
        names = generate(dest)
    chosen = sorted(random.Random(f"{seed}-{package}").sample(names, min(sample, len(names)))) if sample else names
    previous = read_results(dest)
    # --retime: run again only the sampled mutants that timed out (e.g. under an older, smaller time limit)
    to_run = [n for n in chosen if previous.get(n) == "timeout"] if retime else chosen
    to_run = [] if report_only else to_run
    t0 = time.time()
    if to_run:  # (no names at all would make mutmut run every mutant)
        with open(dest / ("mutmut-retime.log" if retime else "mutmut-run.log"), "w") as log:
            subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1", *to_run], cwd=dest,
                           env=env_for(dest), stdout=log, stderr=subprocess.STDOUT, check=False)
    results = read_results(dest)
    statuses = {n: results.get(n, "not checked") for n in chosen}
    killed = sum(s in KILLED for s in statuses.values())
    counted = sum(s in COUNTED for s in statuses.values())
    survivors = sorted(n for n, s in statuses.items() if s in {"survived", "no tests"})
    with open(root / label / f"survivors-{package}.txt", "w") if not report_only else open(os.devnull, "w") as fh:
        for n in survivors if not report_only else []:
            diff = subprocess.run(
                [sys.executable, "-m", "mutmut", "show", n], cwd=dest, env=env_for(dest), capture_output=True, text=True
            ).stdout
            fh.write(f"### {n} ({statuses[n]})\n{diff}\n")
    lo, hi = wilson(killed, counted)
    return {
        "package": package,
        "ref": ref,
        "mutants_total": len(names),
        "sampled": len(chosen),
        "counted": counted,
        "killed": killed,
        "score": killed / counted if counted else None,
        "wilson95": [lo, hi],
        "statuses": {s: sum(v == s for v in statuses.values()) for s in sorted(set(statuses.values()))},
        "survivors": survivors,
        "seconds": round(time.time() - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="HEAD", help="git ref whose code and tests are measured")
    ap.add_argument("--label", default="after", help="name of this measurement (before/after)")
    ap.add_argument("--packages", default=",".join(PACKAGES), help=f"comma-separated subset of {','.join(PACKAGES)}")
    ap.add_argument("--sample", type=int, default=40, help="mutants sampled per package (0 = all)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--retime", action="store_true", help="re-run only the sampled mutants that timed out")
    ap.add_argument("--report-only", action="store_true", help="summarise existing results, run nothing")
    ap.add_argument("--root", type=Path, default=Path("/work/runs/issue-17/mutation"), help="scratch folder")
    args = ap.parse_args()
    unknown = sorted(set(args.packages.split(",")) - set(PACKAGES))
    if unknown:
        sys.exit(f"error: --packages: unknown {unknown}; choose from {sorted(PACKAGES)}")
    summary = []
    for package in args.packages.split(","):
        res = run_package(package, args.ref, args.label, args.sample, args.seed, args.root, args.retime,
                          args.report_only)
        summary.append(res)
        lo, hi = res["wilson95"]
        print(
            f"{args.label} {package}: {res['killed']}/{res['counted']} killed "
            f"({100 * (res['score'] or 0):.0f} %, 95 % CI {100 * lo:.0f}-{100 * hi:.0f} %) of {res['sampled']} sampled "
            f"from {res['mutants_total']} mutants; {res['statuses']}; {res['seconds']} s",
            flush=True,
        )
        if not args.report_only:
            (args.root / args.label / f"summary-{package}.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

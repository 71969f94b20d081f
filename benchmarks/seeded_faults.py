"""Issue 17's list of deliberate faults, each applied to a scratch copy of the code: every one must fail a test.

    python benchmarks/seeded_faults.py              # all faults, against HEAD
    python benchmarks/seeded_faults.py --ref main --only adain-gain,swd-unsorted

For each fault the tree of ``--ref`` is exported (git archive) to a scratch folder outside the repository, one
source line is rewritten there, and the test files that should catch it run against that copy (PYTHONPATH, so
the CLI subprocesses of the tests import it too; ``-x``, stop at the first failure). A fault that passes every
test is a hole in the suite: the script exits 1 and names it. Run by hand, not in CI (about 5 CPU-minutes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name -> (file, exact source text, its faulty replacement, test files that must catch it)
FAULTS: dict[str, tuple[str, str, str, list[str]]] = {
    "sca-channel-softmax-axis": (
        "retina/render/sca.py", "attention = torch.softmax(energy, dim=-1)",
        "attention = torch.softmax(energy, dim=-2)", ["tests/test_render_sca.py"]),
    "adain-gain": (
        "retina/render/adain.py", "x * (1 + gamma[:, :, None, None])", "x * gamma[:, :, None, None]",
        ["tests/test_render_mechanisms.py", "tests/test_render_models.py"]),
    "swd-unsorted": (
        "retina/eval/swd.py", "projected_a = np.sort(a @ unit, axis=0)", "projected_a = a @ unit",
        ["tests/test_metric_references.py", "tests/test_eval_fidelity.py"]),
    "kid-quadratic-kernel": (
        "retina/eval/frechet.py", "from cleanfid.fid import kernel_distance as cleanfid_kernel_distance",
        # clean-fid's estimator, re-typed with the kernel's power 3 -> 2
        "def cleanfid_kernel_distance(f1, f2, num_subsets=100, max_subset_size=1000):\n"
        "        n, m, t = f1.shape[1], min(len(f1), len(f2), max_subset_size), 0\n"
        "        for _ in range(num_subsets):\n"
        "            x = f2[np.random.choice(len(f2), m, replace=False)]\n"
        "            y = f1[np.random.choice(len(f1), m, replace=False)]\n"
        "            a = (x @ x.T / n + 1) ** 2 + (y @ y.T / n + 1) ** 2\n"
        "            t += (a.sum() - np.diag(a).sum()) / (m - 1) - ((x @ y.T / n + 1) ** 2).sum() * 2 / m\n"
        "        return t / num_subsets / m",
        ["tests/test_metric_references.py"]),
    "idrid-he-ex-swapped": (
        "retina/data/importers/idrid.py", '"he": ("2. Haemorrhages", "HE"),\n    "ex": ("3. Hard Exudates", "EX"),',
        '"he": ("3. Hard Exudates", "EX"),\n    "ex": ("2. Haemorrhages", "HE"),',
        ["tests/test_importers.py", "tests/test_importer_layouts.py"]),
    "ada-p-never-updated": (
        "retina/layout/train.py", "self.ada.update(self.config.batch * t.ada_interval, self.context)", "None",
        ["tests/test_layout_mechanisms.py", "tests/test_layout_stylegan2.py", "tests/test_resume_exact.py"]),
    "ada-p-unclamped-at-1": (
        "retina/layout/ada.py", "self.p = min(1.0, max(0.0, self.p + direction * step))",
        "self.p = max(0.0, self.p + direction * step)", ["tests/test_layout_mechanisms.py"]),
    "render-grade-ignored": (
        "retina/render/model.py", "grading = self.space.sample(grades, generators)",
        "grading = self.space.sample(torch.zeros_like(grades), generators)",
        ["tests/test_render_mechanisms.py", "tests/test_render_models.py"]),
    "render-resume-restarts-epoch": (
        "retina/common/sampler.py", "return itertools.islice(super().__iter__(), self.skip, None)",
        "return iter(super().__iter__())", ["tests/test_resume_exact.py"]),
}


def export_tree(ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def run_fault(name: str, ref: str) -> tuple[str, float, str]:
    path, original, faulty, tests = FAULTS[name]
    with tempfile.TemporaryDirectory(prefix=f"fault-{name}-") as scratch:
        tree = Path(scratch)
        export_tree(ref, tree)
        source = tree / path
        text = source.read_text()
        if text.count(original) != 1:
            return "stale", 0.0, f"{path} no longer holds the line to break exactly once: update FAULTS"
        source.write_text(text.replace(original, faulty))
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        start = time.time()
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=tree, env=env, capture_output=True, text=True)
        seconds = time.time() - start
        failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        if done.returncode == 1 and failed:
            return "caught", seconds, failed[0].split(" - ")[0]
        if done.returncode == 0:
            return "MISSED", seconds, "every test passed"
        return "broken", seconds, (done.stdout + done.stderr).strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="HEAD", help="git ref whose code and tests are checked")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(FAULTS)}")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(FAULTS)
    unknown = sorted(set(names) - set(FAULTS))
    if unknown:
        sys.exit(f"error: --only: unknown {unknown}; choose from {', '.join(FAULTS)}")
    if shutil.which("git") is None:
        sys.exit("error: git is needed to export --ref")
    missed = []
    for name in names:
        status, seconds, detail = run_fault(name, args.ref)
        print(f"{name:30s} {status:7s} {seconds:6.1f} s  {detail}", flush=True)
        missed += [name] if status != "caught" else []
    print(f"{len(names) - len(missed)} of {len(names)} faults caught" + (f"; not caught: {', '.join(missed)}"
                                                                          if missed else ""))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()

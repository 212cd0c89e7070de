"""Line coverage of the whole test suite, per file, with every Python subprocess measured too (the CLI runs, the
`ray job submit` drivers, Ray's workers, Spark's Python workers), and the comparison of two such runs.

    .venv/bin/python bench/suite_coverage.py run OUT [-- PYTEST_ARGS...]   # the suite under coverage; OUT/coverage.json
    .venv/bin/python bench/suite_coverage.py compare BEFORE.json AFTER.json  # lines covered before, not after

`run` installs coverage (pinned below) into this environment when it is missing; it is a measuring tool, not a
dependency of the project, so requirements.lock does not hold it. Coverage starts in every Python process through
coverage's own `patch = subprocess` (a .pth file that reads COVERAGE_PROCESS_CONFIG), so processes that Ray's raylet
or Spark's JVM start are measured as well as those the tests start; `_exit`, `fork` and `sigterm` save what a process
measured when it leaves through os._exit, forks or is terminated. A process killed with SIGKILL saves nothing, so a
line that only such a process ran counts as uncovered in both runs alike. Paths are stored relative to the checkout,
so two checkouts (before and after a change) compare file by file. Wall time under coverage is not the suite's wall
time: time `make test` on its own for that. The pytest durations profile (--durations=60) is kept in OUT/pytest.log.

`compare` prints each file's covered lines in both runs and every line covered before but not after, and exits 1
when there is one (a line number is compared as is, so run it on the same sources or on sources whose measured
files did not change; for changed files read the listed lines by hand).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COVERAGE_PIN = "coverage==7.17.3"
SOURCE = ("interest", "interest_core", "spark_jobs", "ray_train", "cluster")


def rcfile(out: Path) -> Path:
    rc = out / "coveragerc"
    rc.write_text("[run]\n"
                  f"source = {', '.join(SOURCE)}\n"
                  "parallel = true\n"
                  f"data_file = {out / '.coverage'}\n"
                  "relative_files = true\n"
                  "patch = subprocess, _exit, fork\n"
                  "sigterm = true\n")
    return rc


def run(out: Path, pytest_args: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if subprocess.run([sys.executable, "-c", "import coverage"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", COVERAGE_PIN], check=True)
    for old in out.glob(".coverage*"):
        old.unlink()
    rc = rcfile(out)
    cov = [sys.executable, "-m", "coverage"]
    with open(out / "pytest.log", "w") as log:
        proc = subprocess.Popen([*cov, "run", f"--rcfile={rc}", "-m", "pytest", "-q", "--durations=60", *pytest_args],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        status = proc.wait()
    subprocess.run([*cov, "combine", f"--rcfile={rc}", "-q"], cwd=REPO, check=True)
    subprocess.run([*cov, "json", f"--rcfile={rc}", "-q", "-o", str(out / "coverage.json")], cwd=REPO, check=True)
    with open(out / "report.txt", "w") as f:
        subprocess.run([*cov, "report", f"--rcfile={rc}"], cwd=REPO, stdout=f, check=True)
    print(f"pytest exit {status}; coverage per file: {out / 'report.txt'}, {out / 'coverage.json'}")
    return status


def covered(path: Path) -> dict[str, set[int]]:
    files = json.loads(path.read_text())["files"]
    return {name: set(f["executed_lines"]) for name, f in files.items()}


def compare(before: Path, after: Path) -> int:
    b, a = covered(before), covered(after)
    lost_any = False
    print(f"{'file':60s} {'before':>7s} {'after':>7s}")
    for name in sorted(set(b) | set(a)):
        lost = sorted(b.get(name, set()) - a.get(name, set()))
        print(f"{name:60s} {len(b.get(name, ())):7d} {len(a.get(name, ())):7d}"
              + (f"  lost: {', '.join(map(str, lost))}" if lost else ""))
        lost_any |= bool(lost)
    total_b, total_a = sum(map(len, b.values())), sum(map(len, a.values()))
    print(f"{'total covered lines':60s} {total_b:7d} {total_a:7d}")
    return 1 if lost_any else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the suite under coverage")
    r.add_argument("out", type=Path, help="directory for coverage.json, report.txt and pytest.log")
    r.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
    c = sub.add_parser("compare", help="lines covered in BEFORE and not in AFTER")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    a = p.parse_args(argv)
    if a.cmd == "run":
        extra = a.pytest_args[1:] if a.pytest_args[:1] == ["--"] else a.pytest_args
        return run(a.out.resolve(), extra)
    return compare(a.before, a.after)


if __name__ == "__main__":
    sys.exit(main())
